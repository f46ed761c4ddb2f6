//! Upstream HTTP/1.1 connections for `http` routers, kept open per endpoint
//! and reused.
//!
//! The balancer has already chosen the endpoint, so the pool is only a
//! stack of idle connections per address: a request takes the most recently
//! used one that is still open, or dials a new one. A connection comes back
//! when its response body has been read to the end ([`Reusable::release`]);
//! one whose body was abandoned is closed, as HTTP/1 cannot skip the rest.
//!
//! Two kinds of connection are kept: hyper's, for streamed bodies and
//! upgrades, and plain sockets for requests with no body or one already
//! whole ([`crate::endpoint::h1_direct`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::body::Body;

/// Looked up twice per request: foldhash costs a fraction of SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use crate::endpoint::h1_direct::{self, Conn, DirectBody, Release};
use crate::endpoint::tls::Securer;
use crate::stats::ConnectionCounts;

/// How many idle connections a direct request tries before a new one
/// when they turn out to be closed.
const STALE_RETRIES: usize = 3;

/// How long a direct connection may sit idle before it is checked for a
/// close or unsolicited bytes on checkout.
const PROBE_IDLE_AFTER: Duration = Duration::from_millis(500);

/// Idle connections by endpoint.
pub struct H1Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    idle_direct: Mutex<HashMap<SocketAddr, Vec<IdleConn>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_endpoint: usize,
    /// `hostConnectionPool`'s limits, when set.
    limits: Option<PoolLimits>,
    /// Busy connections by endpoint, under `limits`.
    busy: Mutex<HashMap<SocketAddr, Arc<Busy>>>,
    /// Opens TLS on new connections (a client with `tls`).
    securer: Option<Securer>,
}

/// `hostConnectionPool`: how many connections each endpoint may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept open past the idle time.
    pub min_size: usize,
    /// Connections open at once; more requests wait for one to be free.
    pub max_size: usize,
    /// Requests that may wait for a connection; more are refused.
    pub max_waiters: usize,
}

/// A request waiting for a connection; dropping it counts it out.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// One endpoint's busy connections.
struct Busy {
    permits: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// A connection whose response is being read; [`Reusable::release`] puts it
/// back in the pool.
pub struct Reusable {
    sender: SendRequest<Body>,
    endpoint: SocketAddr,
    pool: Arc<H1Pool>,
    /// Held while the connection is busy (see [`PoolLimits`]).
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Why a request could not be sent upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened.
    Connect(String),
    /// The connection failed while the request was sent or the response
    /// head read.
    Request(String),
    /// Every connection `hostConnectionPool` allows is busy and too many
    /// requests wait for one.
    Saturated(String),
    /// The upstream refused the (h2) stream without processing it.
    Refused(String),
    /// The (h2) connection was closing: the request was above a `GOAWAY`'s
    /// last stream, or still queued when the connection closed.
    Rotated(String),
}

/// A failed send, and the request when it was never sent (so that it can
/// go to another endpoint).
pub struct Unsent<R> {
    /// Why.
    pub error: SendError,
    /// The request, if no byte of it left.
    pub request: Option<R>,
}

impl<R> std::fmt::Debug for Unsent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsent")
            .field("error", &self.error)
            .field("request", &self.request.is_some())
            .finish()
    }
}

impl<R> From<SendError> for Unsent<R> {
    fn from(error: SendError) -> Unsent<R> {
        Unsent {
            error,
            request: None,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(why)
            | SendError::Request(why)
            | SendError::Saturated(why)
            | SendError::Refused(why)
            | SendError::Rotated(why) => f.write_str(why),
        }
    }
}

