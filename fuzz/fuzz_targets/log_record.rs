//! Arbitrary bytes through the shard log's record, header-block and scan decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringkv::storage::fuzz_decode(data);
});
