//! Reply decoder (what a client, the load generator or a test reads from a server):
//! every RESP2 and RESP3 type, nested, incremental.
//!
//! One generic recursive reader runs in two modes: [`reply_len`] only checks and
//! measures (it allocates nothing, even for a huge half-received array), and
//! [`parse_reply`] builds a [`Value`] once the check says the whole reply is there.
//! So waiting for a large reply costs a scan per read, never a tree per read.
//!
//! The decoder is strict where framing is at stake (CRLF must be CRLF, a line may
//! not contain a bare CR or LF) and lenient on number syntax (`+5`, leading zeros).

use std::fmt;

use bytes::Bytes;

use super::num::parse_reply_int;
use super::reply::Value;
use super::REPLY_DEPTH_MAX;

/// A malformed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The type byte is not a RESP2 or RESP3 type (streamed types are not
    /// supported either).
    UnknownType(u8),
    /// A CR not followed by LF, or a LF not preceded by CR, or a bulk payload not
    /// followed by CRLF.
    BadLineEnding,
    /// An integer reply that is not a number fitting `i64`.
    InvalidInteger,
    /// A length or element count that is not a number, or is negative (other than
    /// the RESP2 nulls `$-1` and `*-1`).
    InvalidLength,
    /// A double that does not parse.
    InvalidDouble,
    /// A boolean other than `#t` / `#f`.
    InvalidBoolean,
    /// A null (`_`) with a payload.
    InvalidNull,
    /// A big number that is not `[+-]digits`.
    InvalidBigNumber,
    /// A verbatim string without its `fmt:` prefix.
    InvalidVerbatim,
    /// Aggregates nested deeper than [`REPLY_DEPTH_MAX`].
    TooDeep,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::UnknownType(b) => {
                write!(f, "RESP reply error: unknown type byte 0x{b:02x}")
            }
            ReplyError::BadLineEnding => f.write_str("RESP reply error: bad line ending"),
            ReplyError::InvalidInteger => f.write_str("RESP reply error: invalid integer"),
            ReplyError::InvalidLength => f.write_str("RESP reply error: invalid length"),
            ReplyError::InvalidDouble => f.write_str("RESP reply error: invalid double"),
            ReplyError::InvalidBoolean => f.write_str("RESP reply error: invalid boolean"),
            ReplyError::InvalidNull => f.write_str("RESP reply error: invalid null"),
            ReplyError::InvalidBigNumber => f.write_str("RESP reply error: invalid big number"),
            ReplyError::InvalidVerbatim => f.write_str("RESP reply error: invalid verbatim string"),
            ReplyError::TooDeep => f.write_str("RESP reply error: nested too deep"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Decodes the reply at the front of `buf`.
///
/// `Ok(Some((value, consumed)))` for a complete reply (`1 <= consumed <=
/// buf.len()`), `Ok(None)` when more bytes are needed (never an error for a mere
/// prefix of a valid reply), `Err` for malformed input. RESP2's `$-1` decodes as
/// [`Value::Null`] and `*-1` as [`Value::NullArray`]; RESP3's `_` as `Null`.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, ReplyError> {
    if reply_len(buf)?.is_none() {
        return Ok(None);
    }
    read::<Build>(buf, 0, 0)
}

/// Checks the reply at the front of `buf` and returns its length, without building
/// it or allocating: `Ok(None)` when more bytes are needed. A load generator can
/// skip replies with this alone.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    Ok(read::<Measure>(buf, 0, 0)?.map(|((), consumed)| consumed))
}

