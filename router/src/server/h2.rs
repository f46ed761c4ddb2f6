//! `h2` routers' connections: served by the router's own HTTP/2 server
//! ([`crate::http2::server`]) when they open with the HTTP/2 preface, by
//! hyper's server otherwise (HTTP/1.1 sent to an `h2` router).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use super::h1::Prefixed;
use super::session::{self, Activity, Tracked};
use super::{HyperServer, ServerLimits, over_the_limit};
use crate::body::Body;
use crate::http2::frame::PREFACE;
use crate::http2::server::{Config, Connection, RequestBody, Service};
use crate::service::replay::Arriving;
use crate::stack::{Downstream, RouterStack, ServerSettings};

/// The largest request header list an HTTP/2 client may send, at least
/// (hyper's default); a server whose head limits allow more allows more.
const MIN_HEADER_LIST_SIZE: usize = 16 * 1024;

/// Serves one connection of an `h2` router, accepted at `accepted`.
pub(super) async fn serve<I>(
    hyper: &HyperServer,
    mut io: I,
    accepted: tokio::time::Instant,
    stopping: watch::Receiver<bool>,
    downstream: Downstream,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = hyper.limits;
    let mut read = BytesMut::with_capacity(4096);
    let preface = async {
        while read.len() < PREFACE.len() && PREFACE.starts_with(&read) {
            if io.read_buf(&mut read).await? == 0 {
                return Ok(false);
            }
        }
        Ok::<_, std::io::Error>(true)
    };
    match tokio::time::timeout_at(accepted + limits.session.head, preface).await {
        Ok(Ok(true)) => {}
        // Closed, failed or silent before its first bytes were in.
        Ok(Ok(false) | Err(_)) | Err(_) => return,
    }
    if !read.starts_with(PREFACE) {
        let prefixed = Prefixed::new(read.freeze(), io, accepted);
        return hyper.serve(prefixed, accepted, stopping, downstream).await;
    }
    let activity = Activity::with_max_requests(accepted, limits.session.max_requests);
    activity.multiplexed();
    let service = RouterService {
        router: hyper.router.clone(),
        settings: hyper.settings.clone(),
        limit: hyper.limit.clone(),
        activity: activity.clone(),
        downstream: Arc::new(downstream),
    };
    let connection = Connection::new(io, read, service, config(&limits));
    let mut stopping = stopping;
    let stop = async move {
        let _ = stopping.changed().await;
    };
    // One task polls every stream's future: tokio's budget per task poll
    // would run out for all of them at once, and each would wake itself
    // again and again. The connection bounds its own work per poll instead.
    tokio::task::unconstrained(session::drive(
        connection,
        |connection| connection.get_mut().graceful_shutdown(),
        &activity,
        &limits.session,
        stop,
    ))
    .await;
}

fn config(limits: &ServerLimits) -> Config {
    let header_list = limits.head.max_head().max(MIN_HEADER_LIST_SIZE);
    Config {
        max_concurrent_streams: limits.max_concurrent_streams,
        max_header_list_size: u32::try_from(header_list).unwrap_or(u32::MAX),
        ..Config::default()
    }
}

/// The router behind a connection of its own HTTP/2 server: what hyper's
/// service does for hyper's connections.
struct RouterService {
    router: Arc<RouterStack>,
    settings: Arc<ServerSettings>,
    limit: Option<Arc<Semaphore>>,
    activity: Arc<Activity>,
    downstream: Arc<Downstream>,
}

type Answer = Pin<Box<dyn Future<Output = Response<Tracked<Body>>> + Send>>;

impl Service for RouterService {
    type Body = Tracked<Body>;
    type Future = Answer;

    fn call(&mut self, head: http::request::Parts, body: RequestBody) -> Answer {
        let router = self.router.clone();
        let settings = self.settings.clone();
        let downstream = self.downstream.clone();
        let (_, mut in_flight) = self.activity.start();
        let permit: Option<Result<OwnedSemaphorePermit, TryAcquireError>> = self
            .limit
            .as_ref()
            .map(|limit| limit.clone().try_acquire_owned());
        let arriving = match body {
            RequestBody::Empty => Arriving::Empty,
            RequestBody::Whole(bytes) => Arriving::Whole(bytes),
            RequestBody::Streaming(inbound) => Arriving::Inbound(inbound),
        };
        // `route` is awaited here rather than through `handle_arriving`:
        // each layer of future around it is another copy of its few
        // kilobytes.
        Box::pin(async move {
            let started = std::time::Instant::now();
            let response = match permit {
                Some(Err(_)) => over_the_limit(&settings, started),
                permit => {
                    if let Some(Ok(permit)) = permit {
                        in_flight.hold(permit);
                    }
                    let mut trace = None;
                    let routed = router
                        .route(&settings, head, arriving, started, &downstream, &mut trace)
                        .await;
                    router.answer(&settings, routed, trace, started)
                }
            };
            response.map(|body| Tracked::new(body, in_flight))
        })
    }
}
