//! Starting the routers and the admin server from a config, and stopping
//! them gracefully.

pub mod config;
pub mod context;
pub mod forwarded;
pub mod h1;
mod h2;
mod head_watch;
pub mod io;
pub mod limits;
pub mod session;
mod spare;
#[cfg(target_os = "linux")]
mod splice;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, HeaderValue};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use namers::system::inet::InetResolver;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::access_log::AccessLog;
use crate::admin::{self, AdminState};
use crate::config::{Config, RouterSpec};
use crate::errors::RouterError;
use crate::identify::build_identifiers;
use crate::interpreter;
use crate::metrics::Metrics;
use crate::stack::{Downstream, RouterStack, ServerSettings, error_response};
use h1::Served;
use head_watch::HeadWatch;
use limits::HeadLimits;
use session::{Activity, HeadObserver, Refusals, SessionLimits, Tracked, Watched};

/// Linkerd's default limit of `Via` hops.
pub const DEFAULT_MAX_CALL_DEPTH: usize = 10;

/// Streams an HTTP/2 client may open at once on one connection, by default
/// (hyper's default).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;

/// What one listening server enforces on its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a connection may stay open and wait for a head.
    pub session: SessionLimits,
    /// How large a request head may be.
    pub head: HeadLimits,
    /// Streams an HTTP/2 client may open at once on one connection
    /// (`maxConcurrentStreamsPerConnection`).
    pub max_concurrent_streams: u32,
}

/// A running set of routers.
pub struct Running {
    /// Each server's address, with its router's label, in config order.
    pub servers: Vec<(String, SocketAddr)>,
    /// The admin server's address.
    pub admin_addr: SocketAddr,
    shutdown: Arc<Notify>,
    stop_accepting: Arc<Notify>,
    servers_running: JoinSet<()>,
    background: JoinSet<()>,
    grace: Duration,
    /// Written to the end when the routers stop.
    access_logs: Vec<AccessLog>,
    /// Its queued spans are sent when the routers stop.
    tracer: Option<Arc<namers::telemetry::trace::Tracer>>,
}

/// Builds everything `config` describes (namers, identifiers,
/// interpreters) without listening, to validate it.
pub fn check(config: &Config, specs: &[RouterSpec]) -> Result<(), String> {
    let inet = Arc::new(InetResolver::system().map_err(|e| format!("DNS: {e}"))?);
    let default = interpreter::default_interpreter(&config.namers, &inet)?;
    for (spec, router_config) in specs.iter().zip(&config.routers) {
        let at = format!("routers[{}]", spec.index);
        // A tcp or thrift router's servers were checked with its config.
        let http_servers = if spec.tcp.is_some() || spec.thrift.is_some() {
            &[][..]
        } else {
            identifiers_of(router_config, spec).map_err(|e| format!("{at}.{e}"))?;
            &router_config.servers[..]
        };
        for (i, server) in http_servers.iter().enumerate() {
            server
                .tls(spec.protocol)
                .map_err(|e| format!("{at}.servers[{i}].{e}"))?;
            server
                .forwarded(spec.protocol, &spec.label)
                .map_err(|e| format!("{at}.servers[{i}].{e}"))?;
        }
        let default = default.clone().with_bind_limits(spec.bind_limits);
        interpreter::build(
            router_config.interpreter.as_ref(),
            &default,
            spec.idle_ttl,
            spec.paths_capacity,
        )
        .map_err(|e| format!("{at}.{e}"))?;
    }
    Ok(())
}

fn identifiers_of(
    router_config: &crate::config::RouterConfig,
    spec: &RouterSpec,
) -> Result<Vec<Box<dyn crate::identify::Identifier>>, String> {
    match &router_config.identifier {
        None => build_identifiers(&[], &spec.dst_prefix, spec.protocol),
        Some(crate::config::OneOrMany::One(one)) => {
            build_identifiers(std::slice::from_ref(one), &spec.dst_prefix, spec.protocol)
        }
        Some(crate::config::OneOrMany::Many(list)) => {
            build_identifiers(list, &spec.dst_prefix, spec.protocol)
        }
    }
}

