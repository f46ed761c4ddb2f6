//! An in-process stand-in for a Consul agent's HTTP API, for tests.
//!
//! No Consul agent can run on the test machines, so tests of Consul-backed
//! code talk to this fake instead of a real agent. It follows Consul's
//! documented HTTP API for what it covers: the KV endpoints (`/v1/kv/<key>`:
//! GET with `recurse`, `keys`, `separator` and `raw`; PUT with `cas` and
//! `flags`; DELETE with `cas` and `recurse`), the service endpoints
//! (`/v1/catalog/service/<service>` and `/v1/health/service/<service>`, with
//! `tag` and, for health, `passing`; entries shaped as Consul's, with
//! `Address` and `ServiceAddress`, `ServicePort`, `ServiceTags` and the
//! checks' `Status`), `/v1/agent/self` (the agent's `Config.Datacenter` and
//! `DebugConfig.DNSDomain`), blocking queries (`index` and `wait`, answered
//! with `X-Consul-Index`), datacenters (`dc`), the `consistent`/`stale`
//! flags and ACL tokens (`X-Consul-Token`, a bearer `Authorization` header
//! or `?token=`).
//!
//! It is a fake, not Consul: one server, no Raft, no sessions or locks, every
//! read is consistent, a wait gets no random extra time, every datacenter
//! shares one index and one KV store, only one `tag` filter is honoured per
//! query, there is no limit on connections per client (Consul's
//! `limits.http_max_conns_per_client`, 200 by default), and instances are
//! registered through test controls ([`FakeConsul::register`],
//! [`FakeConsul::deregister`], [`FakeConsul::set_health`],
//! [`FakeConsul::set_node_health`]) rather than the agent's or catalog's
//! registration endpoints. A configured token grants everything and any
//! other token is refused with a 403; a request with no token at all is the
//! anonymous token, refused too, except that a service query is answered as
//! Consul answers it: an empty list flagged by
//! `X-Consul-Results-Filtered-By-ACLs: true`.
//!
//! Test controls simulate what real clusters do to their clients: an outage
//! ([`FakeConsul::set_down`] answers 500s, [`FakeConsul::set_refusing`]
//! closes the port), a restore from an older snapshot that makes indexes go
//! backwards ([`FakeConsul::reset_index`]), and a count of blocking queries
//! in flight ([`FakeConsul::blocking_queries_in_flight`]) to check that
//! watchers stop. They apply to every endpoint.
//!
//! This module holds what every endpoint shares: the index, the
//! blocking-query loop, the token and datacenter checks and the outage
//! switches. The KV endpoints are one route, in `kv`; the service and agent
//! endpoints are others, in `catalog`.

mod catalog;
mod kv;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::catalog::{Catalog, Endpoint};
pub use self::catalog::{Health, Instance};
use self::kv::Kv;
pub use self::kv::KvEntry;

/// Consul's limit on the size of one KV value.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The longest `wait` Consul honours for a blocking query.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The `wait` of a blocking query that gives none.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The index of a fresh cluster: Raft writes a few entries of its own when
/// a cluster starts, so the first KV write never gets index 1, which is what
/// an empty store reports.
const START_INDEX: u64 = 1;

/// How many requests [`FakeConsul::requests`] remembers.
const REQUEST_LOG_LEN: usize = 1000;

/// How the fake is set up.
#[derive(Clone, Debug)]
pub struct FakeConsulConfig {
    /// The agent's own datacenter: the one used when a request names none.
    pub datacenter: String,
    /// Other datacenters that `?dc=` may name. They share one KV store here.
    pub other_datacenters: Vec<String>,
    /// When set, every request must carry this token, or it gets a 403
    /// (or, for a service query without any token, an empty answer).
    pub token: Option<String>,
    /// The DNS domain the agent reports (`consul` by default).
    pub domain: String,
}

impl Default for FakeConsulConfig {
    fn default() -> FakeConsulConfig {
        FakeConsulConfig {
            datacenter: "dc1".to_string(),
            other_datacenters: Vec::new(),
            token: None,
            domain: "consul".to_string(),
        }
    }
}

/// A request the fake received, for assertions on what a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method.
    pub method: Method,
    /// The path, still percent-encoded.
    pub path: String,
    /// The query string, empty if none.
    pub query: String,
    /// The token it carried, from whichever place Consul reads it.
    pub token: Option<String>,
}

