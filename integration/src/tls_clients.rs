//! Debian's TLS clients, `curl` (package `curl`) and `openssl s_client`
//! (package `openssl`), pointed at the servers as an operator would. A
//! missing one is a loud skip, or a failure under `CI=true`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CURL: &str = "/usr/bin/curl";
const OPENSSL: &str = "/usr/bin/openssl";

/// What a client run gave: its exit code (-1 when killed), stdout, stderr.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Whether curl is installed; when it is not, a loud skip, or a panic
/// under `CI=true`.
pub fn curl_available() -> bool {
    if Path::new(CURL).exists() {
        return true;
    }
    crate::servers::missing(
        "curl",
        "curl",
        "it checks the servers' TLS as a user's client",
    );
    false
}

/// Whether openssl is installed; when it is not, a loud skip, or a panic
/// under `CI=true`.
pub fn openssl_available() -> bool {
    if Path::new(OPENSSL).exists() {
        return true;
    }
    crate::servers::missing(
        "openssl",
        "openssl",
        "its s_client shows the certificate a server sends",
    );
    false
}

/// `curl -sS --max-time 10` with `args`.
pub fn curl(args: &[&str]) -> Run {
    Command::new(CURL)
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CURL}: {e}"))
        .into()
}

/// `openssl s_client` to `addr`, sending `server_name` as SNI and checking
/// the chain against `ca`, with `extra` arguments; it sends nothing and
/// hangs up once the handshake is done.
pub fn s_client(addr: SocketAddr, server_name: &str, ca: &Path, extra: &[&str]) -> Run {
    let connect = addr.to_string();
    let ca = ca.to_string_lossy();
    Command::new(OPENSSL)
        .args([
            "s_client",
            "-connect",
            &connect,
            "-servername",
            server_name,
            "-CAfile",
            &ca,
            "-showcerts",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {OPENSSL}: {e}"))
        .into()
}

/// The first PEM certificate in `text` (as `s_client -showcerts` prints
/// the server's), without surrounding whitespace.
pub fn first_pem(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_marker)? + start + end_marker.len();
    Some(text[start..end].trim().to_string())
}
