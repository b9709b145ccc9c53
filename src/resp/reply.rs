//! Reply encoder (what a server writes) and [`Value`], the reply tree shared with
//! the reply decoder (`decode.rs`).
//!
//! Hot paths write straight into the connection's output buffer through
//! [`ReplyWriter`] (`w.bulk(v)`, `w.array_len(n)` then the elements, ...): no
//! intermediate tree, no `format!`. [`Value`] is for replies that are easier to build
//! as a tree (and for the decoder's output); [`Value::encode`] goes through the same
//! writer.
//!
//! Every type is written for the connection's [`Protocol`]. In RESP2, RESP3-only
//! types become what Redis 7.0 sends a RESP2 client: null is `$-1` (null array
//! `*-1`), a map a flat array of 2N elements, a set or push an array, a double a bulk
//! string (`%.17g`), a boolean the integer 1 or 0, a verbatim string or a big number
//! a bulk string, a blob error a simple error, and attributes are dropped.

use bytes::{Bytes, BytesMut};

use super::num::{format_double, put_header_i64, put_header_u64};

/// The protocol version of a connection: RESP2 until the client sends `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The protocol for a `HELLO` version argument, if supported (2 or 3).
    pub fn from_version(version: i64) -> Option<Protocol> {
        match version {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => None,
        }
    }

    /// The version number (2 or 3), as `HELLO` reports it in `proto`.
    pub fn version(self) -> u8 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A RESP value: a reply to encode, or what [`super::parse_reply`] decoded.
///
/// String payloads are `Bytes` (binary safe, cheap to clone). `Double` makes it
/// `PartialEq` only (NaN is not equal to itself).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+text`: a simple string. CR and LF are written as spaces.
    Simple(Bytes),
    /// `-CODE text`: an error; the text should start with a code such as `ERR`.
    /// CR and LF are written as spaces.
    Error(Bytes),
    /// `:n`.
    Integer(i64),
    /// `$len`: a bulk string.
    Bulk(Bytes),
    /// Null: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// Null array: `*-1` in RESP2, `_` in RESP3 (which decodes back as `Null`).
    NullArray,
    /// `*n`.
    Array(Vec<Value>),
    /// `%n` (RESP3); a flat array of keys and values in RESP2.
    Map(Vec<(Value, Value)>),
    /// `~n` (RESP3); an array in RESP2.
    Set(Vec<Value>),
    /// `,d` (RESP3); a bulk string in RESP2. Formatted like Redis 7.0 (`%.17g`,
    /// `inf`, `-inf`, `nan`).
    Double(f64),
    /// `#t` / `#f` (RESP3); the integer 1 / 0 in RESP2.
    Boolean(bool),
    /// `=len\r\nfmt:text` (RESP3, e.g. `txt` for INFO); the bare text as a bulk
    /// string in RESP2.
    Verbatim {
        /// The three-byte format, `txt` or `mkd`.
        format: [u8; 3],
        /// The text.
        text: Bytes,
    },
    /// `(digits` (RESP3); a bulk string in RESP2.
    BigNumber(Bytes),
    /// `!len` blob error (RESP3); a simple error in RESP2.
    BlobError(Bytes),
    /// `>n` out-of-band push (RESP3); an array in RESP2.
    Push(Vec<Value>),
    /// `|n` attributes and the value they describe (RESP3); only the value in RESP2.
    Attribute {
        /// The attribute map.
        attributes: Vec<(Value, Value)>,
        /// The value the attributes belong to.
        value: Box<Value>,
    },
}

impl Value {
    /// Appends this value to `out`, encoded for `proto`.
    pub fn encode(&self, out: &mut BytesMut, proto: Protocol) {
        ReplyWriter::new(out, proto).value(self);
    }
}

/// Writes replies straight into an output buffer, each for the connection's
/// protocol. Aggregates are written as a header (`array_len`, `map_len`, ...)
/// followed by their elements, written by the caller.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    out: &'a mut BytesMut,
    proto: Protocol,
}

