//! `namerd <config>`: runs namerd; `namerd --check <config>` validates it.

use anyhow::Context as _;
use clap::Parser;
use namers::cli::{ServerArgs, shutdown_signal};

/// namerd: stores dtabs and binds names for routers.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> std::process::ExitCode {
    namers::cli::main("namerd", Args::parse().server, |args| {
        run(args).map_err(|e| format!("{e:#}"))
    })
}

fn run(args: ServerArgs) -> anyhow::Result<()> {
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
