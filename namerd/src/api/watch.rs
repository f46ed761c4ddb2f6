//! Streaming watches: `?watch=true` answers with a chunked body that stays
//! open and carries one JSON document per line each time the value changes.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use namers::Live;

use super::ApiState;
use crate::metrics::OpenStream;

/// What one state of a watched value becomes on the wire.
#[derive(Clone)]
pub(crate) enum Frame {
    /// Nothing yet (pending values are not sent).
    Skip,
    /// A JSON document.
    Json(String),
    /// An error: its message is written and the stream ends.
    End(String),
}

/// Whether a `watch` query parameter asks for a stream.
pub(crate) fn wants_watch(value: Option<&String>) -> bool {
    matches!(value.map(String::as_str), Some("true" | "1"))
}

/// A streaming response of `live`'s values, rendered by `render`, with
/// consecutive identical documents sent once. It ends when namerd stops,
/// and is counted as an open stream until its body is dropped.
pub(crate) fn stream<T, F>(live: Live<T>, api: &ApiState, render: F) -> Response
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Frame + Send + 'static,
{
    struct State<T, F> {
        live: Live<T>,
        stopping: tokio::sync::watch::Receiver<bool>,
        render: F,
        last: Option<String>,
        first: bool,
        ended: bool,
        /// Dropped with the body, however it ends.
        _open: OpenStream,
    }
    let state = State {
        live,
        stopping: api.stopping.clone(),
        render,
        last: None,
        first: true,
        ended: false,
        _open: api.stats.stream_opened(),
    };
    let body = stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        loop {
            if !s.first {
                // namerd is stopping: end the stream so clients reconnect
                // elsewhere instead of holding a dead connection.
                let stop = s.stopping.wait_for(|stopping| *stopping);
                tokio::select! {
                    () = s.live.changed() => {}
                    _ = stop => return None,
                }
            }
            s.first = false;
            match (s.render)(&s.live.load()) {
                Frame::Skip => continue,
                Frame::Json(doc) if s.last.as_ref() == Some(&doc) => continue,
                Frame::Json(doc) => {
                    let line = Bytes::from(format!("{doc}\n"));
                    s.last = Some(doc);
                    return Some((Ok::<_, Infallible>(line), s));
                }
                Frame::End(message) => {
                    s.ended = true;
                    return Some((Ok(Bytes::from(format!("{message}\n"))), s));
                }
            }
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
