//! `/api/1/bind`, `/addr`, `/resolve`, `/delegate` and `/bound-names`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dtab::{Dtab, NameTree, Path};
use namers::{Activity, Addr, Bound, Live, NamingError, Publisher, json};

use super::watch::{self, Frame, wants_watch};
use super::{ApiError, ApiState, error};
use crate::{DelegateError, Namespace};

type Params = Query<HashMap<String, String>>;

/// How long a one-shot request waits for a binding to stop being pending.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a delegation may take (Linkerd answers 503 after 2 s).
const DELEGATE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a watch or a resolution with a `dtab` parameter waits for the
/// binding's first answer before it starts, so that a dtab over the binding
/// limits is refused with a 400 instead of a stream that fails at once.
/// Pending answers are never streamed, so waiting holds back no data.
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(1);

fn json_response(doc: &serde_json::Value) -> Response {
    let body = format!("{}\n", serde_json::to_string(doc).unwrap_or_default());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The `path` parameter, required.
fn path_param(params: &HashMap<String, String>) -> Result<Path, ApiError> {
    let Some(text) = params.get("path") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid path: missing the `path` query parameter",
        ));
    };
    Path::read(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Invalid path: {text} / {e}"),
        )
    })
}

/// The optional `dtab` parameter, appended to the stored dtab.
fn dtab_param(state: &ApiState, params: &HashMap<String, String>) -> Result<Dtab, ApiError> {
    local_dtab(state, params.get("dtab").map(String::as_str))
}

/// A request's own dtab, within `localDtabLimits` (checked before it is
/// parsed, so a huge one costs nothing).
fn local_dtab(state: &ApiState, text: Option<&str>) -> Result<Dtab, ApiError> {
    match text {
        None => Ok(Dtab::empty()),
        Some(text) => state
            .local_dtab_limits
            .read(text, "localDtabLimits")
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid dtab: {e}"))),
    }
}

