//! Number helpers shared by the request parser and the reply codec: a digit writer
//! (no `format!` on the hot path), Redis's `string2ll`, a lenient integer reader for
//! replies, and the `%.17g` double formatting Redis 7.0 uses in replies.

use bytes::BytesMut;
use std::fmt::{self, Write as _};

/// Longest decimal form of a `u64` (`18446744073709551615`).
const U64_DIGITS_MAX: usize = 20;

/// Writes the decimal digits of `n` at the end of `tmp` and returns them.
pub(crate) fn u64_digits(mut n: u64, tmp: &mut [u8; U64_DIGITS_MAX]) -> &[u8] {
    let mut used = 0;
    // Fill from the back; a `u64` has at most 20 digits, so the loop always ends
    // through `n == 0` before running out of slots.
    for slot in tmp.iter_mut().rev() {
        // `n % 10 < 10`, so the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        used += 1;
        if n == 0 {
            break;
        }
    }
    tmp.get(U64_DIGITS_MAX - used..).unwrap_or_default()
}

/// Appends `prefix`, the decimal form of `n`, and CRLF: the header of every RESP
/// length-carrying type and of integers.
pub(crate) fn put_header_u64(out: &mut BytesMut, prefix: u8, n: u64) {
    let mut tmp = [0u8; U64_DIGITS_MAX];
    let digits = u64_digits(n, &mut tmp);
    out.reserve(digits.len() + 3);
    out.extend_from_slice(&[prefix]);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// Like [`put_header_u64`] for a signed value.
pub(crate) fn put_header_i64(out: &mut BytesMut, prefix: u8, n: i64) {
    if n >= 0 {
        put_header_u64(out, prefix, n.unsigned_abs());
        return;
    }
    let mut tmp = [0u8; U64_DIGITS_MAX];
    let digits = u64_digits(n.unsigned_abs(), &mut tmp);
    out.reserve(digits.len() + 4);
    out.extend_from_slice(&[prefix, b'-']);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// Redis's `string2ll` (util.c): the only integer syntax Redis accepts in request
/// headers. No sign other than a leading `-`, no leading zeros (so `-0` and `007`
/// fail), no spaces, at most 20 bytes, and the value must fit an `i64`.
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21 in Redis: 21 bytes or more is never a number.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// The integer syntax accepted in replies: an optional `+` or `-`, then one or more
/// ASCII digits (leading zeros allowed), fitting an `i64`. Servers other than Redis
/// are less strict than `string2ll`, and a client has no reason to refuse them.
pub(crate) fn parse_reply_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// A small stack buffer that implements `fmt::Write`, so a double can be formatted
/// without a heap allocation. Writing past its end is a `fmt::Error`.
pub(crate) struct StackBuf {
    bytes: [u8; 48],
    len: usize,
}

impl StackBuf {
    fn new() -> StackBuf {
        StackBuf {
            bytes: [0; 48],
            len: 0,
        }
    }

    /// The bytes written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn push_slice(&mut self, s: &[u8]) {
        let end = self.len.saturating_add(s.len());
        if let Some(dst) = self.bytes.get_mut(self.len..end) {
            dst.copy_from_slice(s);
            self.len = end;
        }
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.saturating_add(s.len());
        match self.bytes.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => Err(fmt::Error),
        }
    }
}

