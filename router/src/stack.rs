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

use std::time::Duration;

use crate::access_log::{AccessLog, RequestHead};
use crate::bind::BindStage;
use crate::body::{self, Body, LateClass};
use crate::client::balance::Outcome;
use crate::client::stats::ClientStats;
use crate::client::{Client, ClientStage, DstHeaders};
use crate::config::RouterSpec;
pub(crate) use crate::endpoint::Routed;
use crate::endpoint::limit::SpareTimer;
use crate::endpoint::{AttemptError, AttemptLimit, EndpointStage, Forwarded, Outgoing, WhyUnsent};
use crate::errors::RouterError;
use crate::identify::{Identifier, Protocol, identify_with};
use crate::interpreter::RouterNaming;
use crate::policy::backoff::BackoffSchedule;
use crate::policy::classifier::{RequestFacts, ResponseClass};
pub use crate::server::context::{Downstream, ServerSettings};
use crate::server::stats::ServerStats;
use crate::service::Service;
use crate::service::deadline;
use crate::service::dtab_headers::forward_headers;
use crate::service::replay::{Arriving, RequestBody};
use crate::service::{DstTarget, local_dtab};
use crate::stats::{FailureKind, PendingOutcome, RequestStats};
use crate::trace::{RequestTrace, Tracing};
use namers::telemetry::trace::Tracer;

/// One configured router (an entry of `routers:`), shared by its servers'
/// connections.
pub struct RouterStack {
    spec: RouterSpec,
    identifiers: Vec<Box<dyn Identifier>>,
    bind: BindStage,
    clients: ClientStage,
    endpoints: EndpointStage,
    /// Its servers' figures, listed under `rt/<router>/server`.
    servers: std::sync::Mutex<Vec<Arc<ServerStats>>>,
    /// `httpAccessLog` / `h2AccessLog`.
    access_log: Option<AccessLog>,
    /// Set when a tracing telemeter is configured.
    tracing: Option<Tracing>,
}

impl RouterStack {
    /// A router; `admin` is where the explanation of a failed name can be asked.
    pub fn new(
        spec: RouterSpec,
        identifiers: Vec<Box<dyn Identifier>>,
        naming: Arc<dyn RouterNaming>,
        admin: SocketAddr,
    ) -> RouterStack {
        RouterStack {
            bind: BindStage::new(&spec, naming, admin),
            clients: ClientStage::new(&spec),
            endpoints: EndpointStage::new(&spec),
            spec,
            identifiers,
            servers: std::sync::Mutex::default(),
            access_log: None,
            tracing: None,
        }
    }

    /// The router recording its requests' spans with `tracer`.
    pub fn with_tracer(mut self, tracer: Option<Arc<Tracer>>) -> RouterStack {
        self.tracing = tracer.map(|tracer| Tracing {
            tracer,
            propagator: self.spec.trace_propagator,
        });
        self
    }

    /// The router writing a line per answered request to `log`.
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> RouterStack {
        self.access_log = log;
        self
    }

    /// The router's access log, if it has one.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The figures of the router's server configured at `ip:port`.
    pub fn server_stats(&self, ip: std::net::IpAddr, port: u16) -> Arc<ServerStats> {
        let stats = Arc::new(ServerStats::new(ip, port));
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(stats.clone());
        stats
    }

    /// The router's checked settings.
    pub(crate) fn spec(&self) -> &RouterSpec {
        &self.spec
    }

