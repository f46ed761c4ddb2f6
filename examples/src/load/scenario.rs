//! The shapes of HTTP/1.1 traffic `loadtest` measures, and the upstream
//! that serves all of them.
//!
//! One nginx upstream answers every scenario: `GET /` and `POST /post` get
//! `200 ok` (nginx reads a request's body to its end before it takes the
//! next request off the connection, so every byte of a `POST` is
//! consumed), `GET /100k` a static 100 KiB file sent with `sendfile`, and
//! `GET /nginx_status` its connection counters.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};

use super::probe::http_get_path;
use super::procs::{Proc, WorkDir};
use super::servers::start_nginx;
use crate::harness::{nginx_http_conf, nginx_main_conf};

/// The body of each `post16k` request, bytes.
pub const POST_BODY_BYTES: usize = 16 * 1024;
/// The size of each `resp100k` answer, bytes.
pub const RESPONSE_BYTES: usize = 100 * 1024;
/// The upstream's path of the large answer.
const LARGE_PATH: &str = "/100k";
/// The path `post16k` sends its bodies to (the upstream answers it as `/`).
const POST_PATH: &str = "/post";

/// What the nginx proxy is given for the two paths with large bodies,
/// so that it is not held back by its defaults: without it nginx writes
/// every 16 KiB request body to a temporary file (its body buffer is
/// 8 KiB on x86-64) and reads answers in 4 KiB buffers (HAProxy's are
/// 16 KiB). `/` keeps the settings of `get`.
pub const NGINX_PROXY_TUNING: [(&str, &str); 2] = [
    (POST_PATH, "client_body_buffer_size 64k;"),
    (
        LARGE_PATH,
        "proxy_buffer_size 16k;\n      proxy_buffers 8 16k;",
    ),
];

