//! The request path: name the request, bind the name, pick an endpoint,
//! forward, and stream the answer back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, NameTree, Path};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::{Activity, Binding, Bound, NamingError};

use crate::bind::cache::Cache;
use crate::body::{self, Body, Lease};
use crate::client::balance::Balancer;
use crate::config::RouterSpec;
use crate::errors::RouterError;
use crate::identify::{Identifier, Protocol, identify_with};
use crate::interpreter::RouterNaming;
use crate::metrics::RouterMetrics;
use crate::service::dtab_headers::{clear_context, forward_headers, local_dtab};

/// Headers that describe one hop and are not forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const L5D_DST_SERVICE: HeaderName = HeaderName::from_static("l5d-dst-service");
const L5D_DST_CLIENT: HeaderName = HeaderName::from_static("l5d-dst-client");
const L5D_DST_RESIDUAL: HeaderName = HeaderName::from_static("l5d-dst-residual");
const L5D_REQID: HeaderName = HeaderName::from_static("l5d-reqid");
const VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 switchboard");

/// Settings of one listening server of a router.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Strip `l5d-*` request headers.
    pub clear_context: bool,
    /// Most `Via` hops accepted.
    pub max_call_depth: usize,
}

/// One configured router, shared by its servers' connections.
pub struct RouterStack {
    spec: RouterSpec,
    identifiers: Vec<Box<dyn Identifier>>,
    naming: Arc<dyn RouterNaming>,
    /// Bindings by (local dtab as text, name).
    bindings: Cache<(String, Path), NameBinding>,
    balancers: Cache<Path, Client>,
    /// Upstream connections of an `http` router.
    h1: Arc<crate::endpoint::h1_pool::H1Pool>,
    /// Upstream connections of an `h2` router.
    h2: Option<crate::endpoint::h2_pool::H2Pool>,
    metrics: RouterMetrics,
    admin: SocketAddr,
}

impl RouterStack {
    /// A router; `admin` is where the explanation of a failed name can be asked.
    pub fn new(
        spec: RouterSpec,
        identifiers: Vec<Box<dyn Identifier>>,
        naming: Arc<dyn RouterNaming>,
        metrics: RouterMetrics,
        admin: SocketAddr,
    ) -> RouterStack {
        let h1 = Arc::new(crate::endpoint::h1_pool::H1Pool::new(
            spec.connect_timeout,
            UPSTREAM_IDLE_TIMEOUT,
            MAX_IDLE_PER_ENDPOINT,
        ));
        let h2 = (spec.protocol == Protocol::H2)
            .then(|| crate::endpoint::h2_pool::H2Pool::new(spec.connect_timeout));
        RouterStack {
            h2,
            bindings: Cache::new(spec.paths_capacity, spec.idle_ttl),
            balancers: Cache::new(spec.clients_capacity, spec.idle_ttl),
            spec,
            identifiers,
            naming,
            h1,
            metrics,
            admin,
        }
    }

    /// The router's label.
    pub fn label(&self) -> &str {
        &self.spec.label
    }

    /// The router's base dtab.
    pub fn dtab(&self) -> &Dtab {
        &self.spec.dtab
    }

    /// The interpreter, for the admin delegator.
    pub fn naming(&self) -> &Arc<dyn RouterNaming> {
        &self.naming
    }

    /// Drops cache entries that have not been used for the idle TTL.
    pub fn expire_idle(&self) {
        self.bindings.expire_idle();
        self.balancers.expire_idle();
        self.h1.expire_idle();
    }

    /// Serves one request; failures become error responses.
    pub async fn handle(
        &self,
        server: &ServerSettings,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let (parts, incoming) = request.into_parts();
        let response = match self.route(server, parts, Some(incoming), started).await {
            Ok(Routed::Response(response)) => response,
            Ok(Routed::Direct {
                answer,
                body,
                picked,
            }) => match answer.into_parts() {
                Ok(parts) => Response::from_parts(parts, Body::direct(body, picked)),
                Err(e) => error_response(&RouterError::Upstream(format!(
                    "invalid response head: {e}"
                ))),
            },
            Err(e) => {
                tracing::debug!(router = %self.spec.label, error = %e, "request failed");
                error_response(&e)
            }
        };
        self.record(response.status().as_u16(), started);
        response
    }

