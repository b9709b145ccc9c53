//! The native binary protocol, v1: one library for the server, the client and the load
//! generator, so the three can never disagree. The normative description, with byte
//! diagrams and golden vectors, is `proto-spec/protocol.md`.
//!
//! - [`frame`]: the 24-byte header and the "is a whole frame here?" check.
//! - [`op`]: opcodes, typed requests, and the bodies of requests and responses.
//! - [`status`]: response status codes.

pub mod frame;
pub mod op;
pub mod status;

pub use frame::{
    check, FrameError, Header, HEADER_SIZE, MAGIC_REQUEST, MAGIC_RESPONSE, PROTOCOL_VERSION,
};
pub use op::{
    decode_request, encode_request, Opcode, Refusal, Request, Response, ResponseWriter, SetMode,
    Topology,
};
pub use status::Status;

/// Runs the server's decoding path over arbitrary bytes, asserting its invariants.
/// Called by the `native_frame` fuzz target and by the property tests.
pub fn fuzz_decode(data: &[u8]) {
    let mut buf = bytes::BytesMut::from(data);
    let mut frames = 0usize;
    while let Ok(Some((header, len))) = check(&buf, MAGIC_REQUEST) {
        assert!(
            len >= HEADER_SIZE && len <= buf.len(),
            "frame length within the buffer"
        );
        assert_eq!(len, HEADER_SIZE + header.body_len as usize);
        let frame = buf.split_to(len).freeze();
        if let Ok(request) = decode_request(&header, &frame) {
            // Whatever decodes must re-encode to a frame that decodes the same.
            let mut out = bytes::BytesMut::new();
            if encode_request(&mut out, header.request_id, 0, &request).is_ok() {
                let (h2, len2) = check(&out, MAGIC_REQUEST)
                    .ok()
                    .flatten()
                    .expect("re-encoded frame is whole");
                assert_eq!(len2, out.len());
                let again = decode_request(&h2, &out.freeze()).expect("re-encoded frame decodes");
                assert_eq!(again, request);
            }
        }
        frames += 1;
    }
    assert!(frames <= data.len() / HEADER_SIZE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            key().prop_map(|key| Request::Get { key }),
            (key(), key(), 0u64..10_000).prop_map(|(key, value, ttl_ms)| Request::Set {
                key,
                value,
                ttl_ms,
                mode: SetMode::Always
            }),
            (key(), key(), any::<u64>(), any::<bool>()).prop_map(
                |(key, value, expected, delete)| Request::Cas {
                    key,
                    value,
                    ttl_ms: 5,
                    expected,
                    delete
                }
            ),
            (
                key(),
                prop_oneof![-1000i64..1000, Just(i64::MIN), Just(i64::MAX)]
            )
                .prop_filter("nonzero", |(_, d)| *d != 0)
                .prop_map(|(key, delta)| Request::Incr { key, delta }),
            proptest::collection::vec(key(), 1..20).prop_map(|keys| Request::MGet { keys }),
            proptest::collection::vec((key(), key()), 1..20)
                .prop_map(|pairs| Request::MSet { pairs, ttl_ms: 0 }),
            (any::<u64>(), 0u32..1000, key()).prop_map(|(cursor, count, prefix)| Request::Scan {
                cursor,
                count,
                prefix
            }),
        ]
    }

    #[test]
    fn incr_by_i64_min_round_trips() {
        // Found by the native_frame fuzz target: it went out as a DECR of 2^63, which
        // the decoder refuses (the amount cannot be negated).
        for delta in [i64::MIN, i64::MIN + 1, -1, 1, i64::MAX] {
            let request = Request::Incr {
                key: Bytes::from_static(b"k"),
                delta,
            };
            let mut wire = bytes::BytesMut::new();
            encode_request(&mut wire, 1, 0, &request).unwrap();
            let (h, len) = check(&wire, MAGIC_REQUEST).unwrap().unwrap();
            assert_eq!(len, wire.len());
            assert_eq!(decode_request(&h, &wire.freeze()), Ok(request), "{delta}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_decode(&data);
        }

        #[test]
        fn random_bytes_after_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), opcode in any::<u8>(), extras_len in 0u8..32, key_len in 0u16..64) {
            let header = Header {
                magic: MAGIC_REQUEST, proto_version: PROTOCOL_VERSION, opcode, extras_len, key_len,
                flags_or_status: 0, body_len: body.len() as u32, request_id: 1, version: 0,
            };
            let mut data = header.encode().to_vec();
            data.extend_from_slice(&body);
            fuzz_decode(&data);
        }

        #[test]
        fn requests_round_trip_and_split_anywhere(reqs in proptest::collection::vec(request(), 1..8), cut in any::<prop::sample::Index>()) {
            let mut wire = bytes::BytesMut::new();
            for (i, r) in reqs.iter().enumerate() {
                encode_request(&mut wire, i as u32, 0, r).unwrap();
            }
            // A prefix never yields more frames than fully fit, and never an error.
            let cut = cut.index(wire.len() + 1);
            let mut prefix = bytes::BytesMut::from(&wire[..cut]);
            while let Some((_, len)) = check(&prefix, MAGIC_REQUEST).unwrap() {
                let _ = prefix.split_to(len);
            }
            let mut buf = wire;
            for (i, r) in reqs.iter().enumerate() {
                let (h, len) = check(&buf, MAGIC_REQUEST).unwrap().unwrap();
                prop_assert_eq!(h.request_id, i as u32);
                let frame = buf.split_to(len).freeze();
                prop_assert_eq!(&decode_request(&h, &frame).unwrap(), r);
            }
            prop_assert!(buf.is_empty());
        }
    }
}