/// Builds the routers of `config` and starts serving.
pub async fn start(config: &Config, specs: Vec<RouterSpec>) -> Result<Running, String> {
    let inet = Arc::new(InetResolver::system().map_err(|e| format!("DNS: {e}"))?);
    let default = interpreter::default_interpreter(&config.namers, &inet)?;
    let telemeters = crate::metrics::telemeters(&config.telemetry)?;
    // One tracer for every router: its queues and exporter tasks.
    let tracer = (!telemeters.tracers.is_empty())
        .then(|| Arc::new(namers::telemetry::trace::Tracer::new(&telemeters.tracers)));
    let shutdown = Arc::new(Notify::new());
    let stop_accepting = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let mut background = JoinSet::new();

    let admin_addr = config.admin.addr(crate::config::DEFAULT_ADMIN_PORT);
    let admin_tls = admin::tls(&config.admin)?;
    let admin_listener = TcpListener::bind(admin_addr)
        .await
        .map_err(|e| format!("admin: cannot listen on {admin_addr}: {e}"))?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;

    let mut routers = Vec::new();
    let mut servers = Vec::new();
    // The server figures of tcp and thrift routers.
    let mut tcp_figures: Vec<Arc<dyn namers::telemetry::Source>> = Vec::new();
    for (spec, router_config) in specs.into_iter().zip(&config.routers) {
        let at = format!("routers[{}]", spec.index);
        let identifiers = if spec.tcp.is_some() || spec.thrift.is_some() {
            Vec::new()
        } else {
            identifiers_of(router_config, &spec).map_err(|e| format!("{at}.{e}"))?
        };
        // The router's namers (shared by every router) with its own limits.
        let limited = default.clone().with_bind_limits(spec.bind_limits);
        let naming = interpreter::build(
            router_config.interpreter.as_ref(),
            &limited,
            spec.idle_ttl,
            spec.paths_capacity,
        )
        .map_err(|e| format!("{at}.{e}"))?;
        let label = spec.label.clone();
        let protocol = spec.protocol;
        if let Some(tcp_servers) = spec.tcp.clone() {
            let router = Arc::new(RouterStack::new(spec, identifiers, naming, admin_addr));
            routers.push(router.clone());
            let (addrs, figures) =
                crate::tcp::listen(&router, &tcp_servers, &at, &stop_accepting, &mut tasks).await?;
            servers.extend(addrs.into_iter().map(|addr| (label.clone(), addr)));
            tcp_figures.push(Arc::new(figures));
            background.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    router.expire_idle();
                }
            });
            continue;
        }
        if let Some(thrift_spec) = spec.thrift.clone() {
            let router = Arc::new(RouterStack::new(spec, identifiers, naming, admin_addr));
            routers.push(router.clone());
            let (addrs, figures, thrift) =
                crate::thrift::listen(&router, &thrift_spec, &at, &stop_accepting, &mut tasks)
                    .await?;
            servers.extend(addrs.into_iter().map(|addr| (label.clone(), addr)));
            tcp_figures.push(Arc::new(figures));
            background.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    router.expire_idle();
                    thrift.expire_idle();
                }
            });
            continue;
        }
        spec.clients.watch_tls();
        let access_log = spec
            .access_log
            .as_ref()
            .map(AccessLog::open)
            .transpose()
            .map_err(|e| format!("{at}.{e}"))?;
        let router = Arc::new(
            RouterStack::new(spec, identifiers, naming, admin_addr)
                .with_access_log(access_log)
                .with_tracer(tracer.clone()),
        );
        routers.push(router.clone());
        for (i, server) in router_config.servers.iter().enumerate() {
            let tls = server
                .tls(protocol)
                .map_err(|e| format!("{at}.servers[{i}].{e}"))?
                .map(Arc::new);
            let forwarded = server
                .forwarded(protocol, &label)
                .map_err(|e| format!("{at}.servers[{i}].{e}"))?;
            let addr = server.addr(protocol);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("{at}.servers[{i}]: cannot listen on {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            servers.push((label.clone(), bound));
            let settings = ServerSettings {
                address: bound,
                clear_context: server.clear_context,
                max_call_depth: server.max_call_depth.unwrap_or(DEFAULT_MAX_CALL_DEPTH),
                stats: router.server_stats(addr.ip(), addr.port()),
            };
            if let Some(tls) = &tls {
                tls.watch();
                settings.stats.set_tls(tls.clone());
            }
            let limit = server
                .max_concurrent_requests
                .map(|n| Arc::new(Semaphore::new(n)));
            let limits = ServerLimits {
                session: server.session(),
                head: router_config.head_limits(),
                max_concurrent_streams: server.max_concurrent_streams(),
            };
            // Registered now, so a stop that comes before the loop first
            // runs is not missed (`notify_waiters` keeps no permit).
            tasks.spawn(accept_loop(
                listener,
                router.clone(),
                Listening {
                    settings,
                    limit,
                    limits,
                    tls,
                    forwarded,
                },
                stop_accepting.clone().notified_owned(),
            ));
        }
        let expiring = router.clone();
        background.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                expiring.expire_idle();
            }
        });
    }

    let access_logs: Vec<AccessLog> = routers
        .iter()
        .filter_map(|r| r.access_log().cloned())
        .collect();
    let mut sources: Vec<Arc<dyn namers::telemetry::Source>> = routers
        .iter()
        .map(|r| r.clone() as Arc<dyn namers::telemetry::Source>)
        .collect();
    sources.extend(tcp_figures);
    sources.push(Arc::new(namers::metrics::NamerMetrics::new(
        default.namers(),
    )));
    if let Some(tracer) = &tracer {
        sources.push(tracer.clone());
    }
    if let Some(tls) = &admin_tls {
        sources.push(Arc::new(namers::tls::TlsFigures::new("admin", tls.clone())));
    }
    let metrics = Metrics::new(sources, config.admin.histogram_snapshot_interval());
    background.spawn(metrics.clone().roll_every_interval());
    for pushing in metrics.start_pushing(&telemeters) {
        background.spawn(pushing);
    }
    let admin_app = admin::routes(AdminState {
        routers,
        metrics,
        telemeters,
        shutdown: shutdown.clone(),
        recent_requests: tracer.as_ref().and_then(|t| t.recent_requests().cloned()),
        config: config.shown.clone(),
    });
    let stop = stop_accepting.clone().notified_owned();
    tasks.spawn(admin::serve(admin_listener, admin_app, stop, admin_tls));
    tracing::info!(?servers, %admin_addr, "routers are serving");
    Ok(Running {
        servers,
        admin_addr,
        shutdown,
        stop_accepting,
        servers_running: tasks,
        background,
        grace: config
            .admin
            .shutdown_grace(crate::config::DEFAULT_SHUTDOWN_GRACE),
        access_logs,
        tracer,
    })
}

