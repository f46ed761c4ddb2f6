//! `protocol: thrift` routers, as Linkerd 1.x had them: each request
//! message a client sends is named by the router's `dstPrefix` (with
//! `thriftMethodInDst`, `<dstPrefix>/<method>`; a multiplexed call
//! `Service:method` adds `/Service` first), bound through the router's
//! dtab, interpreter and binding cache as an HTTP request's name is, and
//! forwarded to an endpoint its client's balancer picks, over a kept
//! connection in the client's transport; the reply is written back in
//! the server's. Thrift without mux is one request at a time per
//! connection, so a client connection's requests are answered in order.
//!
//! A call the router cannot complete (no binding, no endpoints, an
//! endpoint that fails) is answered with a `TApplicationException` of
//! type `INTERNAL_ERROR` whose message says why, and the connection goes
//! on. Input that is not Thrift of the server's protocol and transport,
//! or a message over [`transport::MAX_MESSAGE`], closes the connection.

mod codec;
pub mod config;
mod pool;
pub mod stats;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dtab::{Label, Path};
use namerd_client::thrift::protocol::{MessageHeader, message_type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::client::balance::Outcome;
use crate::conn::accept::{Stopping, accept_loop};
use crate::conn::upstream::{self, Connection, Route};
use crate::errors::RouterError;
use crate::stack::RouterStack;
pub use config::{ThriftProtocol, ThriftServer, ThriftSpec};
use pool::{Pool, UpstreamConnection};
use stats::{Accepted, ThriftServerStats};
use transport::{Message, MessageStream, ReadError};

pub use transport::MAX_MESSAGE;

/// A running `thrift` router: its stages, settings and idle upstream
/// connections.
pub struct ThriftRouter {
    stack: Arc<RouterStack>,
    spec: ThriftSpec,
    pool: Pool,
}

impl ThriftRouter {
    /// Closes upstream connections idle for too long.
    pub fn expire_idle(&self) {
        self.pool.expire_idle();
    }
}

/// A `thrift` router's servers' figures, `rt/<router>/server/...`.
pub struct ThriftFigures {
    label: String,
    servers: Vec<Arc<ThriftServerStats>>,
}

impl namers::telemetry::Source for ThriftFigures {
    fn list(&self, root: &mut namers::telemetry::Scope<'_>) {
        let mut rt = root.scope("rt");
        let mut router = rt.scope(&self.label);
        let mut scope = router.scope("server");
        for server in &self.servers {
            server.list(&mut scope);
        }
    }
}

/// Listens on each server of `spec` for `router` and spawns their accept
/// loops into `tasks`; gives where they listen, their figures and the
/// router (for its idle connections).
pub(crate) async fn listen(
    router: &Arc<RouterStack>,
    spec: &ThriftSpec,
    at: &str,
    stop: &Arc<Notify>,
    tasks: &mut JoinSet<()>,
) -> Result<(Vec<SocketAddr>, ThriftFigures, Arc<ThriftRouter>), String> {
    let thrift = Arc::new(ThriftRouter {
        stack: router.clone(),
        spec: spec.clone(),
        pool: Pool::new(router.spec().connection_idle_time),
    });
    let mut addrs = Vec::new();
    let mut figures = ThriftFigures {
        label: router.label().to_string(),
        servers: Vec::new(),
    };
    for (i, server) in spec.servers.iter().enumerate() {
        let listener = TcpListener::bind(server.addr)
            .await
            .map_err(|e| format!("{at}.servers[{i}]: cannot listen on {}: {e}", server.addr))?;
        addrs.push(listener.local_addr().map_err(|e| e.to_string())?);
        let stats = Arc::new(ThriftServerStats::new(server.addr.ip(), server.addr.port()));
        figures.servers.push(stats.clone());
        let thrift = thrift.clone();
        let server = Arc::new(server.clone());
        let serve = move |stream, peer, stopping| {
            let accepted = stats.accepted();
            let (thrift, server, stats) = (thrift.clone(), server.clone(), stats.clone());
            async move {
                let connection = ClientConnection {
                    thrift: &thrift,
                    server: &server,
                    stats: &stats,
                    peer,
                    _accepted: accepted,
                };
                connection.serve(stream, stopping).await;
            }
        };
        // Registered now, so a stop that comes before the loop first runs
        // is not missed.
        let stopped = stop.clone().notified_owned();
        tasks.spawn(accept_loop(listener, stopped, None, |_| {}, serve));
    }
    Ok((addrs, figures, thrift))
}

/// One client connection of a server.
struct ClientConnection<'a> {
    thrift: &'a ThriftRouter,
    server: &'a ThriftServer,
    stats: &'a ThriftServerStats,
    peer: SocketAddr,
    _accepted: Accepted,
}

