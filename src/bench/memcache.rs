//! A memcached text-protocol driver: `set KEY 0 0 LEN` and `get KEY`, and the replies
//! a load generator meets (`STORED`, `VALUE ... END`, bare `END`, the error lines).

use super::driver::{Parsed, Reply};

/// Longest reply line accepted (memcached's own lines are far shorter).
const LINE_SIZE_MAX: usize = 8 * 1024;

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

/// Appends `get KEY`.
pub fn encode_get(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"get ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
}

/// Appends `set KEY 0 0 LEN` and the data block (flags 0, no expiry).
pub fn encode_set(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.reserve(32 + key.len() + value.len());
    out.extend_from_slice(b"set ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" 0 0 ");
    put_decimal(out, value.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

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

/// The data length of a `VALUE <key> <flags> <bytes> [<cas>]` line.
fn value_len(text: &[u8]) -> Result<usize, String> {
    let bad = || format!("bad VALUE line: {:?}", String::from_utf8_lossy(text));
    // No allocation: this runs for every hit.
    let bytes = text.split(|&b| b == b' ').nth(3).ok_or_else(bad)?;
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// Splits one reply off `buf`. A GET reply is every `VALUE` block up to `END`; its
/// value is the first block's data.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, String> {
    let Some((first, mut at)) = line(buf, 0)? else {
        return Ok(None);
    };
    let error = |kind: &'static str, skip: usize| Reply::Error {
        kind,
        message: skip..at - 2,
    };
    let reply = match first {
        b"STORED" | b"DELETED" | b"TOUCHED" | b"OK" => Reply::Done,
        b"END" => Reply::Nil,
        b"NOT_STORED" => error("NOT_STORED", 0),
        b"EXISTS" => error("EXISTS", 0),
        b"NOT_FOUND" => error("NOT_FOUND", 0),
        b"ERROR" => error("ERROR", 0),
        _ if first.starts_with(b"CLIENT_ERROR") => error("CLIENT_ERROR", 0),
        _ if first.starts_with(b"SERVER_ERROR") => error("SERVER_ERROR", 0),
        _ if first.starts_with(b"VALUE ") => {
            let mut value = None;
            let mut header = first;
            loop {
                let len = value_len(header)?;
                let end = at + len;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err("VALUE data not followed by CRLF".into());
                }
                value.get_or_insert(at..end);
                let Some((next, after)) = line(buf, end + 2)? else {
                    return Ok(None);
                };
                at = after;
                if next == b"END" {
                    break;
                }
                if !next.starts_with(b"VALUE ") {
                    return Err(format!(
                        "expected VALUE or END, got {:?}",
                        String::from_utf8_lossy(next)
                    ));
                }
                header = next;
            }
            Reply::Value(value.unwrap_or(0..0))
        }
        _ => {
            return Err(format!(
                "not a memcached reply: {:?}",
                String::from_utf8_lossy(&first[..first.len().min(40)])
            ))
        }
    };
    Ok(Some(Parsed {
        reply,
        len: at,
        id: None,
    }))
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Parsed {
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut {cut}");
        }
        let p = parse(bytes).unwrap().unwrap();
        assert_eq!(p.len, bytes.len());
        p
    }

    #[test]
    fn encodes_set_and_get() {
        let mut out = Vec::new();
        encode_set(&mut out, b"key:1", b"hello");
        encode_get(&mut out, b"key:1");
        assert_eq!(out, b"set key:1 0 0 5\r\nhello\r\nget key:1\r\n");
    }

    #[test]
    fn reads_the_replies() {
        assert_eq!(whole(b"STORED\r\n").reply, Reply::Done);
        assert_eq!(whole(b"END\r\n").reply, Reply::Nil);
        let hit = b"VALUE key:1 0 5\r\nhe\r\no\r\nEND\r\n";
        assert_eq!(whole(hit).reply, Reply::Value(17..22));
        let two = b"VALUE a 0 1\r\nx\r\nVALUE b 0 2 99\r\nyz\r\nEND\r\n";
        assert_eq!(whole(two).reply, Reply::Value(13..14));
        let e = b"SERVER_ERROR out of memory storing object\r\n";
        let Reply::Error { kind, message } = whole(e).reply else {
            panic!()
        };
        assert_eq!(kind, "SERVER_ERROR");
        assert_eq!(&e[message], b"SERVER_ERROR out of memory storing object");
        assert!(matches!(
            whole(b"ERROR\r\n").reply,
            Reply::Error { kind: "ERROR", .. }
        ));
        assert!(matches!(
            whole(b"NOT_STORED\r\n").reply,
            Reply::Error { .. }
        ));
    }

    #[test]
    fn replies_follow_each_other() {
        let buf = b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\nEND\r\n";
        let a = parse(buf).unwrap().unwrap();
        let b = parse(&buf[a.len..]).unwrap().unwrap();
        let c = parse(&buf[a.len + b.len..]).unwrap().unwrap();
        assert_eq!((a.reply, c.reply), (Reply::Done, Reply::Nil));
        assert_eq!(&buf[a.len..][..b.len], b"VALUE k 0 3\r\nabc\r\nEND\r\n");
    }

    #[test]
    fn rejects_what_is_not_memcache() {
        assert!(parse(b"+OK\r\n").is_err());
        assert!(parse(b"VALUE k 0 x\r\n").is_err());
        assert!(parse(b"VALUE k 0 3\r\nabcXY").is_err());
        assert!(parse(b"VALUE k 0 1\r\na\r\nSTORED\r\n").is_err());
    }
}
