//! One configured router: its stages, in the order a request goes through
//! them, and the function that runs a request through them.
//!
//! server ([`crate::server`]: limits, context headers) → identify
//! ([`crate::identify`]) → service ([`crate::service`]: the destination and
//! its local dtab) → bind ([`crate::bind`]: the bound tree and the leaf) →
//! client ([`crate::client`]: the balancer of the bound id) → endpoint
//! ([`crate::endpoint`]: the connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dtab::Dtab;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::bind::BindStage;
use crate::body::{self, Body};
use crate::client::{ClientStage, DstHeaders};
use crate::config::RouterSpec;
use crate::endpoint::EndpointStage;
pub(crate) use crate::endpoint::Routed;
use crate::errors::RouterError;
use crate::identify::{Identifier, Protocol, identify_with};
use crate::interpreter::RouterNaming;
use crate::metrics::RouterMetrics;
pub use crate::server::context::ServerSettings;
use crate::service::dtab_headers::forward_headers;
use crate::service::{DstTarget, local_dtab};

/// One configured router (an entry of `routers:`), shared by its servers'
/// connections.
pub struct RouterStack {
    spec: RouterSpec,
    identifiers: Vec<Box<dyn Identifier>>,
    bind: BindStage,
    clients: ClientStage,
    endpoints: EndpointStage,
    metrics: RouterMetrics,
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
        RouterStack {
            bind: BindStage::new(&spec, naming, admin),
            clients: ClientStage::new(spec.clients_capacity, spec.idle_ttl, spec.binding_timeout),
            endpoints: EndpointStage::new(&spec),
            spec,
            identifiers,
            metrics,
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
        self.bind.naming()
    }

    /// Drops cache entries that have not been used for the idle TTL.
    pub fn expire_idle(&self) {
        self.bind.expire_idle();
        self.clients.expire_idle();
        self.endpoints.expire_idle();
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

    /// Routes a request through the stages and forwards it. A bodiless
    /// `http` request whose method may be repeated comes back as the
    /// upstream's raw answer ([`Routed::Direct`]); `incoming` is `None` for
    /// a request known to have no body.
    pub(crate) async fn route(
        &self,
        server: &ServerSettings,
        mut parts: http::request::Parts,
        incoming: Option<Incoming>,
        started: Instant,
    ) -> Result<Routed, RouterError> {
        // server
        server.admit(&mut parts)?;
        // identify
        let identified = identify_with(&self.identifiers, &parts)
            .map_err(|e| RouterError::Unidentified(e.to_string()))?;
        // service
        let local = local_dtab(&parts.headers, &self.spec.dtab_header_limits)?;
        let target = DstTarget::new(&local, identified.name);
        // bind
        let deadline = tokio::time::Instant::from_std(started) + self.spec.binding_timeout;
        let (state, service_header) = self
            .bind
            .bound_tree(&target, &local, started, deadline)
            .await?;
        let bound = self.bind.leaf(&state, &target, &local)?;
        // client
        let client = self.clients.client(bound, started);
        let picked = self
            .clients
            .pick(&client.value, &target, bound, deadline)
            .await?;
        let dst = DstHeaders::new(service_header, &client.value, bound);
        // endpoint
        forward_headers(&mut parts.headers, &local);
        let limit = self.spec.total_timeout.or(self.spec.attempt_timeout);
        self.endpoints
            .forward(
                parts,
                incoming,
                identified.rewritten_uri,
                picked,
                dst,
                limit,
                &target,
                bound,
            )
            .await
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
