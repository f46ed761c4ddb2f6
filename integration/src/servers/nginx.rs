//! nginx from the Debian package, as an upstream: one worker, each server
//! block on 127.0.0.1 and a port of its own, killed when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;

use super::{
    Process, START_ATTEMPTS, StartError, Workdir, free_port, log_tail, missing, wait_ready,
};

/// Where the Debian package (`nginx`) puts the server.
const BINARY: &str = "/usr/sbin/nginx";

/// One `server` block: whether it speaks HTTP/2 in clear text (h2c, with
/// prior knowledge) and its directives (e.g. `keepalive_requests 100;
/// location / { return 200 "ok\n"; }`).
#[derive(Clone, Debug)]
pub struct NginxServer {
    /// `listen … http2`.
    pub http2: bool,
    /// The block's directives.
    pub directives: String,
}

impl NginxServer {
    /// An HTTP/1.1 server answering `200 ok` to everything, closing each
    /// connection after `keepalive_requests` requests.
    pub fn ok_http1(keepalive_requests: u32) -> NginxServer {
        NginxServer {
            http2: false,
            directives: ok_directives(keepalive_requests),
        }
    }

    /// The same over h2c: after `keepalive_requests` streams a connection
    /// says `GOAWAY` and closes once they are answered.
    pub fn ok_h2c(keepalive_requests: u32) -> NginxServer {
        NginxServer {
            http2: true,
            directives: ok_directives(keepalive_requests),
        }
    }
}

fn ok_directives(keepalive_requests: u32) -> String {
    format!("keepalive_requests {keepalive_requests}; location / {{ return 200 \"ok\\n\"; }}")
}

/// An nginx master and worker, killed when dropped.
pub struct Nginx {
    work: Workdir,
    ports: Vec<u16>,
    _process: Process,
}

impl Nginx {
    /// Starts nginx with `servers` and waits until each listens. `None`
    /// (after a `SKIPPED:` line on stderr) when nginx is not installed;
    /// panics instead when `CI=true`, or when it does not start.
    pub fn start(servers: &[NginxServer]) -> Option<Nginx> {
        if !Path::new(BINARY).is_file() {
            missing("nginx", "nginx", &format!("{BINARY} is missing"));
            return None;
        }
        let work = Workdir::new("nginx-");
        for _ in 0..START_ATTEMPTS {
            let ports: Vec<u16> = servers.iter().map(|_| free_port()).collect();
            match launch(&work, servers, &ports) {
                Ok(process) => {
                    return Some(Nginx {
                        work,
                        ports,
                        _process: process,
                    });
                }
                Err(StartError::Exited) => continue,
                Err(StartError::NotReady) => fail(&work, "did not listen in time"),
            }
        }
        fail(&work, "exited during start-up on every set of ports tried")
    }

    /// The address of server block `index` (in the order given).
    pub fn addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports[index]))
    }

    /// nginx's error log, for failure messages.
    pub fn log(&self) -> String {
        log_tail(&self.work.path().join("nginx-error.log"))
    }
}

fn fail(work: &Workdir, why: &str) -> ! {
    panic!(
        "nginx {why}; its logs:\n{}\n{}",
        log_tail(&work.log()),
        log_tail(&work.path().join("nginx-error.log"))
    )
}

/// The top of a config for one worker kept in the foreground, its files
/// in `dir` under `name`.
pub fn main_conf(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {d}/{name}.pid;\n\
         error_log {d}/{name}-error.log warn;\n\
         events {{ worker_connections 4096; }}\n"
    )
}

/// Settings for an `http` block: no access log, long keep-alive, and
/// temporary files in `dir` under `name` rather than system paths (so
/// nginx runs without root).
pub fn http_conf(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "  access_log off;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 75s;\n\
         \x20 client_body_temp_path {d}/{name}-body;\n\
         \x20 proxy_temp_path {d}/{name}-proxy;\n\
         \x20 fastcgi_temp_path {d}/{name}-fastcgi;\n\
         \x20 uwsgi_temp_path {d}/{name}-uwsgi;\n\
         \x20 scgi_temp_path {d}/{name}-scgi;\n"
    )
}

fn launch(work: &Workdir, servers: &[NginxServer], ports: &[u16]) -> Result<Process, StartError> {
    // One process, no master: killing it leaves no worker behind.
    let mut text = String::from("master_process off;\n");
    text.push_str(&main_conf(work.path(), "nginx"));
    text.push_str("http {\n");
    text.push_str(&http_conf(work.path(), "nginx"));
    for (server, port) in servers.iter().zip(ports) {
        let http2 = if server.http2 { " http2" } else { "" };
        text.push_str(&format!(
            "  server {{ listen 127.0.0.1:{port}{http2}; {} }}\n",
            server.directives
        ));
    }
    text.push_str("}\n");
    let config = work.path().join("nginx.conf");
    if let Err(e) = std::fs::write(&config, text) {
        panic!("cannot write {}: {e}", config.display());
    }
    let mut command = Command::new(BINARY);
    command.arg("-c").arg(&config).arg("-p").arg(work.path());
    let mut process = Process::spawn(command, &work.log());
    wait_ready(&mut process, || {
        ports
            .iter()
            .all(|port| TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_ok())
    })?;
    Ok(process)
}
