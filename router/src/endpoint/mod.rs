//! The endpoint stage: one request to one chosen endpoint, over the direct
//! HTTP/1 path, hyper's HTTP/1 client or the h2 pool, with connections
//! pooled per endpoint. The request is rewritten for the endpoint here
//! (URI form, `Host`, hop-by-hop fields), and the answer's hop-by-hop
//! fields are dropped on the way back.

pub mod h1_direct;
pub mod h1_pool;
pub mod h2_pool;
pub(crate) mod limit;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use namers::Bound;

use crate::body::{Body, LateClass, Lease};
use crate::client::DstHeaders;
use crate::client::balance::Picked;
use crate::config::RouterSpec;
use crate::errors::RouterError;
use crate::http2::Added;
use crate::identify::Protocol;
use crate::policy::classifier::ErrorKind;
use crate::service::DstTarget;
use crate::stats::ConnectionCounts;
use h1_pool::{SendError, Unsent};
pub(crate) use limit::AttemptLimit;
use limit::{SpareTimer, within};

/// Headers that describe one hop and are not forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A forwarded request's answer.
// Direct, the larger, is the answer to most HTTP/1 requests: boxing it
// would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Routed {
    /// A response to send as it is.
    Response(Response<Body>),
    /// The raw answer of the direct HTTP/1 client, and its body, which
    /// holds the endpoint's in-flight count until it is done.
    Direct {
        answer: crate::endpoint::h1_direct::Answer,
        body: crate::endpoint::h1_direct::DirectBody,
        picked: crate::client::balance::Picked,
    },
}

/// One attempt's answer, before it is handed to the client.
// Every request has one of these, of either kind: boxing the larger one
// would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Forwarded {
    /// From the direct HTTP/1 client.
    Direct {
        answer: h1_direct::Answer,
        body: h1_direct::DirectBody,
    },
    /// From hyper's HTTP/1 client (its body holding the connection to
    /// give back once read) or the h2 pool.
    Streamed { response: Response<Body> },
}

impl Forwarded {
    /// The answer's `Content-Length`, for the access log.
    pub(crate) fn content_length(&self) -> Option<u64> {
        match self {
            Forwarded::Direct { answer, .. } => answer.content_length(),
            Forwarded::Streamed { response, .. } => {
                crate::access_log::content_length(response.headers())
            }
        }
    }

    /// The answer's status.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            Forwarded::Direct { answer, .. } => answer.status(),
            Forwarded::Streamed { response, .. } => response.status(),
        }
    }

    /// The answer for the client; `picked` is held until its body is done.
    /// `late` classifies an answer whose class is in its trailers.
    // Inlined so that the answer is not copied once more on its way out.
    #[inline(always)]
    pub(crate) fn into_routed(
        self,
        picked: Picked,
        success_class: Option<HeaderValue>,
        late: Option<Box<LateClass>>,
    ) -> Routed {
        match self {
            Forwarded::Direct { mut answer, body } => {
                if let Some(class) = success_class {
                    answer.set_success_class(class);
                }
                Routed::Direct {
                    answer,
                    body,
                    picked,
                }
            }
            Forwarded::Streamed { response } => {
                let (mut parts, body) = response.into_parts();
                if let Some(class) = success_class {
                    parts.headers.insert(L5D_SUCCESS_CLASS, class);
                }
                let body = body.leased(Lease { picked, late });
                Routed::Response(Response::from_parts(parts, body))
            }
        }
    }
}

/// The classification of an answer, for the next hop.
pub(crate) const L5D_SUCCESS_CLASS: HeaderName = HeaderName::from_static("l5d-success-class");

/// Why an attempt failed.
pub(crate) enum AttemptError {
    /// The endpoint never saw the request: no connection could be had, or
    /// it refused the stream. A request with a body comes back to be sent
    /// elsewhere.
    NotSent {
        error: RouterError,
        request: Option<Box<Request<Body>>>,
        why: WhyUnsent,
    },
    /// The request was, or may have been, seen.
    Failed { error: RouterError, kind: ErrorKind },
    /// The router's own pool for the endpoint was full
    /// (`hostConnectionPool.maxWaiters`): nothing was tried.
    Local { error: RouterError },
}

impl AttemptError {
    /// What went wrong.
    pub(crate) fn error(&self) -> &RouterError {
        match self {
            AttemptError::NotSent { error, .. }
            | AttemptError::Failed { error, .. }
            | AttemptError::Local { error } => error,
        }
    }
}

