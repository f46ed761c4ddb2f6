//! Python programs the tests use as independent implementations of a
//! protocol (thriftpy2, grpcio): checking that python3 has their modules,
//! writing their scripts out, and starting servers that print their port.

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Whether python3 can import every module of `modules`; when it cannot,
/// says so loudly (a panic under `CI=true`) with how to install them
/// (`install`) and what the tests need them for (`why`).
pub fn has_modules(modules: &[&str], install: &str, why: &str) -> bool {
    let has = Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        crate::servers::missing(&modules.join(", "), install, why);
    }
    has
}

/// Writes `files` (name, text) into a new temporary directory.
pub fn scripts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    for (name, text) in files {
        std::fs::File::create(dir.path().join(name))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }
    dir
}

/// Starts `python3 <args>`, a server that prints `PORT <n>` as its first
/// line once it listens; returns it, the port, and the rest of its output.
/// `what` names it in panics.
pub fn start_listening(
    args: &[&std::ffi::OsStr],
    what: &str,
) -> (Child, u16, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new("python3")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("{what}: stdout was not piped");
    };
    let mut lines = BufReader::new(stdout).lines();
    let port = lines
        .next()
        .and_then(Result::ok)
        .and_then(|line| line.strip_prefix("PORT ")?.parse().ok())
        .unwrap_or_else(|| panic!("{what} did not say its port"));
    (child, port, lines)
}
