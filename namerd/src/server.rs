//! Starting and stopping a namerd from its config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use namers::config::{NamerContext, build_namers};
use namers::metrics::NamerMetrics;
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::telemetry::Source;
use namers::telemetry::telemeters::{Metrics, Telemeters};
use namers::tls::ServerTls;
use namers::{Interpreter, UnknownSystemNamer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::Namerd;
use crate::admin::{self, AdminState};
use crate::api::trace::ApiTracing;
use crate::api::{self, ApiState};
use crate::config::{InterfaceConfig, NamerdConfig};
use crate::iface::IfaceContext;
use crate::iface::mesh;
use crate::metrics::HttpStats;
use crate::store::counted::CountedStore;

/// How long in-flight requests get to finish on shutdown unless
/// `admin.shutdownGraceMs` says otherwise. Watch streams never finish on
/// their own, so they are cut after this.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running namerd.
pub struct Running {
    /// Where each `io.l5d.httpController` listens, in config order.
    pub api_addrs: Vec<SocketAddr>,
    /// Where each interface listens, with its kind, in config order.
    pub interface_addrs: Vec<(&'static str, SocketAddr)>,
    /// Where the admin server listens.
    pub admin_addr: SocketAddr,
    /// The naming service.
    pub namerd: Arc<Namerd>,
    /// Tells the servers to stop accepting.
    shutdown: Arc<Notify>,
    /// `POST /admin/shutdown` asked namerd to stop.
    shutdown_requested: Arc<Notify>,
    stopping: tokio::sync::watch::Sender<bool>,
    servers: JoinSet<std::io::Result<()>>,
    /// Tasks that run until namerd stops (the stats' interval).
    background: JoinSet<()>,
    /// How long requests in flight get when namerd stops.
    grace: Duration,
    /// Sends what spans are left when namerd stops.
    tracer: Option<Arc<namers::telemetry::trace::Tracer>>,
}

/// What a config builds before anything listens: namers, interpreter,
/// store, metrics and the API interfaces' settings.
pub struct Built {
    namerd: Arc<Namerd>,
    http_stats: Arc<HttpStats>,
    /// What the metrics tree lists, less the tracer's figures (the
    /// tracer starts tasks, so it is made when namerd starts).
    sources: Vec<Arc<dyn Source>>,
    histogram_interval: Duration,
    telemeters: Telemeters,
    /// Each interface, with its TLS when it has one.
    interfaces: Vec<(InterfaceConfig, Option<Arc<ServerTls>>)>,
    admin_tls: Option<Arc<ServerTls>>,
}

/// Builds everything the config describes, without opening a socket:
/// what `namerd --check` runs, so a config that passes it does not fail
/// at start for a reason the config alone shows. TLS certificates and
/// keys are read here too.
pub fn build(config: &NamerdConfig) -> Result<Built, String> {
    let inet = Arc::new(InetResolver::system().map_err(|e| format!("DNS: {e}"))?);
    let namers = build_namers(&config.namers, &NamerContext { inet: inet.clone() })?;
    let system = SystemNamers::with_linkerd_namers(inet);
    // namerd reports an unknown `/$/` namer as the system lookup's error.
    let interpreter = Interpreter::new(namers, system)
        .with_unknown_system_namer(UnknownSystemNamer::AsIs)
        .with_bind_limits(config.binding_limits.limits());
    let store = Arc::new(CountedStore::new(config.build_store()?));
    let telemeters = config.telemeters()?;
    let interfaces = config
        .interfaces()?
        .into_iter()
        .enumerate()
        .map(|(i, iface)| {
            let tls = iface
                .server_tls()
                .map_err(|e| format!("interfaces[{i}] ({}): tls: {e}", iface.kind()))?;
            Ok((iface, tls))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let admin_tls = config.admin.server_tls()?;
    let namer_metrics = NamerMetrics::new(interpreter.namers());
    let namerd =
        Namerd::with_inactive_ttl(store.clone(), interpreter, config.binding_cache.idle_ttl());
    let http_stats = Arc::new(HttpStats::default());
    let sources: Vec<Arc<dyn Source>> = vec![
        Arc::new(namer_metrics),
        http_stats.clone(),
        namerd.clone(),
        store,
    ];
    Ok(Built {
        namerd,
        http_stats,
        sources,
        histogram_interval: config.admin.histogram_snapshot_interval(),
        telemeters,
        interfaces,
        admin_tls,
    })
}

/// Builds everything the config describes and starts serving.
pub async fn start(config: &NamerdConfig) -> Result<Running, String> {
    let Built {
        namerd,
        http_stats,
        mut sources,
        histogram_interval,
        telemeters,
        interfaces,
        admin_tls,
    } = build(config)?;
    let tracer = (!telemeters.tracers.is_empty())
        .then(|| Arc::new(namers::telemetry::trace::Tracer::new(&telemeters.tracers)));
    if let Some(tracer) = &tracer {
        sources.push(tracer.clone());
    }
    if let Some(tls) = &admin_tls {
        sources.push(Arc::new(namers::tls::TlsFigures::new("admin", tls.clone())));
    }
    let mut seen_kinds: Vec<&str> = Vec::new();
    let mut thrift_stats = std::collections::VecDeque::new();
    for (iface, tls) in &interfaces {
        let kind = iface.kind();
        // One interface of a kind is the usual case; more get their index
        // among that kind.
        let nth = seen_kinds.iter().filter(|k| **k == kind).count();
        seen_kinds.push(kind);
        if let InterfaceConfig::Thrift(_) = iface {
            let stats = crate::iface::thrift::ThriftStats::new(nth);
            sources.push(stats.clone());
            thrift_stats.push_back(stats);
        }
        if let Some(tls) = tls {
            let scope = match nth {
                0 => format!("interface/{kind}"),
                n => format!("interface/{kind}/{n}"),
            };
            sources.push(Arc::new(namers::tls::TlsFigures::new(&scope, tls.clone())));
        }
    }
    // Every mesh interface counts into the one scope.
    let mesh_stats = Arc::new(mesh::MeshStats::default());
    if interfaces
        .iter()
        .any(|(iface, _)| matches!(iface, InterfaceConfig::Mesh(_)))
    {
        sources.push(mesh_stats.clone());
    }
    let metrics = Metrics::new(sources, histogram_interval);
    let shutdown = Arc::new(Notify::new());
    let shutdown_requested = Arc::new(Notify::new());
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut servers = JoinSet::new();

    // The admin dashboard's `/api/1` takes the first controller's token;
    // its requests are not counted as the interface's.
    let admin_write_token = interfaces.iter().find_map(|(iface, _)| match iface {
        InterfaceConfig::Http(controller) => Some(controller.write_token.as_deref().map(Arc::from)),
        _ => None,
    });
    let admin_api = ApiState {
        namerd: namerd.clone(),
        write_token: admin_write_token.flatten(),
        stats: Arc::new(crate::metrics::HttpStats::default()),
        stopping: stopping.clone(),
        local_dtab_limits: config.local_dtab_limits.limits(),
    };
    let mut api_addrs = Vec::new();
    let mut interface_addrs = Vec::new();
    for (iface, tls) in interfaces {
        let kind = iface.kind();
        let listener = TcpListener::bind(iface.addr()).await.map_err(|e| {
            format!(
                "interfaces ({kind}): cannot listen on {}: {e}",
                iface.addr()
            )
        })?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        interface_addrs.push((kind, address));
        if let Some(tls) = &tls {
            // New certificates are taken when their files change.
            tls.watch();
        }
        match iface {
            InterfaceConfig::Http(controller) => {
                api_addrs.push(address);
                let state = ApiState {
                    namerd: namerd.clone(),
                    write_token: controller.write_token.as_deref().map(Arc::from),
                    stats: http_stats.clone(),
                    stopping: stopping.clone(),
                    local_dtab_limits: config.local_dtab_limits.limits(),
                };
                let tracing = tracer.clone().map(|tracer| ApiTracing { tracer, address });
                let app = api::router(
                    state,
                    controller.max_body_bytes,
                    tracing,
                    api::Fallback::NotFound,
                );
                servers.spawn(serve(
                    listener,
                    app,
                    shutdown.clone(),
                    Some(http_stats.clone()),
                    tls,
                ));
            }
            InterfaceConfig::Mesh(_) => {
                let ctx = IfaceContext {
                    namerd: namerd.clone(),
                    stopping: stopping.clone(),
                    local_dtab_limits: config.local_dtab_limits.limits(),
                    tls,
                };
                servers.spawn(mesh::serve(listener, ctx, mesh_stats.clone()));
            }
            InterfaceConfig::Thrift(thrift) => {
                let ctx = IfaceContext {
                    namerd: namerd.clone(),
                    stopping: stopping.clone(),
                    local_dtab_limits: config.local_dtab_limits.limits(),
                    tls,
                };
                let stats = thrift_stats.pop_front().unwrap_or_default();
                servers.spawn(crate::iface::thrift::serve(listener, thrift, ctx, stats));
            }
        }
    }

    let admin_addr = config.admin.addr(crate::config::DEFAULT_ADMIN_PORT);
    let admin_listener = TcpListener::bind(admin_addr)
        .await
        .map_err(|e| format!("admin: cannot listen on {admin_addr}: {e}"))?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let mut background = JoinSet::new();
    background.spawn(metrics.clone().roll_every_interval());
    for pushing in metrics.start_pushing(&telemeters) {
        background.spawn(pushing);
    }
    let admin_app = admin::router(AdminState {
        namerd: namerd.clone(),
        metrics,
        telemeters,
        shutdown_requested: shutdown_requested.clone(),
        recent_requests: tracer.as_ref().and_then(|t| t.recent_requests().cloned()),
        api: admin_api,
    });
    if let Some(tls) = &admin_tls {
        tls.watch();
    }
    servers.spawn(serve(
        admin_listener,
        admin_app,
        shutdown.clone(),
        None,
        admin_tls,
    ));

    tracing::info!(?interface_addrs, %admin_addr, "namerd is serving");
    Ok(Running {
        api_addrs,
        interface_addrs,
        admin_addr,
        namerd,
        shutdown,
        shutdown_requested,
        stopping: stopping_tx,
        servers,
        background,
        grace: config.admin.shutdown_grace(SHUTDOWN_GRACE),
        tracer,
    })
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: Arc<Notify>,
    stats: Option<Arc<HttpStats>>,
    tls: Option<Arc<ServerTls>>,
) -> std::io::Result<()> {
    crate::conn::serve(
        listener,
        app,
        async move { shutdown.notified().await },
        stats,
        tls,
    )
    .await
}

impl Running {
    /// Completes when `POST /admin/shutdown` asks namerd to stop.
    pub async fn shutdown_requested(&self) {
        self.shutdown_requested.notified().await;
    }

    /// Stops accepting, ends open watch streams, lets requests finish for
    /// up to `admin.shutdownGraceMs` ([`SHUTDOWN_GRACE`] by default), then
    /// cuts what is left.
    pub async fn stop(mut self) {
        self.background.abort_all();
        self.shutdown.notify_waiters();
        self.stopping.send_replace(true);
        let drained = tokio::time::timeout(self.grace, async {
            while self.servers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!("cutting connections still open after the grace period");
            self.servers.abort_all();
        }
        if let Some(tracer) = &self.tracer
            && tokio::time::timeout(Duration::from_secs(5), tracer.shutdown())
                .await
                .is_err()
        {
            tracing::warn!("the tracing telemeters did not send their last spans within 5s");
        }
    }
}