/// Why an endpoint never saw a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhyUnsent {
    /// No connection could be opened: that says something of the
    /// endpoint's health.
    ConnectFailed,
    /// It refused the h2 stream (`REFUSED_STREAM`): it may only be busy,
    /// or closing the connection.
    Refused,
    /// Its connection was closing (above a `GOAWAY`'s last stream, or
    /// still queued when it closed): the endpoint rotating its
    /// connections, as servers do on purpose.
    Rotated,
}

/// A request rewritten for the endpoints once, sent by one attempt or
/// more.
pub(crate) struct Outgoing {
    parts: http::request::Parts,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    upgrading: bool,
    /// Takes the direct HTTP/1 path ([`h1_direct::eligible`]).
    direct: bool,
    /// The body the direct path sends, whole (empty: none).
    direct_body: Bytes,
    /// `parts` went to an attempt (see [`EndpointStage::send`]'s `last`).
    given_away: bool,
    /// `parts` already carries the `l5d-dst-*` headers and `Via`: it came
    /// back from an attempt that could not connect.
    has_dst_headers: bool,
    /// The attempt that was given `parts` had the `l5d-dst-*` headers in
    /// them (HTTP/1; the HTTP/2 client adds them as it writes the head).
    given_with_dst_headers: bool,
    /// The attempt that was given `parts` added the endpoint's address as
    /// `Host` (HTTP/1) or authority (h2), which the next attempt must not
    /// inherit.
    endpoint_added: bool,
}

impl Outgoing {
    /// The request's header fields, for the next attempt.
    pub(crate) fn headers_mut(&mut self) -> &mut http::HeaderMap {
        &mut self.parts.headers
    }

    /// Whether the request takes the direct HTTP/1 path (no body, or one
    /// already whole).
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Gives the direct path the request's body, read whole.
    pub(crate) fn set_direct_body(&mut self, body: Bytes) {
        self.direct_body = body;
    }

    /// Whether the request asks to switch protocols (never sent twice).
    pub(crate) fn is_upgrade(&self) -> bool {
        self.upgrading
    }

    /// Takes back a request an attempt could not send, for the next
    /// attempt; gives back its body.
    pub(crate) fn take_back(&mut self, request: Option<Box<Request<Body>>>) -> Option<Body> {
        let (mut parts, body) = request?.into_parts();
        if self.given_away {
            if self.endpoint_added {
                forget_endpoint(&mut parts);
            }
            self.parts = parts;
            self.given_away = false;
            self.has_dst_headers = self.given_with_dst_headers;
        }
        Some(body)
    }

    /// Whether another attempt can be made with this head.
    pub(crate) fn is_available(&self) -> bool {
        !self.given_away && !self.upgrading
    }
}

/// The most idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// A router's connections to its endpoints.
pub(crate) struct EndpointStage {
    protocol: Protocol,
    /// Upstream connections of an `http` router.
    h1: Arc<h1_pool::H1Pool>,
    /// Upstream connections of an `h2` router.
    h2: Option<h2_pool::H2Pool>,
    /// How pools are made (those of clients with TLS are made later).
    connect_timeout: Duration,
    idle_time: Duration,
    limits: Option<h1_pool::PoolLimits>,
    /// The pools of clients with TLS, to close their idle connections.
    tls_pools: std::sync::Mutex<Vec<std::sync::Weak<tls::TlsPools>>>,
}

impl EndpointStage {
    pub(crate) fn new(spec: &RouterSpec) -> EndpointStage {
        EndpointStage {
            protocol: spec.protocol,
            h1: Arc::new(
                h1_pool::H1Pool::new(
                    spec.connect_timeout,
                    spec.connection_idle_time,
                    MAX_IDLE_PER_ENDPOINT,
                )
                .with_limits(spec.connection_limits),
            ),
            h2: (spec.protocol == Protocol::H2).then(|| h2_pool::H2Pool::new(spec.connect_timeout)),
            connect_timeout: spec.connect_timeout,
            idle_time: spec.connection_idle_time,
            limits: spec.connection_limits,
            tls_pools: std::sync::Mutex::default(),
        }
    }

    /// Closes connections idle for too long.
    pub(crate) fn expire_idle(&self) {
        self.h1.expire_idle();
        let mut pools = self
            .tls_pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pools.retain(|pools| match pools.upgrade() {
            Some(pools) => {
                pools.h1.expire_idle();
                true
            }
            None => false,
        });
    }