    /// Counts a response with `status`, for a request that arrived at
    /// `started`.
    pub(crate) fn record(&self, status: u16, started: Instant) {
        self.metrics.record(status, started.elapsed());
    }

    /// Whether this router speaks HTTP/1 to its endpoints.
    pub(crate) fn is_http1(&self) -> bool {
        self.spec.protocol == Protocol::Http
    }

    /// Routes a request and forwards it. A bodiless `http` request whose
    /// method may be repeated comes back as the upstream's raw answer
    /// ([`Routed::Direct`]); `incoming` is `None` for a request known to
    /// have no body.
    pub(crate) async fn route(
        &self,
        server: &ServerSettings,
        mut parts: http::request::Parts,
        incoming: Option<Incoming>,
        started: Instant,
    ) -> Result<Routed, RouterError> {
        if server.clear_context {
            clear_context(&mut parts.headers);
        }
        let hops = via_hops(&parts.headers);
        if hops >= server.max_call_depth {
            return Err(RouterError::MaxCallDepth {
                max: server.max_call_depth,
                seen: hops,
            });
        }
        let local = local_dtab(&parts.headers, &self.spec.dtab_header_limits)
            .map_err(|e| RouterError::BadDtabHeader(e.to_string()))?;
        let identified = identify_with(&self.identifiers, &parts)
            .map_err(|e| RouterError::Unidentified(e.to_string()))?;
        // The key owns the name; no copy of it is made per request.
        let key = (
            if local.is_empty() {
                String::new()
            } else {
                local.show()
            },
            identified.name,
        );
        let deadline = tokio::time::Instant::from_std(started) + self.spec.binding_timeout;
        let (state, service_header) = self.bound_tree(&local, &key, started, deadline).await?;
        let name = &key.1;
        let Activity::Ok(tree) = &*state else {
            return Err(RouterError::BindingFailed(format!(
                "binding {} is not ready",
                name.show()
            )));
        };
        let bound = match choose(tree, &mut pick_by_weight) {
            Resolved::Leaf(bound) => bound,
            Resolved::Empty => {
                return Err(RouterError::NoEndpoints(format!(
                    "{} has no endpoints (it resolved to $)",
                    name.show()
                )));
            }
            Resolved::Neg => return Err(self.no_route(name, &local, tree)),
        };
        let client = self
            .balancers
            .get_or_insert_at(&bound.id, started, || Client::new(bound));
        let picked = self
            .pick(&client.value.balancer, name, bound, deadline)
            .await?;
        let endpoint = picked.addr;

        // Rewrite the request for the chosen endpoint.
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let upgrading = is_upgrade(&parts.headers);
        if let Some(rewritten) = identified.rewritten_uri {
            parts.uri = rewritten;
        }
        match self.spec.protocol {
            Protocol::Http => {
                // The client's authority (the URI's for HTTP/2 and
                // absolute-form requests) travels in `Host`; the connection
                // goes to the endpoint and the URI is sent in origin form.
                if !parts.headers.contains_key(header::HOST) {
                    let host = match parts.uri.authority() {
                        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
                        None => HeaderValue::from_str(&endpoint.to_string()).ok(),
                    };
                    if let Some(host) = host {
                        parts.headers.insert(header::HOST, host);
                    }
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
                // client asked for so the backend sees it.
                let authority = match parts.uri.authority() {
                    Some(authority) => authority.clone(),
                    None => parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                        .unwrap_or_else(|| client.value.endpoint_authority(endpoint)),
                };
                let mut uri = std::mem::take(&mut parts.uri).into_parts();
                uri.scheme = Some(Scheme::HTTP);
                uri.authority = Some(authority);
                if uri.path_and_query.is_none() {
                    uri.path_and_query = Some(PathAndQuery::from_static("/"));
                }
                parts.uri = Uri::from_parts(uri).map_err(|e| {
                    RouterError::Upstream(format!("cannot build the upstream URI: {e}"))
                })?;
                parts.headers.remove(header::HOST);
            }
        }
        strip_hop_by_hop(&mut parts.headers, upgrading);
        forward_headers(&mut parts.headers, &local);
        let dst = DstHeaders::new(service_header, &client.value, bound);
        let limit = self.spec.total_timeout.or(self.spec.attempt_timeout);
        let upstream_failed = |e: String| {
            RouterError::Upstream(format!(
                "{} ({}) at {endpoint}: {e}",
                name.show(),
                bound.id.show(),
            ))
        };
        let timed_out = |limit: Duration| {
            RouterError::Timeout(format!(
                "no response from {endpoint} for {} within {limit:?}",
                name.show()
            ))
        };
        let bodiless = incoming.as_ref().is_none_or(|i| i.is_end_stream());
        if self.h2.is_none()
            && crate::endpoint::h1_direct::eligible(&parts.method, bodiless, upgrading)
        {
            drop(incoming);
            let mut head = Vec::with_capacity(512);
            dst.encode_head(&parts, &mut head);
            let call = self.h1.send_direct(endpoint, &head, &parts.method);
            let (answer, body) = match limit {
                Some(limit) => tokio::time::timeout(limit, call)
                    .await
                    .map_err(|_| timed_out(limit))?,
                None => call.await,
            }
            .map_err(|e| upstream_failed(e.to_string()))?;
            // (The direct client keeps no hop-by-hop fields.)
            return Ok(Routed::Direct {
                answer,
                body,
                picked,
            });
        }
        // Boxed: streaming through hyper's client takes a large future,
        // which would otherwise make every request's future that large.
        Box::pin(async move {
            dst.set(&mut parts.headers);
            let body = incoming.map_or_else(Body::empty, Body::streamed);
            let outgoing = Request::from_parts(parts, body);

            let call = async {
                match &self.h2 {
                    Some(pool) => pool
                        .send(endpoint, outgoing)
                        .await
                        .map(|response| (response, None)),
                    None => self
                        .h1
                        .send(endpoint, outgoing)
                        .await
                        .map(|(response, connection)| (response, Some(connection)))
                        .map_err(|e| e.to_string()),
                }
            };
            let result = match limit {
                Some(limit) => tokio::time::timeout(limit, call)
                    .await
                    .map_err(|_| timed_out(limit))?,
                None => call.await,
            };
            let (mut response, mut connection) = result.map_err(upstream_failed)?;

            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // The connection now belongs to the upgraded protocol.
                connection = None;
                if let Some(downstream) = on_upgrade {
                    let upstream = hyper::upgrade::on(&mut response);
                    tokio::spawn(splice(downstream, upstream));
                }
            } else {
                strip_hop_by_hop(response.headers_mut(), false);
            }
            let (parts, incoming) = response.into_parts();
            let body = Body::leased(incoming, Lease { picked, connection });
            Ok(Routed::Response(Response::from_parts(parts, body)))
        })
        .await
    }