/// A running fake Consul agent on 127.0.0.1.
///
/// Dropping it closes the port and every connection.
pub struct FakeConsul {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

struct Shared {
    config: FakeConsulConfig,
    state: Mutex<State>,
    /// Bumped after every change a blocking query must look at again.
    changes: watch::Sender<u64>,
    down: AtomicBool,
    blocking: AtomicUsize,
    log: Mutex<VecDeque<SeenRequest>>,
    /// Bumping it drops every open connection.
    connections: watch::Sender<u64>,
    /// Whether the listener should be closed; the accept loop follows it.
    refusing: watch::Sender<bool>,
    /// Whether the listener is open, as the accept loop reports it.
    listening: watch::Sender<bool>,
    stopped: watch::Sender<bool>,
}

struct State {
    /// The Raft-like index: every write takes the next one.
    index: u64,
    /// Bumped by a snapshot restore: wakes every blocking query, as the
    /// state store's abandon channel does in Consul.
    epoch: u64,
    kv: Kv,
    catalog: Catalog,
}

impl Default for State {
    fn default() -> State {
        State {
            index: START_INDEX,
            epoch: 0,
            kv: Kv::default(),
            catalog: Catalog::default(),
        }
    }
}

impl FakeConsul {
    /// Starts a fake agent of datacenter `dc1` with no ACLs on 127.0.0.1
    /// and an ephemeral port.
    pub async fn start() -> io::Result<FakeConsul> {
        FakeConsul::start_with(FakeConsulConfig::default()).await
    }

    /// Starts a fake agent set up by `config`.
    pub async fn start_with(config: FakeConsulConfig) -> io::Result<FakeConsul> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            down: AtomicBool::new(false),
            blocking: AtomicUsize::new(0),
            log: Mutex::new(VecDeque::new()),
            connections: watch::channel(0).0,
            refusing: watch::channel(false).0,
            listening: watch::channel(true).0,
            stopped: watch::channel(false).0,
        });
        let accept = tokio::spawn(accept_loop(shared.clone(), listener, addr));
        Ok(FakeConsul {
            shared,
            addr,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While `down`, every request (including blocking queries already
    /// waiting) gets a 500 "No cluster leader", as when the servers have
    /// lost their leader.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        self.shared.wake_all();
    }

    /// While `refusing`, the port is closed (connections are refused) and
    /// every open connection is dropped, as when the agent is stopped.
    /// Returns once the listener is closed or open again.
    pub async fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.send_replace(refusing);
        if refusing {
            self.shared.connections.send_modify(|g| *g += 1);
        }
        let mut listening = self.shared.listening.subscribe();
        // The accept loop rebinds the same port; give up after a while
        // rather than hang a test (its requests will then fail).
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            listening.wait_for(|open| *open != refusing),
        )
        .await;
    }

    /// Simulates a restore from an older snapshot: every key, then every
    /// node and service instance, is renumbered from the start in order,
    /// tombstones are gone, the index goes backwards, and every blocking
    /// query returns at once with the new, lower index.
    pub fn reset_index(&self) {
        {
            let mut state = self.shared.lock();
            let mut index = START_INDEX;
            for entry in state.kv.entries.values_mut() {
                index += 1;
                entry.create_index = index;
                entry.modify_index = index;
            }
            state.kv.tombstones.clear();
            state.kv.table_index = index;
            let index = state.catalog_renumber(index);
            state.index = index;
            state.epoch += 1;
        }
        self.shared.wake_all();
    }

    /// How many blocking queries are waiting for an answer right now.
    pub fn blocking_queries_in_flight(&self) -> usize {
        self.shared.blocking.load(Ordering::SeqCst)
    }

    /// The current Raft-like index.
    pub fn index(&self) -> u64 {
        self.shared.lock().index
    }

    /// The most recent requests received, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Writes `key` directly (no HTTP, no token); returns its new
    /// ModifyIndex. Wakes blocking queries as a PUT would.
    pub fn kv_put(&self, key: &str, value: impl Into<Bytes>) -> u64 {
        let index = self.shared.lock().kv_set(key, value.into(), 0);
        self.shared.wake_all();
        index
    }

    /// Reads `key` directly.
    pub fn kv_get(&self, key: &str) -> Option<KvEntry> {
        self.shared.lock().kv.entries.get(key).cloned()
    }

    /// Deletes `key` directly; says whether it existed.
    pub fn kv_delete(&self, key: &str) -> bool {
        let existed = self.shared.lock().kv_delete(key);
        self.shared.wake_all();
        existed
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.shared.stopped.send_replace(true);
        self.shared.connections.send_modify(|g| *g += 1);
        self.accept.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn wake_all(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn record(&self, req: &Request<Incoming>, token: Option<String>) {
        let mut log = lock(&self.log);
        if log.len() == REQUEST_LOG_LEN {
            log.pop_front();
        }
        log.push_back(SeenRequest {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
            token,
        });
    }

    /// Whether `dc` is configured, or has had an instance registered.
    fn knows_datacenter(&self, dc: &str) -> bool {
        self.config.datacenter == dc
            || self.config.other_datacenters.iter().any(|d| d == dc)
            || self.lock().has_datacenter(dc)
    }
}

impl State {
    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut refusing = shared.refusing.subscribe();
    let mut stopped = shared.stopped.subscribe();
    let mut listener = Some(listener);
    loop {
        if *stopped.borrow_and_update() {
            return;
        }
        let wants_closed = *refusing.borrow_and_update();
        match (&listener, wants_closed) {
            (Some(_), true) => {
                listener = None;
                shared.listening.send_replace(false);
                continue;
            }
            (None, false) => match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    shared.listening.send_replace(true);
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ => {}
        }
        let accepted = match &listener {
            Some(l) => tokio::select! {
                accepted = l.accept() => Some(accepted),
                _ = refusing.changed() => None,
                _ = stopped.changed() => None,
            },
            None => {
                tokio::select! {
                    _ = refusing.changed() => {}
                    _ = stopped.changed() => {}
                }
                None
            }
        };
        if let Some(Ok((stream, _))) = accepted {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(shared.clone(), stream));
        }
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let mut kill = shared.connections.subscribe();
    kill.borrow_and_update();
    let service_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = service_shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
    }
}

