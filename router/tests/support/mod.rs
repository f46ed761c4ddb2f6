//! What the router's end-to-end tests share: backends that report what they
//! received, an `io.l5d.fs` directory, a router started from YAML text, and
//! an HTTP client that collects whole answers.
//!
//! Every wait is bounded: a test that would hang fails with a message that
//! says what it was waiting for.

// Each test file uses its own part of this module.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Frame;
use tokio::sync::mpsc;

mod backend;
mod client;
mod raw;
mod routers;

// Not every test file uses every part.
#[allow(unused_imports)]
pub use backend::*;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use routers::*;

/// How long any single step of a test may take before the test fails.
/// Generous, for debug builds on a busy machine.
pub const STEP: Duration = Duration::from_secs(10);

/// Runs `future`, failing the test if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Bodies

/// The body type of test requests and backend responses.
pub type Body = BoxBody<Bytes, Infallible>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().boxed()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body fed frame by frame through the returned sender; it ends when the
/// sender is dropped. A capacity of 1 means a sender that gets ahead of the
/// reader waits, which is what the back-pressure tests rely on.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Frame<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChannelBody { rx }.boxed())
}

struct ChannelBody {
    rx: mpsc::Receiver<Frame<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}
