//! An in-process stand-in for the Kubernetes API server, for tests.
//!
//! No API server can run on the test machines, so tests of Kubernetes
//! clients talk to this fake. It follows the documented list + watch
//! protocol for the core `v1` resources Switchboard reads, Services,
//! Endpoints and ConfigMaps, in a namespace
//! (`/api/v1/namespaces/<ns>/{services,endpoints,configmaps}`, and a GET of
//! one of them by name), and for the one custom resource namerd stores
//! dtabs in, `dtabs.l5d.io` version `v1alpha1`
//! (`/apis/l5d.io/v1alpha1/namespaces/<ns>/dtabs`), and for
//! `networking.k8s.io/v1` Ingresses, in a namespace
//! (`/apis/networking.k8s.io/v1/namespaces/<ns>/ingresses`) or in all of
//! them (`/apis/networking.k8s.io/v1/ingresses`):
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
//! - `labelSelector` takes `key=value` terms joined by commas;
//!   `fieldSelector` takes `metadata.name=<name>` (what a client watching
//!   one object sends) and refuses any other field with a 400.
//!
//! Every object shares one resource version counter, as they share etcd's
//! revision in a real cluster. A namespace that has no object is simply
//! empty, as for the real server's lists.
//!
//! Dtabs can also be read, created, replaced and deleted one by one (the
//! `dtabs` module has the rules: `409 AlreadyExists` for a create of an
//! existing name, `409 Conflict` for a replace whose `resourceVersion` is
//! not the stored one, `422 Invalid` for a replace without one, `404` for
//! what does not exist). The fake has no schema: it stores any JSON object
//! it is given, as a cluster without the CRD's `openAPIV3Schema` would, and
//! it does no admission, no finalizers, no `generateName`, no field
//! selectors but the name, and no server-side apply. Services, Endpoints,
//! Ingresses and ConfigMaps are only written through the test controls
//! ([`FakeKube::apply_ingress`] for an Ingress)
//! ([`FakeKube::apply_config_map`] and [`FakeKube::delete`] create, replace
//! and delete a ConfigMap as `kubectl apply` and `kubectl delete` would).
//!
//! Test controls simulate what clusters do to their clients: a watch that
//! ends mid-stream ([`FakeKube::end_watches`]), a bookmark
//! ([`FakeKube::send_bookmarks`]), a compaction that makes every open watch
//! expire ([`FakeKube::expire_watches`]), and an outage
//! ([`FakeKube::set_down`]: 503 for every request, open watches cut).
//! [`FakeKube::open_watches`] counts the watch streams being served, so a
//! test can check that a client stops watching. [`FakeKube::apply_dtab`]
//! and [`FakeKube::apply_object`] change a dtab behind the client's back,
//! as `kubectl edit` or `kubectl apply` would, and
//! [`FakeKube::race_next_replace`] slips such a change in just before a
//! client's next replace, so that the replace meets `409 Conflict`.

mod dtabs;
mod objects;
mod stream;

pub use dtabs::{DTAB_API_VERSION, DTAB_PATH_PREFIX, dtab_object};
pub use objects::{Endpoints, Ingress, Service, TargetPort, config_map_object};

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

/// The resources served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `services`
    Services,
    /// `endpoints`
    Endpoints,
    /// `dtabs.l5d.io`, the custom resource namerd keeps dtabs in.
    Dtabs,
    /// `configmaps`
    ConfigMaps,
    /// `ingresses.networking.k8s.io`
    Ingresses,
}

/// The namespace of a list or watch of every namespace (no namespaced path
/// has an empty namespace: such a path is refused).
const ALL_NAMESPACES: &str = "";

/// Whether an object of namespace `ns` is seen by a list or watch of
/// `scope` (a namespace, or [`ALL_NAMESPACES`]).
fn in_scope(scope: &str, ns: &str) -> bool {
    scope == ALL_NAMESPACES || scope == ns
}

impl Resource {
    fn from_path(segment: &str) -> Option<Resource> {
        match segment {
            "services" => Some(Resource::Services),
            "endpoints" => Some(Resource::Endpoints),
            "configmaps" => Some(Resource::ConfigMaps),
            _ => None,
        }
    }

    fn list_kind(self) -> &'static str {
        match self {
            Resource::Services => "ServiceList",
            Resource::Endpoints => "EndpointsList",
            Resource::Dtabs => "DTabList",
            Resource::ConfigMaps => "ConfigMapList",
            Resource::Ingresses => "IngressList",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Resource::Services => "Service",
            Resource::Endpoints => "Endpoints",
            Resource::Dtabs => "DTab",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Ingresses => "Ingress",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Resource::Services | Resource::Endpoints | Resource::ConfigMaps => "v1",
            Resource::Dtabs => DTAB_API_VERSION,
            Resource::Ingresses => "networking.k8s.io/v1",
        }
    }
}

