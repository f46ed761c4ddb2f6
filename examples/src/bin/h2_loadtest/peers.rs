//! The upstreams and the three proxies of each scenario, each started
//! from a config written to the work directory.
//!
//! - Upstream of `h2`: nginx, one worker, `return 200 "ok"` on two ports:
//!   one `listen … http2` (prior-knowledge h2c, which nginx 1.22 serves on
//!   a plain-text `http2` listener), one HTTP/1.1, for the nginx proxy.
//! - Upstream of the gRPC scenarios: this program's `grpc-server`.
//! - Router: `protocol: h2`; `h2` names requests by `:authority`
//!   (`io.l5d.header.token`, the default), gRPC by service
//!   (`io.l5d.header.path` with `segments: 1`), as Linkerd's gRPC
//!   examples do.
//! - HAProxy: one thread, `mode http`, `bind … proto h2`, `server … proto h2`.
//! - nginx: one worker, `listen … http2`. For `h2` it proxies to the
//!   upstream over HTTP/1.1: nginx's `proxy_pass` cannot speak HTTP/2 to
//!   an upstream, only `grpc_pass` can, and that one expects gRPC. For the
//!   gRPC scenarios it uses `grpc_pass`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use examples::harness::{installed, nginx_http_conf, nginx_main_conf};
use examples::load::probe::{free_port, loopback};
use examples::load::procs::{Proc, WorkDir};
use examples::load::servers::start_router;
use examples::load::sys::Pinning;

use super::Scenario;

/// What a scenario's proxies forward to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream {
    /// The h2c port (nginx's `http2` listener, or the gRPC server).
    pub(crate) h2: u16,
    /// An HTTP/1.1 port of the same upstream, when it has one.
    pub(crate) http1: Option<u16>,
}

/// nginx as the upstream of the `h2` scenario.
pub(crate) fn start_nginx_upstream(work: &WorkDir, cpu: Option<&str>) -> Result<(Proc, Upstream)> {
    let (h2, http1) = (free_port()?, free_port()?);
    // Up to 1,000 streams on a connection, so that the router's single
    // upstream connection (it keeps one per endpoint) is not held to
    // nginx's default of 128.
    let conf = format!(
        "{}http {{\n{}  http2_max_concurrent_streams 1000;\n  server {{\n    \
         listen 127.0.0.1:{h2} http2;\n    listen 127.0.0.1:{http1};\n    \
         location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "upstream"),
        nginx_http_conf(&work.path, "upstream"),
    );
    let proc = start_nginx(work, "upstream", conf, cpu)?;
    Ok((
        proc,
        Upstream {
            h2,
            http1: Some(http1),
        },
    ))
}

/// This program's gRPC server as the upstream of the gRPC scenarios.
pub(crate) fn start_grpc_upstream(
    work: &WorkDir,
    cpu: Option<&str>,
    messages: u32,
    size: usize,
) -> Result<(Proc, Upstream)> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut command = Pinning::command(cpu, exe);
    command
        .arg("grpc-server")
        .arg("--addr")
        .arg(loopback(port).to_string())
        .arg("--messages")
        .arg(messages.to_string())
        .arg("--size")
        .arg(size.to_string());
    let proc = Proc::spawn("gRPC server", command, &work.file("grpc-server.log"))?;
    Ok((
        proc,
        Upstream {
            h2: port,
            http1: None,
        },
    ))
}

/// One of the proxies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Router,
    HAProxy,
    Nginx,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Router, Kind::HAProxy, Kind::Nginx];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Router => "router",
            Kind::HAProxy => "HAProxy",
            Kind::Nginx => "nginx",
        }
    }

    /// Why this proxy cannot run `scenario` here, if it cannot.
    pub(crate) fn unavailable(self, scenario: Scenario, upstream: &Upstream) -> Option<String> {
        match self {
            Kind::Router => None,
            Kind::HAProxy if !installed("haproxy") => {
                Some("haproxy is not installed (apt-get install -y haproxy)".into())
            }
            Kind::HAProxy => None,
            Kind::Nginx if !installed("nginx") => Some("nginx is not installed".into()),
            Kind::Nginx if !nginx_has_http2() => {
                Some("this nginx is built without ngx_http_v2_module".into())
            }
            Kind::Nginx if scenario == Scenario::H2 && upstream.http1.is_none() => Some(
                "nginx proxies plain HTTP/2 only to an HTTP/1 upstream, and this one has none"
                    .into(),
            ),
            Kind::Nginx => None,
        }
    }
}

