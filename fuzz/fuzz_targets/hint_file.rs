//! Arbitrary bytes through the hint decoder (a hint file is read from disk at every
//! start), raw and with its checksums made right.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringkv::storage::fuzz_hint(data);
});
