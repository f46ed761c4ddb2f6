//! Upstream HTTP/2 connections for `h2` routers, one per endpoint.
//!
//! The pooled HTTP/1 client dials whatever authority the request URI names,
//! which for HTTP/2 would also replace the request's `:authority`. Here the
//! endpoint is chosen separately, so the backend sees the authority the
//! client sent. HTTP/2 multiplexes, so one connection per endpoint carries
//! all its requests.
//!
//! The connections are the router's own HTTP/2 client
//! ([`crate::http2::client`]). Every request ends in an answer or an error
//! that says whether the upstream processed it: `REFUSED_STREAM`, above a
//! `GOAWAY`'s last stream (RFC 9113 section 8.7), or still waiting for a
//! stream when the connection stopped taking them, in which case the
//! request comes back whole. (hyper's client, used before the `h2` crate's
//! and then the router's own, dropped a request still waiting for its
//! stream when a `GOAWAY` came, without saying whether it was written:
//! under rotating upstreams that lost about one request in 200,000.)
//! Requests beyond the upstream's `SETTINGS_MAX_CONCURRENT_STREAMS` wait in
//! the connection until a stream closes.
//!
//! A connection no request has been sent on for the idle timeout (60 s,
//! as for HTTP/1 connections) leaves the pool: the streams still open on
//! it finish, and then it closes.
//!
//! Requests that find no connection while one is being opened to their
//! endpoint wait for that one, and share its failure if it fails: a burst
//! of requests to a new endpoint opens one connection, not one each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::{HeaderMap, HeaderName, Request, Response, header};
use hyper::body::Body as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::Body;
use crate::endpoint::h1_pool::{SendError, Unsent};
use crate::endpoint::tls::Securer;
use crate::http2::Added;
use crate::http2::client::{self, Owner, SendRequest};
use crate::stats::{ConnectionCounts, OpenConnection};

/// How long a connection may go without a request before it leaves the
/// pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The window and frame sizes hyper's client used, which upstreams tuned
/// for it expect.
const CONFIG: client::Config = client::Config {
    stream_window: 2 * 1024 * 1024,
    connection_window: 5 * 1024 * 1024,
    max_header_list_size: 16 * 1024,
};

type Connections = Mutex<HashMap<SocketAddr, Pooled>>;

/// A connection being opened, awaited by every request that wants it.
type Connecting = Shared<BoxFuture<'static, Result<(SendRequest<Body>, u64), String>>>;

/// Open HTTP/2 connections by endpoint.
pub struct H2Pool {
    connections: Arc<Connections>,
    /// Connections being opened, by endpoint.
    connecting: Mutex<HashMap<SocketAddr, Connecting>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    next_id: AtomicU64,
    /// Opens TLS on new connections (a client with `tls`).
    securer: Option<Securer>,
}

struct Pooled {
    sender: SendRequest<Body>,
    /// Keeps the connection taking requests while it is in the pool.
    _owner: Owner<Body>,
    /// Tells this connection from a later one to the same endpoint.
    id: u64,
    last_used: Instant,
}

