//! An in-process stand-in for the Kubernetes API server, for tests.
//!
//! No API server can run on the test machines, so tests of Kubernetes
//! clients talk to this fake. It follows the documented list + watch
//! protocol for the two core `v1` resources a namer reads, Services and
//! Endpoints, in a namespace (`/api/v1/namespaces/<ns>/{services,endpoints}`):
//!
//! - a list answers every object with the collection's current
//!   `metadata.resourceVersion` (it ignores `limit`, as a server without
//!   chunking may, and never sends `continue`);
//! - `?watch=true&resourceVersion=N` streams every change after N as one
//!   JSON `WatchEvent` per line (`ADDED`, `MODIFIED`, `DELETED`), with
//!   `BOOKMARK` events when `allowWatchBookmarks` is set, and ends after
//!   `timeoutSeconds`;
//! - a watch from a version older than the fake's history gets an `ERROR`
//!   event with a `410 Gone` Status (reason `Expired`), which tells a
//!   client to list again;
//! - `labelSelector` takes `key=value` terms joined by commas.
//!
//! Every object shares one resource version counter, as they share etcd's
//! revision in a real cluster. A namespace that has no object is simply
//! empty, as for the real server's lists.
//!
//! Test controls simulate what clusters do to their clients: a watch that
//! ends mid-stream ([`FakeKube::end_watches`]), a bookmark
//! ([`FakeKube::send_bookmarks`]), a compaction that makes every open watch
//! expire ([`FakeKube::expire_watches`]), and an outage
//! ([`FakeKube::set_down`]: 503 for every request, open watches cut).
//! [`FakeKube::open_watches`] counts the watch streams being served, so a
//! test can check that a client stops watching.

mod objects;
mod stream;

pub use objects::{Endpoints, Service, TargetPort};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::consul::percent_decode;

type Body = BoxBody<Bytes, Infallible>;

/// The two resources served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `services`
    Services,
    /// `endpoints`
    Endpoints,
}

impl Resource {
    fn from_path(segment: &str) -> Option<Resource> {
        match segment {
            "services" => Some(Resource::Services),
            "endpoints" => Some(Resource::Endpoints),
            _ => None,
        }
    }

    fn list_kind(self) -> &'static str {
        match self {
            Resource::Services => "ServiceList",
            Resource::Endpoints => "EndpointsList",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Resource::Services => "Service",
            Resource::Endpoints => "Endpoints",
        }
    }
}

/// A request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The path.
    pub path: String,
    /// The query string, decoded, empty if none.
    pub query: String,
    /// Whether it asked for a watch.
    pub watch: bool,
}

/// A running fake API server on 127.0.0.1. Dropping it closes the port and
/// every connection.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

/// What the test controls tell open watches.
#[derive(Clone, Copy, Debug)]
enum Command {
    End,
    Bookmark,
    Expire,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change, so watches look at the history again.
    changes: watch::Sender<u64>,
    commands: broadcast::Sender<Command>,
    down: AtomicBool,
    open_watches: AtomicUsize,
    /// Bumping it drops every open connection.
    connections: watch::Sender<u64>,
    log: Mutex<Vec<SeenRequest>>,
}

/// One object, stored as the API serves it.
#[derive(Clone)]
struct Stored {
    labels: Vec<(String, String)>,
    object: Value,
}

/// One change, kept for watches.
#[derive(Clone)]
struct Change {
    version: u64,
    resource: Resource,
    namespace: String,
    kind: &'static str,
    labels: Vec<(String, String)>,
    object: Value,
}

#[derive(Default)]
struct State {
    version: u64,
    /// Changes at or below this version are forgotten (compacted).
    compacted: u64,
    objects: BTreeMap<(Resource, String, String), Stored>,
    history: Vec<Change>,
}

