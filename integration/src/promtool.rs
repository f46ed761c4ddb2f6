//! Prometheus's own reader of the exposition format, `promtool check
//! metrics` from Debian's `prometheus` package, as the judge of the metrics
//! text the router and namerd serve.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where Debian installs it.
const PROMTOOL: &str = "/usr/bin/promtool";

/// What promtool may say of Linkerd's names: style, not format. Linkerd's
/// own text drew the same complaints.
const STYLE_RULES: &[&str] = &[
    "metric names should not contain ':'",
    "no help text",
    "metric names should not contain abbreviated units",
    // Kinds (`io.l5d.httpController`), HTTP methods and exception class
    // names left in names, as Linkerd left them.
    "metric names should be written in 'snake_case' not 'camelCase'",
];

/// Whether promtool is installed; when it is not, a loud skip, or a panic
/// under `CI=true`.
pub fn available() -> bool {
    if Path::new(PROMTOOL).exists() {
        return true;
    }
    crate::servers::missing("promtool", "prometheus", "it checks the Prometheus text");
    false
}

/// Runs `promtool check metrics` on `text`; panics unless promtool parsed
/// it (status 0, or 3 for style complaints) and complained of style only.
pub fn check_metrics(text: &str) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PROMTOOL}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing to promtool: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for promtool: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "promtool: {:?}\n{said}\n{text}",
        output.status
    );
    for line in said.lines() {
        assert!(
            STYLE_RULES.iter().any(|rule| line.ends_with(rule)),
            "promtool: {line}\n{text}"
        );
    }
}
