//! `control_plane_scale`: namerd and its routers with many names watched.
//!
//! Three scenarios, all against the release binaries:
//!
//! - `fanout`: one namerd (disk store, an `io.l5d.fs` namer over a
//!   directory of service files) and R routers, each bound through namerd
//!   to N names by sending one request per name. Then a service file is
//!   edited and a dtab entry changed, and each router is asked for the
//!   name until it answers from the new backend: the time from the change
//!   to each router routing by it. Also namerd's and the routers' memory
//!   with every watch open and their CPU per update.
//! - `consul`: namerd following thousands of Consul services (the
//!   in-process fake of `integration::consul`) for a router watching all
//!   of them: memory, and CPU when instances change.
//! - `dtab`: runs `dtab_propagation` (`namerctl dtab update` → routing).
//!
//! ```sh
//! cargo run --release -p examples --bin control_plane_scale
//! cargo run --release -p examples --bin control_plane_scale -- --scenario fanout --routers 100 --names 90
//! ```

mod consul;
mod delivered;
mod dtab;
mod fanout;
mod observe;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use examples::load::namerd::InterpreterKind;
use examples::load::procs::{WorkDir, install_signal_handler};

/// Measures namerd and its routers with many names watched.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// fanout: routers in each run (a list: one run per entry, paired
    /// with --names).
    #[arg(long, value_delimiter = ',', default_value = "100,10")]
    routers: Vec<usize>,
    /// fanout: names each router watches, per run (paired with --routers).
    #[arg(long, value_delimiter = ',', default_value = "90,900")]
    names: Vec<usize>,
    /// fanout: service files in namerd's `io.l5d.fs` directory (at least
    /// as many as names; names use the first ones).
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// fanout: how routers ask namerd.
    #[arg(long, value_enum, default_value_t = InterpreterKind::Http)]
    interpreter: InterpreterKind,
    /// consul: services registered in Consul, all watched.
    #[arg(long, default_value_t = 5_000)]
    services: usize,
    /// consul: instances of each service.
    #[arg(long, default_value_t = 10)]
    instances: usize,
    /// Updates of each kind that are timed, and as many for the CPU
    /// figures.
    #[arg(long, default_value_t = 20)]
    updates: usize,
    /// How often each router is asked while an update spreads, in ms.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// dtab: updates `dtab_propagation` times per interpreter kind.
    #[arg(long, default_value_t = 100)]
    dtab_updates: u32,
    /// The directory holding `namerd`, `router` and `dtab_propagation`;
    /// by default they are built with cargo.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the work directory (configs, logs).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    Fanout,
    Consul,
    Dtab,
    All,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.routers.len() != args.names.len() {
        bail!(
            "--routers and --names must have as many entries ({} and {})",
            args.routers.len(),
            args.names.len()
        );
    }
    install_signal_handler()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => build()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let loadavg_before = loadavg();
    println!("load average before: {loadavg_before}");
    let work = WorkDir::create("control-plane-scale", args.keep)?;
    let results = runtime.block_on(run(&args, &bin_dir, &work))?;
    let loadavg_after = loadavg();
    println!("load average after: {loadavg_after}");
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "loadavg_before": loadavg_before,
            "loadavg_after": loadavg_after,
            "scenarios": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn run(args: &Args, bin_dir: &std::path::Path, work: &WorkDir) -> Result<serde_json::Value> {
    let mut results = serde_json::Map::new();
    let all = args.scenario == Scenario::All;
    if all || args.scenario == Scenario::Fanout {
        let mut runs = Vec::new();
        for (&routers, &names) in args.routers.iter().zip(&args.names) {
            let size = fanout::Size {
                routers,
                names,
                files: args.files.max(names),
            };
            let settings = fanout::Settings {
                interpreter: args.interpreter,
                updates: args.updates,
                poll: std::time::Duration::from_millis(args.poll_ms),
            };
            runs.push(fanout::run(work, bin_dir, size, &settings).await?);
        }
        results.insert("fanout".into(), runs.into());
    }
    if all || args.scenario == Scenario::Consul {
        let size = consul::Size {
            services: args.services,
            instances: args.instances,
        };
        let poll = std::time::Duration::from_millis(args.poll_ms);
        results.insert(
            "consul".into(),
            consul::run(work, bin_dir, size, args.updates, poll).await?,
        );
    }
    if all || args.scenario == Scenario::Dtab {
        results.insert(
            "dtab".into(),
            dtab::run(work, bin_dir, args.dtab_updates).await?,
        );
    }
    Ok(results.into())
}

/// Builds the release binaries the scenarios start and returns their
/// directory (this program's own).
fn build() -> Result<PathBuf> {
    let args = [
        "build",
        "--release",
        "-p",
        "namerd",
        "-p",
        "router",
        "-p",
        "examples",
        "--bin",
        "namerd",
        "--bin",
        "router",
        "--bin",
        "dtab_propagation",
        "--bin",
        "namerctl",
    ];
    eprintln!("building: cargo {}", args.join(" "));
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("the directory of this program")?
        .to_path_buf())
}

/// `/proc/loadavg`'s first three figures.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