/// The namespace, which must exist.
async fn existing_namespace(state: &ApiState, name: &str) -> Result<Namespace, ApiError> {
    let ns =
        Namespace::new(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    match state.namerd.store().get(&ns).await {
        Ok(Some(_)) => Ok(ns),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("namespace {ns} does not exist"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// Waits until `live` is no longer pending, or the timeout.
async fn settled<T>(live: &Live<T>, is_pending: impl Fn(&T) -> bool) -> Option<std::sync::Arc<T>> {
    settled_within(SETTLE_TIMEOUT, live, is_pending).await
}

/// Waits until `live` is no longer pending, or `limit`.
async fn settled_within<T>(
    limit: Duration,
    live: &Live<T>,
    is_pending: impl Fn(&T) -> bool,
) -> Option<std::sync::Arc<T>> {
    let mut live = live.clone();
    tokio::time::timeout(limit, async {
        loop {
            let current = live.load();
            if !is_pending(&current) {
                return current;
            }
            live.changed().await;
        }
    })
    .await
    .ok()
}

/// The 400 for a request whose own `dtab` makes binding go over the limits
/// of the interpreter (`bindingLimits`): the same request would fail again.
fn over_budget(e: &NamingError) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("{e}, with the request's dtab"),
    )
}

/// The binding's failure when the request's own `local` dtab made it go
/// over the binding limits, waiting up to [`FIRST_ANSWER_WAIT`] for a first
/// answer. Always `None` without a local dtab: then the stored dtab is to
/// blame, not the request.
async fn local_over_budget(
    binding: &Live<Activity<NameTree<Bound>>>,
    local: &Dtab,
) -> Option<NamingError> {
    if local.is_empty() {
        return None;
    }
    let first = settled_within(FIRST_ANSWER_WAIT, binding, Activity::is_pending).await?;
    match &*first {
        Activity::Failed(e @ NamingError::OverBudget { .. }) => Some(e.clone()),
        _ => None,
    }
}

fn bound_tree_frame(state: &Activity<NameTree<Bound>>) -> Frame {
    match state {
        Activity::Pending => Frame::Skip,
        Activity::Ok(tree) => Frame::Json(json::bound_tree(tree).to_string()),
        Activity::Failed(e) => Frame::End(e.to_string()),
    }
}

/// The frames of a bind watch. The JSON carries each leaf's address, so a
/// new frame is due when the tree changes *or* an address in it does.
fn rendered_tree(mut binding: Live<Activity<NameTree<Bound>>>) -> Live<Frame> {
    let publisher = Publisher::new(bound_tree_frame(&binding.load()));
    let rendered = publisher.subscribe();
    tokio::spawn(async move {
        loop {
            binding.mark_seen();
            let state = binding.load();
            // Fresh handles on the leaves' addresses count every change
            // their source ever saw as unseen: marked seen before the frame
            // is rendered, they wake only for a change the frame missed
            // (unmarked, they woke at once, and the loop spun for as long
            // as the watch stayed open).
            let mut addrs: Vec<Live<Addr>> = match &*state {
                Activity::Ok(tree) => tree
                    .eval()
                    .unwrap_or_default()
                    .iter()
                    .map(|b| {
                        let mut addr = b.addr.clone();
                        addr.mark_seen();
                        addr
                    })
                    .collect(),
                _ => Vec::new(),
            };
            publisher.publish(bound_tree_frame(&state));
            let any_addr = async {
                if addrs.is_empty() {
                    std::future::pending::<()>().await;
                }
                futures_util::future::select_all(addrs.iter_mut().map(|a| Box::pin(a.changed())))
                    .await;
            };
            tokio::select! {
                () = publisher.closed() => return,
                () = binding.changed() => {}
                () = any_addr => {}
            }
        }
    });
    rendered
}

fn addr_frame(addr: &Addr) -> Frame {
    match addr {
        Addr::Pending => Frame::Skip,
        other => Frame::Json(json::addr(other).to_string()),
    }
}

/// `GET /api/1/bind/{ns}?path=&dtab=&watch=`: the bound tree.
pub(crate) async fn bind(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
) -> Response {
    let (ns, path, local) = match (
        existing_namespace(&state, &name).await,
        path_param(&params),
        dtab_param(&state, &params),
    ) {
        (Ok(ns), Ok(path), Ok(local)) => (ns, path, local),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r.into_response(),
    };
    let binding = state.namerd.bind(&ns, &path, &local);
    if let Some(e) = local_over_budget(&binding, &local).await {
        return over_budget(&e);
    }
    if wants_watch(params.get("watch")) {
        return watch::stream(rendered_tree(binding), &state, Clone::clone);
    }
    match settled(&binding, Activity::is_pending).await.as_deref() {
        Some(Activity::Ok(tree)) => json_response(&json::bound_tree(tree)),
        Some(Activity::Failed(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("binding {path} is still pending"),
        ),
    }
}

/// `GET /api/1/addr/{ns}?path=<id>&watch=`: the address of a bound id.
pub(crate) async fn addr(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
) -> Response {
    if let Err(e) = Namespace::new(&name) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let id = match path_param(&params) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    addr_response(&state, state.namerd.addr(&id), &params).await
}

/// `GET /api/1/resolve/{ns}?path=&dtab=&watch=`: one address for a name.
pub(crate) async fn resolve(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
) -> Response {
    let (ns, path, local) = match (
        Namespace::new(&name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string())),
        path_param(&params),
        dtab_param(&state, &params),
    ) {
        (Ok(ns), Ok(path), Ok(local)) => (ns, path, local),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r.into_response(),
    };
    let addr = state.namerd.resolve(&ns, &path, &local);
    // The address carries a binding failure only as text; the binding
    // (the resolution's own, shared) says whether the request is to blame.
    if !local.is_empty() {
        let binding = state.namerd.bind(&ns, &path, &local);
        if let Some(e) = local_over_budget(&binding, &local).await {
            return over_budget(&e);
        }
    }
    addr_response(&state, addr, &params).await
}

async fn addr_response(
    state: &ApiState,
    addr: Live<Addr>,
    params: &HashMap<String, String>,
) -> Response {
    if wants_watch(params.get("watch")) {
        return watch::stream(addr, state, addr_frame);
    }
    match settled(&addr, |a| matches!(a, Addr::Pending)).await {
        Some(current) => json_response(&json::addr(&current)),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the address is still pending",
        ),
    }
}

/// `GET /api/1/delegate/{ns}?path=&dtab=`: the explanation tree.
pub(crate) async fn delegate(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
) -> Response {
    delegate_in(
        &state,
        &name,
        params.get("path").map(String::as_str),
        params.get("dtab").map(String::as_str),
    )
    .await
}

/// `GET /api/1/delegate?namespace=&path=&dtab=`.
pub(crate) async fn delegate_query(
    State(state): State<ApiState>,
    Query(params): Params,
) -> Response {
    let ns = params.get("namespace").map_or("default", String::as_str);
    delegate_in(
        &state,
        ns,
        params.get("path").map(String::as_str),
        params.get("dtab").map(String::as_str),
    )
    .await
}

/// The JSON body of `POST /api/1/delegate`.
#[derive(serde::Deserialize)]
pub struct DelegateRequest {
    pub namespace: Option<String>,
    pub path: Option<String>,
    pub dtab: Option<String>,
}

/// `POST /api/1/delegate` with `{"namespace","path","dtab"}`.
pub(crate) async fn delegate_body(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the delegation request as application/json",
        );
    }
    let request: DelegateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid delegation request: {e}"),
            );
        }
    };
    let ns = request.namespace.as_deref().unwrap_or("default");
    delegate_in(&state, ns, request.path.as_deref(), request.dtab.as_deref()).await
}