    /// Waits for the binding of `key` (local dtab, name) to leave the
    /// pending state; also gives the name's `l5d-dst-service` value.
    ///
    /// A new name is bound here, on the request's task, but outside the
    /// binding cache's lock: other names never wait for it, and the
    /// interpreter's `bindingLimits` bound the work.
    async fn bound_tree(
        &self,
        local: &Dtab,
        key: &(String, Path),
        started: Instant,
        deadline: tokio::time::Instant,
    ) -> Result<(Arc<Activity<NameTree<Bound>>>, Option<HeaderValue>), RouterError> {
        let name = &key.1;
        let entry = self.bindings.get_or_make_at(key, started, || {
            let dtab = self.spec.dtab.concat(local);
            NameBinding {
                binding: self.naming.bind(&dtab, name),
                service_header: HeaderValue::try_from(name.show()).ok(),
            }
        });
        let mut binding = entry.value.binding.clone();
        loop {
            let state = binding.load();
            match &*state {
                Activity::Ok(_) => return Ok((state, entry.value.service_header.clone())),
                // The client's own dtab asks for too much: its fault, and
                // it would fail again.
                Activity::Failed(e @ NamingError::OverBudget { .. }) if !local.is_empty() => {
                    return Err(RouterError::BindingLimit(format!(
                        "{e}, with the request's l5d-dtab / l5d-ctx-dtab"
                    )));
                }
                Activity::Failed(e) => {
                    return Err(RouterError::BindingFailed(format!(
                        "binding {} failed: {e}",
                        name.show()
                    )));
                }
                Activity::Pending => {}
            }
            if tokio::time::timeout_at(deadline, binding.changed())
                .await
                .is_err()
            {
                return Err(RouterError::BindingTimeout(format!(
                    "binding {} timed out after {:?}",
                    name.show(),
                    self.spec.binding_timeout
                )));
            }
        }
    }

