//! `io.l5d.statsd`: the tree pushed to a statsd server over UDP, named as
//! Linkerd named it (`linkerd.rt.web.server.127_0_0_1.4140.requests`).
//!
//! Linkerd sent every counter increment and every histogram value as it
//! happened, sampled at `sampleRate` to bound the traffic. Here the figures
//! are gathered every `gaugeIntervalMs` instead and sent exactly, in the
//! same statsd types:
//! - a counter as its increase over the interval, `name:12|c`;
//! - a gauge as its value, `name:3|g`;
//! - a stat as its values over the interval, one line per histogram bucket
//!   with the bucket's count as statsd's sample weight:
//!   `name:12|ms|@0.25` stands for four values of 12 ms.
//!
//! So nothing is dropped and the traffic is bounded by the number of
//! figures, not the request rate; `sampleRate` is checked and kept for
//! configs written for Linkerd, and scales nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Entry, Scope, Source, Value};

/// The largest datagram sent (Linkerd's statsd client's limit).
const MAX_DATAGRAM: usize = 1400;

/// `{kind: io.l5d.statsd, prefix, hostname, port, gaugeIntervalMs,
/// sampleRate}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatsdConfig {
    /// Put with a `.` before every name (default `linkerd`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Where the statsd server is (default `127.0.0.1`).
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Its UDP port (default 8125).
    #[serde(default = "default_port")]
    pub port: u16,
    /// How often the figures are sent, in ms (default 10000).
    #[serde(default = "default_interval")]
    pub gauge_interval_ms: u64,
    /// Linkerd's sampling of each event, between 0 and 1 (default 0.01);
    /// nothing is sampled here (see the module's notes).
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
    /// Linkerd required `experimental: true`; accepted, not required.
    #[serde(default)]
    pub experimental: bool,
}

fn default_prefix() -> String {
    "linkerd".into()
}

fn default_hostname() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    8125
}

fn default_interval() -> u64 {
    10_000
}

fn default_sample_rate() -> f64 {
    0.01
}

impl StatsdConfig {
    /// Checks the keys' values; `at` names the entry in messages.
    pub fn check(&self, at: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(format!(
                "{at} (io.l5d.statsd): sampleRate: {} is not between 0 and 1",
                self.sample_rate
            ));
        }
        if self.gauge_interval_ms == 0 {
            return Err(format!(
                "{at} (io.l5d.statsd): gaugeIntervalMs: must be more than 0"
            ));
        }
        if self.hostname.trim().is_empty() {
            return Err(format!("{at} (io.l5d.statsd): hostname: must not be empty"));
        }
        Ok(())
    }
}