async fn delegate_in(
    state: &ApiState,
    name: &str,
    path: Option<&str>,
    dtab: Option<&str>,
) -> Response {
    let ns = match Namespace::new(name) {
        Ok(ns) => ns,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(path_text) = path else {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid path: missing the `path` parameter",
        );
    };
    let path = match Path::read(path_text) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Invalid path: {e}")),
    };
    let local = match local_dtab(state, dtab) {
        Ok(local) => local,
        Err(e) => return e.into_response(),
    };
    match tokio::time::timeout(DELEGATE_TIMEOUT, state.namerd.delegate(&ns, &path, &local)).await {
        Ok(Ok(tree)) => json_response(&json::delegate_tree(&tree)),
        Ok(Err(DelegateError::Naming(e @ NamingError::OverBudget { .. }))) if !local.is_empty() => {
            over_budget(&e)
        }
        Ok(Err(DelegateError::Naming(e))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Ok(Err(DelegateError::Store(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "delegation of {path_text} timed out after {DELEGATE_TIMEOUT:?}: a namer has not answered"
            ),
        ),
    }
}

/// `GET /api/1/bound-names[?watch=true]`: ids bound by live bindings.
pub(crate) async fn bound_names(State(state): State<ApiState>, Query(params): Params) -> Response {
    let names = state.namerd.bound_names();
    if wants_watch(params.get("watch")) {
        return watch::stream(names, &state, |set| {
            Frame::Json(serde_json::to_string(set).unwrap_or_default())
        });
    }
    json_response(&serde_json::json!(names.load().iter().collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dtab::{NameTree, Path};
    use namers::{Activity, Addr, Bound, Publisher};

    use super::*;

    fn addr(port: u16) -> Addr {
        Addr::bound(vec![namers::Endpoint::new(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            port,
        )))])
    }

    /// A bind watch renders a new frame once per address change, and then
    /// waits: it does not wake again until something changes.
    #[tokio::test]
    async fn a_bind_watch_renders_each_address_change_once() {
        let endpoints = Publisher::new(addr(1));
        let leaf = Bound::new(
            Path::read("/#/io.l5d.fs/web").unwrap(),
            Path::empty(),
            endpoints.subscribe(),
        );
        let tree = Publisher::new(Activity::Ok(NameTree::Leaf(leaf)));
        let mut rendered = rendered_tree(tree.subscribe());
        for port in [2, 3] {
            endpoints.publish(addr(port));
            tokio::time::timeout(Duration::from_secs(5), rendered.changed())
                .await
                .unwrap();
            match &*rendered.load() {
                Frame::Json(doc) => assert!(doc.contains(&format!("\"port\":{port}")), "{doc}"),
                _ => panic!("no frame"),
            }
            // Nothing changed since: no new frame comes.
            let quiet = tokio::time::timeout(Duration::from_millis(100), rendered.changed()).await;
            assert!(quiet.is_err(), "a frame without a change");
        }
    }
}