impl<'a> ReplyWriter<'a> {
    /// A writer appending to `out` for a connection speaking `proto`.
    pub fn new(out: &'a mut BytesMut, proto: Protocol) -> ReplyWriter<'a> {
        ReplyWriter { out, proto }
    }

    /// The protocol replies are written for.
    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// `+text`. CR and LF in `text` are written as spaces, so a reply can never
    /// break the framing.
    pub fn simple(&mut self, text: &[u8]) {
        put_line(self.out, b'+', text);
    }

    /// `-message`. `message` should start with an error code (`ERR syntax error`,
    /// `WRONGTYPE ...`); CR and LF are written as spaces, as Redis does.
    pub fn error(&mut self, message: &[u8]) {
        put_line(self.out, b'-', message);
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        put_header_i64(self.out, b':', n);
    }

    /// `$len\r\ndata\r\n`.
    pub fn bulk(&mut self, data: &[u8]) {
        put_blob(self.out, b'$', data);
    }

    /// A bulk string, or null for `None` (GET's reply).
    pub fn bulk_or_null(&mut self, data: Option<&[u8]>) {
        match data {
            Some(data) => self.bulk(data),
            None => self.null(),
        }
    }

    /// Null: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        self.out.extend_from_slice(match self.proto {
            Protocol::Resp2 => b"$-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// Null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        self.out.extend_from_slice(match self.proto {
            Protocol::Resp2 => b"*-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// Header of an array of `len` elements.
    pub fn array_len(&mut self, len: usize) {
        put_header_u64(self.out, b'*', len as u64);
    }

    /// Header of a map of `pairs` key-value pairs (write key, value, key, ...):
    /// `%pairs` in RESP3, `*2*pairs` in RESP2.
    pub fn map_len(&mut self, pairs: usize) {
        match self.proto {
            Protocol::Resp2 => put_header_u64(self.out, b'*', (pairs as u64).saturating_mul(2)),
            Protocol::Resp3 => put_header_u64(self.out, b'%', pairs as u64),
        }
    }

    /// Header of a set of `len` elements: `~len` in RESP3, `*len` in RESP2.
    pub fn set_len(&mut self, len: usize) {
        let prefix = match self.proto {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => b'~',
        };
        put_header_u64(self.out, prefix, len as u64);
    }

    /// Header of a push of `len` elements: `>len` in RESP3, `*len` in RESP2.
    pub fn push_len(&mut self, len: usize) {
        let prefix = match self.proto {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => b'>',
        };
        put_header_u64(self.out, prefix, len as u64);
    }

    /// A double as Redis 7.0 writes it (`%.17g`; `inf`, `-inf`, `nan`): `,text` in
    /// RESP3, a bulk string in RESP2.
    pub fn double(&mut self, d: f64) {
        let text = format_double(d);
        match self.proto {
            Protocol::Resp2 => put_blob(self.out, b'$', text.as_bytes()),
            Protocol::Resp3 => put_line(self.out, b',', text.as_bytes()),
        }
    }

    /// `#t` / `#f` in RESP3, `:1` / `:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        self.out.extend_from_slice(match (self.proto, b) {
            (Protocol::Resp2, true) => b":1\r\n",
            (Protocol::Resp2, false) => b":0\r\n",
            (Protocol::Resp3, true) => b"#t\r\n",
            (Protocol::Resp3, false) => b"#f\r\n",
        });
    }

    /// A verbatim string (`format` is `txt` or `mkd`): `=len\r\nfmt:text` in RESP3,
    /// the bare text as a bulk string in RESP2.
    pub fn verbatim(&mut self, format: [u8; 3], text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                put_header_u64(self.out, b'=', (text.len() as u64).saturating_add(4));
                self.out.reserve(text.len() + 6);
                self.out.extend_from_slice(&format);
                self.out.extend_from_slice(b":");
                self.out.extend_from_slice(text);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A big number given as its decimal digits: `(digits` in RESP3, a bulk string
    /// in RESP2.
    pub fn big_number(&mut self, digits: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(digits),
            Protocol::Resp3 => put_line(self.out, b'(', digits),
        }
    }

    /// A blob error: `!len` in RESP3, a simple error (CR/LF as spaces) in RESP2.
    pub fn blob_error(&mut self, message: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.error(message),
            Protocol::Resp3 => put_blob(self.out, b'!', message),
        }
    }

    /// Writes a whole [`Value`] tree.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Simple(s) => self.simple(s),
            Value::Error(e) => self.error(e),
            Value::Integer(n) => self.integer(*n),
            Value::Bulk(b) => self.bulk(b),
            Value::Null => self.null(),
            Value::NullArray => self.null_array(),
            Value::Array(items) => {
                self.array_len(items.len());
                items.iter().for_each(|item| self.value(item));
            }
            Value::Map(pairs) => {
                self.map_len(pairs.len());
                self.pairs(pairs);
            }
            Value::Set(items) => {
                self.set_len(items.len());
                items.iter().for_each(|item| self.value(item));
            }
            Value::Double(d) => self.double(*d),
            Value::Boolean(b) => self.boolean(*b),
            Value::Verbatim { format, text } => self.verbatim(*format, text),
            Value::BigNumber(n) => self.big_number(n),
            Value::BlobError(e) => self.blob_error(e),
            Value::Push(items) => {
                self.push_len(items.len());
                items.iter().for_each(|item| self.value(item));
            }
            Value::Attribute { attributes, value } => {
                if self.proto == Protocol::Resp3 {
                    put_header_u64(self.out, b'|', attributes.len() as u64);
                    self.pairs(attributes);
                }
                self.value(value);
            }
        }
    }

    fn pairs(&mut self, pairs: &[(Value, Value)]) {
        for (k, v) in pairs {
            self.value(k);
            self.value(v);
        }
    }
}