/// The statsd name of a tree path: Linkerd's, every character but letters
/// and digits made `_`, scopes and names joined with `.`.
pub fn name_of(prefix: &str, path: &[Arc<str>]) -> String {
    let joined = path.join("/");
    let mut name: String = joined
        .chars()
        .map(|c| {
            if c == '/' || c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("//") {
        name = name.replace("//", "/");
    }
    let name = name.replace('/', ".");
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

/// A gauge's value as statsd clients wrote it: no exponent, at most six
/// decimals, no trailing zeros (`3`, `0.5`).
fn gauge_text(value: f64) -> String {
    if !value.is_finite() {
        return "0".into();
    }
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// Turns the figures of one interval into statsd lines, remembering the
/// counters' values to send their increases.
#[derive(Debug, Default)]
pub struct Lines {
    prefix: String,
    counters: HashMap<String, u64>,
}

impl Lines {
    /// Lines named under `prefix`.
    pub fn new(prefix: &str) -> Lines {
        Lines {
            prefix: prefix.to_string(),
            counters: HashMap::new(),
        }
    }

    /// The lines for `entries` (from a [`Scope::pushing`] walk). A counter
    /// seen for the first time sends its whole value; one that went down
    /// (its scope was made anew) sends its new value.
    pub fn lines(&mut self, entries: &[Entry]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::with_capacity(self.counters.len());
        for entry in entries {
            let name = name_of(&self.prefix, &entry.path);
            match &entry.value {
                Value::Counter(now) => {
                    let before = self.counters.get(&name).copied().unwrap_or(0);
                    let increase = if *now >= before { now - before } else { *now };
                    if increase > 0 {
                        lines.push(format!("{name}:{increase}|c"));
                    }
                    seen.insert(name, *now);
                }
                Value::Gauge(value) => lines.push(format!("{name}:{}|g", gauge_text(*value))),
                Value::Samples(samples) => {
                    for (value, count) in samples {
                        if *count == 1 {
                            lines.push(format!("{name}:{value}|ms"));
                        } else {
                            #[allow(clippy::cast_precision_loss)]
                            let weight = 1.0 / *count as f64;
                            lines.push(format!("{name}:{value}|ms|@{weight}"));
                        }
                    }
                }
                Value::Stat(_) => {}
            }
        }
        // Counters whose scopes went are forgotten.
        self.counters = seen;
        lines
    }
}

/// Packs lines into datagrams of at most [`MAX_DATAGRAM`] bytes, joined
/// with newlines (a longer line goes alone).
pub fn datagrams(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines {
        if !current.is_empty() && current.len() + 1 + line.len() > MAX_DATAGRAM {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        let _ = write!(current, "{line}");
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sends the figures of `sources` to the statsd server every interval,
/// until dropped. A server that cannot be found or reached is tried again
/// at the next interval; it is logged once when that starts and once when
/// it ends.
pub async fn push_every_interval(config: StatsdConfig, sources: Vec<Arc<dyn Source>>) {
    super::keep_values_for_push();
    let interval = Duration::from_millis(config.gauge_interval_ms);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lines = Lines::new(&config.prefix);
    let mut failing = false;
    let target = format!("{}:{}", config.hostname, config.port);
    loop {
        tick.tick().await;
        let mut entries = Vec::new();
        {
            let mut root = Scope::pushing(&mut entries);
            for source in &sources {
                source.list(&mut root);
            }
        }
        let batch = lines.lines(&entries);
        match send(&target, &datagrams(&batch)).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(
                    telemeter = "io.l5d.statsd",
                    target,
                    "statsd reachable again"
                );
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(telemeter = "io.l5d.statsd", target, %error, "cannot send to statsd; trying again each interval");
            }
            Err(_) => {}
        }
    }
}

async fn send(target: &str, datagrams: &[String]) -> std::io::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {target}")))?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    for datagram in datagrams {
        socket.send(datagram.as_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: &[&str]) -> Vec<Arc<str>> {
        segments.iter().map(|s| (*s).into()).collect()
    }

    #[test]
    fn names_are_linkerds() {
        assert_eq!(
            name_of(
                "linkerd",
                &path(&["rt", "incoming", "server", "0.0.0.0/4140", "requests"])
            ),
            "linkerd.rt.incoming.server.0_0_0_0.4140.requests"
        );
        assert_eq!(
            name_of(
                "",
                &path(&["rt", "http", "client", "#/io.l5d.fs/default", "requests"])
            ),
            "rt.http.client._.io_l5d_fs.default.requests"
        );
        assert_eq!(
            name_of("", &path(&["x", "$/inet/127.1/8080"])),
            "x._.inet.127_1.8080"
        );
    }

    #[test]
    fn counters_send_their_increase_and_stats_their_weighted_values() {
        let mut lines = Lines::new("l");
        let first = [
            Entry {
                path: path(&["a", "requests"]),
                value: Value::Counter(5),
            },
            Entry {
                path: path(&["a", "connections"]),
                value: Value::Gauge(3.0),
            },
            Entry {
                path: path(&["a", "latency"]),
                value: Value::Samples(vec![(2, 1), (12, 4)]),
            },
        ];
        assert_eq!(
            lines.lines(&first),
            [
                "l.a.requests:5|c",
                "l.a.connections:3|g",
                "l.a.latency:2|ms",
                "l.a.latency:12|ms|@0.25"
            ]
        );
        let second = [Entry {
            path: path(&["a", "requests"]),
            value: Value::Counter(7),
        }];
        assert_eq!(lines.lines(&second), ["l.a.requests:2|c"]);
        // Unchanged: nothing to send.
        assert!(lines.lines(&second).is_empty());
    }

    #[test]
    fn gauges_have_no_exponent_and_no_trailing_zeros() {
        assert_eq!(gauge_text(3.0), "3");
        assert_eq!(gauge_text(0.5), "0.5");
        assert_eq!(gauge_text(25_000_000.0), "25000000");
        assert_eq!(gauge_text(1.0 / 3.0), "0.333333");
        assert_eq!(gauge_text(0.0), "0");
        assert_eq!(gauge_text(f64::NAN), "0");
    }

    #[test]
    fn datagrams_stay_under_the_limit() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("linkerd.some.name.{i}:1|c"))
            .collect();
        let packed = datagrams(&lines);
        assert!(packed.len() > 1);
        assert!(packed.iter().all(|d| d.len() <= MAX_DATAGRAM));
        let rejoined: Vec<&str> = packed.iter().flat_map(|d| d.split('\n')).collect();
        assert_eq!(rejoined.len(), 100);
    }

    #[test]
    fn bad_keys_are_refused() {
        let config: StatsdConfig = serde_json::from_str(r#"{"sampleRate": 2}"#).unwrap();
        assert!(
            config
                .check("telemetry[0]")
                .unwrap_err()
                .contains("sampleRate")
        );
        let config: StatsdConfig = serde_json::from_str(r#"{"gaugeIntervalMs": 0}"#).unwrap();
        assert!(
            config
                .check("telemetry[0]")
                .unwrap_err()
                .contains("gaugeIntervalMs")
        );
        assert!(serde_json::from_str::<StatsdConfig>(r#"{"bogus": 1}"#).is_err());
    }
}