impl H2Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration) -> H2Pool {
        H2Pool::with_idle_timeout(connect_timeout, IDLE_TIMEOUT)
    }

    /// An empty pool whose connections leave it after `idle_timeout`
    /// without a request.
    pub fn with_idle_timeout(connect_timeout: Duration, idle_timeout: Duration) -> H2Pool {
        H2Pool {
            connections: Arc::default(),
            connecting: Mutex::default(),
            connect_timeout,
            idle_timeout,
            next_id: AtomicU64::new(0),
            securer: None,
        }
    }

    /// The pool opening TLS with `securer` on its new connections.
    pub(crate) fn with_tls(mut self, securer: Securer) -> H2Pool {
        self.securer = Some(securer);
        self
    }

    /// Sends `request` to `endpoint`, opening a connection if needed, with
    /// `added` fields written into its head.
    ///
    /// A request the upstream never processed comes back as
    /// [`SendError::Refused`] when its stream was refused
    /// (`REFUSED_STREAM`), and as [`SendError::Rotated`] when it was above
    /// the last stream a `GOAWAY` promised to handle (with the request
    /// itself when no stream was opened for it). A connection that said
    /// `GOAWAY` leaves the pool at once, so the next request opens a new
    /// one instead of finding the old one again while it drains.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<Body>,
        added: Added,
        connections: &Arc<ConnectionCounts>,
    ) -> Result<Response<Body>, Unsent<Request<Body>>> {
        let (sender, id) = match self.connection(endpoint, connections).await {
            Ok(pooled) => pooled,
            Err(why) => {
                return Err(Unsent {
                    error: SendError::Connect(why),
                    request: Some(request),
                });
            }
        };
        let (mut parts, body) = request.into_parts();
        strip_connection_headers(&mut parts.headers);
        if !body.is_end_stream()
            && let Some(length) = body.size_hint().exact()
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
        {
            parts.headers.insert(header::CONTENT_LENGTH, length.into());
        }
        match sender
            .send_with(Request::from_parts(parts, body), added)
            .await
        {
            Ok(response) => Ok(response.map(Body::inbound)),
            Err(client::SendError::Unprocessed {
                why,
                going_away: true,
                request,
            }) => {
                // A connection that said GOAWAY leaves the pool at once.
                leave(&Arc::downgrade(&self.connections), endpoint, id);
                Err(Unsent {
                    error: SendError::Rotated(why),
                    request: request.map(|r| *r),
                })
            }
            Err(client::SendError::Unprocessed { why, request, .. }) => Err(Unsent {
                error: SendError::Refused(why),
                request: request.map(|r| *r),
            }),
            Err(client::SendError::Failed(why)) => Err(SendError::Request(why).into()),
        }
    }

    /// The pooled connection to `endpoint` and its id, opened (and counted
    /// in `connections` while it lives) if there is none, or the one being
    /// opened.
    async fn connection(
        &self,
        endpoint: SocketAddr,
        connections: &Arc<ConnectionCounts>,
    ) -> Result<(SendRequest<Body>, u64), String> {
        if let Some(pooled) = self.pooled(endpoint) {
            return Ok(pooled);
        }
        let connecting = {
            let mut connecting = self
                .connecting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Looked for again under this lock: a connect may have ended
            // since.
            if let Some(pooled) = self.pooled(endpoint) {
                return Ok(pooled);
            }
            connecting
                .entry(endpoint)
                .or_insert_with(|| self.open(endpoint, connections.clone()).boxed().shared())
                .clone()
        };
        let opened = connecting.clone().await;
        // Whoever gets here first clears the entry, so that after a failure
        // the next request tries again; a newer connect is left alone.
        let mut waiting = self
            .connecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if waiting
            .get(&endpoint)
            .is_some_and(|c| c.ptr_eq(&connecting))
        {
            waiting.remove(&endpoint);
        }
        opened
    }

    /// The pooled connection to `endpoint`, marked used.
    fn pooled(&self, endpoint: SocketAddr) -> Option<(SendRequest<Body>, u64)> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&endpoint)
            .map(|pooled| {
                pooled.last_used = Instant::now();
                (pooled.sender.clone(), pooled.id)
            })
    }

    /// Opens a connection to `endpoint` and puts it in the pool.
    fn open(
        &self,
        endpoint: SocketAddr,
        connections: Arc<ConnectionCounts>,
    ) -> impl std::future::Future<Output = Result<(SendRequest<Body>, u64), String>> + Send + 'static
    {
        let pool = self.connections.clone();
        let (connect_timeout, idle_timeout) = (self.connect_timeout, self.idle_timeout);
        let securer = self.securer.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        async move {
            let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint))
                .await
                .map_err(|_| {
                    format!("connecting to {endpoint} timed out after {connect_timeout:?}")
                })?
                .map_err(|e| format!("tcp connect error: {e}"))?;
            let _ = stream.set_nodelay(true);
            let stream = match &securer {
                None => namers::tls::Stream::Plain(stream),
                Some(securer) => securer.secure(endpoint, stream, connect_timeout).await?,
            };
            let (sender, owner, connection) = client::handshake(stream, CONFIG);
            tokio::spawn(drive(
                connection,
                Arc::downgrade(&pool),
                endpoint,
                id,
                idle_timeout,
                connections.opened(),
            ));
            pool.lock().unwrap_or_else(PoisonError::into_inner).insert(
                endpoint,
                Pooled {
                    sender: sender.clone(),
                    _owner: owner,
                    id,
                    last_used: Instant::now(),
                },
            );
            Ok((sender, id))
        }
    }
}

