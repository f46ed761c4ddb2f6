//! Replays the committed fuzz corpora (`fuzz/corpora/<target>/`) through
//! the same checks as the fuzz targets (`fuzz/check.rs`), so that every
//! input the fuzzer kept, and every crash it found, is tried on every run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/check.rs"]
mod check;

/// Runs every file of `fuzz/corpora/<target>/` through `check`.
fn replay(target: &str, check: fn(&[u8])) {
    integration::fuzz::replay(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        target,
        check,
    );
}

#[test]
fn dtab_headers_corpus() {
    replay("dtab_headers", check::check_dtab_headers);
}

#[test]
fn h1_head_corpus() {
    replay("h1_head", check::check_h1_head);
}

#[test]
fn router_config_corpus() {
    replay("router_config", check::check_router_config);
}

#[test]
fn h2_frames_corpus() {
    replay("h2_frames", check::check_h2_frames);
}