/// Why a client connection ended.
enum Ended {
    Closed,
    Idle,
    Life,
    Stopping,
    Unreadable(ReadError),
    NotACall(u8),
    WriteFailed(std::io::Error),
    GoneWaiting,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed => f.write_str("closed by the client"),
            Ended::Idle => f.write_str("idle for too long"),
            Ended::Life => f.write_str("too old"),
            Ended::Stopping => f.write_str("the router is stopping"),
            Ended::Unreadable(e) => write!(f, "unreadable: {e}"),
            Ended::NotACall(kind) => {
                write!(f, "the client sent {}, not a call", codec::kind_name(*kind))
            }
            Ended::WriteFailed(e) => write!(f, "writing an answer failed: {e}"),
            Ended::GoneWaiting => f.write_str("the client closed while waiting for an answer"),
        }
    }
}

impl ClientConnection<'_> {
    async fn serve(&self, stream: TcpStream, stopping: Stopping) {
        let ended = self.requests(stream, stopping).await;
        match &ended {
            Ended::Unreadable(ReadError::TooLarge(_)) => self.stats.too_large(),
            Ended::Unreadable(ReadError::Malformed(_)) | Ended::NotACall(_) => {
                self.stats.malformed();
            }
            _ => {}
        }
        tracing::debug!(
            router = %self.thrift.stack.label(),
            peer = %self.peer,
            %ended,
            "thrift connection ended"
        );
    }

    /// Answers the connection's requests in order until it ends.
    async fn requests(&self, stream: TcpStream, mut stopping: Stopping) -> Ended {
        let protocol = self.thrift.spec.protocol;
        let mut client = MessageStream::new(stream, self.server.framed, protocol);
        let life = self
            .server
            .life
            .map(|life| tokio::time::Instant::now() + life);
        loop {
            let waiting = !client.has_buffered();
            let next = tokio::select! {
                next = tokio::time::timeout(self.server.idle, client.next()) => next,
                () = stopping.wait(), if waiting => return Ended::Stopping,
                () = sleep_until(life) => return Ended::Life,
            };
            let message = match next {
                Err(_) => return Ended::Idle,
                Ok(Ok(None)) => return Ended::Closed,
                Ok(Ok(Some(message))) => message,
                Ok(Err(e)) => return Ended::Unreadable(e),
            };
            let header = &message.header;
            if header.kind != message_type::CALL && header.kind != message_type::ONEWAY {
                return Ended::NotACall(header.kind);
            }
            let started = Instant::now();
            self.stats.request(message.bytes.len());
            // A oneway message is forwarded even if the client closes
            // right after sending it; a call is abandoned when its client
            // is gone.
            let answer = if header.kind == message_type::ONEWAY {
                self.thrift.forward(&message, started).await
            } else {
                tokio::select! {
                    answer = self.thrift.forward(&message, started) => answer,
                    () = client.closed() => {
                        let gone = RouterError::Unavailable("the client closed its connection".into());
                        self.stats.answered(Err(&gone), started.elapsed());
                        return Ended::GoneWaiting;
                    }
                }
            };
            self.stats
                .answered(answer.as_ref().map(drop), started.elapsed());
            let reply = match answer {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(
                        router = %self.thrift.stack.label(),
                        peer = %self.peer,
                        method = %header.name,
                        error = %e,
                        "thrift request failed"
                    );
                    (header.kind == message_type::CALL)
                        .then(|| protocol.exception(&header.name, header.seq_id, &e.to_string()))
                }
            };
            if let Some(reply) = reply {
                match client.send(&reply).await {
                    Ok(n) => self.stats.sent(n),
                    Err(e) => return Ended::WriteFailed(e),
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl ThriftRouter {
    /// The name of a message: `dstPrefix`, then for a multiplexed call
    /// (`Service:method`) the service, then with `thriftMethodInDst` the
    /// method.
    fn name(&self, header: &MessageHeader) -> Result<Path, RouterError> {
        let full = header.name.as_str();
        let (service, method) = match full.split_once(':') {
            Some((service, method)) => (Some(service), method),
            None => (None, full),
        };
        let label = |text: &str| {
            Label::new(text.as_bytes()).ok_or_else(|| {
                RouterError::Unidentified(format!(
                    "the thrift method name {full:?} cannot be named: {text:?} is not a path segment"
                ))
            })
        };
        let mut labels = Vec::new();
        if let Some(service) = service {
            labels.push(label(service)?);
        }
        if self.spec.method_in_dst {
            labels.push(label(method)?);
        }
        Ok(self.stack.spec().dst_prefix.concat_labels(&labels))
    }

    /// Names, binds and forwards `message`; gives the reply (none for a
    /// oneway message).
    async fn forward(
        &self,
        message: &Message,
        started: Instant,
    ) -> Result<Option<Vec<u8>>, RouterError> {
        let name = self.name(&message.header)?;
        let route = upstream::route(&self.stack, &name, started).await?;
        let service = &route.service.stats.requests;
        let client = &route.client().stats.requests;
        service.request();
        client.request();
        let answer = self.exchange(&route, message).await;
        for figures in [service, client] {
            match &answer {
                Ok(_) => figures.success(),
                Err(e) => figures.failure(e.failure_kind()),
            }
            figures.latency(started.elapsed());
        }
        answer
    }

    /// Sends `message` to an endpoint of `route`'s client and reads its
    /// reply, on a kept connection if there is one.
    async fn exchange(
        &self,
        route: &Route,
        message: &Message,
    ) -> Result<Option<Vec<u8>>, RouterError> {
        let framed = self.spec.clients.framed(&route.bound.id);
        let timeout = self.stack.spec().connect_timeout;
        let upstream::Upstream {
            connection,
            mut picked,
        } = upstream::connect(&self.stack, route, timeout, |addr| {
            self.pool.take(addr, framed)
        })
        .await?;
        let mut connection = match connection {
            Connection::Reused(kept) => kept,
            Connection::Opened(stream, open) => UpstreamConnection::new(
                MessageStream::new(stream, framed, self.spec.protocol),
                route.client().stats.clone(),
                open,
            ),
        };
        let endpoint = picked.addr;
        let exchanged = send_and_read(&mut connection, message, endpoint, &route.target.name);
        let answer = match route.client().policy.attempt_timeout {
            Some(limit) => tokio::time::timeout(limit, exchanged)
                .await
                .unwrap_or_else(|_| {
                    Err(RouterError::Timeout(format!(
                        "{endpoint} did not answer {} within requestAttemptTimeoutMs ({limit:?})",
                        route.target.name.show()
                    )))
                }),
            None => exchanged.await,
        };
        match answer {
            Ok(reply) => {
                picked.record(Outcome::Success);
                if !connection.stream.has_buffered() {
                    self.pool.put(endpoint, framed, connection);
                }
                Ok(reply)
            }
            Err(e) => {
                picked.record(Outcome::Failure);
                Err(e)
            }
        }
    }
}

/// Writes `message` on `connection` and, for a call, reads the reply,
/// which must be a reply (or exception) to the same call.
async fn send_and_read(
    connection: &mut UpstreamConnection,
    message: &Message,
    endpoint: SocketAddr,
    name: &Path,
) -> Result<Option<Vec<u8>>, RouterError> {
    let failed = |what: String| {
        RouterError::Upstream(format!(
            "the thrift endpoint {endpoint} of {} failed: {what}",
            name.show()
        ))
    };
    let sent = connection
        .stream
        .send(&message.bytes)
        .await
        .map_err(|e| failed(format!("writing the call: {e}")))?;
    let client = connection.client();
    let figures = client.tcp.get_or_init(Default::default);
    figures.sent(sent);
    let call = &message.header;
    if call.kind == message_type::ONEWAY {
        return Ok(None);
    }
    let reply = match connection.stream.next().await {
        Ok(Some(reply)) => reply,
        Ok(None) => return Err(failed("it closed the connection before answering".into())),
        Err(e) => return Err(failed(format!("reading the answer: {e}"))),
    };
    figures.received(reply.bytes.len());
    let header = &reply.header;
    if header.kind != message_type::REPLY && header.kind != message_type::EXCEPTION {
        return Err(failed(format!(
            "it answered with {}",
            codec::kind_name(header.kind)
        )));
    }
    if header.seq_id != call.seq_id {
        return Err(failed(format!(
            "it answered call {} to call {}",
            header.seq_id, call.seq_id
        )));
    }
    Ok(Some(reply.bytes))
}
