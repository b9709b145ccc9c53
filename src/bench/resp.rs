//! A RESP2 driver, only as much as a load generator needs: encode `SET` and `GET` as
//! arrays of bulk strings, and read every RESP2 reply type well enough to count it and
//! check a GET's value. (The server-side RESP codec lives elsewhere; this one is kept
//! separate on purpose so the generator does not test a codec with itself.)

use super::driver::{Parsed, Reply};

/// Nesting depth of arrays we follow before calling the stream malformed.
const ARRAY_DEPTH_MAX: usize = 8;

/// Longest header line (`$123\r\n`, `-ERR ...\r\n`) accepted.
const LINE_SIZE_MAX: usize = 64 * 1024;

/// Largest bulk string accepted in a reply (Redis's own proto-max-bulk-len).
const BULK_SIZE_MAX: usize = 512 * 1024 * 1024;

fn put_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn put_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    put_decimal(out, bytes.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends `GET key`.
pub fn encode_get(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
    put_bulk(out, key);
}

/// Appends `SET key value`.
pub fn encode_set(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.reserve(32 + key.len() + value.len());
    out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    put_bulk(out, key);
    put_bulk(out, value);
}

/// The line starting at `at` (without its CRLF) and the index after the CRLF.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = buf.get(at..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], at + end + 2))),
        None if rest.len() > LINE_SIZE_MAX => {
            Err(format!("reply line longer than {LINE_SIZE_MAX} bytes"))
        }
        None => Ok(None),
    }
}

fn integer(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("bad integer in reply: {:?}", String::from_utf8_lossy(text)))
}

/// Parses one value starting at `at`; returns it and the index after it.
fn value(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some((head, next)) = line(buf, at)? else {
        return Ok(None);
    };
    let Some((&kind, text)) = head.split_first() else {
        return Err("empty reply line".into());
    };
    let reply = match kind {
        b'+' => Reply::Done,
        b':' => {
            integer(text)?;
            Reply::Done
        }
        b'-' => Reply::Error {
            kind: "ERR",
            message: at + 1..next - 2,
        },
        b'$' => {
            let len = integer(text)?;
            if len < 0 {
                Reply::Nil
            } else {
                let len = len as usize;
                if len > BULK_SIZE_MAX {
                    return Err(format!("bulk string of {len} bytes"));
                }
                let end = next + len;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err("bulk string not followed by CRLF".into());
                }
                return Ok(Some((Reply::Value(next..end), end + 2)));
            }
        }
        b'*' => {
            let count = integer(text)?;
            if count < 0 {
                Reply::Nil
            } else {
                if depth >= ARRAY_DEPTH_MAX {
                    return Err(format!("arrays nested deeper than {ARRAY_DEPTH_MAX}"));
                }
                let mut end = next;
                for _ in 0..count {
                    match value(buf, end, depth + 1)? {
                        Some((_, after)) => end = after,
                        None => return Ok(None),
                    }
                }
                return Ok(Some((Reply::Array(count as usize), end)));
            }
        }
        other => {
            return Err(format!(
                "not a RESP2 reply (type byte 0x{other:02x}): is the target speaking RESP?"
            ))
        }
    };
    Ok(Some((reply, next)))
}

/// Splits one RESP2 reply off `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, String> {
    Ok(value(buf, 0, 0)?.map(|(reply, len)| Parsed {
        reply,
        len,
        id: None,
    }))
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Parsed {
        // Every proper prefix needs more bytes; the whole is one reply.
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut {cut} of {bytes:?}");
        }
        let p = parse(bytes).unwrap().unwrap();
        assert_eq!(p.len, bytes.len());
        p
    }

    #[test]
    fn encodes_set_and_get() {
        let mut out = Vec::new();
        encode_set(&mut out, b"key:1", b"hello");
        encode_get(&mut out, b"key:12");
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$6\r\nkey:12\r\n"
        );
    }

    #[test]
    fn reads_every_reply_type() {
        assert_eq!(whole(b"+OK\r\n").reply, Reply::Done);
        assert_eq!(whole(b":1234\r\n").reply, Reply::Done);
        assert_eq!(whole(b"$-1\r\n").reply, Reply::Nil);
        assert_eq!(whole(b"*-1\r\n").reply, Reply::Nil);
        let bulk = b"$5\r\nhe\r\no\r\n";
        assert_eq!(whole(bulk).reply, Reply::Value(4..9));
        assert_eq!(whole(b"$0\r\n\r\n").reply, Reply::Value(4..4));
        let err = b"-ERR wrong number of arguments\r\n";
        let Reply::Error { message, .. } = whole(err).reply else {
            panic!()
        };
        assert_eq!(&err[message], b"ERR wrong number of arguments");
        assert_eq!(
            whole(b"*3\r\n$1\r\na\r\n:2\r\n*1\r\n$-1\r\n").reply,
            Reply::Array(3)
        );
        assert_eq!(whole(b"*0\r\n").reply, Reply::Array(0));
    }

    #[test]
    fn replies_follow_each_other() {
        let buf = b"+OK\r\n$3\r\nabc\r\n$-1\r\n";
        let a = parse(buf).unwrap().unwrap();
        let b = parse(&buf[a.len..]).unwrap().unwrap();
        let c = parse(&buf[a.len + b.len..]).unwrap().unwrap();
        assert_eq!((a.reply, c.reply), (Reply::Done, Reply::Nil));
        assert_eq!(b.reply, Reply::Value(4..7));
        assert_eq!(a.len + b.len + c.len, buf.len());
    }

    #[test]
    fn rejects_what_is_not_resp() {
        assert!(parse(b"STORED\r\n").is_err());
        assert!(parse(b"$abc\r\n").is_err());
        assert!(parse(b"$3\r\nabcXY").is_err());
        assert!(parse(b"\r\n").is_err());
        assert!(parse(&vec![b'+'; LINE_SIZE_MAX + 10]).is_err());
    }
}