    /// The pools of a client with TLS, made on its first request.
    fn pools_of<'a>(&self, upstream: &'a tls::UpstreamTls) -> &'a Arc<tls::TlsPools> {
        upstream.pools(|| {
            let securer = upstream.securer().clone();
            let pools = Arc::new(tls::TlsPools {
                h1: Arc::new(
                    h1_pool::H1Pool::new(
                        self.connect_timeout,
                        self.idle_time,
                        MAX_IDLE_PER_ENDPOINT,
                    )
                    .with_limits(self.limits)
                    .with_tls(securer.clone()),
                ),
                h2: (self.protocol == Protocol::H2)
                    .then(|| h2_pool::H2Pool::new(self.connect_timeout).with_tls(securer)),
            });
            self.tls_pools
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Arc::downgrade(&pools));
            pools
        })
    }

    /// Rewrites a request for the endpoints: the URI form, the authority
    /// and the hop-by-hop fields. `carried` says what follows the head.
    /// `secured` says the endpoints are reached over TLS.
    pub(crate) fn prepare(
        &self,
        mut parts: http::request::Parts,
        rewritten_uri: Option<Uri>,
        carried: h1_direct::Carried,
        secured: bool,
    ) -> Result<Outgoing, RouterError> {
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let upgrading = is_upgrade(&parts.headers);
        if let Some(rewritten) = rewritten_uri {
            parts.uri = rewritten;
        }
        match self.protocol {
            Protocol::Http => {
                // The client's authority (the URI's for HTTP/2 and
                // absolute-form requests) travels in `Host`; the connection
                // goes to the endpoint and the URI is sent in origin form.
                if !parts.headers.contains_key(header::HOST)
                    && let Some(authority) = parts.uri.authority()
                    && let Ok(host) = HeaderValue::from_str(authority.as_str())
                {
                    parts.headers.insert(header::HOST, host);
                }
                if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                    parts.uri = Uri::from(
                        parts
                            .uri
                            .path_and_query()
                            .cloned()
                            .unwrap_or_else(|| PathAndQuery::from_static("/")),
                    );
                }
                parts.version = http::Version::HTTP_11;
            }
            Protocol::H2 => {
                // HTTP/2 carries the authority in the URI; keep the one the
                // client asked for so the backend sees it. (Without one, the
                // endpoint's address is used: see `Outgoing::for_endpoint`.)
                let authority = match parts.uri.authority() {
                    Some(authority) => Some(authority.clone()),
                    None => parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| Authority::try_from(h.as_bytes()).ok()),
                };
                if let Some(authority) = authority {
                    let mut uri = std::mem::take(&mut parts.uri).into_parts();
                    uri.scheme = Some(if secured { Scheme::HTTPS } else { Scheme::HTTP });
                    uri.authority = Some(authority);
                    if uri.path_and_query.is_none() {
                        uri.path_and_query = Some(PathAndQuery::from_static("/"));
                    }
                    parts.uri = Uri::from_parts(uri).map_err(|e| {
                        RouterError::Upstream(format!("cannot build the upstream URI: {e}"))
                    })?;
                }
                parts.headers.remove(header::HOST);
            }
        }
        strip_hop_by_hop(&mut parts.headers, upgrading);
        // (The direct path reads plain sockets: TLS goes through hyper.)
        let direct =
            self.h2.is_none() && !secured && h1_direct::eligible(&parts.method, carried, upgrading);
        Ok(Outgoing {
            parts,
            on_upgrade,
            upgrading,
            direct,
            direct_body: Bytes::new(),
            given_away: false,
            has_dst_headers: false,
            given_with_dst_headers: false,
            endpoint_added: false,
        })
    }

    /// Sends `request` to `endpoint`, within `limit`, with the `l5d-dst-*`
    /// headers of `dst`. `body` is `None` for a request without one, and on
    /// the direct path, which sends the body the request holds. `last` says no other attempt will
    /// follow, so the request's head may be given away rather than copied.
    /// A connection opened for it counts in `connections` (its client's);
    /// `tls` is the client's, when it has some. `timer` is the client
    /// connection's, reused for `limit` when free.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        request: &mut Outgoing,
        body: Option<Body>,
        last: bool,
        endpoint: SocketAddr,
        dst: &DstHeaders,
        limit: Option<AttemptLimit>,
        timer: &SpareTimer,
        target: &DstTarget,
        bound: &Bound,
        connections: &Arc<ConnectionCounts>,
        tls: Option<&tls::UpstreamTls>,
    ) -> Result<Forwarded, AttemptError> {
        let failed = |e: String, kind: ErrorKind| AttemptError::Failed {
            error: RouterError::Upstream(format!(
                "{} ({}) at {endpoint}: {e}",
                target.name.show(),
                bound.id.show(),
            )),
            kind,
        };
        let not_sent = |e: String, request: Option<Request<Body>>, why| AttemptError::NotSent {
            request: request.map(Box::new),
            why,
            error: RouterError::Unsent(format!(
                "{} ({}) at {endpoint}: {e}",
                target.name.show(),
                bound.id.show(),
            )),
        };
        let saturated = |e: String| AttemptError::Local {
            error: RouterError::Unavailable(format!(
                "{} ({}) at {endpoint}: {e}",
                target.name.show(),
                bound.id.show(),
            )),
        };
        let timed_out = |limit: AttemptLimit| AttemptError::Failed {
            error: RouterError::Timeout(format!(
                "no response from {endpoint} for {} within {:?}",
                target.name.show(),
                limit.after
            )),
            kind: ErrorKind::Timeout,
        };
        if request.direct {
            let mut head = Vec::with_capacity(512);
            dst.encode_head(&request.parts, endpoint, &mut head);
            let call = pin!(self.h1.send_direct(
                endpoint,
                &head,
                &request.direct_body,
                &request.parts.method,
                connections,
            ));
            let result = within(limit, timer, call).await.map_err(timed_out)?;
            return match result {
                Ok((answer, body)) => Ok(Forwarded::Direct { answer, body }),
                Err(SendError::Connect(e)) => Err(not_sent(e, None, WhyUnsent::ConnectFailed)),
                Err(SendError::Request(e)) => Err(failed(e, ErrorKind::Connection)),
                Err(SendError::Saturated(e)) => Err(saturated(e)),
                // (Only h2 refuses streams and rotates under them.)
                Err(SendError::Refused(e)) => Err(not_sent(e, None, WhyUnsent::Refused)),
                Err(SendError::Rotated(e)) => Err(not_sent(e, None, WhyUnsent::Rotated)),
            };
        }
        let mut parts = if last {
            request.given_away = true;
            std::mem::replace(&mut request.parts, http::Request::new(()).into_parts().0)
        } else {
            request.parts.clone()
        };
        let endpoint_added = for_endpoint(&mut parts, self.protocol, endpoint, tls.is_some());
        let (h1, h2) = match tls {
            None => (&self.h1, self.h2.as_ref()),
            Some(upstream) => {
                let pools = self.pools_of(upstream);
                (&pools.h1, pools.h2.as_ref())
            }
        };
        // The HTTP/2 client writes the `l5d-dst-*` headers as it encodes
        // the head; hyper's HTTP/1 client needs them in the map.
        let added = if request.has_dst_headers {
            Added::default()
        } else if h2.is_some() {
            dst.added(&parts.headers)
        } else {
            dst.set(&mut parts.headers);
            Added::default()
        };
        if last {
            request.endpoint_added = endpoint_added;
            request.given_with_dst_headers = request.has_dst_headers || h2.is_none();
        }
        let on_upgrade = request.on_upgrade.take();
        let outgoing = Request::from_parts(parts, body.unwrap_or_else(Body::empty));
        let unsent = |unsent: Unsent<Request<Body>>| match unsent {
            Unsent {
                error: SendError::Connect(e),
                request,
            } => not_sent(e, request, WhyUnsent::ConnectFailed),
            Unsent {
                error: SendError::Request(e),
                ..
            } => failed(e, ErrorKind::Connection),
            Unsent {
                error: SendError::Saturated(e),
                ..
            } => saturated(e),
            // The stream was refused unprocessed, or its connection was
            // closing: the request may go elsewhere if its body can be
            // sent again.
            Unsent {
                error: SendError::Refused(e),
                request,
            } => not_sent(e, request, WhyUnsent::Refused),
            Unsent {
                error: SendError::Rotated(e),
                request,
            } => not_sent(e, request, WhyUnsent::Rotated),
        };
        // The HTTP/2 pool's future is awaited in place: it makes the
        // request's future larger, but boxing it cost more (an allocation
        // of over a kilobyte, and a copy into it).
        if let Some(pool) = h2 {
            let call = pin!(pool.send(endpoint, outgoing, added, connections));
            let mut response = within(limit, timer, call)
                .await
                .map_err(timed_out)?
                .map_err(unsent)?;
            strip_hop_by_hop(response.headers_mut(), false);
            return Ok(Forwarded::Streamed { response });
        }
        // Boxed: streaming through hyper's client takes a large future,
        // which would otherwise make every request's future that large.
        Box::pin(async move {
            let call = pin!(h1.send(endpoint, outgoing, connections));
            let (response, connection) = within(limit, timer, call)
                .await
                .map_err(timed_out)?
                .map_err(unsent)?;
            let mut response = response;
            let mut connection = Some(connection);
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // The connection now belongs to the upgraded protocol.
                connection = None;
                if let Some(downstream) = on_upgrade {
                    let upstream = hyper::upgrade::on(&mut response);
                    // The tunnel keeps the connection counted open.
                    let open = connections.still_open();
                    tokio::spawn(splice(downstream, upstream, open));
                }
            } else {
                strip_hop_by_hop(response.headers_mut(), false);
            }
            let response = response.map(|incoming| Body::streamed_on(incoming, connection));
            Ok(Forwarded::Streamed { response })
        })
        .await
    }
}

