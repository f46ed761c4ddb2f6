//! The gRPC load: `connections` h2c connections, each with `streams`
//! calls in flight at all times, for a fixed time. Every answer is
//! checked (HTTP 200, `grpc-status: 0` in the trailers or in a
//! trailers-only head, the expected number of messages); anything else
//! counts as a failed call, and the first failure is kept with the
//! router's `l5d-err` when there is one.
//!
//! It runs in a child process pinned to the load's CPU, on one thread,
//! and prints its figures as one JSON line.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::grpc::{self, Answer, Deframer, Method, WINDOW};

/// How long one call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A gRPC load.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: String,
    pub(crate) method: Method,
    /// Messages each call's answer must carry.
    pub(crate) messages: u64,
    pub(crate) connections: u32,
    pub(crate) streams: u32,
    pub(crate) duration: Duration,
}

/// What one stream loop (or the whole load) counted.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    messages: u64,
    failed: u64,
    first_failure: Option<String>,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(why);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.calls += other.calls;
        self.messages += other.messages;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

/// What a load measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    /// Calls answered as expected.
    pub(crate) calls: u64,
    /// Messages in those answers.
    pub(crate) messages: u64,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) secs: f64,
    /// Call time, first byte sent to trailers read, µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl Run {
    /// As one JSON line, for the harness that started the client.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "calls": self.calls,
            "messages": self.messages,
            "failed": self.failed,
            "first_failure": self.first_failure,
            "secs": self.secs,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
        })
    }

    /// Reads what [`Run::to_json`] wrote.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Run> {
        let f = |key: &str| {
            value[key]
                .as_f64()
                .ok_or_else(|| anyhow!("no `{key}` in {value}"))
        };
        let u = |key: &str| {
            value[key]
                .as_u64()
                .ok_or_else(|| anyhow!("no `{key}` in {value}"))
        };
        Ok(Run {
            calls: u("calls")?,
            messages: u("messages")?,
            failed: u("failed")?,
            first_failure: value["first_failure"].as_str().map(str::to_string),
            secs: f("secs")?,
            p50_us: f("p50_us")?,
            p99_us: f("p99_us")?,
        })
    }
}

/// Runs `load` to its end.
pub(crate) fn run(load: Load) -> Result<Run> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let start = Instant::now();
        let deadline = start + load.duration;
        let request_body = grpc::message(7, b'h');
        let mut loops = JoinSet::new();
        for _ in 0..load.connections {
            loops.spawn(connection_loop(
                load.clone(),
                request_body.clone(),
                deadline,
            ));
        }
        let mut total = Tally::default();
        while let Some(tally) = loops.join_next().await {
            total.merge(tally?);
        }
        let secs = start.elapsed().as_secs_f64();
        total.latencies_us.sort_unstable();
        Ok(Run {
            calls: total.calls,
            messages: total.messages,
            failed: total.failed,
            first_failure: total.first_failure,
            secs,
            p50_us: percentile(&total.latencies_us, 0.50),
            p99_us: percentile(&total.latencies_us, 0.99),
        })
    })
}

/// The value below which `q` of the sorted `values` fall; NaN when empty.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

/// One connection, reopened if it fails, with `streams` call loops on it.
async fn connection_loop(load: Load, body: Bytes, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let client = match connect(load.addr).await {
            Ok(client) => client,
            Err(e) => {
                tally.fail(format!("connecting: {e:#}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut streams = JoinSet::new();
        for _ in 0..load.streams {
            streams.spawn(call_loop(
                client.clone(),
                load.clone(),
                body.clone(),
                deadline,
            ));
        }
        while let Some(done) = streams.join_next().await {
            match done {
                Ok(t) => tally.merge(t),
                Err(e) => tally.fail(format!("call loop: {e}")),
            }
        }
    }
    tally
}

async fn connect(addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Calls again and again until the deadline or until the connection can
/// take no more calls.
async fn call_loop(
    client: h2::client::SendRequest<Bytes>,
    load: Load,
    body: Bytes,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut client = client;
    while Instant::now() < deadline {
        client = match client.ready().await {
            Ok(c) => c,
            Err(e) => {
                tally.fail(format!("connection: {e}"));
                return tally;
            }
        };
        let start = Instant::now();
        let result = tokio::time::timeout(CALL_TIMEOUT, call(&mut client, &load, body.clone()))
            .await
            .unwrap_or_else(|_| Err(anyhow!("no answer within {CALL_TIMEOUT:?}")));
        match result.and_then(|answer| {
            grpc::check_grpc(&answer, load.messages)?;
            Ok(answer)
        }) {
            Ok(answer) => {
                tally.calls += 1;
                tally.messages += answer.messages;
                let us = start.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => tally.fail(format!("{e:#}")),
        }
    }
    tally
}

async fn call(
    client: &mut h2::client::SendRequest<Bytes>,
    load: &Load,
    body: Bytes,
) -> Result<Answer> {
    let request = grpc::grpc_request(&load.authority, load.method)?;
    let (response, mut send) = client.send_request(request, false)?;
    send.send_data(body, true)?;
    let response = response.await?;
    let status = response.status().as_u16();
    let head = response.headers().clone();
    let mut recv = response.into_body();
    let mut deframer = Deframer::default();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        deframer.push(&chunk);
    }
    let trailers = recv.trailers().await?;
    if !deframer.is_clean() {
        return Err(anyhow!(
            "the body ended inside a message (after {} whole ones)",
            deframer.messages
        ));
    }
    Ok(Answer {
        status,
        grpc_status: grpc::grpc_status(&head, trailers.as_ref()),
        messages: deframer.messages,
        body: Bytes::new(),
        l5d_err: head
            .get("l5d-err")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
