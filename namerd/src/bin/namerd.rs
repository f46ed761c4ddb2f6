//! `namerd <config>`: runs namerd; `namerd --check <config>` validates it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// namerd: stores dtabs and binds names for routers.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Only validate the config (including building the store and namers), then exit.
    #[arg(long)]
    check: bool,
    /// How log lines are written to stderr: `text` (coloured only on a
    /// terminal) or `json` (one object a line).
    #[arg(long, env = namers::logging::FORMAT_ENV, default_value = "text",
          value_parser = namers::logging::LogFormat::parse)]
    log_format: namers::logging::LogFormat,
    /// The config file (YAML, or JSON when it starts with `{`).
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    namers::logging::init(args.log_format, "info");
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("namerd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = namerd::config::load(&args.config).map_err(anyhow::Error::msg)?;
    tracing::info!(config = %args.config.display(), "config loaded");
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        if args.check {
            namerd::server::build(&config)
                .map_err(|e| namers::config::error_in(&args.config, &e))?;
            println!("{}: ok", args.config.display());
            return Ok(());
        }
        let running = namerd::server::start(&config)
            .await
            .map_err(|e| namers::config::error_in(&args.config, &e))?;
        // SIGHUP would end the process by default; service managers send
        // it for `reload`, and namerd has nothing to reopen.
        ignore_hangups();
        tokio::select! {
            () = shutdown_signal() => {}
            () = running.shutdown_requested() => {}
        }
        tracing::info!("shutting down");
        running.stop().await;
        Ok(())
    })
}

/// Logs each SIGHUP and goes on.
fn ignore_hangups() {
    #[cfg(unix)]
    if let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    {
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: namerd has nothing to reopen; going on");
            }
        });
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
