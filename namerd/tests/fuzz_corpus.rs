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
fn namerd_config_corpus() {
    replay("namerd_config", check::check_namerd_config);
}

#[test]
fn api_body_corpus() {
    replay("api_body", check::check_api_body);
}
