//! RESP decoders over arbitrary bytes: the request parser (whole and in pieces,
//! default and small limits) and the reply decoder (re-encoding checked). Every
//! invariant is asserted inside `ringkv::resp`; a crash is a bug there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringkv::resp::fuzz_parse(data);
    ringkv::resp::fuzz_parse_reply(data);
});