/// Headers HTTP/2 forbids (RFC 9113 section 8.2.2); `h2` refuses a
/// request carrying one.
fn strip_connection_headers(headers: &mut HeaderMap) {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    const CONNECTION_SPECIFIC: [HeaderName; 4] = [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    // Most requests carry none of them (one from an HTTP/2 client never
    // does; gRPC's `te: trailers` may stay): one look at each field is
    // cheaper than a lookup of each name.
    let any = headers.iter().any(|(name, value)| {
        *name == header::CONNECTION
            || (*name == header::TE && value != "trailers")
            || CONNECTION_SPECIFIC.contains(name)
    });
    if !any {
        return;
    }
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(named) = connection.to_str()
    {
        for name in named.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(header::TE);
    }
}

/// Runs a connection, taking it out of the pool once it has been idle for
/// `idle`. Out of the pool, it ends when its open streams do.
async fn drive<T>(
    connection: client::Connection<T, Body>,
    pool: Weak<Connections>,
    endpoint: SocketAddr,
    id: u64,
    idle: Duration,
    _open: OpenConnection,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::pin!(connection);
    let check = tokio::time::sleep(idle);
    tokio::pin!(check);
    let mut pooled = true;
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(%endpoint, error = %e, "upstream HTTP/2 connection ended");
                }
                break;
            }
            () = &mut check, if pooled => match idle_until(&pool, endpoint, id, idle) {
                Some(until) => check.as_mut().reset(until),
                None => pooled = false,
            },
        }
    }
    if pooled {
        // Closed while in the pool: a later request need not find it.
        leave(&pool, endpoint, id);
    }
}

/// When the connection `id` to `endpoint` will have been idle for `idle`;
/// `None` once it has left the pool (now, if that time has come).
fn idle_until(
    pool: &Weak<Connections>,
    endpoint: SocketAddr,
    id: u64,
    idle: Duration,
) -> Option<Instant> {
    let pool = pool.upgrade()?;
    let mut connections = pool.lock().unwrap_or_else(PoisonError::into_inner);
    let until = connections
        .get(&endpoint)
        .filter(|pooled| pooled.id == id)?
        .last_used
        + idle;
    if Instant::now() < until {
        return Some(until);
    }
    tracing::debug!(%endpoint, ?idle, "closing an idle upstream HTTP/2 connection");
    connections.remove(&endpoint);
    None
}

fn leave(pool: &Weak<Connections>, endpoint: SocketAddr, id: u64) {
    if let Some(pool) = pool.upgrade() {
        let mut connections = pool.lock().unwrap_or_else(PoisonError::into_inner);
        if connections.get(&endpoint).is_some_and(|p| p.id == id) {
            connections.remove(&endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;

    use super::*;

    fn header_map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for &(name, value) in fields {
            headers.append(name, http::HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn connection_specific_headers_are_stripped_and_the_rest_kept() {
        let mut headers = header_map(&[
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("x-kept", "yes"),
        ]);
        strip_connection_headers(&mut headers);
        assert_eq!(headers, header_map(&[("x-kept", "yes")]));

        let mut headers = header_map(&[("te", "trailers"), ("x-kept", "yes")]);
        strip_connection_headers(&mut headers);
        assert_eq!(
            headers,
            header_map(&[("te", "trailers"), ("x-kept", "yes")])
        );

        // Each of them alone is found.
        for name in [
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "te",
        ] {
            let mut headers = header_map(&[("x-kept", "yes")]);
            headers.append(name, http::HeaderValue::from_static("x"));
            strip_connection_headers(&mut headers);
            assert_eq!(headers, header_map(&[("x-kept", "yes")]), "{name}");
        }
    }

    /// An h2 server on 127.0.0.1:0; connections accepted and still open.
    async fn h2_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (counted, still_open) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                still_open.fetch_add(1, Ordering::SeqCst);
                let still_open = still_open.clone();
                tokio::spawn(async move {
                    let service = service_fn(|_| async {
                        Ok::<_, Infallible>(Response::new(
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        ))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    still_open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, accepted, open)
    }

    async fn get(pool: &H2Pool, addr: SocketAddr) {
        let request = Request::get(format!("http://{addr}/"))
            .body(Body::empty())
            .unwrap();
        let counts = Arc::default();
        let response = pool
            .send(addr, request, Added::default(), &counts)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_the_timeout_leaves_the_pool_and_closes() {
        let (addr, accepted, open) = h2_server().await;
        let pool = H2Pool::with_idle_timeout(Duration::from_secs(3), Duration::from_secs(60));
        get(&pool, addr).await;
        tokio::time::sleep(Duration::from_secs(45)).await;
        // Used again within the idle time: the same connection.
        get(&pool, addr).await;
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(open.load(Ordering::SeqCst), 1, "not idle for 60 s yet");

        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..100 {
            if open.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(open.load(Ordering::SeqCst), 0, "closed once idle");
        get(&pool, addr).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
    }
}
