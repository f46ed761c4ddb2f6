//! An `io.l5d.fs` directory and routers started from YAML text.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use ::router::config::Config;
use ::router::interpreter::RouterNaming;
use ::router::server::Running;
use ::router::stack::{RouterStack, ServerSettings};
use dtab::{Dtab, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use namers::Binding;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Backend;

/// A temporary `io.l5d.fs` root directory.
pub struct FsDir {
    dir: tempfile::TempDir,
}

impl FsDir {
    /// An empty directory.
    pub fn new() -> FsDir {
        FsDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Its path, for `rootDir`.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Replaces the service file `service` with `text` at once (write then
    /// rename), so the namer never reads half a file.
    pub fn write(&self, service: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{service}.tmp"));
        std::fs::write(&tmp, text).expect("write service file");
        std::fs::rename(&tmp, self.dir.path().join(service)).expect("rename service file");
    }

    /// Points `service` at `backends`, one line each.
    pub fn point(&self, service: &str, backends: &[&Backend]) {
        let lines: String = backends
            .iter()
            .map(|b| format!("127.0.0.1 {}\n", b.port()))
            .collect();
        self.write(service, &lines);
    }

    /// Points `service` at `backends` with endpoint weights.
    pub fn point_weighted(&self, service: &str, backends: &[(&Backend, f64)]) {
        let lines: String = backends
            .iter()
            .map(|(b, w)| format!("127.0.0.1 {} * {w}\n", b.port()))
            .collect();
        self.write(service, &lines);
    }
}

// ---------------------------------------------------------------------------
// The router

/// A config whose namers are one `io.l5d.fs` on `fs`, whose admin server is
/// on port 0, and whose `routers:` list is `routers` (YAML list items).
pub fn config(fs: &FsDir, routers: &str) -> String {
    format!(
        "admin:\n  port: 0\n  shutdownGraceMs: 5000\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n{routers}",
        fs.path().display()
    )
}

/// A running router.
pub struct RunningRouter {
    /// Every server's address, in config order.
    pub servers: Vec<SocketAddr>,
    /// The admin server's address.
    pub admin: SocketAddr,
    running: Option<Running>,
}

impl RunningRouter {
    /// The first server's address.
    pub fn addr(&self) -> SocketAddr {
        self.servers[0]
    }

    /// Stops it gracefully (see `Running::stop`).
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// Parses `yaml`, validates it and starts the routers it describes.
pub async fn start_router(yaml: &str) -> RunningRouter {
    let config: Config = namers::config::parse("test.yaml", yaml)
        .unwrap_or_else(|e| panic!("config does not parse: {e}\n{yaml}"));
    let specs = config
        .validate()
        .unwrap_or_else(|e| panic!("config is not valid: {e}\n{yaml}"));
    let running = ::router::server::start(&config, specs)
        .await
        .unwrap_or_else(|e| panic!("router does not start: {e}\n{yaml}"));
    RunningRouter {
        servers: running.servers.iter().map(|(_, addr)| *addr).collect(),
        admin: running.admin_addr,
        running: Some(running),
    }
}

/// Naming that hands out one scripted binding for every name, to reach the
/// states no real namer holds still in (a binding or an address that never
/// arrives).
pub struct ScriptedNaming {
    /// What every `bind` returns.
    pub binding: Binding,
    /// Notified on each `bind`.
    pub bound: Arc<Notify>,
}

impl RouterNaming for ScriptedNaming {
    fn bind(&self, _dtab: &Dtab, _path: &Path) -> Binding {
        self.bound.notify_one();
        self.binding.clone()
    }

    fn delegate<'a>(
        &'a self,
        _dtab: &'a Dtab,
        _path: &'a Path,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        async { Err("scripted naming does not delegate".to_string()) }.boxed()
    }
}

/// A router built from the first router of `yaml` but binding every name
/// with `naming`, served on 127.0.0.1:0.
pub struct ScriptedRouter {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ScriptedRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`ScriptedRouter`].
pub async fn start_scripted_router(yaml: &str, naming: Arc<dyn RouterNaming>) -> ScriptedRouter {
    let config: Config = namers::config::parse("test.yaml", yaml).expect("config parses");
    let spec = config
        .validate()
        .expect("config is valid")
        .into_iter()
        .next()
        .expect("one router");
    let identifiers =
        ::router::identify::build_identifiers(&[], &spec.dst_prefix, spec.protocol).expect("ids");
    let admin: SocketAddr = ([127, 0, 0, 1], 9).into();
    let router = Arc::new(RouterStack::new(spec, identifiers, naming, admin));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind router");
    let addr = listener.local_addr().expect("router address");
    let settings = Arc::new(ServerSettings {
        address: addr,
        clear_context: false,
        max_call_depth: ::router::server::DEFAULT_MAX_CALL_DEPTH,
        stats: router.server_stats(addr.ip(), addr.port()),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let router = router.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let router = router.clone();
                    let settings = settings.clone();
                    async move {
                        Ok::<_, Infallible>(
                            router.handle(&settings, request, &Default::default()).await,
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    ScriptedRouter { addr, task }
}
