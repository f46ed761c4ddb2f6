//! `GET /admin/dtabs.json` on namerd's admin server: every namespace's dtab
//! on one stream, for the dashboard. A browser holds at most six
//! connections to a server, so one watch per namespace would leave the
//! page unable to save once it showed five namespaces.
//!
//! Lines, one JSON document each: `{"namespaces": [...]}` whenever the
//! list changes (first of all), then for each namespace
//! `{"namespace", "dtab": [{prefix, dst}...], "etag"}` when its dtab or
//! version changes, `{"namespace", "error"}` when its watch fails. The
//! stream ends when namerd stops.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt as _, stream};
use namers::Activity;
use serde_json::json;

use super::ApiState;
use crate::Namespace;
use crate::metrics::OpenStream;
use crate::store::{DtabWatch, NamespacesWatch};

/// One namespace's watch and the last line sent for it.
struct Watched {
    live: DtabWatch,
    sent: Option<String>,
}

struct AllDtabs {
    list: NamespacesWatch,
    listed: Option<String>,
    namespaces: BTreeMap<Namespace, Watched>,
    queue: VecDeque<String>,
    stopping: tokio::sync::watch::Receiver<bool>,
    first: bool,
    _open: OpenStream,
}

impl AllDtabs {
    /// Queues a line for every change since the last look.
    fn rescan(&mut self, state: &ApiState) {
        if let Activity::Ok(names) = &*self.list.load() {
            let line =
                json!({"namespaces": names.iter().map(Namespace::as_str).collect::<Vec<_>>()})
                    .to_string();
            if self.listed.as_ref() != Some(&line) {
                self.queue.push_back(line.clone());
                self.listed = Some(line);
            }
            self.sync_watches(names, state);
        }
        for (ns, watched) in &mut self.namespaces {
            let line = match &*watched.live.load() {
                Activity::Pending | Activity::Ok(None) => continue,
                Activity::Ok(Some(found)) => json!({
                    "namespace": ns.as_str(),
                    "dtab": found.dtab,
                    "etag": found.version.to_etag(),
                }),
                Activity::Failed(e) => json!({"namespace": ns.as_str(), "error": e.to_string()}),
            }
            .to_string();
            if watched.sent.as_ref() != Some(&line) {
                self.queue.push_back(line.clone());
                watched.sent = Some(line);
            }
        }
    }

    /// Watches exactly the namespaces listed.
    fn sync_watches(&mut self, names: &BTreeSet<Namespace>, state: &ApiState) {
        self.namespaces.retain(|ns, _| names.contains(ns));
        for ns in names {
            if !self.namespaces.contains_key(ns) {
                let live = state.namerd.store().watch(ns);
                self.namespaces
                    .insert(ns.clone(), Watched { live, sent: None });
            }
        }
    }

    /// Waits for any watched value to change; false when namerd stops.
    async fn changed(&mut self) -> bool {
        let mut any: Vec<_> = self
            .namespaces
            .values_mut()
            .map(|w| w.live.changed().boxed())
            .collect();
        any.push(self.list.changed().boxed());
        let stop = self.stopping.wait_for(|stopping| *stopping);
        tokio::select! {
            _ = futures_util::future::select_all(any) => true,
            _ = stop => false,
        }
    }
}

/// The stream described above.
pub(crate) async fn stream_all(State(state): State<ApiState>) -> Response {
    let all = AllDtabs {
        list: state.namerd.store().watch_list(),
        listed: None,
        namespaces: BTreeMap::new(),
        queue: VecDeque::new(),
        stopping: state.stopping.clone(),
        first: true,
        _open: state.stats.stream_opened(),
    };
    let body = stream::unfold((all, state), |(mut all, state)| async move {
        loop {
            if let Some(line) = all.queue.pop_front() {
                let chunk = Bytes::from(format!("{line}\n"));
                return Some((Ok::<_, Infallible>(chunk), (all, state)));
            }
            if !all.first && !all.changed().await {
                return None;
            }
            all.first = false;
            all.rescan(&state);
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
