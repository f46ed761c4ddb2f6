//! The watch side of the fake: one task per watch request, streaming the
//! changes after the requested resource version as JSON lines.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{Body, Change, Command, Query, Resource, Shared, in_scope, respond};

/// Counts a watch stream as open for as long as it is served.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) fn respond_watch(
    shared: Arc<Shared>,
    namespace: String,
    resource: Resource,
    query: Query,
) -> Response<Body> {
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let open = OpenWatch(shared.clone());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream_changes(open, tx, namespace, resource, query));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    respond(StatusCode::OK, BodyExt::boxed(StreamBody::new(frames)))
}

/// Writes the changes a watch asked for until it ends, the client goes, or
/// a test control ends it.
async fn stream_changes(
    open: OpenWatch,
    tx: mpsc::Sender<Bytes>,
    namespace: String,
    resource: Resource,
    query: Query,
) {
    let shared = open.0.clone();
    let mut changes = shared.changes.subscribe();
    let mut commands = shared.commands.subscribe();
    let timeout = tokio::time::sleep(query.timeout.unwrap_or(Duration::from_secs(1800)));
    tokio::pin!(timeout);
    let gone = json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410,
    }});
    let mut initial = Vec::new();
    let mut seen = {
        let state = shared.lock();
        match query.resource_version {
            // No version, or 0: the current state as ADDED events first.
            None | Some(0) => {
                for ((r, ns, name), stored) in &state.objects {
                    if *r == resource
                        && in_scope(&namespace, ns)
                        && query.selects(name, &stored.labels)
                    {
                        initial.push(line(&json!({"type": "ADDED", "object": stored.object})));
                    }
                }
                state.version
            }
            Some(v) if v < state.compacted => {
                initial.push(line(&gone));
                0
            }
            Some(v) => v,
        }
    };
    for event in initial {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    if seen == 0 {
        // Told the client its version is gone.
        return;
    }
    let watch = Watch {
        shared: &shared,
        tx: &tx,
        namespace: &namespace,
        resource,
        query: &query,
    };
    loop {
        changes.borrow_and_update();
        let Some(sent) = watch.send_changes(seen).await else {
            return;
        };
        seen = sent;
        tokio::select! {
            _ = changes.changed() => {}
            command = commands.recv() => match command {
                Ok(Command::End) | Err(broadcast::error::RecvError::Closed) => return,
                Ok(Command::Expire) => {
                    let _ = tx.send(line(&gone)).await;
                    return;
                }
                Ok(Command::Bookmark) if query.bookmarks => {
                    // A bookmark promises that every change up to its
                    // version was sent: send those not sent yet first.
                    let Some(sent) = watch.send_changes(seen).await else {
                        return;
                    };
                    seen = sent;
                    let event = json!({"type": "BOOKMARK", "object": {
                        "kind": resource.kind(), "apiVersion": resource.api_version(),
                        "metadata": {"resourceVersion": seen.to_string()},
                    }});
                    if tx.send(line(&event)).await.is_err() {
                        return;
                    }
                }
                Ok(Command::Bookmark) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            () = tx.closed() => return,
            () = &mut timeout => return,
        }
    }
}

/// What one watch streams, and to whom.
struct Watch<'a> {
    shared: &'a Shared,
    tx: &'a mpsc::Sender<Bytes>,
    namespace: &'a str,
    resource: Resource,
    query: &'a Query,
}

impl Watch<'_> {
    /// Sends the changes after `seen` that this watch selects. Returns the
    /// version up to which every change has been sent, or `None` once the
    /// client is gone.
    async fn send_changes(&self, seen: u64) -> Option<u64> {
        let (pending, version) = {
            let state = self.shared.lock();
            let pending: Vec<Change> = state
                .history
                .iter()
                .filter(|c| c.version > seen)
                .cloned()
                .collect();
            (pending, state.version)
        };
        for change in pending {
            let ours = change.resource == self.resource
                && in_scope(self.namespace, &change.namespace)
                && self.query.selects(&change.name, &change.labels);
            if ours {
                let event = json!({"type": change.kind, "object": change.object});
                self.tx.send(line(&event)).await.ok()?;
            }
        }
        Some(version.max(seen))
    }
}

fn line(event: &Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}