    /// The bind and client stages, which a `tcp` router's connections go
    /// through.
    pub(crate) fn tcp_stages(&self) -> (&BindStage, &ClientStage) {
        (&self.bind, &self.clients)
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

    /// Every client's failure-accrual figures, by bound id.
    pub fn client_health(&self) -> Vec<(dtab::Path, crate::client::ClientHealth)> {
        self.clients.health()
    }

    /// Every client's state (`/client_state.json`), by bound id.
    pub fn client_states(&self) -> Vec<(dtab::Path, serde_json::Value)> {
        self.clients.states()
    }

    /// Drops cache entries that have not been used for the idle TTL.
    pub fn expire_idle(&self) {
        self.bind.expire_idle();
        self.clients.expire_idle();
        self.endpoints.expire_idle();
    }

    /// Serves one request from `downstream`; failures become error
    /// responses.
    pub async fn handle(
        &self,
        server: &ServerSettings,
        request: Request<Incoming>,
        downstream: &Downstream,
    ) -> Response<Body> {
        let (parts, incoming) = request.into_parts();
        self.handle_arriving(server, parts, Arriving::Incoming(incoming), downstream)
            .await
    }

    /// [`RouterStack::handle`] for a request whose head and body have been
    /// taken apart by the server that read them.
    pub(crate) async fn handle_arriving(
        &self,
        server: &ServerSettings,
        parts: http::request::Parts,
        arriving: Arriving,
        downstream: &Downstream,
    ) -> Response<Body> {
        let started = Instant::now();
        let mut trace = None;
        let routed = self
            .route(server, parts, arriving, started, downstream, &mut trace)
            .await;
        self.answer(server, routed, trace, started)
    }

    /// The response to a request [`RouterStack::route`] routed (or not),
    /// its trace ended and the server's figures counted.
    pub(crate) fn answer(
        &self,
        server: &ServerSettings,
        routed: Result<Routed, RouterError>,
        trace: Option<Box<RequestTrace>>,
        started: Instant,
    ) -> Response<Body> {
        let mut failure = None;
        let response = match routed {
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
                let response = error_response(&e);
                failure = trace.is_some().then(|| e.to_string());
                response
            }
        };
        if let Some(trace) = trace {
            trace.end(response.status().as_u16(), failure.as_deref());
        }
        server
            .stats
            .record(response.status().as_u16(), started.elapsed());
        response
    }

    /// Whether this router speaks HTTP/1 to its endpoints.
    pub(crate) fn is_http1(&self) -> bool {
        self.spec.protocol == Protocol::Http
    }

