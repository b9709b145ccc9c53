//! What the load generator asks for: which operation, which key, which value.
//!
//! Everything here is deterministic from the seed, so a run can be repeated and a
//! value read back can be checked: the value of a key depends only on the key and the
//! seed ([`ValueGen`]), never on which client wrote it or when.
//!
//! - [`Rng`]: SplitMix64, small, fast and good enough for picking keys.
//! - [`KeyGen`]: the key patterns (uniform, sequential, Gaussian, Zipf).
//! - [`OpMix`]: the SET:GET ratio as an exact repeating cycle.
//! - [`ValueGen`]: value sizes and bytes, and the check of a value read back.
//! - [`KeyBitmap`]: which keys a run wrote, for `--verify`.

use std::fmt::Write as _;

/// Longest key prefix accepted; the key is the prefix plus at most 20 digits.
pub const KEY_PREFIX_SIZE_MAX: usize = 200;

/// Size of the buffer a key is formatted into.
pub const KEY_BUFFER_SIZE: usize = KEY_PREFIX_SIZE_MAX + 20;

/// How many distinct starting offsets into the value pattern there are; values of
/// different keys start at different offsets, so a value returned for the wrong key
/// is caught.
const VALUE_PATTERN_OFFSETS: usize = 64;

/// Length of the per-key hex stamp at the start of every value.
const VALUE_STAMP_SIZE: usize = 16;

/// SplitMix64 (Steele, Lea, Flood 2014): one add and three xor-shift-multiplies per
/// number, passes BigCrush, and any seed (even 0) is fine.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A uniform number in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `[0, n)` (Lemire's multiply-shift; the bias is below
    /// `n / 2^64`, far under anything a benchmark can see). `n` must not be 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The SplitMix64 finaliser: a bijective mix of 64 bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of one client's generator: distinct for every (seed, client) pair.
pub fn client_seed(seed: u64, client: u64) -> u64 {
    mix64(seed ^ mix64(client.wrapping_add(1)))
}

/// How keys are picked from `[key_minimum, key_maximum]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPatternKind {
    /// Uniform over the range.
    Random,
    /// Each client walks the range in order from its own starting point, wrapping.
    Sequential,
    /// Normal around the middle of the range, standard deviation range / 6.
    Gaussian,
    /// Zipf with exponent `--key-zipf-exp`: the lowest keys are the hottest.
    Zipf,
}

