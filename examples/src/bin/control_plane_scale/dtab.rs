//! `dtab`: `namerctl dtab update` → routing, measured by the
//! `dtab_propagation` harness, run here as a child and its report read
//! back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use examples::load::procs::{Proc, WorkDir};
use serde_json::json;

/// The longest the child may run.
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `dtab_propagation --updates <updates>`; returns its figures.
pub(crate) async fn run(work: &WorkDir, bin_dir: &Path, updates: u32) -> Result<serde_json::Value> {
    println!("\n## dtab: namerctl dtab update -> routing ({updates} updates per interpreter)");
    let log = work.file("dtab_propagation.log");
    let mut command = Command::new(bin_dir.join("dtab_propagation"));
    command
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--updates")
        .arg(updates.to_string());
    let mut child = Proc::spawn("dtab_propagation", command, &log)?;
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.stop();
            bail!("dtab_propagation did not finish in {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log)?;
    if !status.success() {
        bail!("dtab_propagation failed ({status}):\n{output}");
    }
    let rows = parse(&output);
    println!(
        "\n| Interpreter | namerctl started → routed: p50 / p90 / p99 / max | namerctl exited → routed |\n|---|---|---|"
    );
    for row in &rows {
        println!(
            "| `{}` | {} | {} |",
            row.kind,
            crate::observe::show(row.from_start),
            crate::observe::show(row.from_exit)
        );
    }
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "interpreter": r.kind,
                "from_namerctl_start": crate::observe::json(r.from_start),
                "from_namerctl_exit": crate::observe::json(r.from_exit),
            })
        })
        .collect())
}

/// One interpreter's figures from the report.
#[derive(Debug, PartialEq)]
struct Row {
    kind: String,
    from_start: [f64; 4],
    from_exit: [f64; 4],
}

/// Reads `dtab_propagation`'s report: a heading per interpreter ("… a
/// router with io.l5d.mesh:"), then a "started" and an "exited" line of
/// `p50 X ms, p90 X ms, p99 X ms, max X ms`.
fn parse(output: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut kind = None;
    let mut from_start = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_suffix(':')
            && let Some(at) = rest.rfind("router with ")
        {
            kind = Some(rest[at + "router with ".len()..].to_string());
        } else if line.contains("namerctl started") {
            from_start = figures(line);
        } else if line.contains("namerctl exited")
            && let (Some(k), Some(start), Some(exit)) =
                (kind.take(), from_start.take(), figures(line))
        {
            rows.push(Row {
                kind: k,
                from_start: start,
                from_exit: exit,
            });
        }
    }
    rows
}

/// The four numbers after `p50`, `p90`, `p99` and `max`.
fn figures(line: &str) -> Option<[f64; 4]> {
    let mut out = [0.0; 4];
    for (slot, label) in out.iter_mut().zip(["p50 ", "p90 ", "p99 ", "max "]) {
        let at = line.find(label)? + label.len();
        let number = line[at..].split_whitespace().next()?;
        *slot = number.parse().ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report() {
        let output = "100 updates of /svc/web through namerctl, namerd (disk store) and a router with io.l5d.mesh:\n  namerctl started -> routed: p50 2.4 ms, p90 2.5 ms, p99 3.6 ms, max 3.9 ms\n  namerctl exited  -> routed: p50 0.1 ms, p90 0.2 ms, p99 0.3 ms, max 1.3 ms\n";
        assert_eq!(
            parse(output),
            vec![Row {
                kind: "io.l5d.mesh".into(),
                from_start: [2.4, 2.5, 3.6, 3.9],
                from_exit: [0.1, 0.2, 0.3, 1.3],
            }]
        );
    }
}
