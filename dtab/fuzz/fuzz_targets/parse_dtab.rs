//! Feeds arbitrary text to `dtab::parse::dtab` and checks what comes back.

#![no_main]

#[path = "../common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_dtab(&String::from_utf8_lossy(data));
});
