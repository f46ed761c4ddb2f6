//! The two ends of a TCP load, each run in a child process pinned to the
//! load's CPU: an echo server (the backend both proxies forward to) and
//! the client, which either opens a connection per request or streams
//! over long connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long one short connection may take before it counts as an error.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Echoes every byte back on every connection until the peer shuts down
/// its write half, then closes. Runs until killed.
pub(super) fn echo_server(addr: SocketAddr) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or a connection reset before accept:
                // the client counts the failure; keep serving.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            tokio::spawn(echo(stream));
        }
    })
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Which load the client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Mode {
    /// Connect, send `size` bytes, read them back, half-close, read to
    /// the end, close; again, until the time is up.
    PerConnection,
    /// One long connection per loop, writing `size`-byte chunks and
    /// reading the echo at the same time.
    Bulk,
}

/// A client load.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientLoad {
    /// The proxy.
    pub addr: SocketAddr,
    /// What the load does.
    pub mode: Mode,
    /// Connections open at once.
    pub connections: u32,
    /// Request size (per connection) or chunk size (bulk).
    pub size: usize,
    /// How long it runs.
    pub duration: Duration,
}

/// What a client load measured.
#[derive(Debug, Clone, Default)]
pub(super) struct ClientRun {
    /// Connections completed (per connection) or opened (bulk).
    pub connections: u64,
    /// Bytes echoed back to the client.
    pub echoed_bytes: u64,
    /// Seconds the load ran.
    pub secs: f64,
    /// Connections that failed.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Median connection time (connect to close), µs; per connection only.
    pub p50_us: f64,
    /// Its 99th percentile, µs.
    pub p99_us: f64,
}

impl ClientRun {
    /// As one line of JSON, for the harness that started the client.
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "echoed_bytes": self.echoed_bytes,
            "secs": self.secs,
            "errors": self.errors,
            "first_error": self.first_error,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
        })
    }

    /// Reads what [`ClientRun::to_json`] wrote.
    pub(super) fn from_json(value: &serde_json::Value) -> Result<ClientRun> {
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
        Ok(ClientRun {
            connections: u("connections")?,
            echoed_bytes: u("echoed_bytes")?,
            secs: f("secs")?,
            errors: u("errors")?,
            first_error: value["first_error"].as_str().map(str::to_string),
            // NaN (no completed connection) is written as null.
            p50_us: value["p50_us"].as_f64().unwrap_or(f64::NAN),
            p99_us: value["p99_us"].as_f64().unwrap_or(f64::NAN),
        })
    }
}

/// What one loop saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    connections: u64,
    echoed: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn failed(&mut self, e: anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }
}

/// Runs the load on a single-threaded runtime in this thread.
pub(super) fn run_client(load: ClientLoad) -> Result<ClientRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + load.duration;
        let loops: Vec<_> = (0..load.connections)
            .map(|_| match load.mode {
                Mode::PerConnection => tokio::spawn(per_connection_loop(load, deadline)),
                Mode::Bulk => tokio::spawn(bulk_connection(load, deadline)),
            })
            .collect();
        let mut all = Tally::default();
        for handle in loops {
            let tally = handle.await.context("a client loop panicked")?;
            all.latencies_us.extend(tally.latencies_us);
            all.connections += tally.connections;
            all.echoed += tally.echoed;
            all.errors += tally.errors;
            if all.first_error.is_none() {
                all.first_error = tally.first_error;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        all.latencies_us.sort_unstable();
        let percentile = |p: f64| -> f64 {
            match all.latencies_us.len() {
                0 => f64::NAN,
                n => {
                    let at = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
                    f64::from(all.latencies_us[at])
                }
            }
        };
        Ok(ClientRun {
            connections: all.connections,
            echoed_bytes: all.echoed,
            secs,
            errors: all.errors,
            first_error: all.first_error,
            p50_us: percentile(0.50),
            p99_us: percentile(0.99),
        })
    })
}