/// What the reader makes of each element: a [`Value`] ([`Build`]) or nothing
/// ([`Measure`], where every `Out` is `()` and every `Vec<()>` allocation-free).
trait Sink {
    type Out;
    fn line(kind: u8, text: &[u8]) -> Self::Out;
    fn integer(n: i64) -> Self::Out;
    fn double(d: f64) -> Self::Out;
    fn boolean(b: bool) -> Self::Out;
    fn null() -> Self::Out;
    fn null_array() -> Self::Out;
    fn blob(kind: u8, data: &[u8]) -> Self::Out;
    fn verbatim(format: [u8; 3], text: &[u8]) -> Self::Out;
    fn seq(kind: u8, items: Vec<Self::Out>) -> Self::Out;
    fn map(pairs: Vec<(Self::Out, Self::Out)>) -> Self::Out;
    fn attribute(pairs: Vec<(Self::Out, Self::Out)>, value: Self::Out) -> Self::Out;
}

/// Checks and measures only.
struct Measure;

impl Sink for Measure {
    type Out = ();
    fn line(_: u8, _: &[u8]) {}
    fn integer(_: i64) {}
    fn double(_: f64) {}
    fn boolean(_: bool) {}
    fn null() {}
    fn null_array() {}
    fn blob(_: u8, _: &[u8]) {}
    fn verbatim(_: [u8; 3], _: &[u8]) {}
    fn seq(_: u8, _: Vec<()>) {}
    fn map(_: Vec<((), ())>) {}
    fn attribute(_: Vec<((), ())>, _: ()) {}
}

/// Builds [`Value`]s.
struct Build;

impl Sink for Build {
    type Out = Value;
    fn line(kind: u8, text: &[u8]) -> Value {
        let text = Bytes::copy_from_slice(text);
        match kind {
            b'+' => Value::Simple(text),
            b'-' => Value::Error(text),
            _ => Value::BigNumber(text),
        }
    }
    fn integer(n: i64) -> Value {
        Value::Integer(n)
    }
    fn double(d: f64) -> Value {
        Value::Double(d)
    }
    fn boolean(b: bool) -> Value {
        Value::Boolean(b)
    }
    fn null() -> Value {
        Value::Null
    }
    fn null_array() -> Value {
        Value::NullArray
    }
    fn blob(kind: u8, data: &[u8]) -> Value {
        let data = Bytes::copy_from_slice(data);
        match kind {
            b'$' => Value::Bulk(data),
            _ => Value::BlobError(data),
        }
    }
    fn verbatim(format: [u8; 3], text: &[u8]) -> Value {
        Value::Verbatim {
            format,
            text: Bytes::copy_from_slice(text),
        }
    }
    fn seq(kind: u8, items: Vec<Value>) -> Value {
        match kind {
            b'*' => Value::Array(items),
            b'~' => Value::Set(items),
            _ => Value::Push(items),
        }
    }
    fn map(pairs: Vec<(Value, Value)>) -> Value {
        Value::Map(pairs)
    }
    fn attribute(pairs: Vec<(Value, Value)>, value: Value) -> Value {
        Value::Attribute {
            attributes: pairs,
            value: Box::new(value),
        }
    }
}

/// An element and the offset just past it; `None` when more bytes are needed.
type Read<T> = Result<Option<(T, usize)>, ReplyError>;

/// The line starting at `pos` (without its CRLF) and the offset past the CRLF.
fn line(buf: &[u8], pos: usize) -> Read<&[u8]> {
    let rest = buf.get(pos..).unwrap_or_default();
    let Some(i) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return Ok(None);
    };
    match (rest.get(i), rest.get(i + 1)) {
        (Some(b'\r'), None) => Ok(None),
        (Some(b'\r'), Some(b'\n')) => Ok(Some((rest.get(..i).unwrap_or_default(), pos + i + 2))),
        _ => Err(ReplyError::BadLineEnding),
    }
}