    /// Routes a request through the stages and forwards it. A bodiless
    /// `http` request whose method may be repeated comes back as the
    /// upstream's raw answer ([`Routed::Direct`]); `arriving` is the body
    /// as the server hands it over.
    pub(crate) async fn route(
        &self,
        server: &ServerSettings,
        mut parts: http::request::Parts,
        arriving: Arriving,
        started: Instant,
        downstream: &Downstream,
        trace: &mut Option<Box<RequestTrace>>,
    ) -> Result<Routed, RouterError> {
        let remote = downstream.remote;
        // server
        server.admit(&mut parts)?;
        if let Some(hop) = &downstream.forwarded {
            hop.add_to(&mut parts);
        }
        if let Some(setup) = &self.tracing {
            *trace = Some(RequestTrace::begin(
                setup,
                &mut parts,
                &self.spec.label,
                server.address,
                remote,
            ));
        }
        // What the access log needs of the request, kept before it goes
        // (boxed: the request's future stays small without a log).
        let logged = self
            .access_log
            .as_ref()
            .map(|_| Box::new(RequestHead::from_parts(&parts, remote.map(|a| a.ip()))));
        // identify
        let identified = identify_with(&self.identifiers, &parts)
            .map_err(|e| RouterError::Unidentified(e.to_string()))?;
        // service
        let local = local_dtab(&parts.headers, &self.spec.dtab_header_limits)?;
        self.spec.admission.check(&identified.name, downstream)?;
        let target = DstTarget::new(&local, identified.name);
        if let Some(trace) = trace {
            trace.destination(&target.name);
        }
        // bind
        let binding_deadline = tokio::time::Instant::from_std(started) + self.spec.binding_timeout;
        let dst = self
            .bind
            .bound_tree(&target, &local, started, binding_deadline)
            .await?;
        let bound = match self.bind.leaf(&dst.tree, &target, &local) {
            Ok(bound) => bound,
            Err(error) => {
                let figures = &dst.service.stats.requests;
                figures.request();
                figures.failure(error.failure_kind());
                figures.latency(started.elapsed());
                return Err(error);
            }
        };
        // client
        let client = self.clients.client(bound, started);
        forward_headers(&mut parts.headers, &local);
        if client.value.policy.forward_client_cert
            && let Some(identity) = &downstream.identity
            && let Ok(value) = HeaderValue::try_from(identity.forwarded_client_cert())
        {
            parts
                .headers
                .insert(crate::server::context::X_FORWARDED_CLIENT_CERT, value);
        }
        let service = &dst.service;
        service.stats.requests.request();
        // A request that fails before its first attempt is a failure of
        // its service all the same.
        let failed_early = |error: RouterError| {
            let figures = &service.stats.requests;
            figures.failure(error.failure_kind());
            figures.latency(started.elapsed());
            error
        };
        let deadline = deadline::apply(
            &mut parts.headers,
            tokio::time::Instant::from_std(started),
            service.policy.total_timeout,
        );
        let headers = DstHeaders::new(
            dst.service_header,
            &client.value,
            bound,
            deadline.map(|(value, _)| value),
        );
        let deadline = deadline.map(|(_, at)| at);
        let facts = RequestFacts {
            method: parts.method.clone(),
            chunked: arriving.is_chunked(),
        };
        // endpoint
        let bodiless = arriving.is_end_stream();
        let mut outgoing = self
            .endpoints
            .prepare(
                parts,
                identified.rewritten_uri,
                arriving.carried(),
                client.value.policy.tls.is_some(),
            )
            .map_err(failed_early)?;
        let classifier = &service.policy.classifier;
        let retryable_method = !outgoing.is_upgrade() && classifier.may_retry(&facts);
        // (Most requests have no body: they skip the reader's future.)
        let mut body = if bodiless {
            RequestBody::Empty
        } else {
            RequestBody::read(arriving, retryable_method, service.policy.retry_buffer)
                .await
                .map_err(failed_early)?
        };
        if outgoing.is_direct()
            && let Some(whole) = body.whole()
        {
            outgoing.set_direct_body(whole);
        }
        let attempts = Attempts {
            stack: self,
            target: &target,
            bound,
            client: &client.value,
            client_service: service.client_stats(&client.value.stats),
            service,
            facts: &facts,
            headers: &headers,
            binding_deadline,
            deadline,
            timer: &downstream.timer,
        };
        // The attempts loop is written out here rather than in a method
        // of its own: another future layer would be copied per request.
        let outgoing = &mut outgoing;
        let body = &mut body;
        let arrived = tokio::time::Instant::from_std(started);
        attempts.service.retries.deposit_at(arrived);
        attempts.client.requeues.deposit_at(arrived);
        let mut requeues = 0;
        let mut retries = 0;
        let mut backoff = None;
        // Where the last attempt failed: the next one goes elsewhere when
        // the balancer offers another endpoint within a few picks.
        let mut failed_at = None;
        // The first attempt starts with the request (one clock reading
        // less); the last attempt's end is the request's.
        let mut next_start = Some(started);
        let mut ended = None;
        // The request's figures are counted at each way out, before the
        // answer is returned (carrying it out of the loop would copy it).
        let finish =
            |retries: u32, ended: Option<Instant>, outcome: Result<Option<bool>, &RouterError>| {
                attempts.finish(started, retries, ended, outcome);
            };
        loop {
            let attempt_started = next_start.take().unwrap_or_else(Instant::now);
            let pick = || {
                attempts.stack.clients.pick(
                    attempts.client,
                    attempts.target,
                    attempts.bound,
                    attempts.binding_deadline,
                )
            };
            let (mut picked, mut read) = match pick().await {
                Ok(picked) => picked,
                Err(e) => {
                    finish(retries, ended, Err(&e));
                    return Err(e);
                }
            };
            for _ in 0..AVOID_PICKS {
                if failed_at != Some(picked.addr) {
                    break;
                }
                (picked, read) = match pick().await {
                    Ok(picked) => picked,
                    Err(e) => {
                        finish(retries, ended, Err(&e));
                        return Err(e);
                    }
                };
            }
            failed_at = Some(picked.addr);
            let limit = match attempts.attempt_limit(read) {
                Ok(limit) => limit,
                Err(e) => {
                    finish(retries, ended, Err(&e));
                    return Err(e);
                }
            };
            // A request that will not be sent again gives its head away (a
            // copy costs more than the rare take-back after a failed
            // connection). An h2 request keeps it while its body can be
            // sent again: a refused stream does not give the request back.
            let last = !outgoing.is_direct()
                && (!body.replayable()
                    || outgoing.is_upgrade()
                    || (!retryable_method && attempts.stack.is_http1()));
            let attempt_trace = trace
                .as_deref()
                .map(|trace| trace.attempt(outgoing.headers_mut()));
            let sent = attempts
                .stack
                .endpoints
                .send(
                    outgoing,
                    // (The direct path sends the body the request holds.)
                    if outgoing.is_direct() {
                        None
                    } else {
                        body.for_attempt()
                    },
                    last,
                    picked.addr,
                    attempts.headers,
                    limit,
                    attempts.timer,
                    attempts.target,
                    attempts.bound,
                    &attempts.client.stats.connections,
                    attempts.client.policy.tls.as_deref(),
                )
                .await;
            if let (Some(trace), Some(attempt)) = (trace.as_deref(), attempt_trace) {
                let answer = match &sent {
                    Ok(forwarded) => Ok(forwarded.status().as_u16()),
                    Err(e) => Err(e.error().to_string()),
                };
                trace.attempt_ended(attempt, picked.addr, &bound.id, &bound.residual, answer);
            }
            let (error, class) = match sent {
                Ok(forwarded) => {
                    let class = match &forwarded {
                        Forwarded::Direct { answer, .. } => classifier.classify_response(
                            attempts.facts,
                            answer.status(),
                            &answer.classifier_fields(),
                        ),
                        Forwarded::Streamed { response, .. } => classifier.classify_response(
                            attempts.facts,
                            response.status(),
                            response.headers(),
                        ),
                    };
                    ended = Some(attempts.count_answer(
                        forwarded.status(),
                        class.as_ref(),
                        attempt_started,
                    ));
                    if let Some(ResponseClass::Failure { retryable: true }) = class {
                        picked.record(Outcome::Failure);
                        if let Some(pause) =
                            attempts.plan_retry(outgoing, body, &mut retries, &mut backoff)
                        {
                            // Let go of the endpoint (its in-flight count,
                            // its connection) before the pause.
                            drop(forwarded);
                            drop(picked);
                            pause_before_retry(pause).await;
                            continue;
                        }
                    }
                    // An answer whose class is in its trailers is judged
                    // when they come.
                    let late = match &class {
                        Some(class) => {
                            picked.record(if class.is_success() {
                                Outcome::Success
                            } else {
                                Outcome::Failure
                            });
                            None
                        }
                        None => Some(Box::new(LateClass {
                            policy: attempts.service.policy.clone(),
                            facts: attempts.facts.clone(),
                            status: forwarded.status(),
                            pending: attempts.pending_outcome(),
                        })),
                    };
                    let header = class.as_ref().map(ResponseClass::header_value);
                    finish(
                        retries,
                        ended,
                        Ok(class.as_ref().map(ResponseClass::is_success)),
                    );
                    if let (Some(log), Some(head)) = (&self.access_log, &logged) {
                        let length = forwarded.content_length();
                        log.record(&head.entry(forwarded.status().as_u16(), length));
                    }
                    return Ok(forwarded.into_routed(picked, header, late));
                }
                Err(AttemptError::NotSent {
                    error,
                    request,
                    why,
                }) => {
                    // A stream the endpoint refused says nothing about its
                    // health (it may only be busy); a failed connection does.
                    if why == WhyUnsent::ConnectFailed {
                        picked.record(Outcome::ConnectFailed);
                    }
                    body.give_back(outgoing.take_back(request));
                    // A stream the endpoint refused or a connection it was
                    // rotating costs no budget: it never saw the request,
                    // and servers do both on purpose (RFC 9113 section
                    // 8.7); MAX_REQUEUES still bounds the loop.
                    if body.available()
                        && outgoing.is_available()
                        && requeues < MAX_REQUEUES
                        && (why != WhyUnsent::ConnectFailed
                            || attempts.client.requeues.try_withdraw())
                    {
                        requeues += 1;
                        attempts.client.stats.requeues.incr();
                        continue;
                    }
                    ended = Some(attempts.count_error(&error, attempt_started));
                    (error, None)
                }
                Err(AttemptError::Failed { error, kind }) => {
                    picked.record(Outcome::Failure);
                    ended = Some(attempts.count_error(&error, attempt_started));
                    (error, Some(classifier.classify_error(attempts.facts, kind)))
                }
                // The router's own pool was full: not the endpoint's fault,
                // and not to be retried at once.
                Err(AttemptError::Local { error }) => (error, None),
            };
            if let Some(ResponseClass::Failure { retryable: true }) = class
                && let Some(pause) = attempts.plan_retry(outgoing, body, &mut retries, &mut backoff)
            {
                drop(picked);
                pause_before_retry(pause).await;
                continue;
            }
            finish(retries, ended, Err(&error));
            return Err(error);
        }
    }
}

