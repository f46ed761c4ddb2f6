//! namerd's admin server: the dashboard (`/`: namespaces, their dtabs
//! edited in place, and the playground at `/delegator`), liveness,
//! readiness, metrics, the log level and recent API requests. The
//! dashboard talks to namerd's own `/api/1`, served here too.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use namers::telemetry::telemeters::{Metrics, Telemeters};
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
    /// The table of `io.l5d.recentRequests`, when configured.
    pub recent_requests: Option<namers::telemetry::trace::RecentRequests>,
    /// `/api/1` for the dashboard, with the first `io.l5d.httpController`'s
    /// `writeToken` (none without one).
    pub api: crate::api::ApiState,
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
    let api = crate::api::router(
        state.api.clone(),
        crate::api::DEFAULT_MAX_BODY_BYTES,
        None,
        crate::api::Fallback::None,
    )
    .merge(
        Router::new()
            .route("/admin/dtabs.json", get(crate::api::all_dtabs::stream_all))
            .with_state(state.api.clone()),
    );
    namers::admin_routes::common(
        state.metrics.clone(),
        state.telemeters.clone(),
        state.shutdown_requested.clone(),
    )
    .merge(namers::admin_routes::recent_requests(
        state.recent_requests.clone(),
    ))
    .merge(namers::ui::routes())
    .route(
        "/",
        get(|| async { namers::ui::page("namerd", "namespaces", "namerd.js") }),
    )
    .route(
        "/delegator",
        get(|| async { namers::ui::page("namerd", "dtab playground", "playground.js") }),
    )
    .route("/admin/ready", get(ready))
    .fallback(|| async { StatusCode::NOT_FOUND })
    .with_state(state)
    .merge(api)
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

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}
