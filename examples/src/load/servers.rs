//! The upstream and the three proxies, each started from a config
//! written to the work directory, with or without TLS on the listener.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::procs::{Proc, WorkDir};
use super::sys::Pinning;
use super::tls::ServerTls;
use crate::harness::{nginx_http_conf, nginx_main_conf};

/// nginx in the foreground on `conf`, written to `<name>.conf` in the
/// work directory, with its logs there too.
pub fn start_nginx(work: &WorkDir, name: &str, conf: String, cpu: Option<&str>) -> Result<Proc> {
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

/// The upstream: nginx answering every request `200 ok`.
pub fn start_upstream(work: &WorkDir, port: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "{}http {{\n{}  server {{\n    listen 127.0.0.1:{port};\n    \
         location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "upstream"),
        nginx_http_conf(&work.path, "upstream"),
    );
    start_nginx(work, "upstream", conf, cpu)
}

/// nginx as a reverse proxy to `upstream`, keeping upstream connections
/// open; terminating TLS when `tls` is given.
pub fn start_nginx_proxy(
    work: &WorkDir,
    port: u16,
    upstream: u16,
    cpu: Option<&str>,
    tls: Option<&ServerTls>,
) -> Result<Proc> {
    start_nginx_proxy_tuned(work, port, upstream, cpu, tls, &[])
}

/// As [`start_nginx_proxy`], with a location for each exact path of
/// `tuned` that adds its directives (buffer sizes, say) to the proxying
/// ones; every other path is proxied as [`start_nginx_proxy`] does.
pub fn start_nginx_proxy_tuned(
    work: &WorkDir,
    port: u16,
    upstream: u16,
    cpu: Option<&str>,
    tls: Option<&ServerTls>,
    tuned: &[(&str, &str)],
) -> Result<Proc> {
    let proxying = "proxy_pass http://up;\n      proxy_http_version 1.1;\n      \
                    proxy_set_header Connection \"\";";
    let locations: String = tuned
        .iter()
        .map(|(path, directives)| {
            format!("\n    location = {path} {{\n      {proxying}\n      {directives}\n    }}")
        })
        .collect();
    let listen = match tls {
        None => format!("listen 127.0.0.1:{port};"),
        Some(tls) => {
            // nginx 1.22 leaves TLS 1.3 out unless asked.
            let protocols = match &tls.tls13_suite {
                None => "ssl_protocols TLSv1.2 TLSv1.3;".to_string(),
                Some(suite) => {
                    format!("ssl_protocols TLSv1.3;\n    ssl_conf_command Ciphersuites {suite};")
                }
            };
            format!(
                "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    \
                 ssl_certificate_key {};\n    {protocols}",
                tls.files.cert.display(),
                tls.files.key.display()
            )
        }
    };
    let conf = format!(
        "{}http {{\n{}  upstream up {{\n    server 127.0.0.1:{upstream};\n    keepalive 128;\n    \
         keepalive_requests 1000000;\n  }}\n  server {{\n    {listen}\n    \
         location / {{\n      {proxying}\n    }}{locations}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "nginx"),
        nginx_http_conf(&work.path, "nginx"),
    );
    start_nginx(work, "nginx", conf, cpu)
}

/// HAProxy with one thread, reusing upstream connections; terminating
/// TLS when `tls` is given.
pub fn start_haproxy(
    work: &WorkDir,
    port: u16,
    upstream: u16,
    cpu: Option<&str>,
    tls: Option<&ServerTls>,
) -> Result<Proc> {
    let bind = match tls {
        None => String::new(),
        Some(tls) => {
            let mut bind = format!(" ssl crt {}", tls.files.combined.display());
            if let Some(suite) = &tls.tls13_suite {
                bind.push_str(&format!(" ssl-min-ver TLSv1.3 ciphersuites {suite}"));
            }
            bind
        }
    };
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
         timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
         timeout http-keep-alive 75s\n\n\
         frontend fe\n  bind 127.0.0.1:{port}{bind}\n  default_backend be\n\n\
         backend be\n  server up 127.0.0.1:{upstream}\n"
    );
    let path = work.file("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "haproxy");
    command.arg("-db").arg("-f").arg(&path);
    Proc::spawn("haproxy", command, &work.file("haproxy.log"))
}

/// What a router config says.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig<'a> {
    /// The server's port.
    pub port: u16,
    /// The admin port.
    pub admin: u16,
    /// Where `/svc` goes.
    pub upstream: u16,
    /// YAML lines added to the router's entry, unindented.
    pub extra: &'a str,
    /// TLS on the server.
    pub tls: Option<&'a ServerTls>,
}

/// Writes `<name>.yaml`: one `http` router sending everything to the
/// upstream.
pub fn write_router_config(
    work: &WorkDir,
    name: &str,
    config: &RouterConfig<'_>,
) -> Result<PathBuf> {
    let RouterConfig {
        port,
        admin,
        upstream,
        extra,
        tls,
    } = *config;
    let extra: String = extra.lines().map(|line| format!("  {line}\n")).collect();
    let tls = match tls {
        None => String::new(),
        Some(tls) => {
            let mut block = format!(
                "    tls:\n      certPath: {}\n      keyPath: {}\n",
                tls.files.cert.display(),
                tls.files.key.display()
            );
            if let Some(suite) = &tls.tls13_suite {
                block.push_str(&format!(
                    "      protocols: [TLSv1.3]\n      ciphers: [{suite}]\n"
                ));
            }
            block
        }
    };
    let conf = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         routers:\n- protocol: http\n  dtab: \"/svc => /$/inet/127.0.0.1/{upstream}\"\n\
         {extra}  servers:\n  - ip: 127.0.0.1\n    port: {port}\n{tls}"
    );
    let path = work.file(&format!("{name}.yaml"));
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// Starts the router binary `bin` on `config`.
pub fn start_router(
    work: &WorkDir,
    bin: &Path,
    name: &str,
    config: &Path,
    cpu: Option<&str>,
) -> Result<Proc> {
    let mut command = Pinning::command(cpu, bin);
    command.arg(config);
    Proc::spawn(name, command, &work.file(&format!("{name}.log")))
}
