//! Where a request's sender and the connection meet: the answer's head
//! (with its body) or why there is none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use parking_lot::Mutex;

use super::Inbound;
use crate::http2::wake::Signals;

/// Why a request got no answer.
pub enum SendError<B> {
    /// The upstream never processed it (RFC 9113, section 8.7): its stream
    /// was refused, it was above a GOAWAY's last stream, or it was still
    /// waiting for a stream when the connection stopped taking them. The
    /// request comes back when none of it was sent.
    Unprocessed {
        /// What happened.
        why: String,
        /// The connection takes no more requests.
        going_away: bool,
        /// The request, whole (boxed: the error is returned on the hot
        /// path's `Result`, and this variant is its rare case).
        request: Option<Box<Request<B>>>,
    },
    /// It may have been processed.
    Failed(String),
}

impl<B> SendError<B> {
    /// The same error for another request the connection did not take.
    pub(super) fn again(&self, request: Option<Box<Request<B>>>) -> SendError<B> {
        let (why, going_away) = match self {
            SendError::Unprocessed {
                why, going_away, ..
            } => (why.clone(), *going_away),
            SendError::Failed(why) => (why.clone(), true),
        };
        SendError::Unprocessed {
            why,
            going_away,
            request,
        }
    }
}

impl<B> std::fmt::Debug for SendError<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unprocessed {
                why, going_away, ..
            } => f
                .debug_struct("Unprocessed")
                .field("why", why)
                .field("going_away", going_away)
                .finish(),
            SendError::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
        }
    }
}

type Outcome<B> = Result<Response<Inbound>, SendError<B>>;

pub(super) struct Exchange<B> {
    state: Mutex<State<B>>,
}

struct State<B> {
    outcome: Option<Outcome<B>>,
    waker: Option<Waker>,
    /// The stream carrying it, once opened.
    stream: Option<u32>,
    /// Nobody waits for the answer any more.
    abandoned: bool,
    /// The outcome has been taken.
    done: bool,
}

impl<B> Default for Exchange<B> {
    fn default() -> Self {
        Exchange {
            state: Mutex::new(State {
                outcome: None,
                waker: None,
                stream: None,
                abandoned: false,
                done: false,
            }),
        }
    }
}

impl<B> Exchange<B> {
    /// Gives the outcome, unless one was given already.
    pub(super) fn answer(&self, outcome: Outcome<B>) {
        let mut state = self.state.lock();
        if state.outcome.is_some() || state.done {
            return;
        }
        state.outcome = Some(outcome);
        if let Some(waker) = state.waker.take() {
            drop(state);
            waker.wake();
        }
    }

    /// Whether the answer is still awaited.
    pub(super) fn is_abandoned(&self) -> bool {
        self.state.lock().abandoned
    }

    /// Its stream has been opened.
    pub(super) fn opened(&self, stream: u32) {
        self.state.lock().stream = Some(stream);
    }
}

/// The answer to a request sent with [`super::SendRequest::send`].
pub struct ResponseFuture<B> {
    exchange: Arc<Exchange<B>>,
    signals: Arc<Signals>,
}

impl<B> ResponseFuture<B> {
    pub(super) fn new(exchange: Arc<Exchange<B>>, signals: Arc<Signals>) -> Self {
        ResponseFuture { exchange, signals }
    }
}

impl<B> Future for ResponseFuture<B> {
    type Output = Outcome<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<B>> {
        let mut state = self.exchange.state.lock();
        match state.outcome.take() {
            Some(outcome) => {
                state.done = true;
                Poll::Ready(outcome)
            }
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<B> Drop for ResponseFuture<B> {
    fn drop(&mut self) {
        let mut state = self.exchange.state.lock();
        if state.done {
            return;
        }
        state.abandoned = true;
        // An answer that came meanwhile is dropped with its body, which
        // resets the stream; one still to come needs the reset now.
        let outcome = state.outcome.take();
        let stream = state.stream.filter(|_| outcome.is_none());
        drop(state);
        drop(outcome);
        if let Some(stream) = stream {
            self.signals.dropped(stream);
        }
    }
}
