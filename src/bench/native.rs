//! The native protocol driver: frames built and checked with [`crate::proto`], the
//! same code the server and the client use, without going through `Request` (which
//! would allocate `Bytes` per request on the hot path).

use super::driver::{Parsed, Reply};
use crate::proto::frame::{check, Header, HEADER_SIZE, MAGIC_REQUEST, MAGIC_RESPONSE};
use crate::proto::{Opcode, Status, PROTOCOL_VERSION};

fn put_request(out: &mut Vec<u8>, opcode: Opcode, id: u32, key: &[u8], value: &[u8]) {
    let header = Header {
        magic: MAGIC_REQUEST,
        proto_version: PROTOCOL_VERSION,
        opcode: opcode as u8,
        extras_len: 0,
        // Keys are at most KEY_BUFFER_SIZE bytes (checked with the flags), far below
        // u16::MAX, and values at most VALUE_SIZE_MAX, far below u32::MAX.
        key_len: key.len() as u16,
        flags_or_status: 0,
        body_len: (key.len() + value.len()) as u32,
        request_id: id,
        version: 0,
    };
    out.reserve(HEADER_SIZE + key.len() + value.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Appends a native `GET`.
pub fn encode_get(out: &mut Vec<u8>, id: u32, key: &[u8]) {
    put_request(out, Opcode::Get, id, key, &[]);
}

/// Appends a native `SET` without a time to live.
pub fn encode_set(out: &mut Vec<u8>, id: u32, key: &[u8], value: &[u8]) {
    put_request(out, Opcode::Set, id, key, value);
}

/// Splits one response frame off `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, String> {
    let Some((header, len)) = check(buf, MAGIC_RESPONSE).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let value = HEADER_SIZE + usize::from(header.extras_len) + usize::from(header.key_len)..len;
    let reply = match Status::from_u16(header.flags_or_status) {
        Some(Status::Ok) => Reply::Value(value),
        Some(Status::NotFound) => Reply::Nil,
        Some(status) => Reply::Error {
            kind: status.name(),
            message: value,
        },
        None => Reply::Error {
            kind: "UNKNOWN_STATUS",
            message: value,
        },
    };
    Ok(Some(Parsed {
        reply,
        len,
        id: Some(header.request_id),
    }))
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::op::encode_response;
    use crate::proto::{decode_request, Request};

    #[test]
    fn requests_decode_as_the_server_would() {
        let mut out = Vec::new();
        encode_set(&mut out, 7, b"key:1", b"value");
        encode_get(&mut out, 8, b"key:1");
        let (h, len) = check(&out, MAGIC_REQUEST).unwrap().unwrap();
        let set = decode_request(&h, &bytes::Bytes::copy_from_slice(&out[..len])).unwrap();
        assert!(
            matches!(set, Request::Set { ref key, ref value, ttl_ms: 0, .. }
            if &key[..] == b"key:1" && &value[..] == b"value")
        );
        assert_eq!(h.request_id, 7);
        let rest = &out[len..];
        let (h, len) = check(rest, MAGIC_REQUEST).unwrap().unwrap();
        let get = decode_request(&h, &bytes::Bytes::copy_from_slice(&rest[..len])).unwrap();
        assert_eq!(
            get,
            Request::Get {
                key: bytes::Bytes::from_static(b"key:1")
            }
        );
    }

    #[test]
    fn replies_parse_whole_and_wait_when_cut() {
        let mut buf = bytes::BytesMut::new();
        encode_response(&mut buf, Opcode::Get as u8, 3, Status::Ok, 9, &[], b"abc");
        encode_response(
            &mut buf,
            Opcode::Get as u8,
            4,
            Status::NotFound,
            0,
            &[],
            b"",
        );
        encode_response(
            &mut buf,
            Opcode::Set as u8,
            5,
            Status::Busy,
            0,
            &[],
            b"later",
        );
        for cut in 0..HEADER_SIZE + 3 {
            assert_eq!(parse(&buf[..cut]), Ok(None));
        }
        let a = parse(&buf).unwrap().unwrap();
        assert_eq!(a.id, Some(3));
        let Reply::Value(r) = a.reply.clone() else {
            panic!("{a:?}")
        };
        assert_eq!(&buf[r], b"abc");
        let b = parse(&buf[a.len..]).unwrap().unwrap();
        assert_eq!((b.reply, b.id), (Reply::Nil, Some(4)));
        let rest = &buf[a.len + b.len..];
        let c = parse(rest).unwrap().unwrap();
        let Reply::Error { kind, message } = c.reply else {
            panic!()
        };
        assert_eq!((kind, &rest[message]), ("BUSY", &b"later"[..]));
        assert!(parse(b"+OK\r\n").is_err());
    }
}
