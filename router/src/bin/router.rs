//! `router <config>`: runs the routers; `router --check <config>` validates.

use anyhow::Context as _;
use clap::Parser;
use namers::cli::{ServerArgs, shutdown_signal};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Switchboard router.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> std::process::ExitCode {
    namers::cli::main("router", Args::parse().server, |args| {
        run(args).map_err(|e| format!("{e:#}"))
    })
}

fn run(args: ServerArgs) -> anyhow::Result<()> {
    let (config, specs) = router::config::load(&args.config).map_err(anyhow::Error::msg)?;
    let routers: Vec<&str> = specs.iter().map(|s| s.label.as_str()).collect();
    tracing::info!(config = %args.config.display(), ?routers, "config loaded");
    let runtime = runtime().context("starting the runtime")?;
    runtime.block_on(async {
        if args.check {
            router::server::check(&config, &specs)
                .and_then(|()| router::admin::tls(&config.admin).map(drop))
                .map_err(|e| namers::config::error_in(&args.config, &e))?;
            println!("{}: ok", args.config.display());
            return Ok(());
        }
        // Before anything listens: SIGHUP's default action ends the process.
        let admissions = specs
            .iter()
            .map(|spec| (spec.label.clone(), spec.admission.clone()))
            .collect();
        on_sighup(args.config.clone(), admissions);
        let running = router::server::start(&config, specs)
            .await
            .map_err(|e| namers::config::error_in(&args.config, &e))?;
        tokio::select! {
            () = shutdown_signal() => {}
            () = running.shutdown_requested() => {}
        }
        tracing::info!("shutting down");
        running.stop().await;
        Ok(())
    })
}

/// One thread per CPU the process may use. On a single CPU (e.g. pinned
/// with `taskset`, or a one-CPU container) everything runs on the main
/// thread: no hand-offs between a worker and the I/O driver.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus)
            .enable_all()
            .build()
    }
}

/// The routers' access control and rate limits, by router label.
type Admissions = Vec<(String, std::sync::Arc<router::policy::admission::Admission>)>;

/// On each SIGHUP, reopens (or, under the `sighup` roll policy, rolls)
/// every access log, what logrotate's `postrotate kill -HUP` expects; and
/// reads the routers' `accessControl` and `rateLimits` again from `config`.
fn on_sighup(config: std::path::PathBuf, admissions: Admissions) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    let logs = router::access_log::reopen_all();
                    tracing::info!(logs, "reopening access logs");
                    match router::config::reload_admission(&config, &admissions) {
                        Ok(routers) => {
                            tracing::info!(routers, "access control and rate limits reloaded")
                        }
                        Err(error) => tracing::error!(
                            %error,
                            "access control and rate limits not reloaded; the running ones stay"
                        ),
                    }
                }
            });
        }
        Err(error) => {
            tracing::warn!(%error, "cannot handle SIGHUP; access logs cannot be reopened")
        }
    }
}
