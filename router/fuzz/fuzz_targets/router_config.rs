//! The `router_config` target: feeds arbitrary text (YAML, or JSON when it
//! starts with `{`) to the router's config parser and `Config::validate`,
//! and checks what comes back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_router_config(data);
});
