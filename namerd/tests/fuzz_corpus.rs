//! Replays the committed fuzz corpora (`fuzz/corpora/<target>/`) through
//! the same checks as the fuzz targets (`fuzz/check.rs`), so that every
//! input the fuzzer kept, and every crash it found, is tried on every run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/check.rs"]
mod check;

use std::path::PathBuf;

/// Runs every file of `fuzz/corpora/<target>/` through `check`; the corpus
/// must not be empty.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpora")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        // A panic names the input that caused it.
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target} fails on {}", file.display());
    }
}

#[test]
fn namerd_config_corpus() {
    replay("namerd_config", check::check_namerd_config);
}

#[test]
fn api_body_corpus() {
    replay("api_body", check::check_api_body);
}
