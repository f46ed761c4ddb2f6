//! How long a client connection to a server built on hyper may stay open:
//! the idle and life times of Linkerd's `serverSession`, and how long a
//! request head may take once it has begun. Used by the router's servers
//! (the HTTP/1 fallback, h2, the admin server) and by namerd's API and
//! admin servers.
//!
//! A connection's reads ([`Watched`]), its requests and the ends of its
//! response bodies ([`Tracked`]) are noted in an [`Activity`], and one
//! timer per connection ([`drive`]) reads it. A server that checks request
//! heads itself (the router's) sees the bytes read through a
//! [`ReadObserver`]. hyper's own header-read timeout is not used: it runs
//! from the moment a connection is ready for a request, so it would also
//! close keep-alive connections that are merely idle.

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
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};

/// How long a client connection may have no request in flight, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request head may take to arrive once it has begun (hyper's
/// default header read timeout).
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client connection may stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// How long it may go without a request in flight before it is closed
    /// (`serverSession.idleTimeMs`).
    pub idle: Duration,
    /// How long it may live; then it takes no new request and closes once
    /// those in flight are done (`serverSession.lifeTimeMs`).
    pub life: Option<Duration>,
    /// How long a request head may take from its first byte to its end.
    pub head: Duration,
    /// How many requests it may carry; the last is answered with
    /// `Connection: close` (HTTP/1) or after a `GOAWAY` (HTTP/2), so that
    /// clients move to a new connection without losing a request
    /// (`serverSession.maxRequests`).
    pub max_requests: Option<u64>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: DEFAULT_IDLE_TIMEOUT,
            life: None,
            head: DEFAULT_HEAD_TIMEOUT,
            max_requests: None,
        }
    }
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request in flight for the idle time.
    Idle,
    /// A request head did not arrive whole in time.
    Head,
    /// The connection has lived its life time.
    Life,
}

/// What one connection served by hyper has been doing, shared by its IO,
/// its service, its response bodies and its timer.
pub struct Activity {
    accepted: Instant,
    /// Requests whose response body has not ended.
    in_flight: AtomicUsize,
    /// When (milliseconds after `accepted`) the connection last fell idle,
    /// or, with `head` set, when a request head began.
    since_ms: AtomicU64,
    /// Bytes have come since the connection fell idle: a head has begun.
    head: AtomicBool,
    /// Whether arriving bytes start a head (not in HTTP/2, whose frames
    /// come and go between requests).
    heads: AtomicBool,
    /// Requests so far, to number them.
    requests: AtomicU64,
    /// Told when the request count reaches `max_requests`.
    last_request: Notify,
    max_requests: u64,
}

impl Activity {
    /// A connection accepted at `accepted`.
    pub fn new(accepted: Instant) -> Arc<Activity> {
        Activity::with_max_requests(accepted, None)
    }

    /// A connection accepted at `accepted` that carries at most
    /// `max_requests` requests.
    pub fn with_max_requests(accepted: Instant, max_requests: Option<u64>) -> Arc<Activity> {
        Arc::new(Activity {
            accepted,
            in_flight: AtomicUsize::new(0),
            since_ms: AtomicU64::new(millis_since(accepted)),
            head: AtomicBool::new(false),
            heads: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            last_request: Notify::new(),
            max_requests: max_requests.unwrap_or(u64::MAX),
        })
    }