/// The query parameters, Consul-style: a flag counts when present, whatever
/// its value.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(query: Option<&str>) -> Params {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k, true), percent_decode(v, true));
        }
        Params(map)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ()> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ()),
        }
    }
}

/// Decodes `%XX` escapes (and, in a query string, `+` as a space).
pub(crate) fn percent_decode(s: &str, in_query: bool) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[h, l]) if bytes[i] == b'%' => hex(h).zip(hex(l)),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some((h, l)), _) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (None, b'+') if in_query => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a Go duration such as `10s`, `1m30s` or `250ms`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * unit).ok()?;
    }
    Some(total)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    answer(status, body, "text/plain; charset=utf-8", None)
}

fn json(
    status: StatusCode,
    value: &serde_json::Value,
    index: Option<u64>,
) -> Response<Full<Bytes>> {
    answer(status, value.to_string(), "application/json", index)
}

/// A response with the index headers of a read, when `index` is given.
fn answer(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
    index: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Some(index) = index {
        headers.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
        headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
        headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    }
    response
}

fn request_token(req: &Request<Incoming>, params: &Params) -> Option<String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    header("X-Consul-Token")
        .or_else(|| {
            header("Authorization")
                .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        })
        .or_else(|| params.get("token").map(str::to_string))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let params = Params::parse(req.uri().query());
    let token = request_token(&req, &params);
    shared.record(&req, token.clone());
    if shared.down.load(Ordering::SeqCst) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader");
    }
    let path = req.uri().path().to_string();
    let service_query = [
        ("/v1/catalog/service/", Endpoint::Catalog),
        ("/v1/health/service/", Endpoint::Health),
    ]
    .into_iter()
    .find_map(|(prefix, endpoint)| Some((path.strip_prefix(prefix)?, endpoint)));
    let required = shared.config.token.as_deref();
    let refused = required.is_some_and(|required| token.as_deref() != Some(required));
    // The anonymous token may read a service: it sees no entries.
    let filtered = refused && token.is_none() && service_query.is_some();
    if refused && !filtered {
        return text(StatusCode::FORBIDDEN, "Permission denied");
    }
    let dc = params.get("dc").unwrap_or("");
    if !dc.is_empty() && !shared.knows_datacenter(dc) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    if params.has("stale") && params.has("consistent") {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        );
    }
    if let Some((service, endpoint)) = service_query {
        if req.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let dc = if dc.is_empty() {
            shared.config.datacenter.as_str()
        } else {
            dc
        };
        let service = percent_decode(service, false);
        return catalog::service(&shared, &params, dc, &service, endpoint, filtered).await;
    }
    if path == "/v1/agent/self" {
        return catalog::agent_self(&shared);
    }
    if let Some(key) = path.strip_prefix("/v1/kv/").or_else(|| {
        // `/v1/kv` with no key at all is the root of the KV tree.
        (path == "/v1/kv").then_some("")
    }) {
        let key = percent_decode(key, false);
        return kv::handle(&shared, req, &params, &key).await;
    }
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// The outcome of a read, possibly after blocking.
enum Read<T> {
    Answer(u64, T),
    Down,
    BadWait,
}

