//! The `api_body` target: feeds a `Content-Type` and a body to the parsers
//! of namerd's API request bodies (the dtab of `PUT`/`POST /api/1/dtabs`,
//! the JSON of `POST /api/1/delegate`) and checks what comes back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_api_body(data);
});
