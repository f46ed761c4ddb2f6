//! A request body that may have to be sent more than once. A body known to
//! be small (a `Content-Length` within `retryBufferSize.requestBytes`) is
//! read into memory when the request could be retried, and each attempt
//! sends a copy. Any other body is streamed once; it can still go to
//! another endpoint when no connection could be had, because then no byte
//! of it has left.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};

use crate::body::Body;
use crate::endpoint::h1_direct::Carried;
use crate::errors::RouterError;
use crate::http2::server::Inbound;

/// A request's body as its server hands it over.
pub(crate) enum Arriving {
    /// There is none.
    Empty,
    /// hyper's server reads it as it is asked for.
    Incoming(Incoming),
    /// The router's own HTTP/1 server read it whole (a `Content-Length`
    /// body of at most [`crate::server::h1::WHOLE_BODY_LIMIT`] bytes), or
    /// it came whole with its HTTP/2 head.
    Whole(Bytes),
    /// Still arriving on a stream of the router's own HTTP/2 server.
    Inbound(Inbound),
}

impl Arriving {
    /// Whether no byte of a body is to come.
    pub(crate) fn is_end_stream(&self) -> bool {
        match self {
            Arriving::Empty => true,
            Arriving::Incoming(incoming) => incoming.is_end_stream(),
            Arriving::Whole(bytes) => bytes.is_empty(),
            Arriving::Inbound(inbound) => inbound.is_end_stream(),
        }
    }

    /// What follows the request's head, for the direct HTTP/1 path.
    pub(crate) fn carried(&self) -> Carried {
        match self {
            _ if self.is_end_stream() => Carried::Nothing,
            Arriving::Whole(_) => Carried::Whole,
            Arriving::Empty | Arriving::Incoming(_) | Arriving::Inbound(_) => Carried::Streamed,
        }
    }

    /// Whether the body comes without a length announced (chunked).
    pub(crate) fn is_chunked(&self) -> bool {
        match self {
            Arriving::Incoming(incoming) => {
                !incoming.is_end_stream() && incoming.size_hint().exact().is_none()
            }
            Arriving::Inbound(inbound) => {
                !inbound.is_end_stream() && inbound.size_hint().exact().is_none()
            }
            Arriving::Empty | Arriving::Whole(_) => false,
        }
    }
}

/// A request's body across attempts.
// Streamed, the large variant, is the usual one for a request with a body.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RequestBody {
    /// There is none.
    Empty,
    /// Read whole; each attempt sends it again.
    Buffered(Bytes),
    /// Streamed once; `None` while an attempt has it.
    Streamed(Option<Body>),
}

/// [`RequestBody::read`] for a body still arriving, hyper's or the router's
/// own HTTP/2 server's; `streamed` makes it the body an attempt sends.
async fn read_arriving<B>(
    body: B,
    streamed: fn(B) -> Body,
    keep: bool,
    limit: u64,
) -> Result<RequestBody, RouterError>
where
    B: hyper::body::Body<Data = Bytes, Error: std::fmt::Display>,
{
    if body.is_end_stream() {
        return Ok(RequestBody::Empty);
    }
    let small = body.size_hint().exact().is_some_and(|n| n <= limit);
    if !(keep && small) {
        return Ok(RequestBody::Streamed(Some(streamed(body))));
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| RouterError::Upstream(format!("reading the request body failed: {e}")))?;
    Ok(RequestBody::Buffered(collected.to_bytes()))
}

impl RequestBody {
    /// The body of a request, read into memory when `keep` (a retry is
    /// possible) and it declares a length of at most `limit` bytes.
    pub(crate) async fn read(
        arriving: Arriving,
        keep: bool,
        limit: u64,
    ) -> Result<RequestBody, RouterError> {
        match arriving {
            Arriving::Empty => Ok(RequestBody::Empty),
            Arriving::Whole(bytes) if bytes.is_empty() => Ok(RequestBody::Empty),
            // Already in memory; kept for another attempt on the same terms
            // as a body read here.
            Arriving::Whole(bytes) if keep && bytes.len() as u64 <= limit => {
                Ok(RequestBody::Buffered(bytes))
            }
            Arriving::Whole(bytes) => Ok(RequestBody::Streamed(Some(Body::full(bytes)))),
            Arriving::Incoming(incoming) => {
                read_arriving(incoming, Body::streamed, keep, limit).await
            }
            Arriving::Inbound(inbound) => read_arriving(inbound, Body::inbound, keep, limit).await,
        }
    }

    /// Whether every attempt can send the whole body.
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Streamed(_))
    }

    /// Whether there is a body for the next attempt.
    pub(crate) fn available(&self) -> bool {
        !matches!(self, RequestBody::Streamed(None))
    }

    /// The whole body, when it is in memory and no attempt has it.
    pub(crate) fn whole(&self) -> Option<Bytes> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Buffered(bytes) => Some(bytes.clone()),
            RequestBody::Streamed(body) => body.as_ref()?.full_bytes().cloned(),
        }
    }

    /// The body for the next attempt (`None`: no body at all).
    pub(crate) fn for_attempt(&mut self) -> Option<Body> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Buffered(bytes) => Some(Body::full(bytes.clone())),
            RequestBody::Streamed(body) => body.take(),
        }
    }

    /// Takes back the body of a request that was never sent.
    pub(crate) fn give_back(&mut self, body: Option<Body>) {
        if let (RequestBody::Streamed(slot @ None), Some(body)) = (&mut *self, body) {
            *slot = Some(body);
        }
    }
}