/// Zipf sampler by rejection-inversion (Hörmann and Derflinger, "Rejection-inversion
/// to generate variates from monotone discrete distributions", 1996), as in Apache
/// Commons RNG: O(1) time and memory per sample, any exponent > 0, any range size.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// A sampler of ranks `1..=n` with `P(k) ∝ k^-exponent`. `n >= 1`, `exponent > 0`.
    pub fn new(n: u64, exponent: f64) -> Zipf {
        let n = n as f64;
        let mut z = Zipf {
            n,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// One rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.next_f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

enum Pattern {
    Random,
    Sequential { next: u64 },
    Gaussian { mean: f64, sd: f64 },
    Zipf(Zipf),
}

/// Picks key numbers in `[min, max]` by one pattern.
pub struct KeyGen {
    min: u64,
    max: u64,
    rng: Rng,
    pattern: Pattern,
}

impl KeyGen {
    /// A generator for one client. `client` and `clients` place a sequential client's
    /// starting point so clients walk different parts of the range.
    pub fn new(
        kind: KeyPatternKind,
        min: u64,
        max: u64,
        zipf_exponent: f64,
        rng: Rng,
        client: u64,
        clients: u64,
    ) -> KeyGen {
        // `max < u64::MAX` is validated with the flags, so `span` cannot overflow.
        assert!(
            min <= max && max < u64::MAX,
            "key range is validated before use"
        );
        let span = max - min + 1;
        let pattern = match kind {
            KeyPatternKind::Random => Pattern::Random,
            KeyPatternKind::Sequential => Pattern::Sequential {
                next: ((u128::from(span) * u128::from(client) / u128::from(clients.max(1))) as u64)
                    % span,
            },
            KeyPatternKind::Gaussian => Pattern::Gaussian {
                mean: (min as f64 + max as f64) / 2.0,
                sd: (span as f64 / 6.0).max(1.0),
            },
            KeyPatternKind::Zipf => Pattern::Zipf(Zipf::new(span, zipf_exponent)),
        };
        KeyGen {
            min,
            max,
            rng,
            pattern,
        }
    }

    /// The next key number.
    pub fn next_key(&mut self) -> u64 {
        let span = self.max - self.min + 1;
        match &mut self.pattern {
            Pattern::Random => self.min + self.rng.below(span),
            Pattern::Sequential { next } => {
                let key = self.min + *next;
                *next = (*next + 1) % span;
                key
            }
            Pattern::Gaussian { mean, sd } => {
                // Box-Muller; resample the rare draw outside the range (beyond 3 sd),
                // and clamp after a few tries so the loop is bounded.
                for _ in 0..8 {
                    let u1 = 1.0 - self.rng.next_f64();
                    let u2 = self.rng.next_f64();
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    let x = (*mean + z * *sd).round();
                    if x >= self.min as f64 && x <= self.max as f64 {
                        return x as u64;
                    }
                }
                *mean as u64
            }
            Pattern::Zipf(z) => self.min + (z.sample(&mut self.rng) - 1),
        }
    }
}

/// Writes `prefix` followed by the decimal digits of `n` into `out`; returns the key.
/// The prefix must be at most [`KEY_PREFIX_SIZE_MAX`] bytes (checked by the caller).
pub fn format_key<'a>(prefix: &[u8], n: u64, out: &'a mut [u8; KEY_BUFFER_SIZE]) -> &'a [u8] {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let len = prefix.len() + digits.len() - at;
    out[..prefix.len()].copy_from_slice(prefix);
    out[prefix.len()..len].copy_from_slice(&digits[at..]);
    &out[..len]
}

/// An operation of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write a key.
    Set,
    /// Read a key.
    Get,
}

/// The SET:GET ratio as a repeating cycle (`1:10` = one SET, then ten GETs), so the
/// mix is exact over every whole cycle instead of only on average.
#[derive(Clone, Debug)]
pub struct OpMix {
    sets: u32,
    cycle: u32,
    position: u32,
}

impl OpMix {
    /// A mix of `sets` SETs per `gets` GETs; not both 0.
    pub fn new(sets: u32, gets: u32, start: u32) -> OpMix {
        let cycle = sets + gets;
        assert!(cycle > 0, "ratio is validated before use");
        OpMix {
            sets,
            cycle,
            position: start % cycle,
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let op = if self.position < self.sets {
            Op::Set
        } else {
            Op::Get
        };
        self.position = (self.position + 1) % self.cycle;
        op
    }
}

/// Values as a function of (seed, key): a 16-character hex stamp of the key's hash,
/// then a slice of a fixed pseudo-random pattern starting at an offset chosen by the
/// hash. Building one is a copy, checking one needs no allocation.
#[derive(Clone, Debug)]
pub struct ValueGen {
    seed: u64,
    size_min: u32,
    size_max: u32,
    pattern: Vec<u8>,
}

impl ValueGen {
    /// Values of `size_min..=size_max` bytes.
    pub fn new(seed: u64, size_min: u32, size_max: u32) -> ValueGen {
        assert!(size_min <= size_max, "sizes are validated before use");
        let mut rng = Rng::new(mix64(seed ^ 0x005E_ED0F_7A1E));
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pattern = (0..size_max as usize + VALUE_PATTERN_OFFSETS)
            .map(|_| ALPHABET[(rng.next_u64() & 63) as usize])
            .collect();
        ValueGen {
            seed,
            size_min,
            size_max,
            pattern,
        }
    }

    fn hash(&self, key: u64) -> u64 {
        mix64(self.seed ^ mix64(key))
    }

    /// The value size of `key`.
    pub fn size_of(&self, key: u64) -> usize {
        let span = u64::from(self.size_max - self.size_min) + 1;
        (u64::from(self.size_min) + (self.hash(key) >> 17) % span) as usize
    }

