//! Fuzz drivers: run the decoders over arbitrary bytes and assert their invariants.
//! A cargo-fuzz target is one line (`fuzz_target!(|data: &[u8]| fuzz_parse(data))`);
//! the property tests call the same functions.
//!
//! Every assertion here is a bug in this module if it fires, never bad input.

use bytes::BytesMut;

use super::decode::{parse_reply, reply_len};
use super::parse::{parse, Limits, RequestParser, RespError};
use super::reply::{Protocol, Value};

/// Small limits, so short fuzz inputs reach every limit check.
const SMALL: Limits = Limits {
    bulk_len_max: 16,
    args_max: 4,
    inline_len_max: 24,
};

/// What parsing a whole input produced: the commands, then either the number of
/// bytes left waiting for more input or the error that stopped parsing.
#[derive(Debug, PartialEq)]
struct Run {
    commands: Vec<Vec<Vec<u8>>>,
    end: Result<usize, RespError>,
}

/// Runs the request parser over `data`, command after command, until it needs more
/// bytes or fails, with the default limits and with small ones. Asserts that every
/// command consumed between 1 and the remaining bytes, has 1 to `args_max`
/// arguments each at most `bulk_len_max` long; and that the connection parser fed
/// `data` in small pieces yields exactly what the stateless parser yields on the
/// whole buffer.
pub fn fuzz_parse(data: &[u8]) {
    for limits in [Limits::default(), SMALL] {
        let whole = run_whole(data, &limits);
        let pieces = run_in_pieces(data, &limits);
        assert_eq!(
            whole, pieces,
            "parsing in pieces disagrees with parsing whole"
        );
    }
}

fn check_args<A: AsRef<[u8]>>(args: &[A], limits: &Limits) {
    assert!(args.len() <= limits.args_max, "too many arguments");
    for arg in args {
        assert!(
            arg.as_ref().len() <= limits.bulk_len_max,
            "argument too long"
        );
    }
}

fn run_whole(data: &[u8], limits: &Limits) -> Run {
    let mut commands = Vec::new();
    let mut off = 0;
    loop {
        let rest = data.get(off..).unwrap_or_default();
        match parse(rest, limits) {
            Ok(Some((args, consumed))) => {
                assert!(consumed > 0 && consumed <= rest.len(), "bad consumed count");
                check_args(&args, limits);
                if args.is_empty() {
                    // Only skipped commands, then an incomplete one or the end.
                    let after = rest.get(consumed..).unwrap_or_default();
                    assert_eq!(parse(after, limits), Ok(None), "empty args not at the end");
                } else {
                    commands.push(args.into_iter().map(|a| a.into_owned()).collect());
                }
                off += consumed;
            }
            Ok(None) => {
                return Run {
                    commands,
                    end: Ok(rest.len()),
                }
            }
            Err(e) => {
                return Run {
                    commands,
                    end: Err(e),
                }
            }
        }
    }
}

fn run_in_pieces(data: &[u8], limits: &Limits) -> Run {
    let mut parser = RequestParser::new(*limits);
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut fed = 0;
    let mut round: usize = 0;
    loop {
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "empty command returned");
                    check_args(&args, limits);
                    commands.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(e) => {
                    return Run {
                        commands,
                        end: Err(e),
                    }
                }
            }
        }
        if fed >= data.len() {
            return Run {
                commands,
                end: Ok(buf.len()),
            };
        }
        // Piece sizes 1..=17 in a pattern that varies with the input length.
        let size = 1 + (round.wrapping_mul(31) ^ data.len()) % 17;
        let end = fed.saturating_add(size).min(data.len());
        buf.extend_from_slice(data.get(fed..end).unwrap_or_default());
        fed = end;
        round += 1;
    }
}

/// Runs the reply decoder over `data`, reply after reply, until it needs more bytes
/// or fails. Asserts that [`reply_len`] agrees with [`parse_reply`], that every
/// reply consumed between 1 and the remaining bytes, and that each decoded value,
/// re-encoded in RESP2 and in RESP3, decodes again to a value encoding to the same
/// bytes (the encoder's output is always decodable and canonical).
pub fn fuzz_parse_reply(data: &[u8]) {
    let mut off = 0;
    loop {
        let rest = data.get(off..).unwrap_or_default();
        let len = reply_len(rest);
        match parse_reply(rest) {
            Ok(Some((value, consumed))) => {
                assert_eq!(len, Ok(Some(consumed)), "reply_len disagrees");
                assert!(consumed > 0 && consumed <= rest.len(), "bad consumed count");
                check_reencoding(&value);
                off += consumed;
            }
            Ok(None) => {
                assert_eq!(len, Ok(None), "reply_len disagrees");
                return;
            }
            Err(e) => {
                assert_eq!(len, Err(e), "reply_len disagrees");
                return;
            }
        }
    }
}

fn check_reencoding(value: &Value) {
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut once = BytesMut::new();
        value.encode(&mut once, proto);
        let again = parse_reply(&once);
        let Ok(Some((again, consumed))) = again else {
            panic!("encoder output does not decode: {again:?} from {once:?}");
        };
        assert_eq!(consumed, once.len(), "encoder output decodes short");
        let mut twice = BytesMut::new();
        again.encode(&mut twice, proto);
        assert_eq!(once, twice, "encoding is not canonical");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_tricky_inputs() {
        for input in [
            &b""[..],
            b"*",
            b"*1\r",
            b"*1\r\n$",
            b"\r\n\r\n*0\r\n",
            b"\"",
            b"'a'b",
            b"*3\r\n$1\r\na\r\n",
            b"*1\r\n$20\r\n0123456789012345678901\r\n",
            b"a b c d e f\r\n",
        ] {
            fuzz_parse(input);
        }
        for input in [
            &b",-nan\r\n"[..],
            b",nan\r\n",
            b",-0\r\n",
            b"|1\r\n_\r\n_\r\n*-1\r\n",
        ] {
            fuzz_parse_reply(input);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_obey_parser_invariants(
            data in prop::collection::vec(any::<u8>(), 0..512)
        ) {
            fuzz_parse(&data);
        }

        #[test]
        fn request_like_bytes_obey_parser_invariants(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    &b"*2\r\n"[..], b"*1\r\n", b"*0\r\n", b"*-1\r\n", b"$3\r\nabc\r\n",
                    b"$0\r\n\r\n", b"$20\r\n", b"PING\r\n", b"\r\n", b"\n", b"\r", b" ",
                    b"\"", b"'", b"\\", b"x", b"\\x4", b"1", b"*", b"$", b"-", b"\0",
                ]),
                0..60,
            )
        ) {
            fuzz_parse(&parts.concat());
        }
    }
}
