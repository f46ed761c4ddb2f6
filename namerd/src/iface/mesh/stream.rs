//! A gRPC response stream that follows a live value: the current value
//! once it is not pending, then every change, each sent once.

use std::pin::Pin;

use futures_util::Stream;
use namers::Live;
use tonic::Status;

use super::metrics::OpenStream;

/// What a streaming method returns.
pub(crate) type MeshStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// What one state of a live value becomes on a stream.
pub(crate) enum Step<M> {
    /// Nothing yet (pending values are not sent).
    Skip,
    /// A message.
    Send(M),
    /// The stream ends with this status.
    End(Status),
}

/// The status a stream ends with when namerd stops: routers reconnect,
/// to this namerd once it is back or to another one.
pub(crate) fn stopping_status() -> Status {
    Status::unavailable("namerd is stopping")
}

/// Follows `live`, rendering each state with `render`; a message equal to
/// the last one sent is not sent again. Ends when `render` says so or when
/// `stopping` turns true, and counts as an open stream until dropped.
pub(crate) fn follow<T, M, F>(
    live: Live<T>,
    stopping: tokio::sync::watch::Receiver<bool>,
    open: OpenStream,
    render: F,
) -> MeshStream<M>
where
    T: Send + Sync + 'static,
    M: PartialEq + Clone + Send + 'static,
    F: FnMut(&T) -> Step<M> + Send + 'static,
{
    struct State<T, M, F> {
        live: Live<T>,
        stopping: tokio::sync::watch::Receiver<bool>,
        render: F,
        last: Option<M>,
        first: bool,
        ended: bool,
        _open: OpenStream,
    }
    let state = State {
        live,
        stopping,
        render,
        last: None,
        first: true,
        ended: false,
        _open: open,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        loop {
            if s.first {
                s.first = false;
                if *s.stopping.borrow() {
                    s.ended = true;
                    return Some((Err(stopping_status()), s));
                }
            } else {
                let stop = s.stopping.wait_for(|stopping| *stopping);
                let stopped = tokio::select! {
                    () = s.live.changed() => false,
                    _ = stop => true,
                };
                if stopped {
                    s.ended = true;
                    return Some((Err(stopping_status()), s));
                }
            }
            match (s.render)(&s.live.load()) {
                Step::Skip => continue,
                Step::Send(m) if s.last.as_ref() == Some(&m) => continue,
                Step::Send(m) => {
                    s.last = Some(m.clone());
                    return Some((Ok(m), s));
                }
                Step::End(status) => {
                    s.ended = true;
                    return Some((Err(status), s));
                }
            }
        }
    }))
}
