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
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::Body;
use crate::endpoint::h1_pool::{SendError, Unsent, error_chain};

/// How long a connection may go without a request before it leaves the
/// pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request still waits for its answer once its connection's
/// socket has closed.
const CLOSED_GRACE: Duration = Duration::from_secs(1);

/// How a connection ends, as its requests need to know.
#[derive(Clone)]
struct Ends {
    /// Closes when the connection's socket is dropped.
    socket_gone: watch::Receiver<()>,
}

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
    ends: Ends,
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
    ///
    /// A request the upstream never processed comes back as
    /// [`SendError::Refused`] when its stream was refused
    /// (`REFUSED_STREAM`), and as [`SendError::Rotated`] when it was above
    /// the last stream a `GOAWAY` promised to handle or still queued when
    /// the connection closed (then the request itself comes back too,
    /// whatever its body). A connection that said `GOAWAY` or
    /// closed leaves the pool at once, so the next request opens a new one
    /// instead of finding the old one again while it drains.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, Unsent<Request<Body>>> {
        let unsent = |why: String, request| Unsent {
            error: SendError::Connect(why),
            request: Some(request),
        };
        let (mut sender, id, mut ends) = match self.connection(endpoint).await {
            Ok(pooled) => pooled,
            Err(why) => return Err(unsent(why, request)),
        };
        if let Err(e) = sender.ready().await {
            return Err(unsent(
                format!("connection to {endpoint} failed: {e}"),
                request,
            ));
        }
        let sent = sender.try_send_request(request);
        tokio::pin!(sent);
        let answer = tokio::select! {
            biased;
            answer = &mut sent => answer,
            _ = ends.socket_gone.changed() => {
                // hyper may still be handing over an answer that came
                // before the close; past a moment, none is coming.
                match tokio::time::timeout(CLOSED_GRACE, &mut sent).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(no_answer(endpoint)),
                }
            }
        };
        let mut error = match answer {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        let why = error_chain(error.error());
        if let Some(request) = error.take_message() {
            // Still queued when the connection closed: no byte of it left.
            leave(&Arc::downgrade(&self.connections), endpoint, id);
            return Err(Unsent {
                error: SendError::Rotated(why),
                request: Some(request),
            });
        }
        match unprocessed(error.error()) {
            Some(Unprocessed::GoingAway) => {
                leave(&Arc::downgrade(&self.connections), endpoint, id);
                Err(SendError::Rotated(why).into())
            }
            Some(Unprocessed::Refused) => Err(SendError::Refused(why).into()),
            None => Err(SendError::Request(why).into()),
        }
    }

    /// The pooled connection to `endpoint`, its id and how it ends,
    /// opened if there is none.
    async fn connection(
        &self,
        endpoint: SocketAddr,
    ) -> Result<(SendRequest<Body>, u64, Ends), String> {
        let existing = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&endpoint)
            .filter(|pooled| !pooled.sender.is_closed())
            .map(|pooled| {
                pooled.last_used = Instant::now();
                (pooled.sender.clone(), pooled.id, pooled.ends.clone())
            });
        if let Some(existing) = existing {
            return Ok(existing);
        }
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| {
                format!(
                    "connecting to {endpoint} timed out after {:?}",
                    self.connect_timeout
                )
            })?
            .map_err(|e| format!("tcp connect error: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (socket_gone, gone) = watch::channel(());
        let io = TokioIo::new(Socket {
            stream,
            _gone: socket_gone,
        });
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {endpoint} failed: {e}"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ends = Ends { socket_gone: gone };
        tokio::spawn(drive(
            connection,
            ends.clone(),
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
                    ends: ends.clone(),
                    id,
                    last_used: Instant::now(),
                },
            );
        Ok((sender, id, ends))
    }
}

/// The error of a request that had neither an answer nor an error when its
/// connection's socket closed. h2 tells every stream it wrote when the
/// connection ends (with its answer or an error); the one it tells nothing
/// was still waiting to be opened, for the upstream's limit of concurrent
/// streams, and was never written. It is sent again.
fn no_answer(endpoint: SocketAddr) -> Unsent<Request<Body>> {
    tracing::debug!(%endpoint, "a request was still waiting for a stream when its connection closed");
    SendError::Rotated(format!(
        "the connection to {endpoint} closed before the request was given a stream"
    ))
    .into()
}

/// How the upstream said it never processed a stream, so that the request
/// is safe to send again (RFC 9113 section 8.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unprocessed {
    /// Reset with `REFUSED_STREAM`; the connection goes on.
    Refused,
    /// Above the last stream a `GOAWAY` promised to handle: the connection
    /// takes no new stream.
    GoingAway,
}

fn unprocessed(error: &hyper::Error) -> Option<Unprocessed> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            if !h2.is_remote() {
                return None;
            }
            if h2.is_go_away() {
                return Some(Unprocessed::GoingAway);
            }
            return (h2.reason() == Some(h2::Reason::REFUSED_STREAM))
                .then_some(Unprocessed::Refused);
        }
        source = cause.source();
    }
    None
}

/// An upstream connection's socket, which says when it is dropped: the
/// HTTP/2 connection under hyper's client has ended for good.
struct Socket {
    stream: TcpStream,
    _gone: watch::Sender<()>,
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Runs a connection, taking it out of the pool once it has been idle for
/// `idle`. Out of the pool, it ends when its open streams do.
///
/// It also ends once its socket is gone: hyper's client can be left
/// waiting for a connection that has ended (after a `GOAWAY`, when the
/// last streams finish), and the requests queued on it would wait
/// forever. Dropping it hands them back unsent, to be sent elsewhere.
async fn drive(
    connection: impl Future<Output = hyper::Result<()>>,
    mut ends: Ends,
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
            _ = ends.socket_gone.changed() => {
                tracing::debug!(%endpoint, "upstream HTTP/2 connection's socket closed");
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
