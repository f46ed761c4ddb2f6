//! The proxies under test: their configs, their own config checks, and
//! starting one and waiting until it serves.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use examples::harness::{
    ProcessGroup, build_router, free_port, installed, nginx_http_conf, nginx_main_conf,
    pinned_command,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::load::Connections;
use crate::{Args, HaproxyBalance, ProxyKind};

/// One proxy configuration, written and checked, ready to start.
pub(crate) struct Setup {
    kind: ProxyKind,
    /// What is configured, for the report (`p2c, retryableRead5XX`).
    pub(crate) label: String,
    /// The program: the router binary, `haproxy` or `nginx`.
    program: PathBuf,
    /// Where it serves.
    pub(crate) port: u16,
    config: PathBuf,
    pub(crate) log: PathBuf,
    work: PathBuf,
}

impl Setup {
    pub(crate) fn name(&self) -> &'static str {
        match self.kind {
            ProxyKind::Router => "router",
            ProxyKind::Haproxy => "HAProxy",
            ProxyKind::Nginx => "nginx",
        }
    }

    /// The command that serves (`check == false`) or only checks the config.
    fn command(&self, cpu: Option<&str>, check: bool) -> Command {
        let mut command = pinned_command(cpu, &self.program);
        match self.kind {
            ProxyKind::Router => {
                if check {
                    command.arg("--check");
                }
                command.arg(&self.config);
            }
            ProxyKind::Haproxy => {
                command.arg(if check { "-c" } else { "-db" });
                command.arg("-f").arg(&self.config);
            }
            ProxyKind::Nginx => {
                if check {
                    command.arg("-t");
                }
                command
                    .arg("-p")
                    .arg(&self.work)
                    .arg("-e")
                    .arg(self.work.join("nginx-error.log"))
                    .arg("-c")
                    .arg(&self.config);
            }
        }
        command
    }

    /// Asks the proxy once (a few times if the connection fails) and refuses
    /// to go on if it answers 4xx: a config that names nothing.
    pub(crate) async fn probe(&self) -> Result<()> {
        let connections = Connections::new(SocketAddr::from(([127, 0, 0, 1], self.port)));
        let mut last = String::new();
        for _ in 0..5 {
            match tokio::time::timeout(Duration::from_secs(5), connections.send()).await {
                Ok(Ok(answer)) if answer.status.is_client_error() => bail!(
                    "{} ({}) answers the probe {} (l5d-err: {}); its output:\n{}",
                    self.name(),
                    self.label,
                    answer.status,
                    answer.l5d_err.as_deref().unwrap_or("none"),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(outcome)) => last = format!("{outcome:?}"),
                Err(_) => last = "no answer within 5 s".into(),
            }
        }
        bail!(
            "{} ({}) does not answer the probe ({last})",
            self.name(),
            self.label
        )
    }

    /// Runs the proxy's own config check; a refusal carries its output and
    /// the config.
    pub(crate) fn check(&self) -> Result<()> {
        let output = self
            .command(None, true)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.program.display()))?;
        if !output.status.success() {
            bail!(
                "{} refuses its config for {} ({}):\n{}{}\n--- {} ---\n{}",
                self.name(),
                self.label,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.config.display(),
                std::fs::read_to_string(&self.config).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Starts the proxy and waits until it accepts connections.
    pub(crate) async fn start(&self, cpu: Option<&str>) -> Result<ProcessGroup> {
        let mut child = ProcessGroup::spawn(&mut self.command(cpu, false), &self.log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.exited() {
                bail!(
                    "{} ({}) exited at start ({status}); its output:\n{}",
                    self.name(),
                    self.label,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(child);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} ({}) does not listen on port {} after 10 s; its output:\n{}",
                    self.name(),
                    self.label,
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The router's config for one balancer, as YAML.
fn router_config(
    balancer: &str,
    classifier: Option<&str>,
    extra: Option<&Value>,
    port: u16,
    fs_dir: &Path,
) -> Result<String> {
    let mut router = json!({
        "protocol": "http",
        "dtab": "/svc => /#/io.l5d.fs",
        "identifier": {"kind": "io.l5d.header.token", "header": "Host"},
        "client": {"loadBalancer": {"kind": balancer}},
        "servers": [{"ip": "127.0.0.1", "port": port}],
    });
    if let Some(kind) = classifier {
        router["service"] = json!({"responseClassifier": {"kind": kind}});
    }
    if let Some(extra) = extra {
        merge(&mut router, extra.clone());
    }
    let config = json!({
        "admin": {"ip": "127.0.0.1", "port": free_port()?},
        "namers": [{"kind": "io.l5d.fs", "rootDir": fs_dir.display().to_string()}],
        "routers": [router],
    });
    serde_saphyr::to_string(&config).context("writing the router config as YAML")
}

/// Merges `extra` into `base`: mappings key by key, anything else replaced.
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

fn haproxy_config(port: u16, backends: &[SocketAddr], balance: &str) -> String {
    let mut servers = String::new();
    for (i, addr) in backends.iter().enumerate() {
        let _ = writeln!(servers, "  server b{i} {addr}");
    }
    // Retries go to another server (`redispatch 1`: on every retry, not
    // only the last). Passive health needs `check`, which adds a TCP
    // connect every second: that is how a marked-down server comes back.
    format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  \
         timeout connect 1s\n  timeout client 30s\n  timeout server 10s\n  \
         timeout http-keep-alive 75s\n  \
         retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend web\n\n\
         backend web\n  balance {balance}\n  \
         default-server check inter 1s fall 3 rise 2 observe layer7 error-limit 10 on-error mark-down\n\
         {servers}"
    )
}

fn nginx_config(work: &Path, port: u16, backends: &[SocketAddr]) -> String {
    let mut servers = String::new();
    for addr in backends {
        let _ = writeln!(servers, "    server {addr} max_fails=1 fail_timeout=10s;");
    }
    format!(
        "{}http {{\n{}  upstream web {{\n    least_conn;\n{servers}    keepalive 64;\n  }}\n  \
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
         proxy_pass http://web;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Connection \"\";\n      proxy_connect_timeout 1s;\n      \
         proxy_read_timeout 10s;\n      \
         proxy_next_upstream error timeout http_500 http_502 http_503;\n      \
         proxy_next_upstream_tries 3;\n    }}\n  }}\n}}\n",
        nginx_main_conf(work, "nginx"),
        nginx_http_conf(work, "nginx"),
    )
}