    fn parts(&self, key: u64) -> ([u8; VALUE_STAMP_SIZE], usize, &[u8]) {
        let hash = self.hash(key);
        let size = self.size_of(key);
        let mut stamp = [0u8; VALUE_STAMP_SIZE];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in stamp.iter_mut().enumerate() {
            *byte = HEX[((hash >> (60 - 4 * i)) & 15) as usize];
        }
        let stamp_len = size.min(VALUE_STAMP_SIZE);
        let offset = (hash % VALUE_PATTERN_OFFSETS as u64) as usize;
        let rest = &self.pattern[offset..offset + (size - stamp_len)];
        (stamp, stamp_len, rest)
    }

    /// Replaces the contents of `out` with the value of `key`.
    pub fn write(&self, key: u64, out: &mut Vec<u8>) {
        let (stamp, stamp_len, rest) = self.parts(key);
        out.clear();
        out.extend_from_slice(&stamp[..stamp_len]);
        out.extend_from_slice(rest);
    }

    /// True if `value` is the value of `key`.
    pub fn matches(&self, key: u64, value: &[u8]) -> bool {
        let (stamp, stamp_len, rest) = self.parts(key);
        value.len() == stamp_len + rest.len()
            && value[..stamp_len] == stamp[..stamp_len]
            && value[stamp_len..] == *rest
    }

    /// A short printable description of a wrong value, for error messages.
    pub fn describe_mismatch(&self, key: u64, value: &[u8]) -> String {
        let mut s = String::new();
        let shown = &value[..value.len().min(24)];
        let _ = write!(
            s,
            "key {key}: got {} bytes {:?}, expected {} bytes",
            value.len(),
            String::from_utf8_lossy(shown),
            self.size_of(key)
        );
        s
    }
}

/// One bit per key of `[min, max]`: which keys were written.
#[derive(Clone, Debug)]
pub struct KeyBitmap {
    min: u64,
    len: u64,
    words: Vec<u64>,
}

impl KeyBitmap {
    /// An empty bitmap over `[min, max]`.
    pub fn new(min: u64, max: u64) -> KeyBitmap {
        let len = max - min + 1;
        KeyBitmap {
            min,
            len,
            words: vec![0; len.div_ceil(64) as usize],
        }
    }

    /// Marks `key`; keys outside the range are ignored.
    pub fn set(&mut self, key: u64) {
        let Some(i) = key.checked_sub(self.min).filter(|i| *i < self.len) else {
            return;
        };
        if let Some(word) = self.words.get_mut((i / 64) as usize) {
            *word |= 1 << (i % 64);
        }
    }

