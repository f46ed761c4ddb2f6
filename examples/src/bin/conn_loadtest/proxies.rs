//! The upstream and the proxies of both scenarios, each from a config
//! written to the work directory: an nginx upstream listening on many
//! ports, and the router, HAProxy and nginx balancing over some of them,
//! with their connection limits raised for many client connections.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use examples::harness::{nginx_http_conf, nginx_main_conf};
use examples::load::probe::HOST;
use examples::load::procs::{Proc, WorkDir};
use examples::load::servers::{start_nginx, start_router};
use examples::load::sys::Pinning;

/// `n` distinct free loopback ports: all are held until all are chosen.
pub(super) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind(SocketAddr::from((HOST, 0))))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// What a proxy must hold: client connections and the open-file limit
/// its processes run under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Capacity {
    /// Client connections it must accept and keep, at most.
    pub connections: u32,
    /// The open-file limit (soft) every process runs under.
    pub nofile: u64,
    /// Seconds an idle client connection is kept.
    pub idle_secs: u32,
}

/// nginx's main section (one worker) with room for `connections`
/// connections in all, listening sockets and upstream connections
/// included, and for as many files.
fn nginx_main(work: &WorkDir, name: &str, connections: u32, nofile: u64) -> Result<String> {
    let main = nginx_main_conf(&work.path, name);
    let events = "events { worker_connections 4096; }";
    if !main.contains(events) {
        bail!("the shared nginx main section no longer says `{events}`: {main}");
    }
    Ok(main.replace(
        events,
        &format!("worker_rlimit_nofile {nofile};\nevents {{ worker_connections {connections}; }}"),
    ))
}

/// nginx's `http` settings with the keep-alive timeout of clients set to
/// `idle_secs`.
fn nginx_http(work: &WorkDir, name: &str, idle_secs: u32) -> Result<String> {
    let http = nginx_http_conf(&work.path, name);
    let timeout = "keepalive_timeout 75s;";
    if !http.contains(timeout) {
        bail!("the shared nginx http settings no longer say `{timeout}`: {http}");
    }
    Ok(http.replace(timeout, &format!("keepalive_timeout {idle_secs}s;")))
}

/// The upstream: one nginx worker answering `200 ok` on every one of
/// `ports`, from one `server` block.
pub(super) fn start_upstream(
    work: &WorkDir,
    ports: &[u16],
    nofile: u64,
    cpu: Option<&str>,
) -> Result<Proc> {
    // Each listening socket takes a connection slot too; the proxies may
    // keep a few idle connections to every port.
    let slots = 16 * 1024 + 2 * ports.len() as u32;
    let listens: String = ports
        .iter()
        .map(|p| format!("    listen 127.0.0.1:{p};\n"))
        .collect();
    let conf = format!(
        "{}http {{\n{}  server {{\n{listens}    location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
        nginx_main(work, "upstream", slots, nofile)?,
        nginx_http(work, "upstream", 600)?,
    );
    start_nginx(work, "upstream", conf, cpu)
}

/// nginx as a reverse proxy on `port` over `upstreams` (`least_conn`),
/// keeping up to `keepalive` idle upstream connections in all.
pub(super) fn start_nginx_proxy(
    work: &WorkDir,
    name: &str,
    port: u16,
    upstreams: &[u16],
    capacity: Capacity,
    cpu: Option<&str>,
) -> Result<Proc> {
    // nginx's `keepalive` caps the idle connections of the whole upstream
    // block, not of each server: with 1,000 servers, 128 would make it
    // connect again for most requests.
    let keepalive = (2 * upstreams.len()).max(128);
    let servers: String = upstreams
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p};\n"))
        .collect();
    let slots = capacity.connections + keepalive as u32 + 1024;
    let conf = format!(
        "{}http {{\n{}  upstream up {{\n    least_conn;\n{servers}    keepalive {keepalive};\n    \
         keepalive_requests 1000000;\n  }}\n  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    \
         location / {{\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n",
        nginx_main(work, name, slots, capacity.nofile)?,
        nginx_http(work, name, capacity.idle_secs)?,
    );
    start_nginx(work, name, conf, cpu)
}

