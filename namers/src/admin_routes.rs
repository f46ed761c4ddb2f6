//! The admin endpoints the router and namerd share, as axum routes to merge
//! into each admin server: liveness and shutdown ([`common`]), the log
//! level ([`crate::logging::admin`]) and the metrics
//! ([`crate::telemetry::telemeters::admin`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::Notify;

use crate::telemetry::telemeters::{
    self, Metrics, RECENT_REQUESTS_JSON_PATH, RECENT_REQUESTS_PATH, Telemeters,
};
use crate::telemetry::trace::{self, RecentRequests};

/// What every admin server answers: `/admin/ping` (liveness), the
/// metrics and the log level as [`metrics`] and [`logging`], and
/// `POST /admin/shutdown`, which notifies `shutdown` (one waiter, the main
/// task; the permit is kept if it is not waiting yet, so an early request
/// is not lost).
pub fn common<S: Clone + Send + Sync + 'static>(
    metrics_of: Metrics,
    telemeters: Telemeters,
    shutdown: Arc<Notify>,
) -> Router<S> {
    Router::new()
        .merge(metrics(metrics_of, telemeters))
        .merge(logging())
        .route("/admin/ping", get(|| async { "pong" }))
        .route(
            "/admin/shutdown",
            post(move || async move {
                shutdown.notify_one();
                "shutting down\n"
            }),
        )
}

/// `/logging.json` and `/admin/logging`.
pub fn logging<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let handler = |method: Method,
                   uri: Uri,
                   Query(params): Query<HashMap<String, String>>,
                   body: String| async move {
        let (status, content_type, body) =
            crate::logging::admin(&method, uri.path(), &params, &body);
        answer(status, content_type, body)
    };
    Router::new()
        .route("/logging.json", any(handler))
        .route("/admin/logging", any(handler))
}

/// Every path of [`Telemeters::paths`]: `/admin/metrics.json`, the
/// Prometheus paths and, when configured, `/admin/metrics/influxdb`.
pub fn metrics<S: Clone + Send + Sync + 'static>(
    metrics: Metrics,
    telemeters: Telemeters,
) -> Router<S> {
    let mut routes = Router::new();
    for path in telemeters.paths() {
        let (metrics, telemeters) = (metrics.clone(), telemeters.clone());
        let handler = move |uri: Uri,
                            Query(params): Query<HashMap<String, String>>,
                            headers: HeaderMap| async move {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            match telemeters::admin(&metrics, &telemeters, uri.path(), &params, host) {
                Some((status, content_type, body)) => answer(status, content_type, body),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        };
        routes = routes.route(&path, get(handler));
    }
    routes
}

/// `/requests` (an HTML table, as Linkerd's) and `/requests.json` (the
/// same rows, newest first) when `io.l5d.recentRequests` is configured;
/// nothing otherwise, so both answer 404 as in Linkerd.
pub fn recent_requests<S: Clone + Send + Sync + 'static>(
    table: Option<RecentRequests>,
) -> Router<S> {
    let Some(table) = table else {
        return Router::new();
    };
    let json_table = table.clone();
    Router::new()
        .route(
            RECENT_REQUESTS_PATH,
            get(move || async move {
                let page = trace::recent_requests_html(&table.requests());
                answer(200, "text/html; charset=utf-8", page)
            }),
        )
        .route(
            RECENT_REQUESTS_JSON_PATH,
            get(move || async move {
                let rows: Vec<serde_json::Value> =
                    json_table.requests().iter().map(|r| r.to_json()).collect();
                let body = format!("{}\n", serde_json::Value::Array(rows));
                answer(200, "application/json", body)
            }),
        )
}

fn answer(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
