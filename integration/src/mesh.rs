//! Linkerd's mesh gRPC API spoken by another implementation: Python's
//! grpcio (from PyPI), with stubs that grpcio-tools generates at test time
//! from `namerd/idl/linkerd/mesh/*.proto` (the protobuf compiler bundled
//! with grpcio-tools is used here only, never by the build).
//!
//! - [`PyMeshClient`] calls a mesh server (namerd's `io.l5d.mesh`) and
//!   reports answers in the HTTP API's JSON shapes (`mesh/stubs.py`), so a
//!   test can compare them with `/api/1`.
//! - [`MinimalMeshServer`] is a deliberately minimal mesh server written
//!   from the protos alone, for testing mesh clients against something
//!   that is not namerd. It serves what a router needs (Interpreter,
//!   Resolver, Delegator.GetDtab) from a JSON state file and pushes new
//!   values on open streams when [`MinimalMeshServer::set_state`] changes
//!   it. It leaves out a request's own dtab, the Codec service and
//!   delegate trees (`mesh/minimal_server.py` says what it answers).
//!
//! Both start only when python3 has grpcio and grpcio-tools; otherwise
//! they return `None` after a loud message (a panic under `CI=true`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

const CLIENT: &str = include_str!("mesh/client.py");
const SERVER: &str = include_str!("mesh/minimal_server.py");
const STUBS: &str = include_str!("mesh/stubs.py");
const PROTOS: [(&str, &str); 5] = [
    (
        "codec.proto",
        include_str!("../../namerd/idl/linkerd/mesh/codec.proto"),
    ),
    (
        "delegator.proto",
        include_str!("../../namerd/idl/linkerd/mesh/delegator.proto"),
    ),
    (
        "dtab.proto",
        include_str!("../../namerd/idl/linkerd/mesh/dtab.proto"),
    ),
    (
        "interpreter.proto",
        include_str!("../../namerd/idl/linkerd/mesh/interpreter.proto"),
    ),
    (
        "resolver.proto",
        include_str!("../../namerd/idl/linkerd/mesh/resolver.proto"),
    ),
];

/// How long an answer may take before the test fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// A directory holding the scripts and the Python stubs of the protos.
struct Stubs(tempfile::TempDir);

impl Stubs {
    /// Writes the scripts and protos and generates the stubs; `None` when
    /// grpcio or grpcio-tools is missing.
    fn generate() -> Option<Stubs> {
        if !crate::python::has_modules(
            &["grpc", "grpc_tools"],
            "python3 python3-pip, then pip install grpcio grpcio-tools",
            "it is the independent gRPC implementation the mesh interface is tested against",
        ) {
            return None;
        }
        let dir = crate::python::scripts(
            [
                ("client.py", CLIENT),
                ("minimal_server.py", SERVER),
                ("stubs.py", STUBS),
            ]
            .into_iter()
            .chain(PROTOS),
        );
        let include = format!("-I{}", dir.path().display());
        let out = format!("--python_out={}", dir.path().display());
        let grpc_out = format!("--grpc_python_out={}", dir.path().display());
        let mut protoc = Command::new("python3");
        protoc.args(["-m", "grpc_tools.protoc", &include, &out, &grpc_out]);
        for (name, _) in PROTOS {
            protoc.arg(dir.path().join(name));
        }
        let output = protoc
            .output()
            .unwrap_or_else(|e| panic!("running grpc_tools.protoc: {e}"));
        assert!(
            output.status.success(),
            "grpc_tools.protoc failed on the mesh protos: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Stubs(dir))
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// Reads `child`'s stdout lines as JSON into a channel.
fn json_lines(child: &mut Child, what: &'static str) -> mpsc::UnboundedReceiver<Value> {
    let Some(stdout) = child.stdout.take() else {
        panic!("the {what}'s stdout was not piped");
    };
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let doc: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the {what} printed {line:?}: {e}"));
            if tx.send(doc).is_err() {
                return;
            }
        }
    });
    rx
}

/// A unary call's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The answer, in the HTTP API's JSON shape.
    Ok(Value),
    /// The call failed with this gRPC status code name and message.
    Err {
        /// e.g. `NOT_FOUND`.
        code: String,
        /// The status message.
        details: String,
    },
}

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message, in the HTTP API's JSON shape.
    Msg(Value),
    /// The stream ended with this status (`OK` when it just ended).
    End {
        /// e.g. `UNAVAILABLE`.
        code: String,
        /// The status message.
        details: String,
    },
}

/// The Python mesh client; stopped when dropped.
pub struct PyMeshClient {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Lines read while waiting for another tag.
    held: Vec<Value>,
    tags: u64,
    _stubs: Stubs,
}

impl PyMeshClient {
    /// Starts a client of the mesh server at `target` (plain h2).
    pub fn start(target: SocketAddr) -> Option<PyMeshClient> {
        PyMeshClient::start_with(target, &[])
    }

