//! Upstream HTTP/1.1 connections for `http` routers, kept open per endpoint
//! and reused.
//!
//! The balancer has already chosen the endpoint, so the pool is only a
//! stack of idle connections per address: a request takes the most recently
//! used one that is still open, or dials a new one. A connection comes back
//! when its response body has been read to the end ([`Reusable::release`]);
//! one whose body was abandoned is closed, as HTTP/1 cannot skip the rest.
//!
//! Two kinds of connection are kept: hyper's, for requests with bodies and
//! upgrades, and plain sockets for bodiless requests ([`crate::endpoint::h1_direct`]).

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

/// How many idle connections a bodiless request tries before a new one
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
}

/// Why a request could not be sent upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened.
    Connect(String),
    /// The connection failed while the request was sent or the response
    /// head read.
    Request(String),
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
            SendError::Connect(why) | SendError::Request(why) => f.write_str(why),
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
        }
    }

    /// Sends `request` to `endpoint` on an idle connection or a new one.
    /// The request's URI must be in origin form (`/path?query`).
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<Body>,
    ) -> Result<(Response<Incoming>, Reusable), Unsent<Request<Body>>> {
        // An idle connection may have been closed by the server since it
        // was checked; the request then comes back unsent and the next one
        // (or a new connection) is tried.
        while let Some(mut sender) = self.checkout(endpoint) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.reusable(sender, endpoint))),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => {
                        return Err(SendError::Request(error_chain(failed.error())).into());
                    }
                },
            }
        }
        let mut sender = match self.connect(endpoint).await {
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
        Ok((response, self.reusable(sender, endpoint)))
    }

    /// Sends a bodiless request whose head is `head` (see
    /// [`h1_direct::encode_head`]) and reads the response head, in the
    /// calling task. When an idle connection turns out to have been closed
    /// by the server, the request goes on the next one (up to
    /// [`STALE_RETRIES`], then on a new connection): such requests may be
    /// repeated (RFC 9110 section 9.2.2).
    pub async fn send_direct(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        head: &[u8],
        method: &http::Method,
    ) -> Result<(h1_direct::Answer, DirectBody), SendError> {
        // A few tries on idle connections, then a new one: enough to get
        // past connections a restarted backend left dead, without sending
        // one request many times to a backend that drops it each time.
        for _ in 0..STALE_RETRIES {
            let Some(conn) = self.checkout_direct(endpoint) else {
                break;
            };
            match h1_direct::exchange(conn, head, method, self.release(endpoint)).await {
                Ok(answer) => return Ok(answer),
                Err(e) if e.stale => continue,
                Err(e) => return Err(SendError::Request(e.message)),
            }
        }
        let stream = self.dial(endpoint).await?;
        h1_direct::exchange(Conn::new(stream), head, method, self.release(endpoint))
            .await
            .map_err(|e| SendError::Request(e.message))
    }

    fn release(self: &Arc<Self>, endpoint: SocketAddr) -> Release {
        Release {
            pool: self.clone(),
            endpoint,
        }
    }

    /// The most recently used idle connection to `endpoint`. One that sat
    /// idle for a while is first checked for an end of stream or for bytes
    /// nobody asked for (some servers answer `408` before closing an idle
    /// connection): those are dropped. Busy connections skip the check,
    /// which costs a system call.
    fn checkout_direct(&self, endpoint: SocketAddr) -> Option<Conn> {
        let mut idle = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stack = idle.get_mut(&endpoint)?;
        while let Some(entry) = stack.pop() {
            if entry.since.elapsed() < PROBE_IDLE_AFTER || entry.conn.looks_open() {
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

    fn reusable(self: &Arc<Self>, sender: SendRequest<Body>, endpoint: SocketAddr) -> Reusable {
        Reusable {
            sender,
            endpoint,
            pool: self.clone(),
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

    async fn connect(&self, endpoint: SocketAddr) -> Result<SendRequest<Body>, SendError> {
        let stream = self.dial(endpoint).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Closes connections idle for longer than the idle timeout and forgets
    /// endpoints with none left.
    pub fn expire_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, stack| {
            stack.retain(|e| !e.sender.is_closed() && e.since.elapsed() < self.idle_timeout);
            !stack.is_empty()
        });
        drop(idle);
        let mut idle = self
            .idle_direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, stack| {
            stack.retain(|e| e.since.elapsed() < self.idle_timeout);
            !stack.is_empty()
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