/// What a request needs of the endpoint it goes to: a `Host` (HTTP/1) or
/// an authority (h2) when the client gave none. Says whether it added one.
fn for_endpoint(
    parts: &mut http::request::Parts,
    protocol: Protocol,
    endpoint: SocketAddr,
    secured: bool,
) -> bool {
    match protocol {
        Protocol::Http => {
            if !parts.headers.contains_key(header::HOST)
                && let Ok(host) = HeaderValue::from_str(&endpoint.to_string())
            {
                parts.headers.insert(header::HOST, host);
                return true;
            }
            false
        }
        Protocol::H2 => {
            if parts.uri.authority().is_none() {
                let mut uri = std::mem::take(&mut parts.uri).into_parts();
                uri.scheme = Some(if secured { Scheme::HTTPS } else { Scheme::HTTP });
                uri.authority = Some(endpoint_authority(endpoint));
                if uri.path_and_query.is_none() {
                    uri.path_and_query = Some(PathAndQuery::from_static("/"));
                }
                parts.uri = Uri::from_parts(uri).unwrap_or_default();
                return true;
            }
            false
        }
    }
}

/// Undoes what [`for_endpoint`] added: an HTTP/1 request's `Host`, an h2
/// request's authority (and the scheme that came with it).
fn forget_endpoint(parts: &mut http::request::Parts) {
    if parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    } else {
        parts.headers.remove(header::HOST);
    }
}