/// Reads the element at `pos`, nested `depth` aggregates deep.
fn read<S: Sink>(buf: &[u8], pos: usize, depth: usize) -> Read<S::Out> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    if !b"+-:,#_($!=*~>%|".contains(&kind) {
        return Err(ReplyError::UnknownType(kind));
    }
    let Some((text, after)) = line(buf, pos + 1)? else {
        return Ok(None);
    };
    let out = match kind {
        b'+' | b'-' => S::line(kind, text),
        b'(' => {
            let digits = match text.split_first() {
                Some((b'+' | b'-', digits)) => digits,
                _ => text,
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(ReplyError::InvalidBigNumber);
            }
            S::line(kind, text)
        }
        b':' => S::integer(parse_reply_int(text).ok_or(ReplyError::InvalidInteger)?),
        b',' => S::double(
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .ok_or(ReplyError::InvalidDouble)?,
        ),
        b'#' => match text {
            b"t" => S::boolean(true),
            b"f" => S::boolean(false),
            _ => return Err(ReplyError::InvalidBoolean),
        },
        b'_' if text.is_empty() => S::null(),
        b'_' => return Err(ReplyError::InvalidNull),
        b'$' | b'!' | b'=' => return blob::<S>(buf, kind, text, after),
        _ => return aggregate::<S>(buf, kind, text, after, depth),
    };
    Ok(Some((out, after)))
}

/// Reads the payload of a `$`, `!` or `=` element whose header line is `text`.
fn blob<S: Sink>(buf: &[u8], kind: u8, text: &[u8], after: usize) -> Read<S::Out> {
    let len = parse_reply_int(text).ok_or(ReplyError::InvalidLength)?;
    if len == -1 && kind == b'$' {
        return Ok(Some((S::null(), after)));
    }
    let len = usize::try_from(len).map_err(|_| ReplyError::InvalidLength)?;
    let Some((end, next)) = after
        .checked_add(len)
        .and_then(|end| Some((end, end.checked_add(2)?)))
    else {
        return Err(ReplyError::InvalidLength);
    };
    if next > buf.len() {
        return Ok(None);
    }
    if buf.get(end..next) != Some(b"\r\n") {
        return Err(ReplyError::BadLineEnding);
    }
    let data = buf.get(after..end).unwrap_or_default();
    let out = if kind == b'=' {
        match data {
            [a, b, c, b':', text @ ..] => S::verbatim([*a, *b, *c], text),
            _ => return Err(ReplyError::InvalidVerbatim),
        }
    } else {
        S::blob(kind, data)
    };
    Ok(Some((out, next)))
}

