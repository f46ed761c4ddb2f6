//! The `dtab_headers` target: builds a header map of one to three
//! `l5d-ctx-dtab` / `l5d-dtab` values and limits from arbitrary bytes, reads
//! its local dtab with `router::service::dtab_headers::local_dtab` and
//! checks what comes back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_dtab_headers(data);
});
