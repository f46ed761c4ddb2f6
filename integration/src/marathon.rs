//! An in-process stand-in for Marathon's v2 HTTP API, for tests.
//!
//! Marathon (and DC/OS around it) cannot run on the test machines, so tests
//! of the `io.l5d.marathon` namer talk to this fake. It follows Marathon's
//! documented API for what the namer reads: `GET /v2/apps` (the apps, each
//! with `id`, `healthChecks` and `ipAddress.discovery.ports`) and
//! `GET /v2/apps/<id>?embed=app.tasks` (one app with its `tasks`: `host`,
//! `ports`, `ipAddresses`, `state` and `healthCheckResults[].alive`; 404 with
//! `{"message": "App '/x' does not exist"}` for an unknown app), below an
//! optional URI prefix, as when Marathon is reached through DC/OS's admin
//! router (`/marathon`). With DC/OS authentication on, it also plays the
//! login endpoint (`POST /acs/api/v1/auth/login` with `{"uid","token"}`,
//! answering `{"token"}`) and asks for `Authorization: token=<token>`.
//!
//! It is a fake, not Marathon: apps, tasks and health results are set
//! through test controls ([`FakeMarathon::add_app`],
//! [`FakeMarathon::add_task`], [`FakeMarathon::remove_task`],
//! [`FakeMarathon::set_alive`], [`FakeMarathon::remove_app`]) rather than
//! deployments; no `embed` other than `app.tasks` and none on `/v2/apps`
//! are honoured; app ids are matched as given (Marathon's are lower case);
//! the login checks the JWT's shape and claim (`{"uid"}`, header `RS256`)
//! but not its signature. [`FakeMarathon::set_down`] answers 503s, as
//! Marathon does without a leader; [`FakeMarathon::expire_tokens`] makes
//! every token given so far be refused with a 401.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The path of DC/OS's login endpoint.
pub const LOGIN_PATH: &str = "/acs/api/v1/auth/login";

/// One task of an app.
#[derive(Clone, Debug)]
pub struct Task {
    /// The task id.
    pub id: String,
    /// The agent it runs on.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u16>,
    /// Its own IP address (IP per task), if any.
    pub ip: Option<String>,
    /// `TASK_RUNNING`, `TASK_STAGING`, ...
    pub state: String,
    /// One `alive` per health check result.
    pub alive: Vec<bool>,
}

impl Task {
    /// A running task on `host` with one port and no health results.
    pub fn running(id: &str, host: &str, port: u16) -> Task {
        Task {
            id: id.into(),
            host: host.into(),
            ports: vec![port],
            ip: None,
            state: "TASK_RUNNING".into(),
            alive: Vec::new(),
        }
    }
}

#[derive(Default)]
struct App {
    health_checks: usize,
    discovery_port: Option<u16>,
    tasks: Vec<Task>,
}

/// What a request looked like.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, App>,
    /// DC/OS login: the service account's uid, when on.
    dcos_uid: Option<String>,
    /// A required basic credential, when set.
    basic: Option<String>,
    /// Tokens that are still good.
    tokens: Vec<String>,
    log: Vec<SeenRequest>,
}