/// True for the two bytes a line-typed reply cannot carry.
fn is_cr_or_lf(b: &u8) -> bool {
    *b == b'\r' || *b == b'\n'
}

/// `prefix` + `text` (CR and LF replaced by spaces) + CRLF.
fn put_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.extend_from_slice(&[prefix]);
    if text.iter().any(is_cr_or_lf) {
        out.extend(text.iter().map(|b| if is_cr_or_lf(b) { b' ' } else { *b }));
    } else {
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\n");
}

/// `prefix` + length + CRLF + `data` + CRLF.
fn put_blob(out: &mut BytesMut, prefix: u8, data: &[u8]) {
    // One reservation for header and payload: a GET reply is a single copy.
    out.reserve(data.len() + 26);
    put_header_u64(out, prefix, data.len() as u64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn enc(v: &Value, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        v.encode(&mut out, proto);
        out.to_vec()
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Every type, with its exact RESP2 and RESP3 bytes.
    pub(crate) fn golden() -> Vec<(Value, &'static [u8], &'static [u8])> {
        vec![
            (Value::Simple(b("OK")), b"+OK\r\n", b"+OK\r\n"),
            (Value::Simple(b("a\r\nb")), b"+a  b\r\n", b"+a  b\r\n"),
            (
                Value::Error(b("ERR bad\nthing")),
                b"-ERR bad thing\r\n",
                b"-ERR bad thing\r\n",
            ),
            (Value::Integer(-42), b":-42\r\n", b":-42\r\n"),
            (Value::Integer(0), b":0\r\n", b":0\r\n"),
            (
                Value::Bulk(b("hi\r\n")),
                b"$4\r\nhi\r\n\r\n",
                b"$4\r\nhi\r\n\r\n",
            ),
            (Value::Bulk(Bytes::new()), b"$0\r\n\r\n", b"$0\r\n\r\n"),
            (Value::Null, b"$-1\r\n", b"_\r\n"),
            (Value::NullArray, b"*-1\r\n", b"_\r\n"),
            (Value::Array(vec![]), b"*0\r\n", b"*0\r\n"),
            (
                Value::Array(vec![Value::Integer(1), Value::Null]),
                b"*2\r\n:1\r\n$-1\r\n",
                b"*2\r\n:1\r\n_\r\n",
            ),
            (
                Value::Map(vec![(Value::Bulk(b("k")), Value::Double(1.5))]),
                b"*2\r\n$1\r\nk\r\n$3\r\n1.5\r\n",
                b"%1\r\n$1\r\nk\r\n,1.5\r\n",
            ),
            (
                Value::Set(vec![Value::Bulk(b("a")), Value::Boolean(false)]),
                b"*2\r\n$1\r\na\r\n:0\r\n",
                b"~2\r\n$1\r\na\r\n#f\r\n",
            ),
            (
                Value::Double(1.1),
                b"$18\r\n1.1000000000000001\r\n",
                b",1.1000000000000001\r\n",
            ),
            (Value::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n"),
            (
                Value::Double(f64::NEG_INFINITY),
                b"$4\r\n-inf\r\n",
                b",-inf\r\n",
            ),
            (Value::Double(1e22), b"$5\r\n1e+22\r\n", b",1e+22\r\n"),
            (Value::Boolean(true), b":1\r\n", b"#t\r\n"),
            (
                Value::Verbatim {
                    format: *b"txt",
                    text: b("# Server\r\n"),
                },
                b"$10\r\n# Server\r\n\r\n",
                b"=14\r\ntxt:# Server\r\n\r\n",
            ),
            (
                Value::BigNumber(b("-12345678901234567890")),
                b"$21\r\n-12345678901234567890\r\n",
                b"(-12345678901234567890\r\n",
            ),
            (
                Value::BlobError(b("SYNTAX bad\r\nx")),
                b"-SYNTAX bad  x\r\n",
                b"!13\r\nSYNTAX bad\r\nx\r\n",
            ),
            (
                Value::Push(vec![Value::Bulk(b("message"))]),
                b"*1\r\n$7\r\nmessage\r\n",
                b">1\r\n$7\r\nmessage\r\n",
            ),
            (
                Value::Attribute {
                    attributes: vec![(Value::Simple(b("ttl")), Value::Integer(3))],
                    value: Box::new(Value::Integer(7)),
                },
                b":7\r\n",
                b"|1\r\n+ttl\r\n:3\r\n:7\r\n",
            ),
        ]
    }

    #[test]
    fn every_type_encodes_to_exact_bytes_in_both_protocols() {
        for (v, resp2, resp3) in golden() {
            assert_eq!(enc(&v, Protocol::Resp2), resp2, "RESP2 {v:?}");
            assert_eq!(enc(&v, Protocol::Resp3), resp3, "RESP3 {v:?}");
        }
    }

    #[test]
    fn writer_streams_the_same_bytes_as_values() {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let mut out = BytesMut::new();
            let mut w = ReplyWriter::new(&mut out, proto);
            assert_eq!(w.protocol(), proto);
            w.map_len(2);
            w.bulk(b"a");
            w.bulk_or_null(None);
            w.bulk(b"b");
            w.array_len(1);
            w.bulk_or_null(Some(b"x"));
            w.ok();
            w.integer(i64::MIN);
            let tree = Value::Map(vec![
                (Value::Bulk(b("a")), Value::Null),
                (Value::Bulk(b("b")), Value::Array(vec![Value::Bulk(b("x"))])),
            ]);
            let mut want = enc(&tree, proto);
            want.extend_from_slice(b"+OK\r\n:-9223372036854775808\r\n");
            assert_eq!(&out[..], &want[..]);
        }
    }

    #[test]
    fn protocol_versions() {
        assert_eq!(Protocol::from_version(2), Some(Protocol::Resp2));
        assert_eq!(Protocol::from_version(3), Some(Protocol::Resp3));
        assert_eq!(Protocol::from_version(1), None);
        assert_eq!(Protocol::default().version(), 2);
        assert_eq!(Protocol::Resp3.version(), 3);
    }
}