fn nginx_has_http2() -> bool {
    Command::new("nginx")
        .arg("-V")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("--with-http_v2_module"))
}

/// Starts `kind` in front of `upstream` for `scenario`; its address.
pub(crate) fn start(
    kind: Kind,
    scenario: Scenario,
    work: &WorkDir,
    router_bin: &Path,
    upstream: &Upstream,
    cpu: Option<&str>,
) -> Result<(Proc, SocketAddr)> {
    let port = free_port()?;
    let proc = match kind {
        Kind::Router => {
            let config = write_router_config(work, scenario, port, free_port()?, upstream.h2)?;
            start_router(work, router_bin, "router", &config, cpu)?
        }
        Kind::HAProxy => start_haproxy(work, port, upstream.h2, cpu)?,
        Kind::Nginx => start_nginx_proxy(work, scenario, port, upstream, cpu)?,
    };
    Ok((proc, loopback(port)))
}

/// One `h2` router sending every name to the upstream.
fn write_router_config(
    work: &WorkDir,
    scenario: Scenario,
    port: u16,
    admin: u16,
    upstream: u16,
) -> Result<PathBuf> {
    let identifier = match scenario {
        Scenario::H2 => "",
        Scenario::GrpcUnary | Scenario::GrpcStream => {
            "  identifier:\n    kind: io.l5d.header.path\n    segments: 1\n"
        }
    };
    let conf = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         routers:\n- protocol: h2\n  dtab: \"/svc => /$/inet/127.0.0.1/{upstream}\"\n\
         {identifier}  servers:\n  - ip: 127.0.0.1\n    port: {port}\n"
    );
    let path = work.file("router.yaml");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// HAProxy with one thread, h2c on both sides.
fn start_haproxy(work: &WorkDir, port: u16, upstream: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
         timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
         timeout http-keep-alive 75s\n\n\
         frontend fe\n  bind 127.0.0.1:{port} proto h2\n  default_backend be\n\n\
         backend be\n  server up 127.0.0.1:{upstream} proto h2\n"
    );
    let path = work.file("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "haproxy");
    command.arg("-db").arg("-f").arg(&path);
    Proc::spawn("haproxy", command, &work.file("haproxy.log"))
}

/// nginx with one worker and a prior-knowledge h2c listener: `proxy_pass`
/// over HTTP/1.1 for plain h2, `grpc_pass` for gRPC; upstream connections
/// kept open.
fn start_nginx_proxy(
    work: &WorkDir,
    scenario: Scenario,
    port: u16,
    upstream: &Upstream,
    cpu: Option<&str>,
) -> Result<Proc> {
    let (target, location) = match scenario {
        Scenario::H2 => (
            upstream.http1.unwrap_or(upstream.h2),
            "proxy_pass http://up;\n      proxy_http_version 1.1;\n      \
             proxy_set_header Connection \"\";",
        ),
        Scenario::GrpcUnary | Scenario::GrpcStream => (upstream.h2, "grpc_pass grpc://up;"),
    };
    let conf = format!(
        "{}http {{\n{}  upstream up {{\n    server 127.0.0.1:{target};\n    keepalive 1024;\n    \
         keepalive_requests 1000000;\n  }}\n  server {{\n    listen 127.0.0.1:{port} http2;\n    \
         location / {{\n      {location}\n    }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "nginx"),
        nginx_http_conf(&work.path, "nginx"),
    );
    start_nginx(work, "nginx", conf, cpu)
}

fn start_nginx(work: &WorkDir, name: &str, conf: String, cpu: Option<&str>) -> Result<Proc> {
    let path = work.file(&format!("{name}.conf"));
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "nginx");
    command
        .arg("-p")
        .arg(&work.path)
        .arg("-e")
        .arg(work.file(&format!("{name}-error.log")))
        .arg("-c")
        .arg(&path);
    Proc::spawn(name, command, &work.file(&format!("{name}.log")))
}
