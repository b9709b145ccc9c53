//! INCRBYFLOAT's arithmetic, bit for bit as Redis on x86-64: 80-bit extended
//! precision ("long double": 64-bit mantissa, 15-bit exponent), parsed like glibc's
//! `strtold` (correctly rounded), added with round-half-even, printed like
//! `printf("%.17Lf")`, with Redis's `string2ld` acceptance rules and its trimming
//! of trailing zeros.
//!
//! With `f64` instead, `SET k 5000; INCRBYFLOAT k 1.1` would answer `5001.1` where
//! Redis answers `5001.10000000000000009`, and values past 2^53 would lose digits.
//! Everything here is exact integer arithmetic on a small big-integer type, so it
//! is deterministic and platform independent.

use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer strings are not floats.
const LONG_DOUBLE_CHARS_MAX: usize = 5 * 1024;
/// Mantissa bits of the x87 extended format.
const MANTISSA_BITS: i64 = 64;
/// Exponent of the largest finite value's top bit.
const TOP_EXP_MAX: i64 = 16_383;
/// Exponent of the lowest bit of the smallest denormal.
const LSB_EXP_MIN: i64 = -16_382 - 63;
/// Decimal exponents (of the leading digit) beyond which a value surely
/// overflows, or underflows to zero; between them it is computed exactly.
const DEC_EXP_MAX: i64 = 4_934;
const DEC_EXP_MIN: i64 = -4_953;

/// An x87 extended-precision value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ld {
    /// Zero (the sign is kept, as in IEEE; it only shows as "-0", printed "0").
    Zero {
        /// Negative zero.
        neg: bool,
    },
    /// `mantissa * 2^exp`.
    Finite {
        /// Negative.
        neg: bool,
        /// At most 64 significant bits.
        mantissa: u64,
        /// Exponent of the mantissa's lowest bit.
        exp: i64,
    },
    /// An infinity (parses, as "inf"; never stored).
    Inf {
        /// Negative infinity.
        neg: bool,
    },
}

impl Ld {
    /// Parses like Redis's `string2ld`: `strtold` over the whole string, refusing
    /// empty or over-long input, a leading space, NaN, and overflow or underflow to
    /// zero. Accepts decimal and hexadecimal floats and infinities.
    pub fn parse(text: &[u8]) -> Option<Ld> {
        if text.is_empty() || text.len() >= LONG_DOUBLE_CHARS_MAX {
            return None;
        }
        if matches!(
            text.first(),
            Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        ) {
            return None;
        }
        let (neg, rest) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        let lower = rest.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(Ld::Inf { neg });
        }
        let (big, exp2, exp10) = if lower.starts_with(b"0x") {
            parse_hex(rest.get(2..)?)?
        } else {
            parse_decimal(rest)?
        };
        if big.is_zero() {
            return Some(Ld::Zero { neg });
        }
        let value = if exp10 >= 0 {
            // Integral: exact.
            round(neg, big.mul_pow10(exp10 as u32), exp2, false)
        } else {
            // big / 10^-exp10, with enough quotient bits that the rounding is exact.
            let divisor = Big::one().mul_pow10((-exp10) as u32);
            let shift = (68 + divisor.bits() as i64 - big.bits() as i64).max(0);
            let (quotient, remainder) = big.shl(shift as usize).div_rem(&divisor);
            round(neg, quotient, exp2 - shift, !remainder.is_zero())
        };
        // strtold's ERANGE cases that Redis refuses: overflow, and underflow to zero.
        match value {
            Ld::Inf { .. } | Ld::Zero { .. } => None,
            finite => Some(finite),
        }
    }

    /// True for an infinity.
    pub fn is_infinite(self) -> bool {
        matches!(self, Ld::Inf { .. })
    }

    /// `self + other`, rounded half to even as the x87 does; `None` for
    /// `inf + -inf` (NaN).
    pub fn checked_add(self, other: Ld) -> Option<Ld> {
        match (self, other) {
            (Ld::Inf { neg: a }, Ld::Inf { neg: b }) if a != b => None,
            (inf @ Ld::Inf { .. }, _) | (_, inf @ Ld::Inf { .. }) => Some(inf),
            (Ld::Zero { neg: a }, Ld::Zero { neg: b }) => Some(Ld::Zero { neg: a && b }),
            (Ld::Zero { .. }, x) | (x, Ld::Zero { .. }) => Some(x),
            (
                Ld::Finite {
                    neg: an,
                    mantissa: am,
                    exp: ae,
                },
                Ld::Finite {
                    neg: bn,
                    mantissa: bm,
                    exp: be,
                },
            ) => {
                let top = |m: u64, e: i64| e + 63 - i64::from(m.leading_zeros());
                // Far apart: the smaller is below a quarter of the larger's last
                // bit, so the nearest value is the larger one.
                if top(am, ae) - top(bm, be) > 2 * MANTISSA_BITS {
                    return Some(self);
                }
                if top(bm, be) - top(am, ae) > 2 * MANTISSA_BITS {
                    return Some(other);
                }
                let low = ae.min(be);
                let a = Big::from_u64(am).shl((ae - low) as usize);
                let b = Big::from_u64(bm).shl((be - low) as usize);
                let (neg, sum) = if an == bn {
                    (an, a.add(&b))
                } else {
                    match a.cmp(&b) {
                        Ordering::Equal => return Some(Ld::Zero { neg: false }),
                        Ordering::Greater => (an, a.sub(&b)),
                        Ordering::Less => (bn, b.sub(&a)),
                    }
                };
                Some(round(neg, sum, low, false))
            }
        }
    }

    /// Formats like Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, then trailing
    /// zeros and a trailing dot removed, and "-0" written "0".
    pub fn to_human(self) -> String {
        let (neg, mantissa, exp) = match self {
            Ld::Zero { .. } => return "0".into(),
            Ld::Inf { neg } => return if neg { "-inf".into() } else { "inf".into() },
            Ld::Finite { neg, mantissa, exp } => (neg, mantissa, exp),
        };
        let scaled = Big::from_u64(mantissa).mul_pow10(17);
        let units = if exp >= 0 {
            scaled.shl(exp as usize)
        } else {
            let (mut units, half, sticky) = scaled.shr_round((-exp) as usize);
            if half && (sticky || units.is_odd()) {
                units = units.add(&Big::one());
            }
            units
        };
        let mut digits = units.to_decimal();
        while digits.len() < 18 {
            digits.insert(0, '0');
        }
        let (int, frac) = digits.split_at(digits.len() - 17);
        let mut text = format!("{}{int}.{frac}", if neg { "-" } else { "" });
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
        if text == "-0" {
            text = "0".into();
        }
        text
    }
}

