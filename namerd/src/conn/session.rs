//! How long a connection to the API or admin server may stay open: closed
//! after [`IDLE_TIMEOUT`] with no request in flight, and dropped when a
//! request head takes more than [`HEAD_TIMEOUT`] from its first byte. A
//! watch is a request in flight for as long as it streams.
//!
//! The router's servers keep the same times in the same way (the router's
//! `server::session`); namerd does not depend on the router, so this is
//! its own copy, without the router's request-head checks.
//!
//! A connection served by hyper is watched: its reads ([`Watched`]), its
//! requests and the ends of its response bodies ([`track`]) are noted in an
//! [`Activity`], and one timer per connection ([`drive`]) reads it.
//! hyper's own header-read timeout is not used: it runs from the moment a
//! connection is ready for a request, so it would also close keep-alive
//! connections that are merely idle.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection may have no request in flight.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request head may take from its first byte to its end.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Idle,
    Head,
}

/// What one connection served by hyper has been doing.
pub(super) struct Activity {
    accepted: Instant,
    /// Requests whose response body has not ended.
    in_flight: AtomicUsize,
    /// When (milliseconds after `accepted`) the connection last fell idle,
    /// or, with `head` set, when a request head began.
    since_ms: AtomicU64,
    /// Bytes have come since the connection fell idle: a head has begun.
    head: AtomicBool,
    /// Whether arriving bytes start a head (not in HTTP/2).
    heads: AtomicBool,
}

impl Activity {
    /// A connection accepted at `accepted`.
    pub(super) fn new(accepted: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            accepted,
            in_flight: AtomicUsize::new(0),
            since_ms: AtomicU64::new(millis_since(accepted)),
            head: AtomicBool::new(false),
            heads: AtomicBool::new(true),
        })
    }

    /// A request head has begun arriving.
    pub(super) fn bytes_read(&self) {
        if self.heads.load(Ordering::Acquire)
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.head.load(Ordering::Acquire)
        {
            self.since_ms
                .store(millis_since(self.accepted), Ordering::Release);
            self.head.store(true, Ordering::Release);
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head.store(false, Ordering::Release);
        InFlight {
            activity: self.clone(),
        }
    }

    fn ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.since_ms
                .store(millis_since(self.accepted), Ordering::Release);
        }
    }

    fn multiplexed(&self) {
        self.heads.store(false, Ordering::Release);
        self.head.store(false, Ordering::Release);
    }

    /// When to look again, or why the connection is to close now.
    fn check(&self, now: Instant) -> Result<Instant, Expiry> {
        let since = self.accepted + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        let soon = now + IDLE_TIMEOUT.min(HEAD_TIMEOUT);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            Ok(soon)
        } else if self.head.load(Ordering::Acquire) {
            let end = since + HEAD_TIMEOUT;
            if now >= end {
                Err(Expiry::Head)
            } else {
                Ok(end)
            }
        } else {
            let end = since + IDLE_TIMEOUT;
            // A head may begin at any moment: looking again within the head
            // time finds it in time.
            if now >= end {
                Err(Expiry::Idle)
            } else {
                Ok(end.min(soon))
            }
        }
    }
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight until dropped.
struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.ended();
    }
}

/// A response body that keeps its request in flight until it ends.
pub(super) struct Tracked<B> {
    inner: B,
    in_flight: Option<InFlight>,
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            this.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `inner` with each request in flight on `activity` until its response
/// body ends.
// The future's type is spelled out so that the connection can be spawned.
#[allow(clippy::type_complexity)]
pub(super) fn track<S, B>(
    inner: S,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked<B>>,
    Error = S::Error,
    Future = impl Future<Output = Result<Response<Tracked<B>>, S::Error>> + Send,
> + Clone
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: HttpBody + Unpin + Send,
{
    hyper::service::service_fn(move |request| {
        let in_flight = activity.start();
        let response = inner.call(request);
        async move {
            let response = response.await?;
            Ok(response.map(|inner| Tracked {
                inner,
                in_flight: Some(in_flight),
            }))
        }
    })
}

/// A connection's IO, noting its reads in the connection's [`Activity`].
pub(super) struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    first_read: bool,
}

impl<T> Watched<T> {
    pub(super) fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched {
            io,
            activity,
            first_read: true,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if this.first_read && read.starts_with(b"PRI * HTTP/2") {
                this.activity.multiplexed();
            }
            this.first_read = false;
            this.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Completes when the connection is to close, saying why; `sleep` is the
/// connection's timer.
async fn expired(activity: &Activity, sleep: &mut Pin<Box<Sleep>>) -> Expiry {
    loop {
        sleep.as_mut().await;
        let now = Instant::now();
        match activity.check(now) {
            Ok(next) => sleep.as_mut().reset(next),
            Err(why) => {
                sleep.as_mut().reset(now + IDLE_TIMEOUT.min(HEAD_TIMEOUT));
                return why;
            }
        }
    }
}

/// Serves `conn` until it ends: it is shut down gracefully when idle and
/// when `stop` completes, and dropped when a head takes too long or it
/// stays idle after a graceful shutdown. `graceful` starts a graceful
/// shutdown.
pub(super) async fn drive<C, E>(
    conn: C,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    stop: impl Future<Output = ()>,
) where
    C: Future<Output = Result<(), E>>,
    E: Display,
{
    tokio::pin!(conn);
    tokio::pin!(stop);
    let mut sleep = Box::pin(tokio::time::sleep_until(
        activity.accepted + IDLE_TIMEOUT.min(HEAD_TIMEOUT),
    ));
    let mut draining = false;
    let mut stopped = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            why = expired(activity, &mut sleep) => match why {
                Expiry::Head => {
                    tracing::debug!("a request head did not arrive in time; closing");
                    return;
                }
                Expiry::Idle if draining => return,
                Expiry::Idle => {
                    draining = true;
                    graceful(conn.as_mut());
                }
            },
            () = &mut stop, if !stopped => {
                stopped = true;
                if !draining {
                    draining = true;
                    graceful(conn.as_mut());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_head_times_are_told_apart() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(activity.check(start + secs(45)), Ok(start + secs(60)));
        assert_eq!(activity.check(start + secs(60)), Err(Expiry::Idle));
        tokio::time::advance(secs(10)).await;
        activity.bytes_read();
        assert_eq!(activity.check(start + secs(30)), Ok(start + secs(40)));
        assert_eq!(activity.check(start + secs(40)), Err(Expiry::Head));
        let in_flight = activity.start();
        assert_eq!(activity.check(start + secs(500)), Ok(start + secs(530)));
        tokio::time::advance(secs(90)).await;
        drop(in_flight);
        assert_eq!(activity.check(start + secs(150)), Ok(start + secs(160)));
        assert_eq!(activity.check(start + secs(160)), Err(Expiry::Idle));
    }
}