struct Shared {
    prefix: String,
    state: Mutex<State>,
    down: AtomicBool,
    next_token: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake Marathon on 127.0.0.1; stops when dropped.
pub struct FakeMarathon {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for FakeMarathon {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeMarathon {
    /// Starts a fake with no apps, serving the API below `uri_prefix`
    /// (`""` or e.g. `/marathon`), on an ephemeral port.
    pub async fn start(uri_prefix: &str) -> io::Result<FakeMarathon> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            prefix: uri_prefix.to_string(),
            state: Mutex::default(),
            down: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
        });
        let accept = tokio::spawn(accept_loop(shared.clone(), listener));
        Ok(FakeMarathon {
            shared,
            addr,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds (or resets) an app with `health_checks` health checks and no
    /// tasks.
    pub fn add_app(&self, id: &str, health_checks: usize) {
        self.shared.lock().apps.insert(
            id.into(),
            App {
                health_checks,
                ..App::default()
            },
        );
    }

    /// Gives an app an IP per task, announced on `port`.
    pub fn set_discovery_port(&self, id: &str, port: u16) {
        if let Some(app) = self.shared.lock().apps.get_mut(id) {
            app.discovery_port = Some(port);
        }
    }

    /// Removes an app.
    pub fn remove_app(&self, id: &str) {
        self.shared.lock().apps.remove(id);
    }

    /// Adds a task to an app (which must exist).
    pub fn add_task(&self, app: &str, task: Task) {
        if let Some(app) = self.shared.lock().apps.get_mut(app) {
            app.tasks.push(task);
        }
    }

    /// Removes a task from an app.
    pub fn remove_task(&self, app: &str, task: &str) {
        if let Some(app) = self.shared.lock().apps.get_mut(app) {
            app.tasks.retain(|t| t.id != task);
        }
    }

    /// Sets a task's health check results.
    pub fn set_alive(&self, app: &str, task: &str, alive: &[bool]) {
        if let Some(app) = self.shared.lock().apps.get_mut(app) {
            for t in app.tasks.iter_mut().filter(|t| t.id == task) {
                t.alive = alive.to_vec();
            }
        }
    }

    /// While `down`, every request gets a 503, as without a leader.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Requires DC/OS login by the service account `uid`.
    pub fn require_dcos_login(&self, uid: &str) {
        self.shared.lock().dcos_uid = Some(uid.into());
    }

    /// Requires `Authorization: Basic <credential>`.
    pub fn require_basic(&self, credential: &str) {
        self.shared.lock().basic = Some(credential.into());
    }

    /// Refuses every DC/OS token given so far.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().log.clone()
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(String::from)
    };
    let seen = SeenRequest {
        method: request.method().clone(),
        path: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        host: text(header::HOST),
        authorization: text(header::AUTHORIZATION),
    };
    shared.lock().log.push(seen.clone());
    if shared.down.load(Ordering::SeqCst) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"message": "Could not determine the current leader"}),
        );
    }
    if seen.method == Method::POST && request.uri().path() == LOGIN_PATH {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return login(shared, &body);
    }
    {
        let state = shared.lock();
        let refused = match (&state.dcos_uid, &state.basic) {
            (Some(_), _) => !seen
                .authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("token="))
                .is_some_and(|t| state.tokens.iter().any(|good| good == t)),
            (None, Some(basic)) => seen.authorization.as_deref() != Some(&format!("Basic {basic}")),
            (None, None) => false,
        };
        if refused {
            return reply(
                StatusCode::UNAUTHORIZED,
                &json!({"title": "Unauthorized", "description": "missing or bad credentials"}),
            );
        }
    }
    let Some(api) = request.uri().path().strip_prefix(&shared.prefix) else {
        return reply(StatusCode::NOT_FOUND, &json!({"message": "not found"}));
    };
    if seen.method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": "GET only"}),
        );
    }
    let state = shared.lock();
    if api == "/v2/apps" || api == "/v2/apps/" {
        let apps: Vec<Value> = state
            .apps
            .iter()
            .map(|(id, app)| app_json(id, app, false))
            .collect();
        return reply(StatusCode::OK, &json!({ "apps": apps }));
    }
    if let Some(id) = api.strip_prefix("/v2/apps") {
        let embed_tasks = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "embed=app.tasks"));
        return match state.apps.get(id) {
            Some(app) => reply(
                StatusCode::OK,
                &json!({ "app": app_json(id, app, embed_tasks) }),
            ),
            None => reply(
                StatusCode::NOT_FOUND,
                &json!({ "message": format!("App '{id}' does not exist") }),
            ),
        };
    }
    reply(StatusCode::NOT_FOUND, &json!({"message": "not found"}))
}

fn app_json(id: &str, app: &App, tasks: bool) -> Value {
    let checks: Vec<Value> = (0..app.health_checks)
        .map(|_| json!({"protocol": "HTTP", "path": "/health", "portIndex": 0}))
        .collect();
    let mut value = json!({"id": id, "instances": app.tasks.len(), "healthChecks": checks});
    if let Some(port) = app.discovery_port {
        value["ipAddress"] =
            json!({"discovery": {"ports": [{"number": port, "name": "http", "protocol": "tcp"}]}});
    }
    if tasks {
        let tasks: Vec<Value> = app
            .tasks
            .iter()
            .map(|t| {
                let results: Vec<Value> = t.alive.iter().map(|a| json!({"alive": a})).collect();
                let ips: Vec<Value> =
                    t.ip.iter()
                        .map(|ip| json!({"ipAddress": ip, "protocol": "IPv4"}))
                        .collect();
                json!({"id": t.id, "appId": id, "host": t.host, "ports": t.ports,
                       "ipAddresses": ips, "state": t.state, "healthCheckResults": results})
            })
            .collect();
        value["tasks"] = Value::Array(tasks);
    }
    value
}

/// DC/OS's login: `{"uid","token":<JWT>}` for the configured account gets
/// a fresh token.
fn login(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let refuse = |why: &str| {
        reply(
            StatusCode::UNAUTHORIZED,
            &json!({"title": "Invalid credentials", "description": why}),
        )
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return refuse("not JSON");
    };
    let uid = request["uid"].as_str().unwrap_or_default();
    let jwt = request["token"].as_str().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |part: &str| {
        b64.decode(part)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let [head, claims, signature] = parts[..] else {
        return refuse("not a JWT");
    };
    let good = decode(head).is_some_and(|h| h["alg"] == "RS256")
        && decode(claims).is_some_and(|c| c["uid"] == uid)
        && b64.decode(signature).is_ok_and(|s| !s.is_empty());
    let mut state = shared.lock();
    if !good || state.dcos_uid.as_deref() != Some(uid) {
        return refuse("bad uid or JWT");
    }
    let token = format!("tok-{}", shared.next_token.fetch_add(1, Ordering::SeqCst));
    state.tokens.push(token.clone());
    reply(StatusCode::OK, &json!({ "token": token }))
}