/// Formats `d` exactly as C's `printf("%.17g", d)` does with glibc, which is what
/// Redis 7.0's `addReplyDouble` sends, except that infinities are `inf` / `-inf`
/// (Redis special-cases them the same way) and NaN is `nan` / `-nan` (glibc's).
///
/// Rust's `{:.16e}` gives the 17 correctly rounded significant digits (round half to
/// even on the exact binary value, like glibc); the `%g` rules then pick fixed or
/// scientific notation and strip trailing zeros.
pub(crate) fn format_double(d: f64) -> StackBuf {
    let mut out = StackBuf::new();
    if d.is_sign_negative() {
        out.push_slice(b"-");
    }
    if d.is_nan() {
        out.push_slice(b"nan");
        return out;
    }
    if d.is_infinite() {
        out.push_slice(b"inf");
        return out;
    }
    let mut sci = StackBuf::new();
    // 24 bytes at most ("1.2345678901234567e-308"): cannot overflow 48.
    if write!(sci, "{:.16e}", d.abs()).is_err() {
        return out;
    }
    let s = sci.as_bytes();
    let Some(e_at) = s.iter().position(|&b| b == b'e') else {
        return out;
    };
    let (mantissa, exp_part) = s.split_at(e_at);
    let exp = exp_part
        .get(1..)
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse::<i32>().ok())
        .unwrap_or(0);
    // The 17 significant digits, without the '.'.
    let mut digits = [0u8; 17];
    let mut n = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if let Some(slot) = digits.get_mut(n) {
            *slot = b;
            n += 1;
        }
    }
    let digits = digits.get(..n).unwrap_or_default();
    let trimmed =
        |ds: &'_ [u8]| -> usize { ds.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1) };
    if !(-4..17).contains(&exp) {
        // Scientific: d[.ddd]e±XX, at least two exponent digits.
        let (first, rest) = digits.split_first().unwrap_or((&b'0', &[]));
        out.push_slice(&[*first]);
        let keep = trimmed(rest);
        if keep > 0 {
            out.push_slice(b".");
            out.push_slice(rest.get(..keep).unwrap_or_default());
        }
        out.push_slice(if exp < 0 { b"e-" } else { b"e+" });
        let mut tmp = [0u8; U64_DIGITS_MAX];
        let e_digits = u64_digits(u64::from(exp.unsigned_abs()), &mut tmp);
        if e_digits.len() < 2 {
            out.push_slice(b"0");
        }
        out.push_slice(e_digits);
    } else if exp >= 0 {
        // Fixed, with exp + 1 integer digits (at most 17).
        let int_len = usize::try_from(exp).unwrap_or(0).saturating_add(1);
        let (int_part, frac) = digits.split_at(int_len.min(digits.len()));
        out.push_slice(int_part);
        let keep = trimmed(frac);
        if keep > 0 {
            out.push_slice(b".");
            out.push_slice(frac.get(..keep).unwrap_or_default());
        }
    } else {
        // Fixed, 0.000ddd: -exp - 1 zeros after the point (at most 3).
        out.push_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push_slice(b"0");
        }
        out.push_slice(digits.get(..trimmed(digits)).unwrap_or_default());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn digits(n: u64) -> Vec<u8> {
        let mut tmp = [0u8; U64_DIGITS_MAX];
        u64_digits(n, &mut tmp).to_vec()
    }

    #[test]
    fn digit_writer_matches_std() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(digits(n), n.to_string().into_bytes());
        }
        let mut out = BytesMut::new();
        put_header_i64(&mut out, b':', i64::MIN);
        put_header_i64(&mut out, b':', -1);
        put_header_i64(&mut out, b':', 0);
        put_header_i64(&mut out, b':', i64::MAX);
        assert_eq!(
            &out[..],
            b":-9223372036854775808\r\n:-1\r\n:0\r\n:9223372036854775807\r\n"
        );
    }

    #[test]
    fn string2ll_follows_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"12"), Some(12));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"000000000000000000001",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn reply_int_is_lenient_but_bounded() {
        assert_eq!(parse_reply_int(b"+5"), Some(5));
        assert_eq!(parse_reply_int(b"007"), Some(7));
        assert_eq!(parse_reply_int(b"-0"), Some(0));
        assert_eq!(parse_reply_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"+", b"-", b"1.0", b"9223372036854775808", b" 1"] {
            assert_eq!(parse_reply_int(bad), None, "{:?}", bad);
        }
    }

    /// Expected values are glibc's `printf("%.17g")` output, which is what Redis 7.0
    /// sends (checked with a C program on x86_64 glibc).
    #[test]
    // The `.25` / `.75` cases are exact doubles (ties at 17 digits), not typos.
    #[allow(clippy::excessive_precision)]
    fn double_formatting_matches_glibc() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1.1, "1.1000000000000001"),
            (0.1, "0.10000000000000001"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1.5e300, "1.5000000000000001e+300"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012344999999999999"),
            (123456789.125, "123456789.125"),
            (1234567890123456.25, "1234567890123456.2"),
            (1234567890123456.75, "1234567890123456.8"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "-nan"),
        ];
        for &(d, want) in cases {
            assert_eq!(
                std::str::from_utf8(format_double(d).as_bytes()).unwrap(),
                want,
                "{d:e}"
            );
        }
    }

    #[test]
    fn double_formatting_round_trips() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            // xorshift64: random bit patterns cover every exponent range.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = f64::from_bits(x);
            let s = format_double(d);
            let text = std::str::from_utf8(s.as_bytes()).unwrap();
            let back: f64 = text.parse().unwrap();
            if d.is_nan() {
                assert!(back.is_nan());
            } else {
                assert_eq!(back.to_bits(), d.to_bits(), "{text}");
            }
        }
    }
}
