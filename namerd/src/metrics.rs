//! namerd's figures in Linkerd's metrics tree ([`namers::telemetry`]),
//! scoped as Linkerd's namerd scoped its own:
//!
//! - `interface/io.l5d.httpController/io.l5d.httpController/…`: the HTTP
//!   API's server figures. Linkerd scoped each interface by its kind, and
//!   Finagle then scoped the server by its label, which for the HTTP
//!   controller was the kind again. Every `io.l5d.httpController` counts
//!   into the one scope, as in Linkerd.
//! - `interface/io.l5d.httpController/{bindingcache,resolvecache,addrcache}/size`:
//!   the live values namerd keeps (Linkerd's thrift interface showed its
//!   caches beside its server scope the same way).
//! - `interpreter/…`: the interpreter's own counters.
//! - `dtabstore/<op>/…` ([`crate::store::counted`]) and `namer/<prefix>/…`
//!   ([`namers::metrics::NamerMetrics`]) come from their own sources.
//!
//! Recording a request is a few relaxed atomic additions and one histogram
//! bucket; nothing on the request path takes a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::Method;
use namers::telemetry::{Counter, Scope, Source, Stat, StatusCounts};
use tokio::time::Instant;

use crate::Namerd;

/// The interface kind, which is also its server's scope.
pub const HTTP_INTERFACE: &str = "io.l5d.httpController";

/// Linkerd's name for an answer the response classifier called a failure
/// (a 5XX, as Finagle's HTTP servers classified them by default).
const CLASSIFIED: &str = "com.twitter.finagle.service.ResponseClassificationSyntheticException";

/// The API's routes and methods, each counted under
/// `route/<route without its leading slash>/<METHOD>`; anything else
/// (an unknown path, another method) under `route/other`. Keep in step
/// with [`crate::api::router`].
static ROUTES: [(&str, Method); OTHER] = [
    ("/api/1/dtabs", Method::GET),
    ("/api/1/dtabs/{ns}", Method::GET),
    ("/api/1/dtabs/{ns}", Method::HEAD),
    ("/api/1/dtabs/{ns}", Method::POST),
    ("/api/1/dtabs/{ns}", Method::PUT),
    ("/api/1/dtabs/{ns}", Method::DELETE),
    ("/api/1/bind/{ns}", Method::GET),
    ("/api/1/addr/{ns}", Method::GET),
    ("/api/1/resolve/{ns}", Method::GET),
    ("/api/1/delegate/{ns}", Method::GET),
    ("/api/1/delegate", Method::GET),
    ("/api/1/delegate", Method::POST),
    ("/api/1/bound-names", Method::GET),
];

/// How many routes [`ROUTES`] holds; `route/other` is counted after them.
const OTHER: usize = 13;

/// One route's figures.
#[derive(Debug, Default)]
struct RouteStats {
    requests: Counter,
    status: StatusCounts,
}

/// The figures of the HTTP API's servers.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: Counter,
    success: Counter,
    failures: Counter,
    classified: Counter,
    interrupted: Counter,
    latency: Stat,
    pending: AtomicI64,
    status: StatusCounts,
    connects: Counter,
    connections: AtomicI64,
    streams_opened: Counter,
    streams_closed: Counter,
    stream_duration: Stat,
    routes: [RouteStats; OTHER + 1],
}

impl HttpStats {
    /// A request for `route` (the matched route pattern, if any) arrived;
    /// the guard records its answer, or its end without one.
    pub(crate) fn request(self: &Arc<Self>, route: Option<&str>, method: &Method) -> InFlight {
        let route = route
            .and_then(|route| {
                ROUTES
                    .iter()
                    .position(|(pattern, m)| *pattern == route && m == method)
            })
            .unwrap_or(OTHER);
        self.pending.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
            route,
            started: Instant::now(),
            answered: false,
        }
    }

    /// A watch's streamed answer began; the guard ends it when dropped.
    pub(crate) fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.streams_opened.incr();
        OpenStream {
            stats: self.clone(),
            opened: Instant::now(),
        }
    }

    /// A connection was accepted; the guard closes it when dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connects.incr();
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }
}