/// Rounds `big * 2^exp2` (plus a nonzero fraction below its last bit when
/// `sticky`) to the extended format, half to even, denormals included.
fn round(neg: bool, big: Big, exp2: i64, sticky: bool) -> Ld {
    if big.is_zero() {
        return Ld::Zero { neg };
    }
    let top = exp2 + big.bits() as i64 - 1;
    let lsb = (top - (MANTISSA_BITS - 1)).max(LSB_EXP_MIN);
    let shift = lsb - exp2;
    let (mut mantissa, mut lsb) = if shift > 0 {
        let (kept, half, below) = big.shr_round(shift as usize);
        let mut m = kept.to_u64();
        if half && (below || sticky || m & 1 == 1) {
            m = m.wrapping_add(1);
            if m == 0 {
                // Carried out of 64 bits: 2^64 = 2^63 one exponent up.
                return finite_or_inf(neg, 1 << 63, lsb + 1);
            }
        }
        (m, lsb)
    } else {
        // Callers give at least two bits below the last kept one when `sticky`.
        (big.shl((-shift) as usize).to_u64(), lsb)
    };
    if mantissa == 0 {
        return Ld::Zero { neg };
    }
    // Keep the representation canonical: no trailing zero bits above LSB_EXP_MIN.
    while mantissa & 1 == 0 && lsb < TOP_EXP_MAX {
        mantissa >>= 1;
        lsb += 1;
    }
    finite_or_inf(neg, mantissa, lsb)
}

fn finite_or_inf(neg: bool, mantissa: u64, exp: i64) -> Ld {
    let top = exp + 63 - i64::from(mantissa.leading_zeros());
    if top > TOP_EXP_MAX {
        Ld::Inf { neg }
    } else {
        Ld::Finite { neg, mantissa, exp }
    }
}

/// `digits[.digits][e[+-]digits]`: the digits as an integer, a binary exponent (0)
/// and the decimal exponent. `None` unless the whole input is one number.
fn parse_decimal(text: &[u8]) -> Option<(Big, i64, i64)> {
    let mut big = Big::zero();
    let (mut exp10, mut seen, mut significant, mut dot) = (0i64, false, 0i64, false);
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'0'..=b'9' => {
                seen = true;
                if significant > 0 || b != b'0' {
                    significant += 1;
                }
                big = big.mul_small(10).add(&Big::from_u64(u64::from(b - b'0')));
                if dot {
                    exp10 -= 1;
                }
            }
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    if let Some(b'e' | b'E') = text.get(i) {
        exp10 += exponent(text.get(i + 1..)?, 1_000_000_000)?;
        i = text.len();
    }
    if i != text.len() {
        return None;
    }
    if !big.is_zero() {
        // Position of the leading digit, to refuse hopeless exponents before
        // building 10^exp10.
        let lead = exp10 + significant - 1;
        if lead > DEC_EXP_MAX {
            return Some((Big::from_u64(1), TOP_EXP_MAX + 1, 0));
        }
        if lead < DEC_EXP_MIN {
            return Some((Big::from_u64(1), LSB_EXP_MIN - 2, 0));
        }
    }
    Some((big, 0, exp10))
}

