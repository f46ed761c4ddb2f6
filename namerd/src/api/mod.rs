//! namerd's HTTP API (`io.l5d.httpController`): Linkerd's `/api/1`, route
//! for route, plus optional bearer-token auth for writes.

pub(crate) mod all_dtabs;
#[doc(hidden)] // Public for the fuzz target only.
pub mod body;
mod dtabs;
#[doc(hidden)] // Public for the fuzz target only.
pub mod names;
pub(crate) mod trace;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Namerd;
use crate::metrics::HttpStats;

/// The largest request body accepted (a dtab of several thousand dentries).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The naming service.
    pub namerd: Arc<Namerd>,
    /// When set, writes need `Authorization: Bearer <token>`.
    pub write_token: Option<Arc<str>>,
    /// The interface's figures.
    pub stats: Arc<HttpStats>,
    /// Becomes true when namerd stops; open watch streams then end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How large a request's own `dtab` may be (`localDtabLimits:`).
    pub local_dtab_limits: namers::config::LocalDtabLimits,
}

/// The `/api/1` routes. With `Fallback::NotFound` anything else is a
/// counted 404 with an empty body (the interface); with `Fallback::None`
/// there is no fallback, for merging into a server that has its own (the
/// admin's). With `tracing`, each request is a server span ([`trace`]).
pub(crate) fn router(
    state: ApiState,
    max_body_bytes: usize,
    tracing: Option<trace::ApiTracing>,
    fallback: Fallback,
) -> Router {
    let routes = Router::new()
        .route("/api/1/dtabs", get(dtabs::list))
        .route(
            "/api/1/dtabs/{ns}",
            get(dtabs::get)
                .post(dtabs::create)
                .put(dtabs::update)
                .delete(dtabs::delete),
        )
        .route("/api/1/bind/{ns}", get(names::bind))
        .route("/api/1/addr/{ns}", get(names::addr))
        .route("/api/1/resolve/{ns}", get(names::resolve))
        .route("/api/1/delegate/{ns}", get(names::delegate))
        .route(
            "/api/1/delegate",
            get(names::delegate_query).post(names::delegate_body),
        )
        .route("/api/1/bound-names", get(names::bound_names));
    let routes = match fallback {
        Fallback::NotFound => routes.fallback(|| async { StatusCode::NOT_FOUND }),
        Fallback::None => routes,
    };
    let routes = routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    // Outermost, so that a span covers the request's whole time.
    let routes = match tracing {
        Some(tracing) => routes.layer(middleware::from_fn_with_state(
            tracing,
            trace::trace_requests,
        )),
        None => routes,
    };
    routes.with_state(state)
}

/// What the API answers outside its routes.
pub(crate) enum Fallback {
    /// An empty 404, counted as the API's.
    NotFound,
    /// Nothing: the routes are merged into a server with its own.
    None,
}

/// Serves the API on `listener` until the process stops.
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    let stats = state.stats.clone();
    crate::conn::serve(
        listener,
        router(state, DEFAULT_MAX_BODY_BYTES, None, Fallback::NotFound),
        std::future::pending(),
        Some(stats),
        None,
    )
    .await
}

/// Counts every request by route and answer; a watch's request ends with
/// its answer's head, its stream is counted by [`watch::stream`].
async fn count_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let in_flight = state.stats.request(route, request.method());
    let response = next.run(request).await;
    in_flight.answered(response.status().as_u16());
    response
}

/// A refused request: its status and a message saying what to fix.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = error(self.status, self.message);
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A plain-text error response; the body says what to fix.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// Checks the bearer token of a write request, when one is configured.
pub(crate) fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.write_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "writes need an `Authorization: Bearer <token>` header with namerd's write token",
    ))
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