impl FakeKube {
    /// Starts an empty fake API server on an ephemeral port.
    pub async fn start() -> io::Result<FakeKube> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: 1,
                ..State::default()
            }),
            changes: watch::channel(0).0,
            commands: broadcast::channel(64).0,
            down: AtomicBool::new(false),
            open_watches: AtomicUsize::new(0),
            connections: watch::channel(0).0,
            log: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(shared.clone(), listener));
        Ok(FakeKube {
            shared,
            addr,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates or replaces a Service.
    pub fn apply_service(&self, service: &Service) {
        let stored = Stored {
            labels: service.labels().to_vec(),
            object: service.to_json(),
        };
        self.put(
            Resource::Services,
            &service.namespace,
            &service.name,
            stored,
        );
    }

    /// Creates or replaces an Endpoints object.
    pub fn apply_endpoints(&self, endpoints: &Endpoints) {
        let stored = Stored {
            labels: endpoints.labels().to_vec(),
            object: endpoints.to_json(),
        };
        let (namespace, name) = (&endpoints.namespace, &endpoints.name);
        self.put(Resource::Endpoints, namespace, name, stored);
    }

    /// Deletes an object; says whether it existed.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        let existed = {
            let mut state = self.shared.lock();
            let key = (resource, namespace.to_string(), name.to_string());
            match state.objects.remove(&key) {
                Some(mut stored) => {
                    let version = state.next_version();
                    set_version(&mut stored.object, version);
                    state.history.push(Change {
                        version,
                        resource,
                        namespace: namespace.to_string(),
                        kind: "DELETED",
                        labels: stored.labels,
                        object: stored.object,
                    });
                    true
                }
                None => false,
            }
        };
        self.shared.wake();
        existed
    }

    fn put(&self, resource: Resource, namespace: &str, name: &str, mut stored: Stored) {
        {
            let mut state = self.shared.lock();
            let version = state.next_version();
            set_version(&mut stored.object, version);
            let key = (resource, namespace.to_string(), name.to_string());
            let kind = match state.objects.insert(key, stored.clone()) {
                Some(_) => "MODIFIED",
                None => "ADDED",
            };
            state.history.push(Change {
                version,
                resource,
                namespace: namespace.to_string(),
                kind,
                labels: stored.labels,
                object: stored.object,
            });
        }
        self.shared.wake();
    }

    /// Ends every open watch stream cleanly, as an API server does when it
    /// restarts or a watch reaches its timeout.
    pub fn end_watches(&self) {
        let _ = self.shared.commands.send(Command::End);
    }

    /// Sends a `BOOKMARK` with the current resource version to every open
    /// watch that asked for bookmarks.
    pub fn send_bookmarks(&self) {
        let _ = self.shared.commands.send(Command::Bookmark);
    }

    /// Forgets the history up to now (as etcd compaction does) and tells
    /// every open watch `410 Gone`, so clients must list again.
    pub fn expire_watches(&self) {
        {
            let mut state = self.shared.lock();
            state.compacted = state.version;
            state.history.clear();
        }
        let _ = self.shared.commands.send(Command::Expire);
    }

    /// While `down`, every request is answered 503 and open watches are cut.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.shared.connections.send_modify(|g| *g += 1);
        }
    }

    /// How many watch streams are being served right now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().version
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.connections.send_modify(|g| *g += 1);
        self.accept.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn set_version(object: &mut Value, version: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(version.to_string()));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn wake(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl State {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(shared.clone(), stream));
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let mut kill = shared.connections.subscribe();
    kill.borrow_and_update();
    let service_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = service_shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req)) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
    }
}

/// The query of a list or watch.
#[derive(Default)]
struct Query {
    watch: bool,
    resource_version: Option<u64>,
    label_selector: Vec<(String, String)>,
    bookmarks: bool,
    timeout: Option<Duration>,
}

impl Query {
    fn parse(query: &str) -> Result<Query, String> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v, true);
            match k {
                "watch" => parsed.watch = v == "true" || v == "1",
                "resourceVersion" if !v.is_empty() => {
                    let version = v
                        .parse()
                        .map_err(|_| format!("bad resourceVersion {v:?}"))?;
                    parsed.resource_version = Some(version);
                }
                "allowWatchBookmarks" => parsed.bookmarks = v == "true",
                "timeoutSeconds" => {
                    let secs = v.parse().map_err(|_| format!("bad timeoutSeconds {v:?}"))?;
                    parsed.timeout = Some(Duration::from_secs(secs));
                }
                "labelSelector" => {
                    for term in v.split(',').filter(|t| !t.is_empty()) {
                        let (key, value) = term
                            .split_once('=')
                            .ok_or_else(|| format!("unsupported label selector {term:?}"))?;
                        let value = value.trim_start_matches('=');
                        parsed.label_selector.push((key.into(), value.into()));
                    }
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    fn selects(&self, labels: &[(String, String)]) -> bool {
        self.label_selector.iter().all(|term| labels.contains(term))
    }
}

fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = Query::parse(&raw_query);
    lock(&shared.log).push(SeenRequest {
        path: path.clone(),
        query: percent_decode(&raw_query, true),
        watch: query.as_ref().is_ok_and(|q| q.watch),
    });
    if shared.down.load(Ordering::SeqCst) {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "down",
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (namespace, resource) = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, resource] => match Resource::from_path(resource) {
            Some(r) => (ns.to_string(), r),
            None => return not_found(&path),
        },
        _ => return not_found(&path),
    };
    let query = match query {
        Ok(q) => q,
        Err(why) => return status(StatusCode::BAD_REQUEST, "BadRequest", &why),
    };
    if query.watch {
        stream::respond_watch(shared, namespace, resource, query)
    } else {
        list(&shared, &namespace, resource, &query)
    }
}

fn list(shared: &Shared, namespace: &str, resource: Resource, query: &Query) -> Response<Body> {
    let state = shared.lock();
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((r, ns, _), stored)| {
            *r == resource && ns == namespace && query.selects(&stored.labels)
        })
        .map(|(_, stored)| stored.object.clone())
        .collect();
    let body = json!({
        "kind": resource.list_kind(),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": state.version.to_string()},
        "items": items,
    });
    respond(StatusCode::OK, full(body.to_string()))
}

fn full(body: String) -> Body {
    Full::new(Bytes::from(body)).boxed()
}

fn respond(code: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A `v1` Status, as the API server sends with every error.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    respond(code, full(body.to_string()))
}

fn not_found(path: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("the server could not find the requested resource ({path})"),
    )
}