async fn per_connection_loop(load: ClientLoad, deadline: Instant) -> Tally {
    let request = vec![b'x'; load.size];
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let start = Instant::now();
        let outcome = tokio::time::timeout(CONNECTION_TIMEOUT, one_connection(load.addr, &request))
            .await
            .unwrap_or_else(|_| Err(anyhow!("not done within {CONNECTION_TIMEOUT:?}")));
        match outcome {
            Ok(()) => {
                let us = start.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                tally.connections += 1;
                tally.echoed += request.len() as u64;
            }
            Err(e) => {
                tally.failed(e);
                // Do not spin on a proxy that refuses.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

/// One connection: the request, its echo, a half-close and the proxy's
/// close, so that every connection the load counts is one the proxy has
/// finished with on both sides.
async fn one_connection(addr: SocketAddr, request: &[u8]) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await.context("writing")?;
    let mut reply = vec![0u8; request.len()];
    stream
        .read_exact(&mut reply)
        .await
        .context("reading the echo")?;
    if reply != request {
        bail!("the echo differs from the request");
    }
    stream.shutdown().await.context("half-closing")?;
    let mut rest = [0u8; 64];
    let n = stream.read(&mut rest).await.context("reading the close")?;
    if n != 0 {
        bail!("{n} bytes after the echo");
    }
    Ok(())
}

/// One long connection: a writer sends chunks until the deadline, then
/// half-closes; the reader counts what comes back until the end.
async fn bulk_connection(load: ClientLoad, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    match bulk(load, deadline).await {
        Ok(echoed) => {
            tally.connections = 1;
            tally.echoed = echoed;
        }
        Err(e) => tally.failed(e),
    }
    tally
}

async fn bulk(load: ClientLoad, deadline: Instant) -> Result<u64> {
    let stream = TcpStream::connect(load.addr).await.context("connect")?;
    let (mut read, mut write) = stream.into_split();
    let chunk = vec![b'y'; load.size];
    let writer = async move {
        while Instant::now() < deadline {
            write.write_all(&chunk).await.context("writing")?;
        }
        write.shutdown().await.context("half-closing")?;
        anyhow::Ok(())
    };
    let reader = async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut echoed = 0u64;
        loop {
            let n = read.read(&mut buf).await.context("reading")?;
            if n == 0 {
                return anyhow::Ok(echoed);
            }
            // The tail that drains after the deadline counts too: the
            // proxy's CPU is read over the whole run.
            echoed += n as u64;
        }
    };
    let drain = deadline + CONNECTION_TIMEOUT;
    let (wrote, echoed) =
        tokio::time::timeout_at(drain.into(), async { tokio::join!(writer, reader) })
            .await
            .map_err(|_| anyhow!("not drained within {CONNECTION_TIMEOUT:?} of the end"))?;
    wrote?;
    echoed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_through_json() {
        let run = ClientRun {
            connections: 12,
            echoed_bytes: 768,
            secs: 1.5,
            errors: 1,
            first_error: Some("connect".into()),
            p50_us: 100.0,
            p99_us: 900.0,
        };
        let back = ClientRun::from_json(&run.to_json()).unwrap();
        assert_eq!(back.connections, 12);
        assert_eq!(back.echoed_bytes, 768);
        assert_eq!(back.first_error.as_deref(), Some("connect"));
        assert!((back.p99_us - 900.0).abs() < 1e-9);
    }

    #[test]
    fn both_loads_echo_through_a_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        std::thread::spawn(move || echo_server(addr));
        std::thread::sleep(Duration::from_millis(100));
        for mode in [Mode::PerConnection, Mode::Bulk] {
            let run = run_client(ClientLoad {
                addr,
                mode,
                connections: 4,
                size: 1024,
                duration: Duration::from_millis(200),
            })
            .unwrap();
            assert_eq!(run.errors, 0, "{mode:?}: {:?}", run.first_error);
            assert!(run.connections >= 4, "{mode:?}: {run:?}");
            assert!(run.echoed_bytes >= 4 * 1024, "{mode:?}: {run:?}");
        }
    }
}
