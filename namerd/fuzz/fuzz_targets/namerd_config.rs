//! The `namerd_config` target: feeds arbitrary text (YAML, or JSON when it
//! starts with `{`) to namerd's config parser and `NamerdConfig::validate`,
//! and checks what comes back.

#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check_namerd_config(data);
});