/// A request waiting for its answer's head.
pub(crate) struct InFlight {
    stats: Arc<HttpStats>,
    route: usize,
    started: Instant,
    answered: bool,
}

impl InFlight {
    /// The answer's head is ready with `status`.
    pub(crate) fn answered(mut self, status: u16) {
        self.answered = true;
        let stats = &self.stats;
        stats.requests.incr();
        if status >= 500 {
            stats.failures.incr();
            stats.classified.incr();
        } else {
            stats.success.incr();
        }
        stats.status.record(status);
        let route = &stats.routes[self.route];
        route.requests.incr();
        route.status.record(status);
        let elapsed = self.started.elapsed().as_millis();
        stats
            .latency
            .add(u64::try_from(elapsed).unwrap_or(u64::MAX));
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let stats = &self.stats;
        stats.pending.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            // The client left before the answer (Finagle counted an
            // interrupted request as a failure too).
            stats.requests.incr();
            stats.failures.incr();
            stats.interrupted.incr();
            stats.routes[self.route].requests.incr();
        }
    }
}

/// A watch's answer being streamed.
pub(crate) struct OpenStream {
    stats: Arc<HttpStats>,
    opened: Instant,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.stats.streams_closed.incr();
        let lived = self.opened.elapsed().as_millis();
        self.stats
            .stream_duration
            .add(u64::try_from(lived).unwrap_or(u64::MAX));
    }
}

/// An open connection to the API.
pub(crate) struct OpenConnection(Arc<HttpStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::cast_precision_loss)]
fn gauge(value: &AtomicI64) -> f64 {
    value.load(Ordering::Relaxed).max(0) as f64
}

/// `interface/io.l5d.httpController/io.l5d.httpController/…`: Finagle's
/// server figures (`requests`, `success`, `failures`,
/// `request_latency_ms`, `pending`, `connects`, `connections`) and its
/// HTTP streaming ones for the watches (`http/stream/response/opened`,
/// `closed`, `pending`, `duration_ms`), with Linkerd's `status/…` and our
/// `route/…`.
impl Source for HttpStats {
    fn list(&self, root: &mut Scope<'_>) {
        let mut interface = root.scope("interface");
        let mut kind = interface.scope(HTTP_INTERFACE);
        let mut scope = kind.scope(HTTP_INTERFACE);
        scope.stat("request_latency_ms", &self.latency);
        scope.stat("http/stream/response/duration_ms", &self.stream_duration);
        if scope.is_rolling() {
            return;
        }
        scope.counter("requests", self.requests.get());
        scope.counter("success", self.success.get());
        scope.counter("failures", self.failures.get());
        for (kind, count) in [
            (CLASSIFIED, &self.classified),
            ("interrupted", &self.interrupted),
        ] {
            if count.get() > 0 {
                scope.counter(&format!("failures/{kind}"), count.get());
            }
        }
        scope.gauge("pending", gauge(&self.pending));
        self.status.list(&mut scope);
        scope.counter("connects", self.connects.get());
        scope.gauge("connections", gauge(&self.connections));
        let (opened, closed) = (self.streams_opened.get(), self.streams_closed.get());
        scope.counter("http/stream/response/opened", opened);
        scope.counter("http/stream/response/closed", closed);
        #[allow(clippy::cast_precision_loss)]
        scope.gauge(
            "http/stream/response/pending",
            opened.saturating_sub(closed) as f64,
        );
        let mut routes = scope.scope("route");
        for (i, figures) in self.routes.iter().enumerate() {
            if figures.requests.get() == 0 {
                continue;
            }
            match ROUTES.get(i) {
                Some((pattern, method)) => figures.list(
                    &mut routes
                        .scope(pattern.trim_start_matches('/'))
                        .scope(method.as_str()),
                ),
                None => figures.list(&mut routes.scope("other")),
            }
        }
    }
}

impl RouteStats {
    fn list(&self, scope: &mut Scope<'_>) {
        scope.counter("requests", self.requests.get());
        self.status.list_codes(scope);
    }
}

