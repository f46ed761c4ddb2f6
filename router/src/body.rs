//! The body type the proxy sends and answers with: a body streamed from the
//! other side as it is, or a small body of our own (errors).
//!
//! It is an enum rather than a boxed trait object so that proxying a
//! request costs no allocation for its bodies. An upstream response body
//! also carries the [`Lease`] of the endpoint it came from: the in-flight
//! count is held until the body is done, and the HTTP/1 connection goes
//! back to its pool once the body has been read to the end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::client::balance::{Outcome, Picked};
use crate::endpoint::L5D_SUCCESS_CLASS;
use crate::endpoint::h1_direct::DirectBody;
use crate::endpoint::h1_pool::Reusable;
use crate::http2::server::Inbound;
use crate::policy::classifier::RequestFacts;
use crate::service::config::ServicePolicy;

/// What classifies an answer once its trailers arrive.
pub struct LateClass {
    /// The service's policy, whose classifier judges the answer.
    pub policy: Arc<ServicePolicy>,
    /// The request, as the classifier sees it.
    pub facts: RequestFacts,
    /// The answer's status.
    pub status: http::StatusCode,
    /// The scopes still to count the answer's class in.
    pub pending: crate::stats::PendingOutcome,
}

/// What a body fails with: hyper's errors, or the direct client's.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming request or response body.
pub struct Body {
    kind: Kind,
    lease: Option<Lease>,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// From a peer through hyper; an answer's holds the HTTP/1 connection
    /// it came on, reused only if the body is read to the end.
    Streamed(Incoming, Option<Reusable>),
    /// Arriving on a stream of the router's own HTTP/2 server (a
    /// request's body) or client (an answer's).
    Inbound(Inbound),
    /// Read from an upstream connection by the task polling it. (Boxed:
    /// every body moves several times on its way, and this one is four
    /// times the size of the others.)
    Direct(Box<DirectBody>),
}

/// What an upstream response body holds on to until it is finished.
pub struct Lease {
    /// The endpoint's in-flight count drops when this is dropped.
    pub picked: Picked,
    /// For an answer whose class is in its trailers (gRPC): how to
    /// classify it when they come.
    pub late: Option<Box<LateClass>>,
}

impl Body {
    /// A body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body {
            kind: Kind::Full(Some(bytes.into())),
            lease: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body {
            kind: Kind::Empty,
            lease: None,
        }
    }

    /// A body streamed from a peer.
    pub fn streamed(incoming: Incoming) -> Body {
        Body::streamed_on(incoming, None)
    }

    /// An answer's body streamed through hyper's HTTP/1 client, giving
    /// `connection` back to its pool once read to the end.
    pub fn streamed_on(incoming: Incoming, connection: Option<Reusable>) -> Body {
        Body {
            kind: Kind::Streamed(incoming, connection),
            lease: None,
        }
    }

    /// A body arriving on a stream of the router's own HTTP/2 server (a
    /// request's) or client (an answer's).
    pub fn inbound(inbound: Inbound) -> Body {
        Body {
            kind: Kind::Inbound(inbound),
            lease: None,
        }
    }

    /// This upstream response body, holding `lease` until it is done.
    pub fn leased(mut self, lease: Lease) -> Body {
        self.lease = Some(lease);
        self
    }

    /// An upstream response body read straight from its connection,
    /// holding `picked` until it is done.
    pub fn direct(body: DirectBody, picked: Picked) -> Body {
        Body {
            kind: Kind::Direct(Box::new(body)),
            lease: Some(Lease { picked, late: None }),
        }
    }

    /// The bytes of a body held whole in memory and not yet read.
    pub fn full_bytes(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref(),
            _ => None,
        }
    }

    /// The body when it is read straight from an upstream HTTP/1
    /// connection.
    pub fn direct_mut(&mut self) -> Option<&mut DirectBody> {
        match &mut self.kind {
            Kind::Direct(direct) => Some(&mut **direct),
            _ => None,
        }
    }

    /// The body has been read to its end: its connection may be reused.
    /// Classifies an answer by its trailers (`None`: the stream ended
    /// without them), tells the endpoint's failure accrual, and gives the
    /// `l5d-success-class` value for the trailers.
    fn classify_late(&mut self, trailers: Option<&http::HeaderMap>) -> Option<http::HeaderValue> {
        let lease = self.lease.as_mut()?;
        let late = lease.late.take()?;
        let class = late
            .policy
            .classifier
            .classify_trailers(&late.facts, late.status, trailers);
        late.pending.settle(class.is_success());
        lease.picked.record(if class.is_success() {
            Outcome::Success
        } else {
            Outcome::Failure
        });
        Some(class.header_value())
    }

    fn has_late_class(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.late.is_some())
    }

    fn finished(&mut self) {
        if let Kind::Streamed(_, connection) = &mut self.kind
            && let Some(connection) = connection.take()
        {
            connection.release();
        }
    }
}

/// A body holding `text`.
pub fn full(text: impl Into<Bytes>) -> Body {
    Body::full(text)
}

/// An empty body.
pub fn empty() -> Body {
    Body::empty()
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Streamed(incoming, _) => Pin::new(incoming)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BodyError),
            Kind::Inbound(inbound) => Pin::new(inbound)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BodyError),
            Kind::Direct(direct) => Pin::new(&mut **direct).poll_frame(cx),
        };
        let polled = match polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() && self.has_late_class() => {
                let mut trailers = frame.into_trailers().unwrap_or_default();
                if let Some(class) = self.classify_late(Some(&trailers)) {
                    trailers.insert(L5D_SUCCESS_CLASS, class);
                }
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(None) => {
                // Trailers never came: the class says so.
                self.classify_late(None);
                polled
            }
            other => other,
        };
        if let Poll::Ready(None) = polled {
            self.finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Streamed(incoming, _) => incoming.is_end_stream(),
            Kind::Inbound(inbound) => inbound.is_end_stream(),
            Kind::Direct(direct) => direct.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Streamed(incoming, _) => incoming.size_hint(),
            Kind::Inbound(inbound) => inbound.size_hint(),
            Kind::Direct(direct) => direct.size_hint(),
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body with nothing left to read (e.g. the answer to HEAD, or a
        // 204) may never be polled: its connection is still reusable.
        if self.is_end_stream() {
            self.finished();
        }
    }
}