/// Writes every configuration to measure; proxies whose program is
/// missing are left out with a message.
pub(crate) fn prepare(args: &Args, work: &Path, backends: &[SocketAddr]) -> Result<Vec<Setup>> {
    let extra = match &args.router_extra {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let value: Value = serde_saphyr::from_str(&text)
                .with_context(|| format!("{}: not YAML", path.display()))?;
            if !value.is_object() {
                bail!("{}: the router extras must be a mapping", path.display());
            }
            Some(value)
        }
        None => None,
    };
    let classifier = (args.classifier != "none").then_some(args.classifier.as_str());
    let mut setups = Vec::new();
    let setup =
        |kind, label: String, program: PathBuf, name: &str, config: &str| -> Result<Setup> {
            Ok(Setup {
                kind,
                label,
                program,
                port: free_port()?,
                config: work.join(config),
                log: work.join(format!("{name}.log")),
                work: work.to_path_buf(),
            })
        };
    for &kind in &args.proxies {
        match kind {
            ProxyKind::Router => {
                let bin = match &args.router_bin {
                    Some(bin) if !bin.exists() => {
                        loud_skip(&format!("the router: {} does not exist", bin.display()));
                        continue;
                    }
                    Some(bin) => bin.clone(),
                    None => build_router()?,
                };
                let fs_dir = work.join("fs");
                std::fs::create_dir_all(&fs_dir)?;
                let lines: String = backends
                    .iter()
                    .map(|a| format!("{} {}\n", a.ip(), a.port()))
                    .collect();
                std::fs::write(fs_dir.join("web"), lines)?;
                for balancer in &args.balancers {
                    let mut label = format!(
                        "{balancer}, {}",
                        classifier
                            .map_or("no classifier", |c| c.trim_start_matches("io.l5d.http."))
                    );
                    if extra.is_some() {
                        label.push_str(", + extra");
                    }
                    let name = format!("router-{balancer}");
                    let config = format!("{name}.yaml");
                    let s = setup(kind, label, bin.clone(), &name, &config)?;
                    let config =
                        router_config(balancer, classifier, extra.as_ref(), s.port, &fs_dir)?;
                    std::fs::write(&s.config, config)?;
                    setups.push(s);
                }
            }
            ProxyKind::Haproxy => {
                if !installed("haproxy") {
                    loud_skip("haproxy is not installed (apt-get install -y haproxy)");
                    continue;
                }
                let balance = match args.haproxy_balance {
                    HaproxyBalance::Leastconn => "leastconn",
                    HaproxyBalance::Roundrobin => "roundrobin",
                };
                let label = format!("{balance}, retries 3 + redispatch, observe layer7");
                let s = setup(kind, label, "haproxy".into(), "haproxy", "haproxy.cfg")?;
                std::fs::write(&s.config, haproxy_config(s.port, backends, balance))?;
                setups.push(s);
            }
            ProxyKind::Nginx => {
                if !installed("nginx") {
                    loud_skip("nginx is not installed (apt-get install -y nginx)");
                    continue;
                }
                let label = "least_conn, next_upstream tries 3, max_fails 1".to_string();
                let s = setup(kind, label, "nginx".into(), "nginx", "nginx.conf")?;
                std::fs::write(&s.config, nginx_config(work, s.port, backends))?;
                setups.push(s);
            }
        }
    }
    Ok(setups)
}

fn loud_skip(why: &str) {
    eprintln!("\n*** SKIPPED: {why} ***\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn extras_merge_key_by_key() {
        let mut base = json!({"client": {"loadBalancer": {"kind": "p2c"}}, "dtab": "/a=>/b"});
        merge(
            &mut base,
            json!({"client": {"failureAccrual": {"kind": "none"}}, "dtab": "/c=>/d"}),
        );
        assert_eq!(
            base,
            json!({
                "client": {"loadBalancer": {"kind": "p2c"}, "failureAccrual": {"kind": "none"}},
                "dtab": "/c=>/d",
            })
        );
    }
}