/// The live values namerd keeps, beside the HTTP interface's server scope,
/// and the interpreter's counters.
impl Source for Namerd {
    fn list(&self, root: &mut Scope<'_>) {
        if root.is_rolling() {
            return;
        }
        {
            let mut interface = root.scope("interface");
            let mut kind = interface.scope(HTTP_INTERFACE);
            #[allow(clippy::cast_precision_loss)]
            for (cache, size) in [
                ("bindingcache/size", self.live_bindings()),
                ("resolvecache/size", self.live_resolutions()),
                ("addrcache/size", self.live_addrs()),
            ] {
                kind.gauge(cache, size as f64);
            }
        }
        namers::metrics::list_interpreter_stats(
            self.interpreter().stats(),
            &mut root.scope("interpreter"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::telemetry::{Value, collect};

    fn figures(stats: &Arc<HttpStats>) -> Vec<(String, Value)> {
        let source: Arc<dyn Source> = stats.clone();
        collect(&[source])
            .into_iter()
            .map(|e| {
                let key = e.path.join("/");
                let key = key
                    .strip_prefix("interface/io.l5d.httpController/io.l5d.httpController/")
                    .unwrap_or(&key)
                    .to_string();
                (key, e.value)
            })
            .collect()
    }

    fn get<'a>(figures: &'a [(String, Value)], key: &str) -> &'a Value {
        figures
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key} in {figures:?}"))
    }

    #[test]
    fn answers_count_by_status_route_and_outcome() {
        let stats = Arc::new(HttpStats::default());
        stats
            .request(Some("/api/1/dtabs/{ns}"), &Method::PUT)
            .answered(204);
        stats
            .request(Some("/api/1/dtabs/{ns}"), &Method::PUT)
            .answered(500);
        stats.request(None, &Method::GET).answered(404);
        // A method the route does not have is another route.
        stats
            .request(Some("/api/1/dtabs"), &Method::DELETE)
            .answered(405);
        let left = stats.request(Some("/api/1/bind/{ns}"), &Method::GET);
        let pending = figures(&stats);
        assert_eq!(get(&pending, "pending"), &Value::Gauge(1.0));
        drop(left);
        let f = figures(&stats);
        for (key, value) in [
            ("requests", 5),
            // A 4XX is the client's mistake, not a failure.
            ("success", 3),
            ("failures", 2),
            (&format!("failures/{CLASSIFIED}"), 1),
            ("failures/interrupted", 1),
            ("status/204", 1),
            ("status/4XX", 2),
            ("status/5XX", 1),
            ("route/api/1/dtabs/{ns}/PUT/requests", 2),
            ("route/api/1/dtabs/{ns}/PUT/status/204", 1),
            ("route/api/1/dtabs/{ns}/PUT/status/500", 1),
            ("route/api/1/bind/{ns}/GET/requests", 1),
            ("route/other/requests", 2),
            ("route/other/status/405", 1),
        ] {
            assert_eq!(get(&f, key), &Value::Counter(value), "{key}");
        }
        assert_eq!(get(&f, "pending"), &Value::Gauge(0.0));
        assert!(
            !f.iter()
                .any(|(k, _)| k.starts_with("route/api/1/dtabs/GET")),
            "a route nobody asked for is not listed: {f:?}"
        );
    }

    #[test]
    fn streams_and_connections_open_and_close() {
        let stats = Arc::new(HttpStats::default());
        let conn = stats.connection_opened();
        let first = stats.stream_opened();
        let _second = stats.stream_opened();
        drop(first);
        let f = figures(&stats);
        assert_eq!(get(&f, "connects"), &Value::Counter(1));
        assert_eq!(get(&f, "connections"), &Value::Gauge(1.0));
        assert_eq!(get(&f, "http/stream/response/opened"), &Value::Counter(2));
        assert_eq!(get(&f, "http/stream/response/closed"), &Value::Counter(1));
        assert_eq!(get(&f, "http/stream/response/pending"), &Value::Gauge(1.0));
        drop(conn);
        let f = figures(&stats);
        assert_eq!(get(&f, "connections"), &Value::Gauge(0.0));
        assert_eq!(get(&f, "connects"), &Value::Counter(1));
    }
}