    /// A request has arrived; it is in flight until the returned mark is
    /// dropped. Also its number on the connection.
    pub fn start(self: &Arc<Self>) -> (u64, InFlight) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head.store(false, Ordering::Release);
        let ordinal = self.requests.fetch_add(1, Ordering::AcqRel);
        if ordinal + 1 == self.max_requests {
            self.last_request.notify_one();
        }
        let mark = InFlight {
            activity: self.clone(),
            _permit: None,
        };
        (ordinal, mark)
    }

    fn ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.since_ms
                .store(millis_since(self.accepted), Ordering::Release);
        }
    }

    /// Bytes have arrived: with no request in flight, a request head has
    /// begun. ([`Watched`] notes its reads; a server that read bytes
    /// before it wrapped the connection notes those.)
    pub fn bytes_read(&self) {
        if self.heads.load(Ordering::Acquire)
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.head.load(Ordering::Acquire)
        {
            self.since_ms
                .store(millis_since(self.accepted), Ordering::Release);
            self.head.store(true, Ordering::Release);
        }
    }

    /// The connection speaks HTTP/2: arriving bytes no longer start a
    /// request head.
    pub fn multiplexed(&self) {
        self.heads.store(false, Ordering::Release);
        self.head.store(false, Ordering::Release);
    }

    /// When to look again, or why the connection is to close now.
    fn check(&self, now: Instant, limits: &SessionLimits) -> Result<Instant, Expiry> {
        let life_ends = limits.life.map(|life| self.accepted + life);
        if life_ends.is_some_and(|end| now >= end) {
            return Err(Expiry::Life);
        }
        let since = self.accepted + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        // A head may begin at any moment: looking again within the head
        // time finds it in time.
        let soon = now + limits.idle.min(limits.head);
        let next = if self.in_flight.load(Ordering::Acquire) > 0 {
            soon
        } else if self.head.load(Ordering::Acquire) {
            let end = since + limits.head;
            if now >= end {
                return Err(Expiry::Head);
            }
            end
        } else {
            let end = since + limits.idle;
            if now >= end {
                return Err(Expiry::Idle);
            }
            end.min(soon)
        };
        Ok(life_ends.map_or(next, |end| next.min(end)))
    }
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight: dropped when its response body ends, with the
/// server's permit for it (`maxConcurrentRequests`), if any.
pub struct InFlight {
    activity: Arc<Activity>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// Keeps `permit` until the request is done.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self._permit = Some(permit);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.ended();
    }
}

/// A response body that keeps its request in flight until it ends.
pub struct Tracked<B> {
    inner: B,
    in_flight: Option<InFlight>,
}

impl<B> Tracked<B> {
    /// `inner`, keeping `in_flight` until it ends.
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked {
            inner,
            in_flight: Some(in_flight),
        }
    }
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
/// body ends: for servers with no limits of their own (the admin server).
// The future's type is spelled out so that the connection can be spawned.
#[allow(clippy::type_complexity)]
pub fn track<S, B>(
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
        let (_, in_flight) = activity.start();
        let response = inner.call(request);
        async move {
            let response = response.await?;
            Ok(response.map(|body| Tracked::new(body, in_flight)))
        }
    })
}

/// Sees the bytes a connection reads, before its server parses them.
pub trait ReadObserver {
    /// `bytes` have just been read on the connection of `activity`.
    fn observe(&mut self, bytes: &[u8], activity: &Activity);
}

/// Observes nothing.
impl ReadObserver for () {
    fn observe(&mut self, _: &[u8], _: &Activity) {}
}

/// A connection's IO, noting what it reads in the connection's
/// [`Activity`], and showing it to `O`.
pub struct Watched<T, O = ()> {
    io: T,
    activity: Arc<Activity>,
    observer: O,
    first_read: bool,
}

impl<T> Watched<T> {
    /// `io`, watched.
    pub fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched::observed(io, activity, ())
    }
}

impl<T, O> Watched<T, O> {
    /// `io`, watched, with what it reads shown to `observer`.
    pub fn observed(io: T, activity: Arc<Activity>, observer: O) -> Watched<T, O> {
        Watched {
            io,
            activity,
            observer,
            first_read: true,
        }
    }
}

