//! The router's admin server: the dashboard (`/`) and the dtab playground
//! (`/delegator`), liveness, readiness, metrics, the log level, recent
//! requests, the config and clients as JSON, and the delegator that
//! explains how a name resolves. Its connections have the same idle and
//! head timeouts as the routers' servers ([`crate::server::session`]).
//! With `admin.tls` it serves HTTPS only: a connection that does not
//! start a TLS handshake is closed unanswered.

mod dashboard;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router as Routes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dtab::{Dtab, Path};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use namers::tls::{ServerTls, Stream};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::metrics::{Metrics, Telemeters};
use crate::server::session::{self, Activity, SessionLimits, Watched};
use crate::stack::RouterStack;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The routers, for the delegator.
    pub routers: Vec<Arc<RouterStack>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Where Prometheus text is served.
    pub telemeters: Telemeters,
    /// Notified by `POST /admin/shutdown`.
    pub shutdown: Arc<Notify>,
    /// The table of `io.l5d.recentRequests`, when configured.
    pub recent_requests: Option<namers::telemetry::trace::RecentRequests>,
    /// The config file as JSON with its secrets masked (`/config.json`),
    /// when the routers were started from a file.
    pub config: Option<Arc<serde_json::Value>>,
}

/// The admin routes.
pub fn routes(state: AdminState) -> Routes {
    namers::admin_routes::common(
        state.metrics.clone(),
        state.telemeters.clone(),
        state.shutdown.clone(),
    )
    .merge(namers::admin_routes::recent_requests(
        state.recent_requests.clone(),
    ))
    .merge(namers::ui::routes())
    .route(
        "/",
        get(|| async { namers::ui::page("router", "dashboard", "dashboard.js") }),
    )
    .route("/delegator", get(delegator_page))
    .route("/admin/ready", get(ready))
    .route("/admin/dashboard.json", get(dashboard_json))
    .route("/delegator.json", get(delegator))
    .route("/client_state.json", get(client_state))
    .route("/bound-names.json", get(bound_names))
    .route("/config.json", get(config_json))
    .fallback(|| async { StatusCode::NOT_FOUND })
    .with_state(state)
}

fn json_response(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        format!("{value}\n"),
    )
        .into_response()
}

async fn dashboard_json(State(state): State<AdminState>) -> Response {
    json_response(&dashboard::document(&state))
}

/// `GET /bound-names.json`: every bound id the routers hold a client for,
/// as Linkerd listed them.
async fn bound_names(State(state): State<AdminState>) -> Response {
    let mut ids: Vec<String> = state
        .routers
        .iter()
        .flat_map(|router| router.client_states())
        .map(|(id, _)| id.show())
        .collect();
    ids.sort();
    ids.dedup();
    json_response(&serde_json::Value::from(ids))
}

/// `GET /config.json`: the config the routers run, secrets masked.
async fn config_json(State(state): State<AdminState>) -> Response {
    match &state.config {
        Some(config) => json_response(config),
        None => text(
            StatusCode::NOT_FOUND,
            "these routers were not started from a config file".into(),
        ),
    }
}

/// `GET /delegator`: the playground for a browser (which asks for HTML);
/// the delegator's JSON for anything else, so the link in an `l5d-err`
/// serves both a person and `curl`.
async fn delegator_page(
    state: State<AdminState>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        namers::ui::page("router", "dtab playground", "playground.js")
    } else {
        delegator(state, params).await
    }
}

/// The admin server's TLS (`admin.tls`), read from its files and watched
/// for new ones; errors start with `admin.tls: ` and name the file.
pub fn tls(config: &crate::config::AdminConfig) -> Result<Option<Arc<ServerTls>>, String> {
    let tls = config.server_tls()?;
    if let Some(tls) = &tls
        && tokio::runtime::Handle::try_current().is_ok()
    {
        tls.watch();
    }
    Ok(tls)
}