    /// An endpoint of `bound`, waiting (until the binding deadline) for an
    /// address that is still pending.
    async fn pick(
        &self,
        balancer: &Balancer,
        name: &Path,
        bound: &Bound,
        deadline: tokio::time::Instant,
    ) -> Result<crate::client::balance::Picked, RouterError> {
        let mut addr = balancer.live_addr();
        loop {
            if let Some(picked) = balancer.pick() {
                return Ok(picked);
            }
            let current = addr.load();
            if !matches!(*current, namers::Addr::Pending) {
                return Err(RouterError::NoEndpoints(format!(
                    "no endpoints for {} (bound to {}: {})",
                    name.show(),
                    bound.id.show(),
                    describe_addr(&current)
                )));
            }
            if tokio::time::timeout_at(deadline, addr.changed())
                .await
                .is_err()
            {
                return Err(RouterError::BindingTimeout(format!(
                    "the address of {} ({}) was still pending after {:?}",
                    name.show(),
                    bound.id.show(),
                    self.spec.binding_timeout
                )));
            }
        }
    }

    /// The "no route" error: which name, which dentries matched its first
    /// step, and where to get the full explanation.
    fn no_route(&self, name: &Path, local: &Dtab, tree: &NameTree<Bound>) -> RouterError {
        let dtab = self.spec.dtab.concat(local);
        let tried: Vec<String> = dtab
            .iter()
            .filter(|d| d.prefix.matches(name))
            .map(|d| d.show())
            .collect();
        let tried = if tried.is_empty() {
            "no dentry matched it".to_string()
        } else {
            format!("dentries tried: {}", tried.join("; "))
        };
        let mut explain = format!(
            "http://{}/delegator.json?namespace={}&path={}",
            self.admin,
            crate::errors::url_encode(&self.spec.label),
            crate::errors::url_encode(&name.show())
        );
        if !local.is_empty() {
            explain.push_str(&format!(
                "&dtab={}",
                crate::errors::url_encode(&local.show())
            ));
        }
        RouterError::NoEndpoints(format!(
            "no endpoints for {}: it resolved to {} ({tried}); explanation: {explain}",
            name.show(),
            tree.show()
        ))
    }
}

/// A forwarded request's answer.
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

/// How long an upstream connection may sit idle in the pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// A cached binding and what the request path needs of its name.
struct NameBinding {
    binding: Binding,
    /// The name as `l5d-dst-service` carries it, printed once.
    service_header: Option<HeaderValue>,
}

/// A bound name's balancer and what the request path needs of its id.
struct Client {
    balancer: Balancer,
    /// The id as `l5d-dst-client` carries it, printed once.
    client_header: Option<HeaderValue>,
    /// The last residual path sent as `l5d-dst-residual`, and its value:
    /// requests for one client usually share their residual.
    last_residual: arc_swap::ArcSwapOption<(Path, HeaderValue)>,
}

