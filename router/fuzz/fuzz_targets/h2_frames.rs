//! The `h2_frames` target: reads arbitrary bytes as the HTTP/2 frames a
//! client sends the router (`router::http2::frame::read`), decodes their
//! header blocks (`router::http2::hpack::Decoder`), and checks that the
//! router's encoder gives the same fields back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_h2_frames(data);
});
