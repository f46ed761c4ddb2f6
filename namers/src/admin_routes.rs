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

use crate::telemetry::telemeters::{self, Metrics, Telemeters};

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

fn answer(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
