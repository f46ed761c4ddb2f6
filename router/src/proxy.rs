//! The request path: name the request, bind the name, pick an endpoint,
//! forward, and stream the answer back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, NameTree, Path};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::{Activity, Binding, Bound};

use crate::balance::Balancer;
use crate::body::{self, Body, Guarded};
use crate::cache::Cache;
use crate::config::RouterSpec;
use crate::dtab_headers::{clear_context, forward_headers, local_dtab};
use crate::errors::RouterError;
use crate::identify::{Identifier, Protocol, identify_with};
use crate::interpreter::RouterNaming;
use crate::metrics::RouterMetrics;

/// Headers that describe one hop and are not forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Settings of one listening server of a router.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Strip `l5d-*` request headers.
    pub clear_context: bool,
    /// Most `Via` hops accepted.
    pub max_call_depth: usize,
}

/// One configured router, shared by its servers' connections.
pub struct Router {
    spec: RouterSpec,
    identifiers: Vec<Box<dyn Identifier>>,
    naming: Arc<dyn RouterNaming>,
    bindings: Cache<(String, Path), Binding>,
    balancers: Cache<Path, Balancer>,
    client: Client<HttpConnector, Body>,
    /// Upstream connections of an `h2` router.
    h2: Option<crate::h2_pool::H2Pool>,
    metrics: RouterMetrics,
    admin: SocketAddr,
}

impl Router {
    /// A router; `admin` is where the explanation of a failed name can be asked.
    pub fn new(
        spec: RouterSpec,
        identifiers: Vec<Box<dyn Identifier>>,
        naming: Arc<dyn RouterNaming>,
        metrics: RouterMetrics,
        admin: SocketAddr,
    ) -> Router {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(spec.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024);
        let client = builder.build(connector);
        let h2 = (spec.protocol == Protocol::H2)
            .then(|| crate::h2_pool::H2Pool::new(spec.connect_timeout));
        Router {
            h2,
            bindings: Cache::new(spec.paths_capacity, spec.idle_ttl),
            balancers: Cache::new(spec.clients_capacity, spec.idle_ttl),
            spec,
            identifiers,
            naming,
            client,
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
    }

    /// Serves one request; failures become error responses.
    pub async fn handle(
        &self,
        server: &ServerSettings,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let response = match self.route(server, request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(router = %self.spec.label, error = %e, "request failed");
                error_response(&e)
            }
        };
        self.metrics
            .record(response.status().as_u16(), started.elapsed());
        response
    }