/// How long a client has to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listening server applies to its connections.
struct Listening {
    settings: ServerSettings,
    limit: Option<Arc<Semaphore>>,
    limits: ServerLimits,
    tls: Option<Arc<namers::tls::ServerTls>>,
    /// `addForwardedHeader`, when the server has it.
    forwarded: Option<forwarded::AddForwarded>,
}

/// Accepts connections until told to stop, then lets open connections
/// finish their requests.
async fn accept_loop(
    listener: TcpListener,
    router: Arc<RouterStack>,
    listening: Listening,
    stop: OwnedNotified,
) {
    let Listening {
        settings,
        limit,
        limits,
        tls,
        forwarded,
    } = listening;
    tokio::pin!(stop);
    let settings = Arc::new(settings);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The session's timers count the head time (see `session`).
        .header_read_timeout(None)
        // hyper refuses a head that fills its buffer with 431.
        .max_buf_size(limits.head.for_hyper());
    builder
        .http2()
        .max_concurrent_streams(limits.max_concurrent_streams);
    let hyper = Arc::new(HyperServer {
        router: router.clone(),
        settings: settings.clone(),
        limit: limit.clone(),
        limits,
        builder,
    });
    // Every connection holds a receiver of `stopping`; the loop waits for
    // all of them to be dropped.
    let (stopping, stopping_rx) = watch::channel(false);
    let served = Arc::new(Served {
        router: router.clone(),
        settings,
        limit,
        session: limits.session,
        head: limits.head,
    });
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let open = served.settings.stats.connection();
        let hop = forwarded
            .as_ref()
            .map(|f| f.hop(served.settings.address, &stream, peer));
        if let Some(tls) = &tls {
            let acceptor = tls.acceptor();
            let hyper = hyper.clone();
            let served = served.clone();
            let stopping = stopping_rx.clone();
            let h1_stopping = stopping_rx.clone();
            let http1 = router.is_http1();
            tokio::spawn(async move {
                let accepted = tokio::time::Instant::now();
                let stats = &served.settings.stats;
                let handshake =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        stats.tls_handshake_failed();
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        stats.tls_handshake_failed();
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let downstream = Downstream {
                    remote: Some(peer),
                    identity: stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(namers::tls::PeerIdentity::of)
                        .map(Arc::new),
                    forwarded: hop,
                    timer: Default::default(),
                };
                if http1 {
                    // The router's own HTTP/1 server, as for plain
                    // connections; hyper takes what it does not serve.
                    let handed = downstream.clone();
                    let fallback = move |prefixed: h1::Prefixed<_>| async move {
                        let accepted = prefixed.accepted();
                        hyper.serve(prefixed, accepted, stopping, handed).await;
                    };
                    let many = open.open_now() > h1::MANY_CONNECTIONS;
                    let peer = h1::Peer {
                        downstream,
                        _open: open,
                    };
                    // Boxed, as hyper's below: this task would otherwise be
                    // as large as the largest of the three, handshake or not.
                    h1_connection(many, stream, peer, served, h1_stopping, fallback).await;
                } else {
                    Box::pin(h2::serve(&hyper, stream, accepted, stopping, downstream)).await;
                    drop(open);
                }
            });
            continue;
        }
        if router.is_http1() {
            let hyper = hyper.clone();
            let stopping = stopping_rx.clone();
            let fallback_hop = hop.clone();
            let fallback = move |prefixed: h1::Prefixed<tokio::net::TcpStream>| async move {
                let accepted = prefixed.accepted();
                hyper
                    .serve(
                        prefixed,
                        accepted,
                        stopping,
                        Downstream::plain(peer).with_forwarded(fallback_hop),
                    )
                    .await;
            };
            let many = open.open_now() > h1::MANY_CONNECTIONS;
            let peer = h1::Peer {
                downstream: Downstream::plain(peer).with_forwarded(hop),
                _open: open,
            };
            let (served, stopping) = (served.clone(), stopping_rx.clone());
            tokio::spawn(h1_connection(
                many, stream, peer, served, stopping, fallback,
            ));
            continue;
        }
        let hyper = hyper.clone();
        let stopping = stopping_rx.clone();
        tokio::spawn(async move {
            h2::serve(
                &hyper,
                stream,
                tokio::time::Instant::now(),
                stopping,
                Downstream::plain(peer).with_forwarded(hop),
            )
            .await;
            drop(open);
        });
    }
    // Close the socket now, so new connections are refused rather than
    // left in the backlog while open ones drain.
    drop(listener);
    drop(stopping_rx);
    let _ = stopping.send(true);
    stopping.closed().await;
}

