//! Upstream HTTP/2 connections for `h2` routers, one per endpoint.
//!
//! The pooled HTTP/1 client dials whatever authority the request URI names,
//! which for HTTP/2 would also replace the request's `:authority`. Here the
//! endpoint is chosen separately, so the backend sees the authority the
//! client sent. HTTP/2 multiplexes, so one connection per endpoint carries
//! all its requests.
//!
//! A connection no request has been sent on for the idle timeout (60 s,
//! as for HTTP/1 connections) leaves the pool: the streams still open on
//! it finish, and then it closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use crate::body::Body;
use crate::endpoint::h1_pool::{SendError, Unsent};

/// How long a connection may go without a request before it leaves the
/// pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Connections = Mutex<HashMap<SocketAddr, Pooled>>;

/// Open HTTP/2 connections by endpoint.
pub struct H2Pool {
    connections: Arc<Connections>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    next_id: AtomicU64,
}

struct Pooled {
    sender: SendRequest<Body>,
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
            connect_timeout,
            idle_timeout,
            next_id: AtomicU64::new(0),
        }
    }

    /// Sends `request` to `endpoint`, opening a connection if needed.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, Unsent<Request<Body>>> {
        let unsent = |why: String, request| Unsent {
            error: SendError::Connect(why),
            request: Some(request),
        };
        let mut sender = match self.connection(endpoint).await {
            Ok(sender) => sender,
            Err(why) => return Err(unsent(why, request)),
        };
        if let Err(e) = sender.ready().await {
            return Err(unsent(
                format!("connection to {endpoint} failed: {e}"),
                request,
            ));
        }
        sender.send_request(request).await.map_err(|e| {
            let why = e.to_string();
            if never_processed(&e) {
                SendError::Refused(why).into()
            } else {
                SendError::Request(why).into()
            }
        })
    }

    async fn connection(&self, endpoint: SocketAddr) -> Result<SendRequest<Body>, String> {
        let existing = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&endpoint)
            .filter(|pooled| !pooled.sender.is_closed())
            .map(|pooled| {
                pooled.last_used = Instant::now();
                pooled.sender.clone()
            });
        if let Some(sender) = existing {
            return Ok(sender);
        }
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(endpoint),
        )
        .await
        .map_err(|_| {
            format!(
                "connecting to {endpoint} timed out after {:?}",
                self.connect_timeout
            )
        })?
        .map_err(|e| format!("tcp connect error: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {endpoint} failed: {e}"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(drive(
            connection,
            Arc::downgrade(&self.connections),
            endpoint,
            id,
            self.idle_timeout,
        ));
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                endpoint,
                Pooled {
                    sender: sender.clone(),
                    id,
                    last_used: Instant::now(),
                },
            );
        Ok(sender)
    }
}

/// Whether the upstream says it never processed the stream: it reset it
/// with `REFUSED_STREAM`, or it was above the last stream a `GOAWAY`
/// promised to handle. Such a request is safe to send again (RFC 9113
/// section 8.7).
fn never_processed(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && (h2.reason() == Some(h2::Reason::REFUSED_STREAM) || h2.is_go_away());
        }
        source = cause.source();
    }
    false
}

/// Runs a connection, taking it out of the pool once it has been idle for
/// `idle`. Out of the pool, it ends when its open streams do.
async fn drive(
    connection: impl Future<Output = hyper::Result<()>>,
    pool: Weak<Connections>,
    endpoint: SocketAddr,
    id: u64,
    idle: Duration,
) {
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
    use tokio::net::TcpListener;

    use super::*;

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
        let response = pool.send(addr, request).await.unwrap();
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