/// A request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method (`GET`, `POST`, `PUT`, `DELETE`).
    pub method: String,
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
    /// Dtabs written just before the next replace of their object: another
    /// writer that gets in between a client's read and its write.
    races: Mutex<Vec<Value>>,
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
    name: String,
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
            races: Mutex::new(Vec::new()),
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

    /// Creates or replaces an Ingress.
    pub fn apply_ingress(&self, ingress: &Ingress) {
        let stored = Stored::new(ingress.to_json());
        self.put(
            Resource::Ingresses,
            &ingress.namespace,
            &ingress.name,
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

    /// Creates or replaces a ConfigMap whose `data` is `data`, as `kubectl
    /// apply` would; says which resource version it got.
    pub fn apply_config_map(&self, namespace: &str, name: &str, data: &[(&str, &str)]) -> u64 {
        let object = config_map_object(namespace, name, data);
        self.put(Resource::ConfigMaps, namespace, name, Stored::new(object))
    }

    /// Creates or replaces a dtab in the shape Linkerd's namerd writes:
    /// `dentries` is a list of `(prefix, dst)`.
    pub fn apply_dtab(&self, namespace: &str, name: &str, dentries: &[(&str, &str)]) {
        let object = dtab_object(namespace, name, dentries);
        self.put(Resource::Dtabs, namespace, name, Stored::new(object));
    }

    /// Creates or replaces `object`, whatever it holds, as `kubectl apply`
    /// does (the fake has no schema). Its namespace and name are read from
    /// its `metadata`; says which resource version it got.
    pub fn apply_object(&self, resource: Resource, object: Value) -> Result<u64, String> {
        let meta = |key: &str| {
            object
                .pointer(&format!("/metadata/{key}"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("the object has no metadata.{key}: {object}"))
        };
        let (namespace, name) = (meta("namespace")?, meta("name")?);
        Ok(self.put(resource, &namespace, &name, Stored::new(object)))
    }

    /// Makes `object` (a DTab) be written just before the next replace of
    /// the DTab of the same namespace and name arrives, as if another
    /// writer got in between that client's read and its write: the
    /// replace then carries a stale resource version.
    pub fn race_next_replace(&self, object: Value) {
        lock(&self.shared.races).push(object);
    }

    /// The stored object, as a GET would answer it.
    pub fn object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource, namespace.to_string(), name.to_string());
        let state = self.shared.lock();
        state.objects.get(&key).map(|stored| stored.object.clone())
    }

    /// Deletes an object; says whether it existed.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        let existed = self
            .shared
            .lock()
            .remove(resource, namespace, name)
            .is_some();
        self.shared.wake();
        existed
    }

    fn put(&self, resource: Resource, namespace: &str, name: &str, stored: Stored) -> u64 {
        let version = self.shared.lock().put(resource, namespace, name, stored);
        self.shared.wake();
        version
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

impl Stored {
    /// An object to store, with the labels of its `metadata`.
    fn new(object: Value) -> Stored {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Stored { labels, object }
    }
}

impl State {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Stores `stored` under a new resource version and records the
    /// change; returns that version.
    fn put(&mut self, resource: Resource, namespace: &str, name: &str, mut stored: Stored) -> u64 {
        let version = self.next_version();
        set_version(&mut stored.object, version);
        let key = (resource, namespace.to_string(), name.to_string());
        let kind = match self.objects.insert(key, stored.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.history.push(Change {
            version,
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind,
            labels: stored.labels,
            object: stored.object,
        });
        version
    }

    /// Removes an object and records the change; returns it as it was
    /// last seen (with the resource version of its deletion).
    fn remove(&mut self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource, namespace.to_string(), name.to_string());
        let mut stored = self.objects.remove(&key)?;
        let version = self.next_version();
        set_version(&mut stored.object, version);
        self.history.push(Change {
            version,
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind: "DELETED",
            labels: stored.labels,
            object: stored.object.clone(),
        });
        Some(stored.object)
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
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
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
    /// `fieldSelector=metadata.name=<name>`.
    name: Option<String>,
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
                "fieldSelector" => {
                    for term in v.split(',').filter(|t| !t.is_empty()) {
                        let name = term
                            .strip_prefix("metadata.name==")
                            .or_else(|| term.strip_prefix("metadata.name="))
                            .ok_or_else(|| format!("unsupported field selector {term:?}"))?;
                        parsed.name = Some(name.to_string());
                    }
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

    /// Whether the object named `name` with `labels` is selected.
    fn selects(&self, name: &str, labels: &[(String, String)]) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.label_selector.iter().all(|term| labels.contains(term))
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = Query::parse(&raw_query);
    lock(&shared.log).push(SeenRequest {
        method: method.to_string(),
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
    let (namespace, resource, name) = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, resource] => match Resource::from_path(resource) {
            Some(r) => (ns.to_string(), r, None),
            None => return not_found(&path),
        },
        ["api", "v1", "namespaces", ns, resource, name] => match Resource::from_path(resource) {
            Some(r) => (ns.to_string(), r, Some(name.to_string())),
            None => return not_found(&path),
        },
        ["apis", "l5d.io", "v1alpha1", "namespaces", ns, "dtabs"] => {
            (ns.to_string(), Resource::Dtabs, None)
        }
        [
            "apis",
            "l5d.io",
            "v1alpha1",
            "namespaces",
            ns,
            "dtabs",
            name,
        ] => (ns.to_string(), Resource::Dtabs, Some(name.to_string())),
        ["apis", "networking.k8s.io", "v1", "ingresses"] => {
            (ALL_NAMESPACES.to_string(), Resource::Ingresses, None)
        }
        [
            "apis",
            "networking.k8s.io",
            "v1",
            "namespaces",
            ns,
            "ingresses",
        ] => (ns.to_string(), Resource::Ingresses, None),
        [
            "apis",
            "networking.k8s.io",
            "v1",
            "namespaces",
            ns,
            "ingresses",
            name,
        ] => (ns.to_string(), Resource::Ingresses, Some(name.to_string())),
        _ => return not_found(&path),
    };
    if namespace.is_empty() && !matches!(segments.as_slice(), [_, _, _, "ingresses"]) {
        return not_found(&path);
    }
    let query = match query {
        Ok(q) => q,
        Err(why) => return status(StatusCode::BAD_REQUEST, "BadRequest", &why),
    };
    let writable = resource == Resource::Dtabs;
    match (method, name) {
        (http::Method::GET, None) if query.watch => {
            stream::respond_watch(shared, namespace, resource, query)
        }
        (http::Method::GET, None) => list(&shared, &namespace, resource, &query),
        (http::Method::GET, Some(name)) if writable => dtabs::get(&shared, &namespace, &name),
        (http::Method::GET, Some(name)) => get(&shared, resource, &namespace, &name),
        (http::Method::POST, None) if writable => match read_object(req).await {
            Ok(object) => dtabs::create(&shared, &namespace, object),
            Err(refused) => *refused,
        },
        (http::Method::PUT, Some(name)) if writable => match read_object(req).await {
            Ok(object) => dtabs::replace(&shared, &namespace, &name, object),
            Err(refused) => *refused,
        },
        (http::Method::DELETE, Some(name)) if writable => {
            let options = read_object(req).await.unwrap_or(Value::Null);
            dtabs::delete(&shared, &namespace, &name, &options)
        }
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not supported on {path}"),
        ),
    }
}

/// The JSON object a request carries (`null` for an empty body), or the
/// answer that refuses it.
async fn read_object(req: Request<Incoming>) -> Result<Value, Box<Response<Body>>> {
    let bad = |why: String| Box::new(status(StatusCode::BAD_REQUEST, "BadRequest", &why));
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| bad(format!("reading the body: {e}")))?
        .to_bytes();
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| bad(format!("the body is not JSON: {e}")))
}

fn list(shared: &Shared, namespace: &str, resource: Resource, query: &Query) -> Response<Body> {
    let state = shared.lock();
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((r, ns, name), stored)| {
            *r == resource && in_scope(namespace, ns) && query.selects(name, &stored.labels)
        })
        .map(|(_, stored)| stored.object.clone())
        .collect();
    let body = json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": state.version.to_string()},
        "items": items,
    });
    respond(StatusCode::OK, full(body.to_string()))
}

/// `GET /api/v1/namespaces/<ns>/<resource>/<name>`.
fn get(shared: &Shared, resource: Resource, namespace: &str, name: &str) -> Response<Body> {
    let key = (resource, namespace.to_string(), name.to_string());
    match shared.lock().objects.get(&key) {
        Some(stored) => respond(StatusCode::OK, full(stored.object.to_string())),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} {name:?} not found", resource.kind().to_lowercase()),
        ),
    }
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