/// HAProxy, one thread, on `port` over `upstreams` (`balance leastconn`),
/// reusing upstream connections, accepting `capacity.connections`.
pub(super) fn start_haproxy(
    work: &WorkDir,
    name: &str,
    port: u16,
    upstreams: &[u16],
    capacity: Capacity,
    cpu: Option<&str>,
) -> Result<Proc> {
    let maxconn = capacity.connections + 1024;
    let servers: String = upstreams
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p}\n"))
        .collect();
    let idle = capacity.idle_secs;
    // HAProxy counts two descriptors per `maxconn` (client and server
    // side) and refuses to start when the hard limit is lower; with
    // `http-reuse always` a held client connection needs no server one,
    // so `no strict-limits` lets it run on the limit it has (it warns).
    let conf = format!(
        "global\n  nbthread 1\n  maxconn {maxconn}\n  no strict-limits\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
         maxconn {maxconn}\n  backlog 4096\n  timeout connect 5s\n  timeout client {idle}s\n  \
         timeout server 30s\n  timeout http-keep-alive {idle}s\n\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\n\
         backend be\n  balance leastconn\n{servers}"
    );
    let path = work.file(&format!("{name}.cfg"));
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "haproxy");
    command.arg("-db").arg("-f").arg(&path);
    Proc::spawn(name, command, &work.file(&format!("{name}.log")))
}

/// The router on `port` over `upstreams`, listed one `ip port` line each
/// in an `io.l5d.fs` file, with the default balancer (`p2c`); client
/// connections stay open for `capacity.idle_secs` without a request.
pub(super) fn start_router_over(
    work: &WorkDir,
    bin: &Path,
    name: &str,
    ports: (u16, u16),
    upstreams: &[u16],
    capacity: Capacity,
    cpu: Option<&str>,
) -> Result<Proc> {
    let config = write_router_config(work, name, ports, upstreams, capacity)?;
    start_router(work, bin, name, &config, cpu)
}

fn write_router_config(
    work: &WorkDir,
    name: &str,
    (port, admin): (u16, u16),
    upstreams: &[u16],
    capacity: Capacity,
) -> Result<PathBuf> {
    let disco = work.file(&format!("{name}-disco"));
    std::fs::create_dir_all(&disco)?;
    let endpoints: String = upstreams
        .iter()
        .map(|p| format!("127.0.0.1 {p}\n"))
        .collect();
    std::fs::write(disco.join("up"), endpoints)?;
    let idle_ms = u64::from(capacity.idle_secs) * 1000;
    let conf = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         namers:\n- kind: io.l5d.fs\n  rootDir: {}\n\
         routers:\n- protocol: http\n  dtab: \"/svc => /#/io.l5d.fs/up\"\n  \
         servers:\n  - ip: 127.0.0.1\n    port: {port}\n    \
         serverSession: {{idleTimeMs: {idle_ms}}}\n",
        disco.display()
    );
    let path = work.file(&format!("{name}.yaml"));
    std::fs::write(&path, conf)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let mut ports = free_ports(200).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 200);
    }

    #[test]
    fn nginx_sections_take_the_limits() {
        let work = WorkDir::create("conn-loadtest-test", false).unwrap();
        let main = nginx_main(&work, "x", 12000, 20000).unwrap();
        assert!(main.contains("worker_connections 12000;"), "{main}");
        assert!(main.contains("worker_rlimit_nofile 20000;"), "{main}");
        let http = nginx_http(&work, "x", 600).unwrap();
        assert!(http.contains("keepalive_timeout 600s;"), "{http}");
    }

    #[test]
    fn the_router_config_lists_every_endpoint() {
        let work = WorkDir::create("conn-loadtest-test", false).unwrap();
        let capacity = Capacity {
            connections: 10,
            nofile: 1024,
            idle_secs: 600,
        };
        let path = write_router_config(&work, "r", (4140, 9990), &[8001, 8002], capacity).unwrap();
        let conf = std::fs::read_to_string(path).unwrap();
        assert!(conf.contains("idleTimeMs: 600000"), "{conf}");
        let file = std::fs::read_to_string(work.file("r-disco/up")).unwrap();
        assert_eq!(file, "127.0.0.1 8001\n127.0.0.1 8002\n");
    }
}