/// Runs `query` once, or, when the request has `?index=`, until its index
/// passes that one, the wait elapses, the state is restored from a snapshot
/// or the agent goes down.
async fn blocking_read<T>(
    shared: &Shared,
    params: &Params,
    query: impl Fn(&State) -> (u64, T),
) -> Read<T> {
    blocking_read_with(
        shared,
        params,
        |state| query(state).0,
        |state| query(state).1,
    )
    .await
}

/// [`blocking_read`] for a query whose index is cheaper to find than its
/// answer: `index` is checked on every change, `answer` is only built to
/// reply (under the same lock, so the two agree).
async fn blocking_read_with<T>(
    shared: &Shared,
    params: &Params,
    index: impl Fn(&State) -> u64,
    answer: impl Fn(&State) -> T,
) -> Read<T> {
    let min_index = match params.u64("index") {
        Ok(Some(i)) if i > 0 => i,
        Ok(_) => {
            let state = shared.lock();
            return Read::Answer(index(&state), answer(&state));
        }
        Err(()) => return Read::BadWait,
    };
    let wait = match params.get("wait") {
        None => DEFAULT_WAIT,
        Some(w) => match parse_go_duration(w) {
            Some(w) => w.min(MAX_WAIT),
            None => return Read::BadWait,
        },
    };
    let _in_flight = InFlight::new(&shared.blocking);
    let deadline = Instant::now() + wait;
    let mut changes = shared.changes.subscribe();
    let epoch = shared.lock().epoch;
    loop {
        changes.borrow_and_update();
        if shared.down.load(Ordering::SeqCst) {
            return Read::Down;
        }
        {
            let state = shared.lock();
            let current = index(&state);
            if current > min_index || state.epoch != epoch || Instant::now() >= deadline {
                return Read::Answer(current, answer(&state));
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Counts a blocking query for as long as it lives, including when the
/// client goes away and the server drops it.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use http_body_util::BodyExt as _;

    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb", false), "a/b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz", true), "%zz");
    }

    pub(super) async fn call(
        method: Method,
        url: &str,
        body: &'static str,
    ) -> (StatusCode, Option<u64>, String) {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let index = response
            .headers()
            .get("X-Consul-Index")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, index, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn blocking_queries_wait_for_a_change_or_the_wait() {
        let fake = FakeConsul::start().await.unwrap();
        let modify = fake.kv_put("k", "v1");
        let url = format!("{}/v1/kv/k?index={modify}&wait=10s", fake.url());
        let waiting = tokio::spawn(async move { call(Method::GET, &url, "").await });
        for _ in 0..500 {
            if fake.blocking_queries_in_flight() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fake.blocking_queries_in_flight(), 1);
        let next = fake.kv_put("k", "v2");
        let (status, index, _) = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("the change did not end the blocking query")
            .unwrap();
        assert_eq!((status, index), (StatusCode::OK, Some(next)));
        assert_eq!(fake.blocking_queries_in_flight(), 0);

        let started = Instant::now();
        let url = format!("{}/v1/kv/k?index={next}&wait=200ms", fake.url());
        let (_, index, _) = call(Method::GET, &url, "").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(index, Some(next), "nothing changed");

        let before = fake.index();
        fake.reset_index();
        assert!(fake.index() < before);
        assert!(fake.kv_get("k").unwrap().modify_index < next);
    }

    #[tokio::test]
    async fn tokens_datacenters_and_outages() {
        let fake = FakeConsul::start_with(FakeConsulConfig {
            token: Some("t".to_string()),
            other_datacenters: vec!["east".to_string()],
            ..FakeConsulConfig::default()
        })
        .await
        .unwrap();
        let url = |rest: &str| format!("{}/v1/kv/{rest}", fake.url());
        let (status, _, body) = call(Method::GET, &url("k"), "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::FORBIDDEN, "Permission denied")
        );
        assert_eq!(
            call(Method::GET, &url("k?token=t"), "").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(Method::GET, &url("k?token=t&dc=east"), "").await.0,
            StatusCode::NOT_FOUND
        );
        let (status, _, body) = call(Method::GET, &url("k?token=t&dc=west"), "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, "No path to datacenter");
        let both = url("k?token=t&stale&consistent");
        assert_eq!(
            call(Method::GET, &both, "").await.0,
            StatusCode::BAD_REQUEST
        );

        fake.set_down(true);
        assert_eq!(
            call(Method::GET, &url("k?token=t"), "").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        fake.set_down(false);
        fake.set_refusing(true).await;
        assert!(tokio::net::TcpStream::connect(fake.addr()).await.is_err());
        fake.set_refusing(false).await;
        assert_eq!(
            call(Method::GET, &url("k?token=t"), "").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