/// Serves `app` on `listener` until `stop` completes, then lets open
/// connections finish their requests. With `tls`, every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    app: Routes,
    stop: impl Future<Output = ()>,
    tls: Option<Arc<ServerTls>>,
) {
    tokio::pin!(stop);
    let limits = SessionLimits::default();
    let service = TowerToHyperService::new(app);
    // Each connection holds a receiver; the server waits for them all.
    let (stopping, stopping_rx) = watch::channel(());
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = service.clone();
        let mut stopping = stopping_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let accepted = tokio::time::Instant::now();
            let stream = match &tls {
                None => Stream::Plain(stream),
                Some(tls) => {
                    let handshake =
                        namers::handshake::accept(tls, stream, namers::handshake::TIMEOUT);
                    tokio::select! {
                        handshake = handshake => match handshake {
                            Ok(stream) => stream,
                            Err(e) => {
                                tracing::debug!(error = %e, "admin: closing a connection");
                                return;
                            }
                        },
                        _ = stopping.changed() => return,
                    }
                }
            };
            let activity = Activity::new(accepted);
            let io = Watched::new(stream, activity.clone());
            let service = session::track(service, activity.clone());
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let stop = async move {
                let _ = stopping.changed().await;
            };
            session::drive(
                connection,
                |connection| connection.graceful_shutdown(),
                &activity,
                &limits,
                stop,
            )
            .await;
        });
    }
    drop(listener);
    drop(stopping_rx);
    stopping.send_replace(());
    stopping.closed().await;
}

/// Every router's clients, by bound id, in Linkerd's shape (`state`,
/// `addresses`) with each endpoint's failure-accrual state and load. An id
/// bound by two routers appears once per router, the second as
/// `<id> (<router>)`.
async fn client_state(State(state): State<AdminState>) -> Response {
    let mut clients = serde_json::Map::new();
    for router in &state.routers {
        for (id, mut client) in router.client_states() {
            client["router"] = serde_json::Value::from(router.label());
            let mut key = id.show();
            if clients.contains_key(&key) {
                key = format!("{key} ({})", router.label());
            }
            clients.insert(key, client);
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        serde_json::Value::Object(clients).to_string(),
    )
        .into_response()
}

/// `GET /admin/ready`: 200 once every router's interpreter has heard from
/// its source, else 503 saying which has not and why.
async fn ready(State(state): State<AdminState>) -> Response {
    let mut waiting = Vec::new();
    for router in &state.routers {
        if let Err(why) = router.naming().ready().await {
            waiting.push(format!("router {}: {why}", router.label()));
        }
    }
    if waiting.is_empty() {
        text(StatusCode::OK, "ready".into())
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, waiting.join("\n"))
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

/// `GET /delegator.json?path=&dtab=&namespace=<router label>`: Linkerd's
/// delegator JSON for the router's dtab plus `dtab`.
async fn delegator(
    State(state): State<AdminState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let router = match params.get("namespace") {
        Some(label) => state.routers.iter().find(|r| r.label() == label),
        None => state.routers.first(),
    };
    let Some(router) = router else {
        let labels: Vec<&str> = state.routers.iter().map(|r| r.label()).collect();
        return text(
            StatusCode::NOT_FOUND,
            format!("no router with that label; routers: {}", labels.join(", ")),
        );
    };
    let Some(path) = params.get("path") else {
        return text(
            StatusCode::BAD_REQUEST,
            "Invalid path: missing the `path` parameter".into(),
        );
    };
    let path = match Path::read(path) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("Invalid path: {e}")),
    };
    let local = match params.get("dtab").map(|d| Dtab::read(d)).transpose() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("Invalid dtab: {e}")),
    };
    let dtab = router.dtab().concat(&local);
    match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        router.naming().delegate(&dtab, &path),
    )
    .await
    {
        Ok(Ok(json)) => {
            let body = format!("{}\n", serde_json::to_string(&json).unwrap_or_default());
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "delegation timed out after 2s".into(),
        ),
    }
}
