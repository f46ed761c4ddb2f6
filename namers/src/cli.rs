//! What the `router` and `namerd` binaries share: their command line, how
//! they end on an error, and the signals that stop them.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::logging::{FORMAT_ENV, LogFormat};

/// `<binary> [--check] [--log-format text|json] <config>`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Only validate the config (building everything a start builds), then
    /// exit.
    #[arg(long)]
    pub check: bool,
    /// How log lines are written to stderr: `text` (coloured only on a
    /// terminal) or `json` (one object a line).
    #[arg(long, env = FORMAT_ENV, default_value = "text", value_parser = LogFormat::parse)]
    pub log_format: LogFormat,
    /// The config file (YAML, or JSON when it starts with `{`).
    pub config: PathBuf,
}

/// Sets up logging as `args` say, runs `run`, and turns its outcome into
/// the exit code: an error is printed as `<name>: <error>` and exits 1.
pub fn main(
    name: &str,
    args: ServerArgs,
    run: impl FnOnce(ServerArgs) -> Result<(), String>,
) -> ExitCode {
    crate::logging::init(args.log_format, "info");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGINT or SIGTERM: time to drain and stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
