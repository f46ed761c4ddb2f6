//! Replaying committed fuzz corpora on stable, from `cargo test`: every
//! input the fuzzer kept, and every crash it found, is tried on every run.

use std::path::{Path, PathBuf};

/// Runs every file of `<crate_dir>/fuzz/corpora/<target>/` through
/// `check` (the fuzz target's own checks); the corpus must not be empty. A
/// failure names the input that caused it.
pub fn replay(crate_dir: &Path, target: &str, check: fn(&[u8])) {
    let dir = crate_dir.join("fuzz/corpora").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| match entry {
            Ok(entry) => entry.path(),
            Err(e) => panic!("{}: {e}", dir.display()),
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target} fails on {}", file.display());
    }
}