/// The rest of the text after `e`/`p`: `[+-]digits`, its value saturated at `cap`
/// (anything that large is out of range either way); `None` if it is not that.
fn exponent(text: &[u8], cap: i64) -> Option<i64> {
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let e = digits
        .iter()
        .fold(0i64, |acc, &d| (acc * 10 + i64::from(d - b'0')).min(cap));
    Some(if neg { -e } else { e })
}

/// `hexdigits[.hexdigits][p[+-]digits]` after `0x`, as strtold reads it.
fn parse_hex(text: &[u8]) -> Option<(Big, i64, i64)> {
    let mut big = Big::zero();
    let (mut exp2, mut seen, mut dot, mut i) = (0i64, false, false, 0);
    while let Some(&b) = text.get(i) {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'.' if !dot => {
                dot = true;
                i += 1;
                continue;
            }
            _ => break,
        };
        seen = true;
        // Beyond 64 KiB of bits nothing changes the rounding but the exponent.
        if big.bits() < 20_000 {
            big = big.mul_small(16).add(&Big::from_u64(u64::from(digit)));
            if dot {
                exp2 -= 4;
            }
        } else if !dot {
            exp2 += 4;
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    if let Some(b'p' | b'P') = text.get(i) {
        exp2 += exponent(text.get(i + 1..)?, 1_000_000)?;
        i = text.len();
    }
    (i == text.len()).then_some((big, exp2, 0))
}

/// A non-negative big integer: little-endian 32-bit limbs, no trailing zero limb.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn one() -> Big {
        Big(vec![1])
    }

    fn from_u64(n: u64) -> Big {
        let mut b = Big(vec![n as u32, (n >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    fn bits(&self) -> usize {
        match self.0.last() {
            None => 0,
            Some(top) => self.0.len() * 32 - top.leading_zeros() as usize,
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    fn to_u64(&self) -> u64 {
        let limb = |i: usize| u64::from(self.0.get(i).copied().unwrap_or(0));
        limb(0) | (limb(1) << 32)
    }

    fn mul_small(&self, m: u32) -> Big {
        let mut carry = 0u64;
        let mut out: Vec<u32> = self
            .0
            .iter()
            .map(|&l| {
                let v = u64::from(l) * u64::from(m) + carry;
                carry = v >> 32;
                v as u32
            })
            .collect();
        out.push(carry as u32);
        let mut b = Big(out);
        b.trim();
        b
    }

    fn mul_pow10(&self, mut n: u32) -> Big {
        let mut b = self.clone();
        while n >= 9 {
            b = b.mul_small(1_000_000_000);
            n -= 9;
        }
        b.mul_small(10u32.pow(n))
    }

    fn add(&self, other: &Big) -> Big {
        let len = self.0.len().max(other.0.len());
        let mut out = Vec::with_capacity(len + 1);
        let mut carry = 0u64;
        for i in 0..len {
            let v = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(other.0.get(i).copied().unwrap_or(0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        out.push(carry as u32);
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - other`; `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &l) in self.0.iter().enumerate() {
            let mut v = i64::from(l) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn shl(&self, n: usize) -> Big {
        if self.is_zero() {
            return Big::zero();
        }
        let (limbs, bits) = (n / 32, n % 32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            out.push(if bits == 0 { l } else { (l << bits) | carry });
            carry = if bits == 0 { 0 } else { l >> (32 - bits) };
        }
        out.push(carry);
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self >> n`, the first dropped bit, and whether any later dropped bit is set.
    fn shr_round(&self, n: usize) -> (Big, bool, bool) {
        if n == 0 {
            return (self.clone(), false, false);
        }
        let half = self.bit(n - 1);
        let sticky = (0..(n - 1).min(self.bits())).any(|i| self.bit(i));
        let (limbs, bits) = (n / 32, n % 32);
        let src = self.0.get(limbs..).unwrap_or_default();
        let mut out: Vec<u32> = src
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                if bits == 0 {
                    l
                } else {
                    let next = src.get(i + 1).copied().unwrap_or(0);
                    (l >> bits) | (next << (32 - bits))
                }
            })
            .collect();
        out.push(0);
        let mut b = Big(out);
        b.trim();
        (b, half, sticky)
    }

    /// `(self / d, self % d)` by binary long division: the callers' quotients have
    /// about 70 bits, so this is a few dozen subtractions.
    fn div_rem(&self, d: &Big) -> (Big, Big) {
        if self.cmp(d) == Ordering::Less {
            return (Big::zero(), self.clone());
        }
        let mut rest = self.clone();
        let mut quotient = Big::zero();
        let mut shift = self.bits() - d.bits();
        loop {
            let part = d.shl(shift);
            if rest.cmp(&part) != Ordering::Less {
                rest = rest.sub(&part);
                quotient = quotient.add(&Big::one().shl(shift));
            }
            if shift == 0 {
                break;
            }
            shift -= 1;
        }
        (quotient, rest)
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut chunks = Vec::new();
        let mut n = self.clone();
        while !n.is_zero() {
            let mut rem = 0u64;
            let mut out = vec![0u32; n.0.len()];
            for (i, &l) in n.0.iter().enumerate().rev() {
                let v = (rem << 32) | u64::from(l);
                if let Some(o) = out.get_mut(i) {
                    *o = (v / 1_000_000_000) as u32;
                }
                rem = v % 1_000_000_000;
            }
            chunks.push(rem as u32);
            n = Big(out);
            n.trim();
        }
        let mut text = chunks.pop().map_or(String::new(), |c| c.to_string());
        for c in chunks.iter().rev() {
            text.push_str(&format!("{c:09}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(base: &str, by: &str) -> Option<String> {
        let sum = Ld::parse(base.as_bytes())?.checked_add(Ld::parse(by.as_bytes())?)?;
        (!sum.is_infinite()).then(|| sum.to_human())
    }

    /// Each pair's answer is what redis-server 7.0.15 on x86-64 replied to
    /// `SET k base` then `INCRBYFLOAT k by` (None: "value is not a valid float").
    #[test]
    fn matches_redis_incrbyfloat() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("0.1", "0.2", Some("0.3")),
            ("10.5", "0.1", Some("10.6")),
            ("5000", "1.1", Some("5001.10000000000000009")),
            ("3.0e3", "1.5", Some("3001.5")),
            ("1e20", "1", Some("100000000000000000000")),
            ("9223372036854775807", "1.5", Some("9223372036854775808")),
            ("0.0000001", "0", Some("0.0000001")),
            ("1e-20", "0", Some("0")),
            ("-2.5", "2.5", Some("0")),
            ("-0.1", "0.1", Some("0")),
            (
                "123456789.123456789",
                "0.000000001",
                Some("123456789.12345678999554366"),
            ),
            ("1e4933", "1e4933", None),
            ("0", "1e-4950", Some("0")),
            ("0", "-1.1", Some("-1.1")),
            (
                "3.14159265358979323846264338327950288",
                "0",
                Some("3.14159265358979324"),
            ),
            ("+5", ".5", Some("5.5")),
            ("5.", "-5.", Some("0")),
            ("1e", "1", None),
            ("0x10", "1", Some("17")),
            ("1e-5000", "1", None),
            (
                "12345678901234567890123",
                "0.5",
                Some("12345678901234567889920"),
            ),
            ("-7.75", "-0.25", Some("-8")),
            ("99.99", "0.01", Some("100")),
        ];
        for &(base, by, want) in cases {
            assert_eq!(incr(base, by).as_deref(), want, "{base} + {by}");
        }
        let big = incr("1.7976931348623157e308", "1e308").unwrap();
        assert!(big.starts_with("27976931348623157000235224044135007878929992917961993400398"));
        assert_eq!(big.len(), 309);
        let huge = incr("1e4000", "1").unwrap();
        assert!(huge.starts_with("99999999999999999999654638730996237849324925835069576313015"));
        assert_eq!(huge.len(), 4000);
    }

    #[test]
    fn refuses_what_string2ld_refuses() {
        for bad in [
            "", " 1", "1 ", "nan", "-nan", "abc", "1.2.3", "e5", ".", "0x", "1e+",
        ] {
            assert_eq!(Ld::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(Ld::parse(b"inf"), Some(Ld::Inf { neg: false }));
        assert_eq!(Ld::parse(b"-Infinity"), Some(Ld::Inf { neg: true }));
        assert_eq!(Ld::parse(&vec![b'1'; 5 * 1024]), None);
        assert_eq!(
            Ld::parse(b"inf").and_then(|i| i.checked_add(Ld::parse(b"-inf")?)),
            None
        );
    }
}