    /// Starts a client of the mesh server at `target` over TLS, trusting
    /// the CA certificate in `ca` and expecting `server_name` in the
    /// server's certificate.
    pub fn start_tls(
        target: SocketAddr,
        ca: &std::path::Path,
        server_name: &str,
    ) -> Option<PyMeshClient> {
        PyMeshClient::start_with(target, &[ca.as_os_str(), server_name.as_ref()])
    }

    fn start_with(target: SocketAddr, tls: &[&std::ffi::OsStr]) -> Option<PyMeshClient> {
        let stubs = Stubs::generate()?;
        let mut child = Command::new("python3")
            .arg(stubs.path().join("client.py"))
            .arg(stubs.path())
            .arg(target.to_string())
            .args(tls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the Python mesh client: {e}"));
        let Some(stdin) = child.stdin.take() else {
            panic!("the client's stdin was not piped");
        };
        let lines = json_lines(&mut child, "Python mesh client");
        Some(PyMeshClient {
            child,
            stdin,
            lines,
            held: Vec::new(),
            tags: 0,
            _stubs: stubs,
        })
    }

    fn send(&mut self, command: &Value) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("writing to the Python mesh client: {e}"));
    }

    fn command(&mut self, method: &str, req: Value) -> String {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        self.send(&json!({"tag": tag, "method": method, "req": req}));
        tag
    }

    /// The next line for `tag`.
    async fn line(&mut self, tag: &str) -> Value {
        if let Some(i) = self.held.iter().position(|l| l["tag"] == tag) {
            return self.held.remove(i);
        }
        let waited = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                let Some(line) = self.lines.recv().await else {
                    panic!("the Python mesh client exited");
                };
                if line["tag"] == tag {
                    return line;
                }
                self.held.push(line);
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("no answer for {tag} within {ANSWER_TIMEOUT:?}"))
    }

    /// Calls a unary `method` (`Service/Method`, e.g.
    /// `Interpreter/GetBoundTree`) with `req`: proto JSON in which `root`,
    /// `name`, `id` and `path` may be `/a/b` text, `dtab` `prefix=>dst;…`
    /// text and `tree` a destination's text.
    pub async fn call(&mut self, method: &str, req: Value) -> Answer {
        let tag = self.command(method, req);
        let line = self.line(&tag).await;
        match line["kind"].as_str() {
            Some("ok") => Answer::Ok(line["value"].clone()),
            _ => Answer::Err {
                code: line["code"].as_str().unwrap_or_default().to_string(),
                details: line["details"].as_str().unwrap_or_default().to_string(),
            },
        }
    }

    /// Opens a stream of `method` with `req` (as for [`PyMeshClient::call`]);
    /// read it with [`PyMeshClient::next`].
    pub fn stream(&mut self, method: &str, req: Value) -> String {
        self.command(method, req)
    }

    /// The next event of the stream `tag`.
    pub async fn next(&mut self, tag: &str) -> Event {
        let line = self.line(tag).await;
        match line["kind"].as_str() {
            Some("msg") => Event::Msg(line["value"].clone()),
            _ => Event::End {
                code: line["code"].as_str().unwrap_or_default().to_string(),
                details: line["details"].as_str().unwrap_or_default().to_string(),
            },
        }
    }

    /// Cancels the stream `tag`.
    pub fn cancel(&mut self, tag: &str) {
        self.send(&json!({ "cancel": tag }));
    }
}

impl Drop for PyMeshClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The minimal Python mesh server; stopped when dropped.
pub struct MinimalMeshServer {
    child: Child,
    /// Where it listens (plain h2 on 127.0.0.1).
    pub addr: SocketAddr,
    state: std::path::PathBuf,
    writes: u64,
    stubs: Stubs,
}

impl MinimalMeshServer {
    /// Starts the server on an ephemeral port, serving `state`:
    /// `{"dtabs": {ns: {"version", "dtab"}}, "trees": {"<ns> <name>":
    /// bound tree}, "replicas": {id: address}}`, trees and addresses in the
    /// HTTP API's JSON shapes.
    pub fn start(state: &Value) -> Option<MinimalMeshServer> {
        let stubs = Stubs::generate()?;
        let path = stubs.path().join("state.json");
        std::fs::write(&path, state.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let script = stubs.path().join("minimal_server.py");
        let (child, port, _) = crate::python::start_listening(
            &[
                script.as_os_str(),
                stubs.path().as_os_str(),
                path.as_os_str(),
            ],
            "the minimal mesh server",
        );
        Some(MinimalMeshServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state: path,
            writes: 0,
            stubs,
        })
    }

    /// Replaces the served state; open streams get the new values within
    /// about 50 ms. Written to a new file and renamed, so the server never
    /// reads half of it.
    pub fn set_state(&mut self, state: &Value) {
        self.writes += 1;
        let tmp = self.stubs.path().join(format!("state.{}.tmp", self.writes));
        std::fs::write(&tmp, state.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.state))
            .unwrap_or_else(|e| panic!("writing {}: {e}", self.state.display()));
    }
}

impl Drop for MinimalMeshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
