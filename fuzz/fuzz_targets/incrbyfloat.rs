//! INCRBYFLOAT's long-double parser over arbitrary bytes (values and increments are
//! untrusted): never panics, and whatever it accepts adds and prints to a string
//! that it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv::shard::ld::Ld;

fuzz_target!(|data: &[u8]| {
    let Some(value) = Ld::parse(data) else {
        return;
    };
    if let Some(sum) = value.checked_add(value) {
        if !sum.is_infinite() {
            let text = sum.to_human();
            assert!(Ld::parse(text.as_bytes()).is_some(), "{text} does not parse back");
        }
    }
});