/// A connection served by the router's own HTTP/1 server, keeping each
/// request's state in the connection's future or, with `many` connections
/// open, on the heap (see [`h1::MANY_CONNECTIONS`]).
///
/// Boxed: the two kinds differ in size, and tokio moves a task's future
/// several times as it spawns and ends it (some 40 KB of copies per
/// connection for the larger kind); a box is moved once, into the heap.
fn h1_connection<S, F, Fut>(
    many: bool,
    stream: S,
    peer: h1::Peer,
    served: Arc<Served>,
    stopping: watch::Receiver<bool>,
    fallback: F,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
where
    S: io::ServerIo,
    F: FnOnce(h1::Prefixed<S>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if many {
        Box::pin(h1::serve::<h1::OnHeap, _, _, _>(
            stream, peer, served, stopping, fallback,
        ))
    } else {
        Box::pin(h1::serve::<h1::InTask, _, _, _>(
            stream, peer, served, stopping, fallback,
        ))
    }
}

/// A server's connections served by hyper: `h2` routers' and those an
/// `http` router's own server hands over.
struct HyperServer {
    router: Arc<RouterStack>,
    settings: Arc<ServerSettings>,
    limit: Option<Arc<Semaphore>>,
    limits: ServerLimits,
    builder: auto::Builder<TokioExecutor>,
}

impl HyperServer {
    /// Serves one connection, accepted at `accepted`, until it ends.
    async fn serve<I>(
        &self,
        io: I,
        accepted: tokio::time::Instant,
        mut stopping: watch::Receiver<bool>,
        downstream: Downstream,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::with_max_requests(accepted, self.limits.session.max_requests);
        let heads = HeadWatch::new(self.limits.head, self.limits.head.for_hyper());
        let refusals = Refusals::default();
        let io = Watched::observed(
            io,
            activity.clone(),
            HeadObserver::new(heads, refusals.clone()),
        );
        let service = hyper_service(
            self.router.clone(),
            self.settings.clone(),
            self.limit.clone(),
            (activity.clone(), refusals),
            Arc::new(downstream),
        );
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        let stop = async move {
            let _ = stopping.changed().await;
        };
        session::drive(
            connection,
            |connection| connection.graceful_shutdown(),
            &activity,
            &self.limits.session,
            stop,
        )
        .await;
    }
}

/// hyper's service for a connection: the router behind the server's limit
/// of concurrent requests. Its requests share `downstream` (and with it
/// one attempt timer). A request counts against the limit, and keeps
/// its connection busy, until its response body ends. A head the
/// connection's [`HeadWatch`] refused is answered here and the connection
/// closed.
fn hyper_service(
    router: Arc<RouterStack>,
    settings: Arc<ServerSettings>,
    limit: Option<Arc<Semaphore>>,
    (activity, refusals): (Arc<Activity>, Refusals),
    downstream: Arc<Downstream>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<Tracked<crate::body::Body>>,
    Error = std::convert::Infallible,
    Future = impl Future<
        Output = Result<http::Response<Tracked<crate::body::Body>>, std::convert::Infallible>,
    > + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |request| {
        let router = router.clone();
        let settings = settings.clone();
        let downstream = downstream.clone();
        let (ordinal, mut in_flight) = activity.start();
        let refusal = refusals.of(ordinal);
        let permit = match (&refusal, &limit) {
            (None, Some(limit)) => Some(limit.clone().try_acquire_owned()),
            _ => None,
        };
        // Boxed: hyper's HTTP/2 server spawns a task per stream holding
        // this future, moving it several times on the way; a box of the
        // request's few kilobytes of routing state moves once.
        Box::pin(async move {
            let started = std::time::Instant::now();
            let response = if let Some(refusal) = refusal {
                let error = refusal.error();
                tracing::debug!(router = %router.label(), error = %error, "request head refused");
                let mut response = error_response(&error);
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                settings
                    .stats
                    .record(response.status().as_u16(), started.elapsed());
                response
            } else if let Some(Err(_)) = permit {
                over_the_limit(&settings, started)
            } else {
                if let Some(Ok(permit)) = permit {
                    in_flight.hold(permit);
                }
                router.handle(&settings, request, &downstream).await
            };
            Ok(response.map(|body| Tracked::new(body, in_flight)))
        })
    })
}