impl Client {
    fn new(bound: &Bound) -> Client {
        Client {
            balancer: Balancer::new(bound.addr.clone()),
            client_header: HeaderValue::try_from(bound.id.show()).ok(),
            last_residual: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// `residual` as an `l5d-dst-residual` value, printed only when it
    /// differs from the last one.
    fn residual_header(&self, residual: &Path) -> Option<HeaderValue> {
        if let Some(last) = &*self.last_residual.load()
            && last.0 == *residual
        {
            return Some(last.1.clone());
        }
        let value = HeaderValue::try_from(residual.show()).ok()?;
        self.last_residual
            .store(Some(Arc::new((residual.clone(), value.clone()))));
        Some(value)
    }

    fn endpoint_authority(&self, endpoint: SocketAddr) -> Authority {
        // A socket address always prints as a valid authority.
        Authority::try_from(endpoint.to_string())
            .unwrap_or_else(|_| Authority::from_static("localhost"))
    }
}

/// `Via` and the `l5d-dst-*` and `l5d-reqid` headers Linkerd sends
/// downstream. `l5d-dst-*` replace the client's; a client's `l5d-reqid`
/// is kept.
struct DstHeaders {
    service: Option<HeaderValue>,
    client: Option<HeaderValue>,
    residual: Option<HeaderValue>,
}

impl DstHeaders {
    fn new(service: Option<HeaderValue>, client: &Client, bound: &Bound) -> DstHeaders {
        DstHeaders {
            service,
            client: client.client_header.clone(),
            residual: if bound.residual.is_empty() {
                None
            } else {
                client.residual_header(&bound.residual)
            },
        }
    }

    /// Sets the headers in a request's header map.
    fn set(self, headers: &mut http::HeaderMap) {
        headers.reserve(5);
        headers.append(header::VIA, VIA_VALUE);
        let replaced = [
            (L5D_DST_SERVICE, self.service),
            (L5D_DST_CLIENT, self.client),
            (L5D_DST_RESIDUAL, self.residual),
        ];
        for (name, value) in replaced {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        if !headers.contains_key(L5D_REQID) {
            headers.insert(L5D_REQID, request_id());
        }
    }

    /// Writes the head of `parts` with these headers to `out`, without
    /// putting them in its header map first.
    fn encode_head(self, parts: &http::request::Parts, out: &mut Vec<u8>) {
        let mut has_reqid = false;
        crate::endpoint::h1_direct::encode_head(parts, out, |name| {
            // Only `l5d-*` names need a closer look.
            if !name.as_str().starts_with("l5d-") {
                return true;
            }
            if name == L5D_REQID {
                has_reqid = true;
                return true;
            }
            !((name == L5D_DST_SERVICE && self.service.is_some())
                || (name == L5D_DST_CLIENT && self.client.is_some())
                || (name == L5D_DST_RESIDUAL && self.residual.is_some()))
        });
        let push = crate::endpoint::h1_direct::push_field;
        push(out, b"via", VIA_VALUE.as_bytes());
        let replaced = [
            (&L5D_DST_SERVICE, &self.service),
            (&L5D_DST_CLIENT, &self.client),
            (&L5D_DST_RESIDUAL, &self.residual),
        ];
        for (name, value) in replaced {
            if let Some(value) = value {
                push(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if !has_reqid {
            push(out, b"l5d-reqid", &request_id_text());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A random request id: 16 lowercase hex digits.
fn request_id() -> HeaderValue {
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&request_id_text()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn request_id_text() -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = rand::random::<u64>();
    let mut text = [0u8; 16];
    for digit in text.iter_mut().rev() {
        *digit = HEX[(id & 0xf) as usize];
        id >>= 4;
    }
    text
}

/// How many proxies the request has passed, from its `Via` headers.
fn via_hops(headers: &http::HeaderMap) -> usize {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(',').filter(|hop| !hop.trim().is_empty()).count())
        .sum()
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
    // Most requests name nothing in `Connection`: no list is built for them.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(upgrading && n == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if upgrading && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Copies bytes both ways between the client and the upstream after a
/// `101 Switching Protocols`.
async fn splice(downstream: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = tokio::join!(downstream, upstream) else {
        tracing::debug!("an upgrade was not completed by one side");
        return;
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}

fn describe_addr(addr: &namers::Addr) -> String {
    match addr {
        namers::Addr::Pending => "address pending".to_string(),
        namers::Addr::Neg => "the name does not exist".to_string(),
        namers::Addr::Failed(why) => format!("address lookup failed: {why}"),
        namers::Addr::Bound(set) if set.is_empty() => "no endpoints listed".to_string(),
        namers::Addr::Bound(_) => "every endpoint has weight 0".to_string(),
    }
}

/// The response for a request the router could not complete.
pub fn error_response(error: &RouterError) -> Response<Body> {
    let mut response = Response::new(body::full(format!("{error}\n")));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(HeaderName::from_static("l5d-err"), error.header_value());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if error.retryable() {
        headers.insert(
            HeaderName::from_static("l5d-retryable"),
            HeaderValue::from_static("true"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_hops_count_every_entry() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(via_hops(&headers), 0);
        headers.append(header::VIA, HeaderValue::from_static("1.1 a, 1.1 b"));
        headers.append(header::VIA, HeaderValue::from_static("1.1 c"));
        assert_eq!(via_hops(&headers), 3);
    }

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

        let mut ws = http::HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(ws.get(header::CONNECTION).unwrap(), "upgrade");
    }
}
