//! The `h1_head` target: feeds arbitrary bytes to the router's HTTP/1
//! request-head parser (`router::server::h1::parse_request`) as what a
//! connection has read so far, and checks what comes back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_h1_head(data);
});
