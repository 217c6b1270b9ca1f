//! The dataset importer's parser on any bytes: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = marquee::dataset::parse(data);
});