impl<T: AsyncRead + Unpin, O: ReadObserver + Unpin> AsyncRead for Watched<T, O> {
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
            let activity = &this.activity;
            if this.first_read && read.starts_with(b"PRI * HTTP/2") {
                activity.multiplexed();
            }
            this.observer.observe(read, activity);
            this.first_read = false;
            activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin, O: Unpin> AsyncWrite for Watched<T, O> {
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

/// One connection's timer.
struct Expiring {
    sleep: Pin<Box<Sleep>>,
    life_told: bool,
}

impl Expiring {
    fn new(activity: &Activity, limits: &SessionLimits) -> Expiring {
        let first = activity.accepted + limits.idle.min(limits.head);
        let first = limits
            .life
            .map_or(first, |life| first.min(activity.accepted + life));
        Expiring {
            sleep: Box::pin(tokio::time::sleep_until(first)),
            life_told: false,
        }
    }

    /// Completes when the connection is to close, saying why. The life
    /// time is told once.
    async fn next(&mut self, activity: &Activity, limits: &SessionLimits) -> Expiry {
        let mut limits = *limits;
        loop {
            if self.life_told {
                limits.life = None;
            }
            self.sleep.as_mut().await;
            let now = Instant::now();
            match activity.check(now, &limits) {
                Ok(next) => self.sleep.as_mut().reset(next),
                Err(why) => {
                    self.life_told |= why == Expiry::Life;
                    self.sleep
                        .as_mut()
                        .reset(now + limits.idle.min(limits.head));
                    return why;
                }
            }
        }
    }
}

/// Serves `conn` until it ends, under `limits`: it is shut down gracefully
/// when it has been idle or has lived too long and when `stop` completes,
/// and dropped when a head takes too long or it stays idle after a
/// graceful shutdown. `graceful` starts a graceful shutdown.
pub async fn drive<C, E>(
    conn: C,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    limits: &SessionLimits,
    stop: impl Future<Output = ()>,
) where
    C: Future<Output = Result<(), E>>,
    E: Display,
{
    tokio::pin!(conn);
    tokio::pin!(stop);
    let mut expiring = Expiring::new(activity, limits);
    let mut draining = false;
    let mut stopped = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            why = expiring.next(activity, limits) => match why {
                Expiry::Head => {
                    tracing::debug!(limit = ?limits.head, "a request head did not arrive in time; closing");
                    return;
                }
                // Still open after a graceful shutdown, with nothing in
                // flight.
                Expiry::Idle if draining => return,
                Expiry::Idle | Expiry::Life => {
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
            // Told while the last request is in flight, so that its answer
            // says the connection closes.
            () = activity.last_request.notified(), if !draining => {
                draining = true;
                graceful(conn.as_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits {
        idle: Duration::from_secs(60),
        life: Some(Duration::from_secs(300)),
        head: Duration::from_secs(30),
        max_requests: None,
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn idle_head_and_life_are_told_apart() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(
            activity.check(start + secs(10), &LIMITS),
            Ok(start + secs(40))
        );
        assert_eq!(
            activity.check(start + secs(50), &LIMITS),
            Ok(start + secs(60))
        );
        assert_eq!(activity.check(start + secs(60), &LIMITS), Err(Expiry::Idle));

        tokio::time::advance(secs(20)).await;
        activity.bytes_read();
        assert_eq!(
            activity.check(start + secs(30), &LIMITS),
            Ok(start + secs(50))
        );
        assert_eq!(activity.check(start + secs(50), &LIMITS), Err(Expiry::Head));

        let (ordinal, in_flight) = activity.start();
        assert_eq!(ordinal, 0);
        assert_eq!(
            activity.check(start + secs(200), &LIMITS),
            Ok(start + secs(230))
        );
        tokio::time::advance(secs(180)).await;
        drop(in_flight);
        assert_eq!(
            activity.check(start + secs(239), &LIMITS),
            Ok(start + secs(260))
        );
        assert_eq!(
            activity.check(start + secs(260), &LIMITS),
            Err(Expiry::Idle)
        );
        let (_, _busy) = activity.start();
        assert_eq!(
            activity.check(start + secs(290), &LIMITS),
            Ok(start + secs(300))
        );
        assert_eq!(
            activity.check(start + secs(300), &LIMITS),
            Err(Expiry::Life)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_do_not_start_heads() {
        let start = Instant::now();
        let activity = Activity::new(start);
        activity.multiplexed();
        activity.bytes_read();
        assert_eq!(
            activity.check(start + secs(45), &LIMITS),
            Ok(start + secs(60))
        );
    }
}
