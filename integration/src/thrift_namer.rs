//! Linkerd's `namer.thrift` spoken by thriftpy2 (from PyPI), a Thrift
//! implementation other than ours:
//!
//! - [`ThriftPy::call`]: one call of the `Namer` service from a thriftpy2
//!   client (`thrift_namer/client.py`), answered as JSON;
//! - [`MinimalServer`]: a deliberately minimal `Namer` server
//!   (`thrift_namer/minimal_server.py`) written from the IDL alone. It
//!   serves bound trees, addresses and dtabs from a JSON file and answers
//!   long polls when the file changes. It is not namerd: it applies no
//!   dtab, has no namers, speaks framed binary Thrift only (no mux, no
//!   TLS) and has no limits; `delegate` always fails.
//!
//! Both need python3 with thriftpy2; without them they say so loudly and
//! return `None` (a panic under `CI=true`).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const CLIENT: &str = include_str!("thrift_namer/client.py");
const MINIMAL_SERVER: &str = include_str!("thrift_namer/minimal_server.py");
const NAMER_IDL: &str = include_str!("../../namerd/idl/linkerd/namer.thrift");

/// The thriftpy2 scripts and the IDL, written to a temporary directory.
pub struct ThriftPy {
    dir: tempfile::TempDir,
}

impl ThriftPy {
    /// The scripts; `None`, after a loud message, when python3 or
    /// thriftpy2 is missing (a panic under `CI=true`).
    pub fn new() -> Option<ThriftPy> {
        if !crate::python::has_modules(
            &["thriftpy2"],
            "python3 python3-pip, then pip install thriftpy2",
            "it is the independent client and server of namer.thrift",
        ) {
            return None;
        }
        let dir = crate::python::scripts([
            ("client.py", CLIENT),
            ("minimal_server.py", MINIMAL_SERVER),
            ("namer.thrift", NAMER_IDL),
        ]);
        Some(ThriftPy { dir })
    }

    fn idl(&self) -> String {
        self.dir.path().join("namer.thrift").display().to_string()
    }

    /// Starts one call of `method` (`bind`, `addr`, `dtab`, `delegate`)
    /// on the server at `addr`; see `client.py` for `args`.
    pub fn start_call(&self, addr: SocketAddr, method: &str, args: &Value) -> PendingCall {
        let child = Command::new("python3")
            .arg(self.dir.path().join("client.py"))
            .arg(self.idl())
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(method)
            .arg(args.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the thriftpy2 client: {e}"));
        PendingCall { child: Some(child) }
    }

    /// One call, waited for: `{"ok": ...}`, `{"failure": {"type",
    /// "reason"}}` or `{"error": ...}`.
    pub fn call(&self, addr: SocketAddr, method: &str, args: &Value) -> Value {
        self.start_call(addr, method, args).wait()
    }
}

/// A call under way (a long poll, say).
pub struct PendingCall {
    child: Option<Child>,
}

impl PendingCall {
    /// Whether the call has been answered.
    pub fn is_done(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// The answer, as [`ThriftPy::call`] gives it.
    pub fn wait(mut self) -> Value {
        let Some(child) = self.child.take() else {
            panic!("the call was already waited for");
        };
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("the thriftpy2 client: {e}"));
        let text = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("the thriftpy2 client printed {text:?}: {e}"))
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The minimal thriftpy2 `Namer` server; stopped when dropped.
pub struct MinimalServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    state: std::path::PathBuf,
    _py: ThriftPy,
}

impl MinimalServer {
    /// Starts the server on an ephemeral port serving `state` (see the
    /// module docs for its shape); `None` when thriftpy2 is missing.
    pub fn start(state: &Value) -> Option<MinimalServer> {
        let py = ThriftPy::new()?;
        let path = py.dir.path().join("state.json");
        write_state(&path, state);
        let script = py.dir.path().join("minimal_server.py");
        let idl = py.idl();
        let (child, port, _) = crate::python::start_listening(
            &[script.as_os_str(), idl.as_ref(), path.as_os_str()],
            "the minimal thrift server",
        );
        Some(MinimalServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state: path,
            _py: py,
        })
    }

    /// Replaces what the server serves; changed values get new stamps and
    /// answer the long polls waiting on them (within about 50 ms).
    pub fn update(&self, state: &Value) {
        write_state(&self.state, state);
    }
}

fn write_state(path: &std::path::Path, state: &Value) {
    // Written aside and renamed, so the server never reads half a file.
    let aside = path.with_extension("json.new");
    std::fs::write(&aside, state.to_string())
        .and_then(|()| std::fs::rename(&aside, path))
        .unwrap_or_else(|e| panic!("writing the server's state: {e}"));
}

impl Drop for MinimalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