impl H1Pool {
    /// An empty pool.
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle_per_endpoint: usize,
    ) -> H1Pool {
        H1Pool {
            idle: Mutex::default(),
            idle_direct: Mutex::default(),
            connect_timeout,
            idle_timeout,
            max_idle_per_endpoint,
            limits: None,
            busy: Mutex::default(),
            securer: None,
        }
    }

    /// The pool opening TLS with `securer` on its new connections. (Only
    /// requests through hyper's client use such a pool: the direct path
    /// reads plain sockets.)
    pub(crate) fn with_tls(mut self, securer: Securer) -> H1Pool {
        self.securer = Some(securer);
        self
    }

    /// The pool with `hostConnectionPool` limits.
    pub fn with_limits(mut self, limits: Option<PoolLimits>) -> H1Pool {
        self.limits = limits;
        self
    }

    /// [`H1Pool::admit`] when there are limits: without them the request
    /// path does not pay for another future.
    async fn admit_if_limited(
        &self,
        endpoint: SocketAddr,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, SendError> {
        if self.limits.is_none() {
            return Ok(None);
        }
        self.admit(endpoint).await
    }

    /// A place for one more busy connection to `endpoint`, waiting for one
    /// to be free when `maxSize` are busy; `None` without limits.
    async fn admit(
        &self,
        endpoint: SocketAddr,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, SendError> {
        use std::sync::atomic::Ordering;
        let Some(limits) = self.limits else {
            return Ok(None);
        };
        let busy = self
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(endpoint)
            .or_insert_with(|| {
                Arc::new(Busy {
                    permits: Arc::new(tokio::sync::Semaphore::new(limits.max_size)),
                    waiting: Default::default(),
                })
            })
            .clone();
        if let Ok(permit) = busy.permits.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        if busy.waiting.fetch_add(1, Ordering::AcqRel) >= limits.max_waiters {
            busy.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SendError::Saturated(format!(
                "all {} connections (hostConnectionPool.maxSize) are busy and {} requests wait (hostConnectionPool.maxWaiters)",
                limits.max_size, limits.max_waiters
            )));
        }
        // Counted down however the wait ends, a timeout or a client gone
        // included.
        let _waiting = Waiting(&busy.waiting);
        // The semaphore is never closed.
        Ok(busy.permits.clone().acquire_owned().await.ok())
    }

    /// Sends `request` to `endpoint` on an idle connection or a new one.
    /// The request's URI must be in origin form (`/path?query`).
    /// A new connection is counted in `connections` while it lives.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<Body>,
        connections: &Arc<ConnectionCounts>,
    ) -> Result<(Response<Incoming>, Reusable), Unsent<Request<Body>>> {
        let permit = match self.admit_if_limited(endpoint).await {
            Ok(permit) => permit,
            Err(error) => {
                return Err(Unsent {
                    error,
                    request: Some(request),
                });
            }
        };
        // An idle connection may have been closed by the server since it
        // was checked; the request then comes back unsent and the next one
        // (or a new connection) is tried.
        while let Some(mut sender) = self.checkout(endpoint) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.reusable(sender, endpoint, permit))),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => {
                        return Err(SendError::Request(error_chain(failed.error())).into());
                    }
                },
            }
        }
        let mut sender = match self.connect(endpoint, connections).await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(Unsent {
                    error,
                    request: Some(request),
                });
            }
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Request(error_chain(&e)))?;
        Ok((response, self.reusable(sender, endpoint, permit)))
    }

    /// Sends a request whose head is `head` (see
    /// [`h1_direct::encode_head`]) and whose body, if any, is `body`, and
    /// reads the response head, in the calling task. When an idle
    /// connection turns out to have been closed by the server, the request
    /// goes on the next one (up to [`STALE_RETRIES`], then on a new
    /// connection) if the server cannot have seen it whole, or if its
    /// method may be repeated (RFC 9110 section 9.2.2). A request whose
    /// method may not be repeated therefore only takes an idle connection
    /// after checking that the server has not closed it.
    pub async fn send_direct(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        head: &[u8],
        body: &[u8],
        method: &http::Method,
        connections: &Arc<ConnectionCounts>,
    ) -> Result<(h1_direct::Answer, DirectBody), SendError> {
        let always_probe = !h1_direct::is_idempotent(method);
        // A few tries on idle connections, then a new one: enough to get
        // past connections a restarted backend left dead, without sending
        // one request many times to a backend that drops it each time.
        for _ in 0..STALE_RETRIES {
            // (A stale connection's place is given up and taken again.)
            let permit = self.admit_if_limited(endpoint).await?;
            let Some(conn) = self.checkout_direct(endpoint, always_probe) else {
                break;
            };
            let release = self.release(endpoint, permit);
            match h1_direct::exchange(conn, head, body, method, release).await {
                Ok(answer) => return Ok(answer),
                Err(e) if e.may_resend(method) => continue,
                Err(e) => return Err(SendError::Request(e.message)),
            }
        }
        let permit = self.admit_if_limited(endpoint).await?;
        let stream = self.dial(endpoint).await?;
        h1_direct::exchange(
            Conn::new(stream).counted(connections.opened()),
            head,
            body,
            method,
            self.release(endpoint, permit),
        )
        .await
        .map_err(|e| SendError::Request(e.message))
    }

    fn release(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Release {
        Release {
            pool: self.clone(),
            endpoint,
            permit,
        }
    }

    /// The most recently used idle connection to `endpoint`. One that sat
    /// idle for a while, or any when `always_probe`, is first checked for
    /// an end of stream or for bytes nobody asked for (some servers answer
    /// `408` before closing an idle connection): those are dropped. Busy
    /// connections otherwise skip the check, which costs a system call.
    fn checkout_direct(&self, endpoint: SocketAddr, always_probe: bool) -> Option<Conn> {
        let mut idle = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stack = idle.get_mut(&endpoint)?;
        while let Some(entry) = stack.pop() {
            let fresh = !always_probe && entry.since.elapsed() < PROBE_IDLE_AFTER;
            if fresh || entry.conn.looks_open() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Takes back a connection whose response was read to the end.
    pub(crate) fn put_direct(&self, endpoint: SocketAddr, conn: Conn) {
        let mut idle = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stack = idle.entry(endpoint).or_default();
        if stack.len() < self.max_idle_per_endpoint {
            stack.push(IdleConn {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn reusable(
        self: &Arc<Self>,
        sender: SendRequest<Body>,
        endpoint: SocketAddr,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Reusable {
        Reusable {
            sender,
            endpoint,
            pool: self.clone(),
            _permit: permit,
        }
    }

    /// The most recently used idle connection to `endpoint` that can take a
    /// request now; closed ones found on the way are dropped. (The idle
    /// timeout is enforced by [`H1Pool::expire_idle`], not here: reading the
    /// clock per request costs more than keeping a live connection a little
    /// longer.)
    fn checkout(&self, endpoint: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = idle.get_mut(&endpoint)?;
        while let Some(entry) = stack.pop() {
            if entry.sender.is_ready() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, endpoint: SocketAddr, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = idle.entry(endpoint).or_default();
        if stack.len() < self.max_idle_per_endpoint {
            stack.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn dial(&self, endpoint: SocketAddr) -> Result<tokio::net::TcpStream, SendError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(endpoint),
        )
        .await
        .map_err(|_| {
            SendError::Connect(format!(
                "connecting timed out after {:?}",
                self.connect_timeout
            ))
        })?
        .map_err(|e| SendError::Connect(format!("tcp connect error: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(
        &self,
        endpoint: SocketAddr,
        connections: &Arc<ConnectionCounts>,
    ) -> Result<SendRequest<Body>, SendError> {
        let tcp = self.dial(endpoint).await?;
        let stream = match &self.securer {
            None => namers::tls::Stream::Plain(tcp),
            Some(securer) => securer
                .secure(endpoint, tcp, self.connect_timeout)
                .await
                .map_err(SendError::Connect)?,
        };
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        let open = connections.opened();
        tokio::spawn(async move {
            let _open = open;
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Closes connections idle for longer than the idle timeout and forgets
    /// endpoints with none left.
    pub fn expire_idle(&self) {
        // `hostConnectionPool.minSize` idle connections of each kind stay
        // open however long they sit: the most recently used ones (the
        // stacks grow at their ends).
        let keep = self.limits.map_or(0, |l| l.min_size);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, stack| {
            stack.retain(|e| !e.sender.is_closed());
            let kept_from = stack.len().saturating_sub(keep);
            let mut i = 0;
            stack.retain(|e| {
                i += 1;
                i > kept_from || e.since.elapsed() < self.idle_timeout
            });
            !stack.is_empty()
        });
        drop(idle);
        let mut idle = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, stack| {
            let kept_from = stack.len().saturating_sub(keep);
            let mut i = 0;
            stack.retain(|e| {
                i += 1;
                i > kept_from || e.since.elapsed() < self.idle_timeout
            });
            !stack.is_empty()
        });
        drop(idle);
        // Endpoints with no busy connection and no waiter are forgotten.
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, busy| {
                Arc::strong_count(busy) > 1
                    || self
                        .limits
                        .is_some_and(|l| busy.permits.available_permits() < l.max_size)
            });
    }

    /// How many idle connections are open, for tests and admin pages.
    pub fn idle_connections(&self) -> usize {
        let hyper: usize = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum();
        let direct: usize = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum();
        hyper + direct
    }
}

impl Reusable {
    /// Returns the connection to the pool once it can take another request.
    /// The response body has ended by now, but the connection may need a
    /// moment to finish its own bookkeeping (or to finish sending a request
    /// body the server answered early): then a small task waits for it.
    pub fn release(mut self) {
        if self.sender.is_ready() {
            self.pool.put(self.endpoint, self.sender);
            return;
        }
        if self.sender.is_closed() {
            return;
        }
        tokio::spawn(async move {
            if self.sender.ready().await.is_ok() {
                self.pool.put(self.endpoint, self.sender);
            }
        });
    }
}

/// An error and its causes, e.g. "connection closed before message completed".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn min_size_idle_connections_outlive_the_idle_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap();
        let limits = PoolLimits {
            min_size: 2,
            max_size: 10,
            max_waiters: 10,
        };
        let pool =
            H1Pool::new(Duration::from_secs(1), Duration::ZERO, 16).with_limits(Some(limits));
        for _ in 0..3 {
            let stream = tokio::net::TcpStream::connect(endpoint).await.unwrap();
            let _ = listener.accept().await.unwrap();
            pool.put_direct(endpoint, Conn::new(stream));
        }
        assert_eq!(pool.idle_connections(), 3);
        pool.expire_idle();
        assert_eq!(pool.idle_connections(), 2);

        let unlimited = H1Pool::new(Duration::from_secs(1), Duration::ZERO, 16);
        let stream = tokio::net::TcpStream::connect(endpoint).await.unwrap();
        unlimited.put_direct(endpoint, Conn::new(stream));
        unlimited.expire_idle();
        assert_eq!(unlimited.idle_connections(), 0);
    }
}