/// The answer to a request over the server's limit of concurrent
/// requests, counted in its stats.
fn over_the_limit(
    settings: &ServerSettings,
    started: std::time::Instant,
) -> http::Response<crate::body::Body> {
    let e = RouterError::Unavailable("too many concurrent requests".into());
    let response = error_response(&e);
    settings
        .stats
        .record(response.status().as_u16(), started.elapsed());
    response
}

impl Running {
    /// Completes when `POST /admin/shutdown` asks the process to stop.
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// Stops accepting, waits up to the grace period for in-flight requests,
    /// then stops everything.
    pub async fn stop(mut self) {
        self.stop_accepting.notify_waiters();
        let grace = self.grace;
        let drained = tokio::time::timeout(grace, async {
            while self.servers_running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "requests still in flight after the grace period; stopping anyway"
            );
        }
        self.servers_running.abort_all();
        self.background.abort_all();
        // The lines of the last requests, before the process ends.
        for log in &self.access_logs {
            if tokio::time::timeout(Duration::from_secs(5), log.flush())
                .await
                .is_err()
            {
                tracing::warn!("an access log did not finish writing within 5 s");
            }
        }
        if let Some(tracer) = &self.tracer
            && tokio::time::timeout(Duration::from_secs(5), tracer.shutdown())
                .await
                .is_err()
        {
            tracing::warn!("the spans of the last requests were not sent within 5 s");
        }
    }
}
