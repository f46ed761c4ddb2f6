//! `/api/1/dtabs`: listing, reading, creating, updating and deleting dtabs.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use namers::Activity;

use super::body::dtab_from_body;
use super::watch::{self, Frame, wants_watch};
use super::{ApiError, ApiState, authorize, error};
use crate::Namespace;
use crate::store::{StoreError, Version, VersionedDtab};

type Params = Query<HashMap<String, String>>;

fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"unserialisable: {e}\""))
}

fn namespace(name: &str) -> Result<Namespace, ApiError> {
    Namespace::new(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

fn store_failure(e: &StoreError) -> Response {
    let status = match e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::AlreadyExists(_) => StatusCode::CONFLICT,
        StoreError::VersionMismatch(_) => StatusCode::PRECONDITION_FAILED,
        StoreError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// `GET /api/1/dtabs[?watch=true]`: the namespaces, sorted.
pub(crate) async fn list(State(state): State<ApiState>, Query(params): Params) -> Response {
    let store = state.namerd.store();
    if wants_watch(params.get("watch")) {
        return watch::stream(store.watch_list(), &state, |names| match names {
            Activity::Pending => Frame::Skip,
            Activity::Ok(names) => Frame::Json(json_line(
                &names.iter().map(Namespace::as_str).collect::<Vec<_>>(),
            )),
            Activity::Failed(e) => Frame::End(e.to_string()),
        });
    }
    match store.list().await {
        Ok(names) => {
            let names: Vec<&str> = names.iter().map(Namespace::as_str).collect();
            json_response(StatusCode::OK, json_line(&names))
        }
        Err(e) => store_failure(&e),
    }
}

fn json_response(status: StatusCode, doc: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{doc}\n"),
    )
        .into_response()
}

/// Whether the client asked for the dtab text form.
fn wants_text(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/dtab") || accept.contains("text/plain"))
}

/// `GET|HEAD /api/1/dtabs/{ns}[?watch=true]`: the dtab and its ETag.
pub(crate) async fn get(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let ns = match namespace(&name) {
        Ok(ns) => ns,
        Err(r) => return r.into_response(),
    };
    let store = state.namerd.store();
    let found = match store.get(&ns).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("namespace {ns} does not exist"),
            );
        }
        Err(e) => return store_failure(&e),
    };
    if wants_watch(params.get("watch")) {
        let deleted = format!("namespace {ns} was deleted");
        return watch::stream(store.watch(&ns), &state, move |state| match state {
            Activity::Pending => Frame::Skip,
            Activity::Ok(Some(d)) => Frame::Json(json_line(&d.dtab)),
            Activity::Ok(None) => Frame::End(deleted.clone()),
            Activity::Failed(e) => Frame::End(e.to_string()),
        });
    }
    dtab_response(&found, wants_text(&headers))
}

fn dtab_response(found: &VersionedDtab, text: bool) -> Response {
    let (content_type, body) = if text {
        ("application/dtab", format!("{}\n", found.dtab.show()))
    } else {
        ("application/json", format!("{}\n", json_line(&found.dtab)))
    };
    let mut response =
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Ok(etag) = HeaderValue::from_str(&found.version.to_etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// `POST /api/1/dtabs/{ns}`: creates a namespace (409 if it exists).
pub(crate) async fn create(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r.into_response();
    }
    let ns = match namespace(&name) {
        Ok(ns) => ns,
        Err(r) => return r.into_response(),
    };
    let dtab = match dtab_from_body(&headers, &body) {
        Ok(dtab) => dtab,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message()),
    };
    written(state.namerd.store().create(&ns, &dtab).await)
}

/// `PUT /api/1/dtabs/{ns}`: with `If-Match`, a compare-and-set (412 on a
/// mismatch, 404 if missing); without it, creates or replaces.
pub(crate) async fn update(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r.into_response();
    }
    let ns = match namespace(&name) {
        Ok(ns) => ns,
        Err(r) => return r.into_response(),
    };
    let dtab = match dtab_from_body(&headers, &body) {
        Ok(dtab) => dtab,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message()),
    };
    let store = state.namerd.store();
    let result = match headers.get(header::IF_MATCH) {
        Some(etag) => {
            let Some(version) = etag.to_str().ok().and_then(Version::from_etag) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "If-Match must be an ETag returned by namerd",
                );
            };
            store.update(&ns, &dtab, &version).await
        }
        None => store.put(&ns, &dtab).await,
    };
    written(result)
}

/// `DELETE /api/1/dtabs/{ns}`.
pub(crate) async fn delete(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r.into_response();
    }
    let ns = match namespace(&name) {
        Ok(ns) => ns,
        Err(r) => return r.into_response(),
    };
    match state.namerd.store().delete(&ns).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_failure(&e),
    }
}

/// 204 with the new version as ETag, or the store's error.
fn written(result: Result<Version, StoreError>) -> Response {
    match result {
        Ok(version) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Ok(etag) = HeaderValue::from_str(&version.to_etag()) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(e) => store_failure(&e),
    }
}