    async fn route(
        &self,
        server: &ServerSettings,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, RouterError> {
        let (mut parts, incoming) = request.into_parts();
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
        let local =
            local_dtab(&parts.headers).map_err(|e| RouterError::BadDtabHeader(e.to_string()))?;
        let identified = identify_with(&self.identifiers, &parts)
            .map_err(|e| RouterError::Unidentified(e.to_string()))?;
        let name = identified.name;
        let deadline = tokio::time::Instant::now() + self.spec.binding_timeout;
        let state = self.bound_tree(&local, &name, deadline).await?;
        let Activity::Ok(tree) = &*state else {
            return Err(RouterError::BindingFailed(format!(
                "binding {} is not ready",
                name.show()
            )));
        };
        let bound = match choose(tree, &mut pick_by_weight) {
            Resolved::Leaf(bound) => bound.clone(),
            Resolved::Empty => {
                return Err(RouterError::NoEndpoints(format!(
                    "{} has no endpoints (it resolved to $)",
                    name.show()
                )));
            }
            Resolved::Neg => return Err(self.no_route(&name, &local, tree)),
        };
        let balancer = self
            .balancers
            .get_or_insert_with(&bound.id, || Balancer::new(bound.addr.clone()));
        let picked = self.pick(&balancer.value, &name, &bound, deadline).await?;

        // Rewrite the request for the chosen endpoint.
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let upgrading = is_upgrade(&parts.headers);
        let path_and_query = identified
            .rewritten_uri
            .as_ref()
            .unwrap_or(&parts.uri)
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        // The authority the client asked for: HTTP/1 keeps it in `Host`, HTTP/2
        // in the URI. Backends see it; only the connection goes to the endpoint.
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        let upstream_authority = match self.spec.protocol {
            Protocol::H2 => authority.clone().unwrap_or_else(|| picked.addr.to_string()),
            Protocol::Http => picked.addr.to_string(),
        };
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(upstream_authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| RouterError::Upstream(format!("cannot build the upstream URI: {e}")))?;
        if self.spec.protocol == Protocol::Http {
            if parts.version == http::Version::HTTP_2 {
                parts.version = http::Version::HTTP_11;
            }
            // An HTTP/2 client has no Host header; keep its authority.
            if let Some(host) = authority.filter(|_| !parts.headers.contains_key(header::HOST))
                && let Ok(value) = HeaderValue::from_str(&host)
            {
                parts.headers.insert(header::HOST, value);
            }
        } else {
            parts.headers.remove(header::HOST);
        }
        strip_hop_by_hop(&mut parts.headers, upgrading);
        forward_headers(&mut parts.headers, &local);
        self.set_dst_headers(&mut parts.headers, &name, &bound);
        let outgoing = Request::from_parts(parts, http_body_util::BodyExt::boxed_unsync(incoming));

        let call = async {
            match &self.h2 {
                Some(pool) => pool.send(picked.addr, outgoing).await,
                None => self
                    .client
                    .request(outgoing)
                    .await
                    .map_err(|e| error_chain(&e)),
            }
        };
        let limit = self.spec.total_timeout.or(self.spec.attempt_timeout);
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                RouterError::Timeout(format!(
                    "no response from {} for {} within {limit:?}",
                    picked.addr,
                    name.show()
                ))
            })?,
            None => call.await,
        };
        let mut response = result.map_err(|e| {
            RouterError::Upstream(format!(
                "{} ({}) at {}: {}",
                name.show(),
                bound.id.show(),
                picked.addr,
                e
            ))
        })?;

        if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            if let Some(downstream) = on_upgrade {
                let upstream = hyper::upgrade::on(&mut response);
                tokio::spawn(splice(downstream, upstream));
            }
        } else {
            strip_hop_by_hop(response.headers_mut(), false);
        }
        let (parts, incoming) = response.into_parts();
        let body = Guarded::wrap(http_body_util::BodyExt::boxed_unsync(incoming), picked);
        Ok(Response::from_parts(parts, body))
    }

    /// Waits for the binding of `name` to leave the pending state.
    async fn bound_tree(
        &self,
        local: &Dtab,
        name: &Path,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Activity<NameTree<Bound>>>, RouterError> {
        let key = (local.show(), name.clone());
        let entry = self.bindings.get_or_insert_with(&key, || {
            let dtab = self.spec.dtab.concat(local);
            self.naming.bind(&dtab, name)
        });
        let mut binding = entry.value.clone();
        loop {
            let state = binding.load();
            match &*state {
                Activity::Ok(_) => return Ok(state),
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
    ) -> Result<crate::balance::Picked, RouterError> {
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

    fn set_dst_headers(&self, headers: &mut http::HeaderMap, name: &Path, bound: &Bound) {
        let has_reqid = headers.contains_key("l5d-reqid");
        headers.append(header::VIA, HeaderValue::from_static("1.1 switchboard"));
        let mut set = |key: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(key), v);
            }
        };
        set("l5d-dst-service", name.show());
        set("l5d-dst-client", bound.id.show());
        if !bound.residual.is_empty() {
            set("l5d-dst-residual", bound.residual.show());
        }
        if !has_reqid {
            set("l5d-reqid", format!("{:016x}", rand::random::<u64>()));
        }
    }
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
    for name in HOP_BY_HOP {
        if upgrading && (*name == "upgrade" || *name == "connection") {
            continue;
        }
        headers.remove(*name);
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

/// An error and its causes, e.g. "client error (Connect): connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
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
