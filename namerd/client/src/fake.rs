//! An in-process stand-in for namerd's HTTP API that answers like Linkerd's
//! namerd, for client and namerctl tests. Its dtab store is a map with a
//! version counter; bind/resolve answers are canned.

// Test support only: a failure here is a failing test, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dtab::Dtab;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::BaseUrl;
use crate::Version;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A running fake namerd on `127.0.0.1:<ephemeral>`; stops when dropped.
pub struct FakeNamerd {
    pub base: BaseUrl,
    state: Arc<Mutex<State>>,
    changes: Arc<watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    dtabs: BTreeMap<String, (Dtab, u64)>,
    next_version: u64,
    addr: Value,
    /// `METHOD /path?query [If-Match: v] [Content-Type: t]` per request.
    log: Vec<String>,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }
}

impl Drop for FakeNamerd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNamerd {
    /// Starts a fake holding `dtabs` (namespace, dtab text).
    pub async fn start(dtabs: &[(&str, &str)]) -> FakeNamerd {
        let mut state = State {
            addr: json!({"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": 8080, "meta": {}}], "meta": {}}),
            ..State::default()
        };
        for (ns, text) in dtabs {
            let v = state.bump();
            let dtab = Dtab::read(text).unwrap();
            state.dtabs.insert((*ns).to_string(), (dtab, v));
        }
        let state = Arc::new(Mutex::new(state));
        let changes = Arc::new(watch::channel(0).0);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (st, ch) = (state.clone(), changes.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, ch) = (st.clone(), ch.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (st, ch) = (st.clone(), ch.clone());
                        async move { Ok::<_, Infallible>(handle(st, ch, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeNamerd {
            base: BaseUrl::parse(&format!("http://{addr}")).unwrap(),
            state,
            changes,
            task,
        }
    }

    /// Changes a dtab behind the client's back (another writer).
    pub fn set_dtab(&self, ns: &str, text: &str) {
        let mut st = self.state.lock().unwrap();
        let v = st.bump();
        st.dtabs
            .insert(ns.to_string(), (Dtab::read(text).unwrap(), v));
        drop(st);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Changes the address every resolve answers with.
    pub fn set_addr(&self, addr: Value) {
        self.state.lock().unwrap().addr = addr;
        self.changes.send_modify(|n| *n += 1);
    }

    /// The stored dtab of `ns`, shown.
    pub fn dtab(&self, ns: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.dtabs.get(ns).map(|(d, _)| d.show())
    }

    /// The current ETag of `ns`.
    pub fn etag(&self, ns: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.dtabs
            .get(ns)
            .map(|(_, v)| Version::from_u64(*v).to_etag())
    }

    /// The requests seen so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut rsp = Response::new(Full::new(body.into()).boxed_unsync());
    *rsp.status_mut() = status;
    rsp
}

fn json_rsp(value: &Value) -> Response<Body> {
    let mut rsp = full(StatusCode::OK, format!("{value}\n"));
    rsp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    rsp
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn handle(
    state: Arc<Mutex<State>>,
    changes: Arc<watch::Sender<u64>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (if_match, content_type) = (header("if-match"), header("content-type"));
    let authorization = header("authorization");
    let mut line = format!("{method} {path}");
    if !query.is_empty() {
        line = format!("{line}?{query}");
    }
    if let Some(v) = &if_match {
        line = format!("{line} If-Match: {v}");
    }
    if let Some(ct) = &content_type {
        line = format!("{line} Content-Type: {ct}");
    }
    if let Some(a) = &authorization {
        line = format!("{line} Authorization: {a}");
    }
    state.lock().unwrap().log.push(line);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let watching = matches!(query_param(&query, "watch").as_deref(), Some("true" | "1"));

    let Some(rest) = path.strip_prefix("/api/1/") else {
        return full(StatusCode::NOT_FOUND, "");
    };
    let (kind, ns) = rest.split_once('/').unwrap_or((rest, ""));
    match (kind, ns, method.as_str()) {
        ("dtabs", "", "GET") => {
            let names: Vec<String> = state.lock().unwrap().dtabs.keys().cloned().collect();
            json_rsp(&json!(names))
        }
        ("dtabs", ns, "GET") if watching => {
            let ns = ns.to_string();
            stream(changes, move || {
                let st = state.lock().unwrap();
                st.dtabs
                    .get(&ns)
                    .map(|(d, _)| serde_json::to_string(d).unwrap())
            })
        }
        ("dtabs", ns, "GET") => {
            let st = state.lock().unwrap();
            match st.dtabs.get(ns) {
                Some((dtab, v)) => {
                    let mut rsp = json_rsp(&serde_json::to_value(dtab).unwrap());
                    rsp.headers_mut()
                        .insert("etag", Version::from_u64(*v).to_etag().parse().unwrap());
                    rsp
                }
                None => full(StatusCode::NOT_FOUND, ""),
            }
        }
        ("dtabs", ns, "POST" | "PUT") => {
            let text = String::from_utf8_lossy(&body).to_string();
            let parsed = match content_type
                .as_deref()
                .map(|c| c.split(';').next().unwrap_or(c))
            {
                Some("application/json") => {
                    serde_json::from_str::<Dtab>(&text).map_err(|e| e.to_string())
                }
                Some("application/dtab" | "text/plain") => {
                    Dtab::read(&text).map_err(|e| e.to_string())
                }
                other => {
                    return full(
                        StatusCode::BAD_REQUEST,
                        format!("Invalid Content-Type \"{}\". ", other.unwrap_or("")),
                    );
                }
            };
            let dtab = match parsed {
                Ok(d) => d,
                Err(e) => return full(StatusCode::BAD_REQUEST, e),
            };
            let mut st = state.lock().unwrap();
            let current = st.dtabs.get(ns).map(|(_, v)| *v);
            let ok = match (method.as_str(), current, &if_match) {
                ("POST", Some(_), _) => return full(StatusCode::CONFLICT, ""),
                ("PUT", None, Some(_)) => return full(StatusCode::NOT_FOUND, ""),
                ("PUT", Some(v), Some(want))
                    if Version::from_etag(want) != Some(Version::from_u64(v)) =>
                {
                    return full(StatusCode::PRECONDITION_FAILED, "");
                }
                _ => true,
            };
            assert!(ok);
            let v = st.bump();
            st.dtabs.insert(ns.to_string(), (dtab, v));
            drop(st);
            changes.send_modify(|n| *n += 1);
            full(StatusCode::NO_CONTENT, "")
        }
        ("dtabs", ns, "DELETE") => {
            let removed = state.lock().unwrap().dtabs.remove(ns).is_some();
            if removed {
                changes.send_modify(|n| *n += 1);
                full(StatusCode::NO_CONTENT, "")
            } else {
                full(StatusCode::NOT_FOUND, "")
            }
        }
        ("delegate" | "resolve" | "bind", ns, "GET") => {
            let Some(name) = query_param(&query, "path") else {
                return full(StatusCode::BAD_REQUEST, "Invalid path: (none)");
            };
            if dtab::Path::read(&name).is_err() {
                return full(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid path: {name}\nexpected a label"),
                );
            }
            if !state.lock().unwrap().dtabs.contains_key(ns) {
                return full(StatusCode::NOT_FOUND, "");
            }
            if kind == "delegate" {
                return json_rsp(&json!({
                    "type": "alt", "path": name,
                    "alt": [
                        {"type": "neg", "path": "/bar", "dentry": {"prefix": name, "dst": "/bar"}},
                        {"type": "leaf", "path": "/#/io.l5d.fs/web",
                         "dentry": {"prefix": name, "dst": "/#/io.l5d.fs/web"},
                         "bound": {"addr": state.lock().unwrap().addr.clone(), "id": "/#/io.l5d.fs/web", "path": "/"}}
                    ]
                }));
            }
            if !watching {
                return json_rsp(&state.lock().unwrap().addr);
            }
            match name.as_str() {
                // One value, then a clean end of stream.
                "/end" => {
                    let first = state.lock().unwrap().addr.to_string();
                    full(StatusCode::OK, format!("{first}\n"))
                }
                // One value, then an error message, as namerd does on failure.
                "/error" => {
                    let first = state.lock().unwrap().addr.to_string();
                    full(StatusCode::OK, format!("{first}\nboom: the namer failed\n"))
                }
                _ => stream(changes, move || {
                    Some(state.lock().unwrap().addr.to_string())
                }),
            }
        }
        _ => full(StatusCode::NOT_FOUND, ""),
    }
}

/// A chunked answer: `current()` now and after every change, one line
/// each, skipping repeats and `None`s.
fn stream(
    changes: Arc<watch::Sender<u64>>,
    current: impl Fn() -> Option<String> + Send + 'static,
) -> Response<Body> {
    let rx = changes.subscribe();
    let frames = futures_util::stream::unfold(
        (rx, None::<String>, true, current),
        |(mut rx, last, mut first, current)| async move {
            loop {
                if !first && rx.changed().await.is_err() {
                    return None;
                }
                first = false;
                rx.borrow_and_update();
                match current() {
                    Some(v) if last.as_ref() != Some(&v) => {
                        let frame = Frame::data(Bytes::from(format!("{v}\n")));
                        return Some((Ok::<_, Infallible>(frame), (rx, Some(v), false, current)));
                    }
                    _ => {}
                }
            }
        },
    );
    let mut rsp = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    rsp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    rsp
}