    /// Adds every key marked in `other` (same range).
    pub fn union(&mut self, other: &KeyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    /// Number of keys marked.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The marked keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(move |(w, &word)| {
            (0..64u64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| self.min + w as u64 * 64 + b)
        })
    }
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys(kind: KeyPatternKind, min: u64, max: u64, n: usize) -> Vec<u64> {
        let mut g = KeyGen::new(kind, min, max, 0.99, Rng::new(7), 0, 1);
        (0..n).map(|_| g.next_key()).collect()
    }

    #[test]
    fn every_pattern_stays_in_bounds() {
        for kind in [
            KeyPatternKind::Random,
            KeyPatternKind::Sequential,
            KeyPatternKind::Gaussian,
            KeyPatternKind::Zipf,
        ] {
            for (min, max) in [(0, 0), (5, 5), (1, 10), (1000, 1999), (0, 100_000)] {
                for k in keys(kind, min, max, 20_000) {
                    assert!(
                        (min..=max).contains(&k),
                        "{kind:?} {k} outside {min}..={max}"
                    );
                }
            }
        }
    }

    #[test]
    fn random_covers_the_range_evenly() {
        let mut counts = [0u32; 10];
        for k in keys(KeyPatternKind::Random, 0, 9, 100_000) {
            counts[k as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven: {counts:?}");
        }
    }

    #[test]
    fn sequential_walks_and_wraps_from_the_client_offset() {
        let mut g = KeyGen::new(KeyPatternKind::Sequential, 10, 19, 1.0, Rng::new(1), 1, 2);
        let got: Vec<u64> = (0..12).map(|_| g.next_key()).collect();
        assert_eq!(got, vec![15, 16, 17, 18, 19, 10, 11, 12, 13, 14, 15, 16]);
    }

    #[test]
    fn gaussian_concentrates_in_the_middle() {
        let ks = keys(KeyPatternKind::Gaussian, 0, 5999, 60_000);
        // Mean 2999.5, sd 1000: about 68 % within one sd.
        let near = ks.iter().filter(|&&k| (2000..4000).contains(&k)).count();
        assert!((38_000..44_000).contains(&near), "{near}");
    }

    #[test]
    fn zipf_is_skewed_by_its_exponent() {
        for exponent in [0.5, 0.99, 1.0, 1.5] {
            let z = Zipf::new(1_000, exponent);
            let mut rng = Rng::new(3);
            let mut counts = vec![0u32; 1_001];
            let n = 400_000;
            for _ in 0..n {
                counts[z.sample(&mut rng) as usize] += 1;
            }
            // P(1)/P(2) = 2^s.
            let ratio = f64::from(counts[1]) / f64::from(counts[2]);
            let want = 2f64.powf(exponent);
            assert!(
                (ratio - want).abs() / want < 0.08,
                "s={exponent}: ratio {ratio}, want {want}"
            );
            // Monotone on average: the first 10 ranks beat the last 10 by far.
            let head: u32 = counts[1..=10].iter().sum();
            let tail: u32 = counts[991..=1000].iter().sum();
            assert!(head > 10 * tail, "s={exponent}: head {head}, tail {tail}");
        }
    }

    #[test]
    fn zipf_099_puts_most_reads_on_few_keys() {
        let ks = keys(KeyPatternKind::Zipf, 1, 100_000, 100_000);
        // With s = 0.99 over 100 K keys the hottest 1 % take roughly 60 % of draws.
        let hot = ks.iter().filter(|&&k| k <= 1_000).count();
        assert!((50_000..70_000).contains(&hot), "{hot}");
    }

    #[test]
    fn op_mix_is_an_exact_cycle() {
        let mut mix = OpMix::new(1, 10, 0);
        let ops: Vec<Op> = (0..22).map(|_| mix.next_op()).collect();
        assert_eq!(ops.iter().filter(|o| **o == Op::Set).count(), 2);
        assert_eq!(ops[0], Op::Set);
        assert_eq!(ops[11], Op::Set);
        let mut only_gets = OpMix::new(0, 1, 0);
        assert!((0..5).all(|_| only_gets.next_op() == Op::Get));
    }

    #[test]
    fn keys_format_as_prefix_and_digits() {
        let mut buf = [0u8; KEY_BUFFER_SIZE];
        assert_eq!(format_key(b"key:", 0, &mut buf), b"key:0");
        assert_eq!(format_key(b"key:", 1234567, &mut buf), b"key:1234567");
        assert_eq!(
            format_key(b"", u64::MAX, &mut buf),
            u64::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn values_are_deterministic_and_checkable() {
        let g = ValueGen::new(42, 4, 300);
        let mut v = Vec::new();
        for key in 0..500 {
            g.write(key, &mut v);
            assert_eq!(v.len(), g.size_of(key));
            assert!((4..=300).contains(&v.len()));
            assert!(g.matches(key, &v));
            let mut w = Vec::new();
            ValueGen::new(42, 4, 300).write(key, &mut w);
            assert_eq!(v, w, "same seed, same value");
            // Another key's value, or a corrupted one, does not match.
            let mut other = Vec::new();
            g.write(key + 1, &mut other);
            assert!(!g.matches(key, &other));
            let mut bad = v.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!g.matches(key, &bad));
        }
        let fixed = ValueGen::new(1, 32, 32);
        assert!((0..100).all(|k| fixed.size_of(k) == 32));
    }

    #[test]
    fn bitmap_marks_and_merges() {
        let mut a = KeyBitmap::new(10, 200);
        a.set(10);
        a.set(200);
        a.set(5);
        a.set(201);
        let mut b = KeyBitmap::new(10, 200);
        b.set(77);
        a.union(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.keys().collect::<Vec<_>>(), vec![10, 77, 200]);
    }
}
