//! namerd's admin server: liveness and metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::Namerd;
use crate::metrics::Metrics;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The naming service, for gauges.
    pub namerd: Arc<Namerd>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Notified by `POST /admin/shutdown`. Only the main task waits on it,
    /// and the permit is kept if it is not waiting yet.
    pub shutdown_requested: Arc<Notify>,
}

/// `/admin/ping`, `/admin/metrics/prometheus` and `/admin/shutdown`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/ping", get(|| async { "pong" }))
        .route("/admin/metrics/prometheus", get(prometheus))
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

async fn prometheus(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.namerd),
    )
}