/// Reads the elements of a `*`, `~`, `>`, `%` or `|` aggregate whose header line
/// is `text`.
fn aggregate<S: Sink>(
    buf: &[u8],
    kind: u8,
    text: &[u8],
    after: usize,
    depth: usize,
) -> Read<S::Out> {
    let count = parse_reply_int(text).ok_or(ReplyError::InvalidLength)?;
    if count == -1 && kind == b'*' {
        return Ok(Some((S::null_array(), after)));
    }
    let count = usize::try_from(count).map_err(|_| ReplyError::InvalidLength)?;
    if depth >= REPLY_DEPTH_MAX {
        return Err(ReplyError::TooDeep);
    }
    // Every element takes 3 bytes or more: reserve for what can be here, not for
    // what the header declares.
    let room = buf.len().saturating_sub(after) / 3;
    let mut pos = after;
    if matches!(kind, b'*' | b'~' | b'>') {
        let mut items = Vec::with_capacity(count.min(room));
        for _ in 0..count {
            let Some((item, next)) = read::<S>(buf, pos, depth + 1)? else {
                return Ok(None);
            };
            items.push(item);
            pos = next;
        }
        return Ok(Some((S::seq(kind, items), pos)));
    }
    let mut pairs = Vec::with_capacity(count.min(room / 2));
    for _ in 0..count {
        let Some((key, next)) = read::<S>(buf, pos, depth + 1)? else {
            return Ok(None);
        };
        let Some((value, next)) = read::<S>(buf, next, depth + 1)? else {
            return Ok(None);
        };
        pairs.push((key, value));
        pos = next;
    }
    if kind == b'%' {
        return Ok(Some((S::map(pairs), pos)));
    }
    // `|`: the attributes describe the element that follows them.
    let Some((value, next)) = read::<S>(buf, pos, depth + 1)? else {
        return Ok(None);
    };
    Ok(Some((S::attribute(pairs, value), next)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::resp::reply::Protocol;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn enc(v: &Value, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        v.encode(&mut out, proto);
        out.to_vec()
    }

    /// What a RESP2 client sees of `v`.
    fn as_resp2(v: &Value) -> Value {
        let all = |items: &[Value]| Value::Array(items.iter().map(as_resp2).collect());
        match v {
            Value::Map(pairs) => Value::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [as_resp2(k), as_resp2(v)])
                    .collect(),
            ),
            Value::Array(items) | Value::Set(items) | Value::Push(items) => all(items),
            Value::Double(d) => Value::Bulk(Bytes::copy_from_slice(
                crate::resp::num::format_double(*d).as_bytes(),
            )),
            Value::Boolean(t) => Value::Integer(i64::from(*t)),
            Value::Verbatim { text, .. } => Value::Bulk(text.clone()),
            Value::BigNumber(n) => Value::Bulk(n.clone()),
            Value::BlobError(e) => Value::Error(e.clone()),
            Value::Attribute { value, .. } => as_resp2(value),
            other => other.clone(),
        }
    }

    fn sample() -> Vec<Value> {
        vec![
            Value::Simple(b("OK")),
            Value::Error(b("ERR x")),
            Value::Integer(i64::MIN),
            Value::Bulk(b("bin\r\n\0")),
            Value::Null,
            Value::NullArray,
            Value::Array(vec![]),
            Value::Map(vec![
                (Value::Bulk(b("k")), Value::Double(-0.25)),
                (Value::Integer(1), Value::Set(vec![Value::Boolean(true)])),
            ]),
            Value::Double(f64::INFINITY),
            Value::Double(1e-300),
            Value::Verbatim {
                format: *b"mkd",
                text: b("# t"),
            },
            Value::BigNumber(b("+3492890328409238509324850943850943825024385")),
            Value::BlobError(b("SYNTAX x")),
            Value::Push(vec![Value::Bulk(b("pubsub")), Value::Integer(1)]),
            Value::Attribute {
                attributes: vec![(Value::Simple(b("a")), Value::Null)],
                value: Box::new(Value::Array(vec![Value::Integer(2)])),
            },
        ]
    }

    #[test]
    fn round_trips_the_encoders_output() {
        for v in sample() {
            let e3 = enc(&v, Protocol::Resp3);
            let want3 = if v == Value::NullArray {
                Value::Null
            } else {
                v.clone()
            };
            assert_eq!(parse_reply(&e3), Ok(Some((want3, e3.len()))), "{v:?}");
            let e2 = enc(&v, Protocol::Resp2);
            assert_eq!(
                parse_reply(&e2),
                Ok(Some((as_resp2(&v), e2.len()))),
                "{v:?}"
            );
            assert_eq!(reply_len(&e2), Ok(Some(e2.len())));
        }
    }

    #[test]
    fn every_prefix_waits_and_the_whole_stream_decodes() {
        let mut stream = Vec::new();
        let values = sample();
        for v in &values {
            stream.extend(enc(v, Protocol::Resp3));
        }
        for k in 0..stream.len() {
            let mut off = 0;
            while let Some((_, n)) = parse_reply(&stream[off..k]).unwrap() {
                off += n;
            }
            assert!(off <= k);
        }
        let mut off = 0;
        let mut got = Vec::new();
        while let Some((v, n)) = parse_reply(&stream[off..]).unwrap() {
            got.push(v);
            off += n;
        }
        assert_eq!(off, stream.len());
        assert_eq!(got.len(), values.len());
    }

    #[test]
    fn decodes_wire_forms() {
        let cases: &[(&[u8], Value)] = &[
            (b":+5\r\n", Value::Integer(5)),
            (b":007\r\n", Value::Integer(7)),
            (b",nan\r\n", Value::Double(f64::NAN)),
            (b",-inf\r\n", Value::Double(f64::NEG_INFINITY)),
            (b",1e5\r\n", Value::Double(100000.0)),
            (b"$-1\r\n", Value::Null),
            (b"*-1\r\n", Value::NullArray),
            (b"_\r\n", Value::Null),
            (b"#f\r\n", Value::Boolean(false)),
            (b"(-1\r\n", Value::BigNumber(b("-1"))),
            (
                b"=4\r\ntxt:\r\n",
                Value::Verbatim {
                    format: *b"txt",
                    text: Bytes::new(),
                },
            ),
            (b"%0\r\n", Value::Map(vec![])),
        ];
        for (wire, want) in cases {
            let (got, n) = parse_reply(wire).unwrap().unwrap();
            assert_eq!(n, wire.len());
            match (&got, want) {
                (Value::Double(g), Value::Double(w)) if w.is_nan() => assert!(g.is_nan()),
                _ => assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(wire)),
            }
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        let cases: &[(&[u8], ReplyError)] = &[
            (b"?x\r\n", ReplyError::UnknownType(b'?')),
            (b"+a\nb\r\n", ReplyError::BadLineEnding),
            (b"+a\rb\r\n", ReplyError::BadLineEnding),
            (b"$3\r\nabcd\r\n", ReplyError::BadLineEnding),
            (b":1.5\r\n", ReplyError::InvalidInteger),
            (b":\r\n", ReplyError::InvalidInteger),
            (b"$-2\r\n", ReplyError::InvalidLength),
            (b"$?\r\n", ReplyError::InvalidLength),
            (b"%-1\r\n", ReplyError::InvalidLength),
            (b",x\r\n", ReplyError::InvalidDouble),
            (b",\r\n", ReplyError::InvalidDouble),
            (b"#x\r\n", ReplyError::InvalidBoolean),
            (b"_x\r\n", ReplyError::InvalidNull),
            (b"(1a\r\n", ReplyError::InvalidBigNumber),
            (b"(\r\n", ReplyError::InvalidBigNumber),
            (b"=3\r\ntxt\r\n", ReplyError::InvalidVerbatim),
            (b"=4\r\ntxt;\r\n", ReplyError::InvalidVerbatim),
            (b"*1\r\n*1\r\n?\r\n", ReplyError::UnknownType(b'?')),
        ];
        for (wire, want) in cases {
            assert_eq!(
                parse_reply(wire),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            assert_eq!(reply_len(wire), Err(*want));
        }
        let deep = b"*1\r\n".repeat(REPLY_DEPTH_MAX + 1);
        assert_eq!(parse_reply(&deep), Err(ReplyError::TooDeep));
        let mut ok = b"*1\r\n".repeat(REPLY_DEPTH_MAX);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(reply_len(&ok), Ok(Some(ok.len())));
    }

    #[test]
    fn incomplete_replies_wait() {
        for wire in [
            &b""[..],
            b"+OK",
            b"+OK\r",
            b"$5\r\nab",
            b"$5\r\nhello\r",
            b"*1000000000\r\n:1\r\n",
            b"%1\r\n+k\r\n",
            b"|1\r\n+k\r\n+v\r\n",
            b"$99999999999999\r\n",
        ] {
            assert_eq!(
                parse_reply(wire),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
            crate::resp::fuzz_parse_reply(&data);
        }

        #[test]
        fn random_reply_like_bytes_never_panic(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    &b"*2\r\n"[..], b"%1\r\n", b"~1\r\n", b"|1\r\n", b">1\r\n", b"$3\r\nabc\r\n",
                    b"+OK\r\n", b"-ERR\r\n", b":12\r\n", b",1.5\r\n", b"#t\r\n", b"_\r\n",
                    b"=5\r\ntxt:a\r\n", b"!1\r\nx\r\n", b"(12\r\n", b"$-1\r\n", b"*-1\r\n",
                    b"\r", b"\n", b"*", b"$", b"9",
                ]),
                0..40,
            )
        ) {
            crate::resp::fuzz_parse_reply(&parts.concat());
        }
    }
}