/// `endpoint` as an authority, for an h2 request that named none.
fn endpoint_authority(endpoint: SocketAddr) -> Authority {
    // A socket address always prints as a valid authority.
    Authority::try_from(endpoint.to_string())
        .unwrap_or_else(|_| Authority::from_static("localhost"))
}

fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Removes hop-by-hop headers (and those named by `Connection`); an upgrade
/// keeps `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut http::HeaderMap, upgrading: bool) {
    // Usually there is none: one pass over the names is cheaper than a
    // hashed removal per hop-by-hop name.
    if !upgrading && !headers.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    // One pass finds the fields to take out, so a request with only
    // `Connection: close` (every request of a client that opens a
    // connection per request) pays for one removal, not one per name.
    let named_by_connection = |name: &HeaderName| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
    };
    let doomed: smallvec::SmallVec<[HeaderName; 4]> = headers
        .keys()
        .filter(|name| {
            let kept_for_upgrade =
                upgrading && (*name == header::UPGRADE || *name == header::CONNECTION);
            !kept_for_upgrade && (HOP_BY_HOP.contains(name) || named_by_connection(name))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Copies bytes both ways between the client and the upstream after a
/// `101 Switching Protocols`.
async fn splice(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _open: crate::stats::OpenConnection,
) {
    let (Ok(down), Ok(up)) = tokio::join!(downstream, upstream) else {
        tracing::debug!("an upgrade was not completed by one side");
        return;
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_but_upgrades_survive() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        assert!(headers.get("x-private").is_none() && headers.get("keep-alive").is_none());
        assert!(headers.get("x-kept").is_some());

        // Names in any `Connection` field, in any case, with spaces.
        let mut headers = http::HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static(" X-Private ,x-other"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("x-other", HeaderValue::from_static("1"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("proxy-connection", HeaderValue::from_static("close"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);

        let mut ws = http::HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(ws.get(header::CONNECTION).unwrap(), "upgrade");
    }
}
