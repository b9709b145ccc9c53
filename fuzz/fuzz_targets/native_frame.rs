//! Arbitrary bytes through the server's native frame check and request decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringkv::proto::fuzz_decode(data);
});