/// The most times one request is sent again after connection failures
/// (within the requeue budget), and after retryable failures (within the
/// retry budget).
const MAX_REQUEUES: u32 = 25;
const MAX_RETRIES: u32 = 25;

/// How many more picks a retry or requeue makes to avoid the endpoint
/// that just failed.
const AVOID_PICKS: usize = 3;

/// What one request's attempts share: requeues after connection failures,
/// retries after failures its classifier calls retryable.
struct Attempts<'a> {
    stack: &'a RouterStack,
    target: &'a DstTarget,
    bound: &'a namers::Bound,
    client: &'a Client,
    /// `rt/<router>/client/<id>/service/<path>`.
    client_service: Arc<RequestStats>,
    service: &'a Service,
    facts: &'a RequestFacts,
    headers: &'a DstHeaders,
    binding_deadline: tokio::time::Instant,
    /// The request's own deadline (`totalTimeoutMs`, `l5d-ctx-deadline`).
    deadline: Option<tokio::time::Instant>,
    /// The client connection's timer, for the attempts' limits.
    timer: &'a SpareTimer,
}

impl Attempts<'_> {
    /// Counts the request in its service's scope: its latency to the end
    /// of its last attempt (`ended`, or now), its retries, and its outcome
    /// (`Ok(None)`: classified later, by the answer's trailers).
    fn finish(
        &self,
        started: Instant,
        retries: u32,
        ended: Option<Instant>,
        outcome: Result<Option<bool>, &RouterError>,
    ) {
        let figures = &self.service.stats;
        figures.retried(retries);
        let ended = ended.unwrap_or_else(Instant::now);
        figures
            .requests
            .latency(ended.saturating_duration_since(started));
        match outcome {
            Ok(Some(true)) => figures.requests.success(),
            Ok(Some(false)) => figures.requests.failure(FailureKind::Classified),
            Ok(None) => {}
            Err(error) => figures.requests.failure(error.failure_kind()),
        }
    }

    /// Counts an attempt that got an answer, in the client's scopes.
    fn count_answer(
        &self,
        status: http::StatusCode,
        class: Option<&ResponseClass>,
        started: Instant,
    ) -> Instant {
        let client: &ClientStats = &self.client.stats;
        if crate::stats::COUNTING {
            client.status.record(status.as_u16());
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        for stats in [&client.requests, &*self.client_service] {
            stats.request();
            stats.latency(elapsed);
            match class {
                Some(class) if class.is_success() => stats.success(),
                Some(_) => stats.failure(FailureKind::Classified),
                None => {}
            }
        }
        now
    }

    /// Counts an attempt that ended without an answer.
    fn count_error(&self, error: &RouterError, started: Instant) -> Instant {
        let client: &ClientStats = &self.client.stats;
        client.status.error();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        for stats in [&client.requests, &*self.client_service] {
            stats.request();
            stats.latency(elapsed);
            stats.failure(error.failure_kind());
        }
        now
    }

    /// The scopes an answer classified by its trailers is counted in.
    fn pending_outcome(&self) -> PendingOutcome {
        PendingOutcome {
            service: self.service.stats.clone(),
            client: self.client.stats.clone(),
            client_service: self.client_service.clone(),
        }
    }

    /// The time limit of the next attempt: the client's
    /// `requestAttemptTimeoutMs` within what is left of the request's
    /// deadline, counted from `read`, the time the pick just read, or
    /// else from now. (Not from the attempt's start: binding and picking
    /// may have waited since.)
    fn attempt_limit(
        &self,
        read: Option<tokio::time::Instant>,
    ) -> Result<Option<AttemptLimit>, RouterError> {
        let attempt = self.client.policy.attempt_timeout;
        if attempt.is_none() && self.deadline.is_none() {
            return Ok(None);
        }
        let now = read.unwrap_or_else(tokio::time::Instant::now);
        let own = attempt.map(|after| AttemptLimit {
            at: now + after,
            after,
        });
        let Some(deadline) = self.deadline else {
            return Ok(own);
        };
        if deadline <= now {
            return Err(RouterError::Timeout(format!(
                "the deadline of the request for {} passed",
                self.target.name.show()
            )));
        }
        Ok(Some(match own {
            Some(own) if own.at <= deadline => own,
            _ => AttemptLimit {
                at: deadline,
                after: deadline - now,
            },
        }))
    }

    /// Whether a failed attempt is followed by another, and after what
    /// pause: the request's head and body can be sent again, the pause
    /// ends before the deadline, and the retry budget allows it (asked
    /// last, so a retry that will not be made costs no token).
    fn plan_retry(
        &self,
        outgoing: &Outgoing,
        body: &RequestBody,
        retries: &mut u32,
        backoff: &mut Option<BackoffSchedule>,
    ) -> Option<Duration> {
        let figures = &self.service.stats;
        if !body.replayable() || !outgoing.is_available() {
            figures.body_not_replayable.incr();
            return None;
        }
        if *retries >= MAX_RETRIES {
            figures.budget_exhausted.incr();
            return None;
        }
        let pause = backoff
            .get_or_insert_with(|| self.service.policy.backoff.schedule())
            .next();
        if let Some(deadline) = self.deadline
            && tokio::time::Instant::now() + pause >= deadline
        {
            figures.past_deadline.incr();
            return None;
        }
        if !self.service.retries.try_withdraw() {
            figures.budget_exhausted.incr();
            return None;
        }
        *retries += 1;
        Some(pause)
    }
}

/// Waits out a retry's backoff pause (none by default).
async fn pause_before_retry(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

/// The router's figures: `rt/<label>/server/...`, `rt/<label>/service/...`
/// and `rt/<label>/client/...`.
impl namers::telemetry::Source for RouterStack {
    fn list(&self, root: &mut namers::telemetry::Scope<'_>) {
        let mut rt = root.scope("rt");
        let mut router = rt.scope(&self.spec.label);
        let servers: Vec<Arc<ServerStats>> = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut scope = router.scope("server");
        for server in servers {
            server.list(&mut scope);
        }
        self.bind.list_services(&mut router.scope("service"));
        self.clients.list_clients(&mut router.scope("client"));
        self.bind
            .naming()
            .list_stats(&mut router.scope("interpreter"));
        self.spec.admission.list(&mut router);
        self.spec.clients.list_tls(&mut router);
        if let Some(log) = &self.access_log {
            let mut scope = router.scope("access_log");
            scope.counter("written", log.written());
            scope.counter("dropped", log.dropped());
        }
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
    if let RouterError::RateLimited {
        retry_after_secs, ..
    } = error
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    response
}
