//! A request body still arriving on a stream: the connection puts its
//! DATA into an inbox, the body reads it out and gives the window back.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;

use super::wake::Signals;

/// What the connection has put in and the reader not yet taken.
#[derive(Default)]
struct Inbox {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// The stream was reset or the connection lost before the end.
    broken: Option<&'static str>,
    reader: Option<Waker>,
    /// The reader is gone: data from now on is dropped on arrival.
    abandoned: bool,
}

/// The connection's end of an inbox.
pub(crate) struct Sender {
    inbox: Arc<Mutex<Inbox>>,
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
#[error("request body: {0}")]
pub struct Broken(&'static str);

impl Sender {
    /// Puts a DATA payload in; `false` when nobody will read it (its
    /// window is then the connection's to give back at once).
    pub(crate) fn data(&self, data: Bytes) -> bool {
        let mut inbox = self.inbox.lock();
        if inbox.abandoned {
            return false;
        }
        inbox.data.push_back(data);
        wake(&mut inbox);
        true
    }

    /// The body ends, with `trailers` if it has them.
    pub(crate) fn end(&self, trailers: Option<HeaderMap>) {
        let mut inbox = self.inbox.lock();
        inbox.ended = true;
        inbox.trailers = trailers;
        wake(&mut inbox);
    }

    /// The body will not end well.
    pub(crate) fn break_off(&self, why: &'static str) {
        let mut inbox = self.inbox.lock();
        if !inbox.ended {
            inbox.broken = Some(why);
            wake(&mut inbox);
        }
    }
}

fn wake(inbox: &mut Inbox) {
    if let Some(reader) = inbox.reader.take() {
        reader.wake();
    }
}

/// A request body read from its stream as it arrives.
pub struct Inbound {
    inbox: Arc<Mutex<Inbox>>,
    signals: Arc<Signals>,
    stream: u32,
    /// What `content-length` announced, less what has been read.
    remaining: Option<u64>,
}

/// A new inbox for stream `stream`: the connection's end and the body.
pub(crate) fn inbox(stream: u32, signals: Arc<Signals>, length: Option<u64>) -> (Sender, Inbound) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    (
        Sender {
            inbox: inbox.clone(),
        },
        Inbound {
            inbox,
            signals,
            stream,
            remaining: length,
        },
    )
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("stream", &self.stream)
            .finish()
    }
}

impl HttpBody for Inbound {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        let this = &mut *self;
        let mut inbox = this.inbox.lock();
        if let Some(data) = inbox.data.pop_front() {
            drop(inbox);
            if let Some(remaining) = &mut this.remaining {
                *remaining = remaining.saturating_sub(data.len() as u64);
            }
            // Window sizes fit in u32; a DATA frame is smaller still.
            this.signals.consumed(this.stream, data.len() as u32);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(why) = inbox.broken {
            return Poll::Ready(Some(Err(Broken(why))));
        }
        if inbox.ended {
            return Poll::Ready(inbox.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        inbox.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let inbox = self.inbox.lock();
        inbox.ended && inbox.data.is_empty() && inbox.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        let mut inbox = self.inbox.lock();
        inbox.abandoned = true;
        let unread: usize = inbox.data.drain(..).map(|d| d.len()).sum();
        let early = !inbox.ended && inbox.broken.is_none();
        drop(inbox);
        if unread > 0 {
            self.signals.consumed(self.stream, unread as u32);
        }
        if early {
            self.signals.dropped(self.stream);
        }
    }
}

impl Inbound {
    /// When nothing has been read yet and the body has ended: all of it,
    /// as one piece.
    pub(crate) fn take_whole(&self) -> Option<Bytes> {
        let mut inbox = self.inbox.lock();
        if !inbox.ended || inbox.trailers.is_some() || inbox.broken.is_some() {
            return None;
        }
        let data = std::mem::take(&mut inbox.data);
        Some(match data.len() {
            0 => Bytes::new(),
            1 => data.into_iter().next().unwrap_or_default(),
            _ => {
                let mut whole = bytes::BytesMut::with_capacity(data.iter().map(Bytes::len).sum());
                for piece in data {
                    whole.extend_from_slice(&piece);
                }
                whole.freeze()
            }
        })
    }
}