/// One shape of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Keep-alive `GET`, a 2-byte answer.
    Get,
    /// Keep-alive `POST` with a 16 KiB body, a 2-byte answer.
    Post16k,
    /// Keep-alive `GET`, a 100 KiB answer.
    Resp100k,
    /// `GET` with `Connection: close`: a new client connection per request.
    Newconn,
    /// `Get` through a router with its resilience and telemetry features
    /// configured, beside the plain router.
    Features,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::Get,
        Scenario::Post16k,
        Scenario::Resp100k,
        Scenario::Newconn,
        Scenario::Features,
    ];

    /// The name `--scenario` takes.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Get => "get",
            Scenario::Post16k => "post16k",
            Scenario::Resp100k => "resp100k",
            Scenario::Newconn => "newconn",
            Scenario::Features => "features",
        }
    }

    /// What differs from `get`, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Get => "keep-alive `GET /`, a 2-byte answer",
            Scenario::Post16k => {
                "keep-alive `POST /post` with a 16 KiB body (a wrk Lua script), a 2-byte \
                 answer; the upstream reads every body"
            }
            Scenario::Resp100k => {
                "keep-alive `GET /100k`, a 100 KiB static file the upstream sends with `sendfile`"
            }
            Scenario::Newconn => {
                "`GET /` with `Connection: close`: every request on a new client connection"
            }
            Scenario::Features => {
                "`get` through a second router configured with failure accrual, retries with a \
                 budget, a classifier, timeouts, an ewma balancer and a Prometheus telemeter \
                 (scraped every 10 s)"
            }
        }
    }

    /// The path `wrk` asks for.
    pub fn path(self) -> &'static str {
        match self {
            Scenario::Post16k => POST_PATH,
            Scenario::Resp100k => LARGE_PATH,
            _ => "/",
        }
    }

    /// Headers `wrk` adds to every request.
    pub fn headers(self) -> &'static [&'static str] {
        match self {
            Scenario::Newconn => &["Connection: close"],
            _ => &[],
        }
    }

    /// What one unit of work is called in the report.
    pub fn rate_label(self) -> &'static str {
        match self {
            Scenario::Newconn => "Connections/s",
            _ => "Requests/s",
        }
    }

    /// Whether the router with features runs in this scenario.
    pub fn with_features(self) -> bool {
        self == Scenario::Features
    }

    /// Extra `wrk` arguments, writing what they need (the `POST` script)
    /// to the work directory.
    pub fn wrk_args(self, work: &WorkDir) -> Result<Vec<OsString>> {
        match self {
            Scenario::Post16k => {
                let path = work.file("post16k.lua");
                let script = format!(
                    "-- {POST_BODY_BYTES}-byte POST bodies; wrk adds the Content-Length.\n\
                     wrk.method = \"POST\"\n\
                     wrk.body = string.rep(\"x\", {POST_BODY_BYTES})\n\
                     wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
                );
                std::fs::write(&path, script)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(vec!["-s".into(), path.into()])
            }
            _ => Ok(Vec::new()),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scenarios `--scenario` names: one, a comma-separated list, or
/// `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenarios(pub Vec<Scenario>);

impl FromStr for Scenarios {
    type Err = String;

    fn from_str(text: &str) -> Result<Scenarios, String> {
        let mut chosen = Vec::new();
        for word in text.split(',').map(str::trim) {
            if word == "all" {
                chosen.extend(Scenario::ALL);
                continue;
            }
            let one = Scenario::ALL
                .into_iter()
                .find(|s| s.name() == word)
                .ok_or_else(|| {
                    let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                    format!(
                        "unknown scenario {word:?}; expected all or one of {}",
                        names.join(", ")
                    )
                })?;
            chosen.push(one);
        }
        chosen.dedup();
        Ok(Scenarios(chosen))
    }
}

/// The upstream for every scenario: nginx, one worker, on `port`.
pub fn start_scenario_upstream(work: &WorkDir, port: u16, cpu: Option<&str>) -> Result<Proc> {
    let root = work.file("static");
    std::fs::create_dir_all(&root)?;
    let large = root.join(LARGE_PATH.trim_start_matches('/'));
    std::fs::write(&large, vec![b'x'; RESPONSE_BYTES])
        .with_context(|| format!("writing {}", large.display()))?;
    let conf = format!(
        "{}http {{\n{}  sendfile on;\n  client_body_buffer_size 64k;\n  \
         client_max_body_size 1m;\n  default_type application/octet-stream;\n  \
         server {{\n    listen 127.0.0.1:{port};\n    root {};\n    \
         location / {{ return 200 \"ok\"; }}\n    \
         location = {LARGE_PATH} {{ }}\n    \
         location = /nginx_status {{ stub_status; }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "upstream"),
        nginx_http_conf(&work.path, "upstream"),
        root.display(),
    );
    start_nginx(work, "upstream", conf, cpu)
}

/// How many connections the upstream has accepted (its `stub_status`).
pub fn upstream_accepts(upstream: SocketAddr) -> Result<u64> {
    let (status, answer) = http_get_path(upstream, "/nginx_status", Duration::from_secs(2), 4096)?;
    if status != 200 {
        return Err(anyhow!("the upstream's /nginx_status answered {status}"));
    }
    parse_accepts(&answer).ok_or_else(|| anyhow!("no accepts in /nginx_status: {answer:?}"))
}

/// The first of the three counters under `server accepts handled requests`.
fn parse_accepts(answer: &str) -> Option<u64> {
    let mut lines = answer.lines();
    lines.find(|l| l.trim_start().starts_with("server accepts"))?;
    lines.next()?.split_whitespace().next()?.parse().ok()
}

/// The kernel's count of TCP connections accepted (`PassiveOpens` in
/// `/proc/net/snmp`), every process of this network namespace included.
pub fn tcp_passive_opens() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names = tcp.next()?.split_whitespace();
    let values = tcp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "PassiveOpens")?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_lists() {
        assert_eq!("get".parse(), Ok(Scenarios(vec![Scenario::Get])));
        assert_eq!(
            "post16k, newconn".parse(),
            Ok(Scenarios(vec![Scenario::Post16k, Scenario::Newconn]))
        );
        assert_eq!("all".parse(), Ok(Scenarios(Scenario::ALL.to_vec())));
        let err = "put".parse::<Scenarios>().unwrap_err();
        assert!(err.contains("\"put\"") && err.contains("resp100k"), "{err}");
    }

    #[test]
    fn stub_status_accepts() {
        let answer = "HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nActive connections: 3 \n\
                      server accepts handled requests\n 17 17 901 \n\
                      Reading: 0 Writing: 1 Waiting: 2 \n";
        assert_eq!(parse_accepts(answer), Some(17));
        assert_eq!(parse_accepts("Active connections: 1\n"), None);
    }
}
