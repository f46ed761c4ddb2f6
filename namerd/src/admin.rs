//! namerd's admin server: liveness, readiness, metrics and the log level.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use namers::telemetry::telemeters::{self, Metrics, Telemeters};
use tokio::sync::Notify;

use crate::Namerd;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The naming service, for readiness.
    pub namerd: Arc<Namerd>,
    /// The metrics tree.
    pub metrics: Metrics,
    /// Where the tree is served, and how.
    pub telemeters: Telemeters,
    /// Notified by `POST /admin/shutdown`. Only the main task waits on it,
    /// and the permit is kept if it is not waiting yet.
    pub shutdown_requested: Arc<Notify>,
}

/// The admin paths besides the metrics endpoints, which a telemeter's
/// `path` may not take.
pub const PATHS: &[&str] = &[
    "/admin/ping",
    "/admin/ready",
    "/logging.json",
    "/admin/logging",
    "/admin/shutdown",
];

/// How long `/admin/ready`'s question to the store may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/admin/ping`, `/admin/ready`, the metrics ([`Telemeters::paths`]:
/// `/admin/metrics.json`, `/admin/metrics/prometheus` and the
/// telemeters'), the log level (`/logging.json`, `/admin/logging`) and
/// `/admin/shutdown`.
pub fn router(state: AdminState) -> Router {
    let mut routes = Router::new();
    for path in state.telemeters.paths() {
        routes = routes.route(&path, get(metrics));
    }
    routes
        .route("/admin/ping", get(|| async { "pong" }))
        .route("/admin/ready", get(ready))
        .route("/logging.json", any(logging))
        .route("/admin/logging", any(logging))
        .route(
            "/admin/shutdown",
            post(|State(state): State<AdminState>| async move {
                state.shutdown_requested.notify_one();
                "shutting down\n"
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// The metrics endpoints ([`telemeters::admin`]).
async fn metrics(
    State(state): State<AdminState>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match telemeters::admin(&state.metrics, &state.telemeters, uri.path(), &params, host) {
        Some((status, content_type, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /admin/ready`: 200 when the store answers (the namers are built
/// before namerd serves at all), else 503 with the store's error.
async fn ready(State(state): State<AdminState>) -> Response {
    let listed = tokio::time::timeout(READY_PROBE_TIMEOUT, state.namerd.store().list()).await;
    match listed {
        Ok(Ok(_)) => text(StatusCode::OK, "ready".into()),
        Ok(Err(e)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the dtab store is unreachable: {e}"),
        ),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the dtab store did not answer within {READY_PROBE_TIMEOUT:?}"),
        ),
    }
}

/// The log level endpoints ([`namers::logging::admin`]).
async fn logging(
    method: Method,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let (status, content_type, body) = namers::logging::admin(&method, uri.path(), &params, &body);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}
