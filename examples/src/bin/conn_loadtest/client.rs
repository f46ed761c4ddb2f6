//! The `idle10k` load, run in a child pinned to the load's CPU: it opens
//! many keep-alive connections to one proxy, each making one `GET`, keeps
//! most of them idle and sends `GET`s back to back on a few. It also
//! takes the readings that must line up with its phases (the proxy's
//! memory and CPU time, the proxy's established sockets), so that the
//! CPU counted per request is exactly that of the active phase.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use examples::harness::clock_ticks_per_sec;
use examples::load::conns::established_on_port;
use examples::load::sys::{group_cpu_ticks, group_rss_kib};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

/// How long one connect plus request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening all the connections may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);

/// What the child is asked to do.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleLoad {
    /// The proxy.
    pub addr: SocketAddr,
    /// Connections held open in all, active ones included.
    pub connections: u32,
    /// Of those, how many send requests back to back.
    pub active: u32,
    /// Connections being opened at once.
    pub parallel: u32,
    /// How long everything sits open and idle before the active phase.
    pub settle: Duration,
    /// How long the active phase lasts.
    pub duration: Duration,
    /// The proxy's process group, whose memory and CPU time are read.
    pub proxy_group: u32,
}

/// What the child measured, printed as one JSON line.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct IdleRun {
    /// Connections opened with a `200` to their first request.
    pub opened: u64,
    /// Connections that could not be opened or whose first request failed.
    pub open_errors: u64,
    /// The first failure of any kind.
    pub first_error: Option<String>,
    /// Seconds it took to open them all.
    pub open_secs: f64,
    /// The proxy's ESTABLISHED sockets on its port once all were open,
    /// and after the active phase.
    pub established_open: u64,
    pub established_end: u64,
    /// The proxy's RSS (KiB, whole group) after the settle pause, with
    /// everything open and idle, and at the end of the active phase.
    pub rss_open_kib: u64,
    pub rss_active_kib: u64,
    /// The proxy's CPU use during the settle pause, percent of one core.
    pub idle_cpu_pct: f64,
    /// Requests answered `200` in the active phase, and failures there.
    pub requests: u64,
    pub active_errors: u64,
    /// The active phase's length, seconds.
    pub secs: f64,
    /// Latency of the active requests, µs.
    pub p50_us: f64,
    pub p99_us: f64,
    /// The proxy's CPU time (user plus system) over the active phase per
    /// request, µs.
    pub cpu_us_per_request: f64,
    /// Idle connections that the proxy closed (or that broke) before the
    /// end of the active phase.
    pub idle_closed: u64,
    /// Idle connections that answered a second `GET` with `200` at the end.
    pub idle_second_ok: u64,
}

impl IdleRun {
    /// Keeps the first failure.
    fn note(&mut self, error: String) {
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    /// As one JSON object, for the harness that started the child.
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "opened": self.opened,
            "open_errors": self.open_errors,
            "first_error": self.first_error,
            "open_secs": self.open_secs,
            "established_open": self.established_open,
            "established_end": self.established_end,
            "rss_open_kib": self.rss_open_kib,
            "rss_active_kib": self.rss_active_kib,
            "idle_cpu_pct": self.idle_cpu_pct,
            "requests": self.requests,
            "active_errors": self.active_errors,
            "secs": self.secs,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "cpu_us_per_request": self.cpu_us_per_request,
            "idle_closed": self.idle_closed,
            "idle_second_ok": self.idle_second_ok,
        })
    }

    /// Reads what [`IdleRun::to_json`] wrote; a figure that could not be
    /// computed (NaN, written as null) comes back as NaN.
    pub(super) fn from_json(value: &serde_json::Value) -> Result<IdleRun> {
        let u = |key: &str| {
            value[key]
                .as_u64()
                .ok_or_else(|| anyhow!("no `{key}` in {value}"))
        };
        let f = |key: &str| value[key].as_f64().unwrap_or(f64::NAN);
        Ok(IdleRun {
            opened: u("opened")?,
            open_errors: u("open_errors")?,
            first_error: value["first_error"].as_str().map(str::to_string),
            open_secs: f("open_secs"),
            established_open: u("established_open")?,
            established_end: u("established_end")?,
            rss_open_kib: u("rss_open_kib")?,
            rss_active_kib: u("rss_active_kib")?,
            idle_cpu_pct: f("idle_cpu_pct"),
            requests: u("requests")?,
            active_errors: u("active_errors")?,
            secs: f("secs"),
            p50_us: f("p50_us"),
            p99_us: f("p99_us"),
            cpu_us_per_request: f("cpu_us_per_request"),
            idle_closed: u("idle_closed")?,
            idle_second_ok: u("idle_second_ok")?,
        })
    }
}

/// How an idle connection ended.
#[derive(Debug)]
enum IdleEnd {
    NotOpened,
    /// The proxy closed it, or sent something, while it should have sat idle.
    ClosedEarly(String),
    SecondFailed(String),
    SecondOk,
}

/// Runs the load on a single-threaded runtime in this thread.
pub(super) fn run(load: IdleLoad) -> Result<IdleRun> {
    if load.active > load.connections {
        bail!(
            "{} active connections of {} in all",
            load.active,
            load.connections
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(load))
}

async fn run_async(load: IdleLoad) -> Result<IdleRun> {
    let mut out = IdleRun::default();
    let request: Arc<[u8]> = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", load.addr)
        .into_bytes()
        .into();
    let permits = Arc::new(Semaphore::new(load.parallel.max(1) as usize));
    let (end_tx, end_rx) = watch::channel(false);
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();

    // The idle connections first, then the active ones.
    let started = Instant::now();
    let idle = load.connections - load.active;
    let idle_tasks: Vec<_> = (0..idle)
        .map(|_| {
            tokio::spawn(idle_connection(
                load.addr,
                request.clone(),
                permits.clone(),
                opened_tx.clone(),
                end_rx.clone(),
            ))
        })
        .collect();
    drop(opened_tx);
    let all_open = async {
        while let Some(result) = opened_rx.recv().await {
            match result {
                Ok(()) => out.opened += 1,
                Err(e) => {
                    out.open_errors += 1;
                    out.note(e);
                }
            }
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, all_open)
        .await
        .map_err(|_| anyhow!("the idle connections were not open within {OPEN_TIMEOUT:?}"))?;
    let mut active = Vec::new();
    for _ in 0..load.active {
        match open(load.addr, &request).await {
            Ok(stream) => {
                out.opened += 1;
                active.push(stream);
            }
            Err(e) => {
                out.open_errors += 1;
                out.note(format!("{e:#}"));
            }
        }
    }
    out.open_secs = started.elapsed().as_secs_f64();
    out.established_open = established_on_port(load.addr.port())? as u64;

    // Everything open and idle.
    let ticks = clock_ticks_per_sec();
    let before = group_cpu_ticks(load.proxy_group);
    tokio::time::sleep(load.settle).await;
    let spent = group_cpu_ticks(load.proxy_group).saturating_sub(before) as f64 / ticks;
    out.idle_cpu_pct = 100.0 * spent / load.settle.as_secs_f64();
    out.rss_open_kib = group_rss_kib(load.proxy_group);

    // The active phase.
    let before = group_cpu_ticks(load.proxy_group);
    let started = Instant::now();
    let deadline = started + load.duration;
    let loops: Vec<_> = active
        .into_iter()
        .map(|stream| tokio::spawn(active_loop(load.addr, stream, request.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    let mut held = Vec::new();
    for handle in loops {
        let (tally, stream) = handle
            .await
            .context("an active connection's task panicked")?;
        // Kept open until the sockets are counted.
        held.push(stream);
        latencies.extend(tally.latencies_us);
        out.active_errors += tally.errors;
        if let Some(e) = tally.first_error {
            out.note(e);
        }
    }
    out.secs = started.elapsed().as_secs_f64();
    let spent = group_cpu_ticks(load.proxy_group).saturating_sub(before) as f64 / ticks;
    out.requests = latencies.len() as u64;
    out.cpu_us_per_request = if out.requests > 0 {
        spent * 1e6 / out.requests as f64
    } else {
        f64::NAN
    };
    out.rss_active_kib = group_rss_kib(load.proxy_group);
    out.established_end = established_on_port(load.addr.port())? as u64;
    latencies.sort_unstable();
    out.p50_us = percentile(&latencies, 0.50);
    out.p99_us = percentile(&latencies, 0.99);

    // Were the idle ones kept? Each sends a second request now.
    let _ = end_tx.send(true);
    drop(held);
    for handle in idle_tasks {
        match handle.await.context("an idle connection's task panicked")? {
            IdleEnd::NotOpened => {}
            IdleEnd::ClosedEarly(e) => {
                out.idle_closed += 1;
                out.note(e);
            }
            IdleEnd::SecondFailed(e) => out.note(e),
            IdleEnd::SecondOk => out.idle_second_ok += 1,
        }
    }
    Ok(out)
}

/// The `p` quantile of sorted values; NaN when there are none.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let at = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            f64::from(sorted[at])
        }
    }
}

/// Connects and makes one request, which must be answered `200`.
async fn open(addr: SocketAddr, request: &[u8]) -> Result<TcpStream> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let mut buf = Vec::with_capacity(512);
        expect_ok(get(&mut stream, request, &mut buf).await?)?;
        anyhow::Ok(stream)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("first request not answered within {REQUEST_TIMEOUT:?}"))?
}

fn expect_ok(status: u16) -> Result<()> {
    if status != 200 {
        bail!("status {status}");
    }
    Ok(())
}

/// One idle connection: opened with `parallel` others at most, then left
/// alone until `end`; anything the proxy sends meanwhile (a close, an
/// error) ends it early. At the end it makes a second request.
async fn idle_connection(
    addr: SocketAddr,
    request: Arc<[u8]>,
    permits: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<std::result::Result<(), String>>,
    mut end: watch::Receiver<bool>,
) -> IdleEnd {
    let permit = permits.clone().acquire_owned().await;
    let result = open(addr, &request).await;
    drop(permit);
    let mut stream = match result {
        Ok(stream) => {
            let _ = opened.send(Ok(()));
            stream
        }
        Err(e) => {
            let _ = opened.send(Err(format!("opening: {e:#}")));
            return IdleEnd::NotOpened;
        }
    };
    drop(opened);
    let mut probe = [0u8; 1];
    tokio::select! {
        _ = end.wait_for(|&end| end) => {}
        read = stream.read(&mut probe) => {
            return IdleEnd::ClosedEarly(match read {
                Ok(0) => "an idle connection was closed by the proxy".into(),
                Ok(_) => "the proxy sent bytes on an idle connection".into(),
                Err(e) => format!("an idle connection broke: {e}"),
            });
        }
    }
    let _permit = permits.acquire_owned().await;
    let mut buf = Vec::with_capacity(512);
    let second = tokio::time::timeout(REQUEST_TIMEOUT, get(&mut stream, &request, &mut buf)).await;
    match second {
        Ok(Ok(200)) => IdleEnd::SecondOk,
        Ok(Ok(status)) => IdleEnd::SecondFailed(format!("second request: status {status}")),
        Ok(Err(e)) => IdleEnd::SecondFailed(format!("second request: {e:#}")),
        Err(_) => IdleEnd::SecondFailed("second request timed out".into()),
    }
}

/// What one active connection saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Requests back to back on `stream` until `deadline`; a failed one is
/// counted and the connection opened again.
async fn active_loop(
    addr: SocketAddr,
    mut stream: TcpStream,
    request: Arc<[u8]>,
    deadline: Instant,
) -> (Tally, TcpStream) {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(512);
    while Instant::now() < deadline {
        let start = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, get(&mut stream, &request, &mut buf))
            .await
            .unwrap_or_else(|_| Err(anyhow!("not answered within {REQUEST_TIMEOUT:?}")))
            .and_then(expect_ok);
        match outcome {
            Ok(()) => {
                let us = start.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("active connection: {e:#}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                match open(addr, &request).await {
                    Ok(fresh) => stream = fresh,
                    Err(_) => tally.errors += 1,
                }
            }
        }
    }
    (tally, stream)
}

/// Sends `request` and reads one answer framed by `Content-Length` (every
/// proxy here forwards the upstream's `ok` so); returns its status.
async fn get(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<u16> {
    stream.write_all(request).await.context("writing")?;
    buf.clear();
    let mut framing: Option<(u16, usize)> = None;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(512);
        }
        let n = stream.read_buf(buf).await.context("reading")?;
        if n == 0 {
            bail!("the proxy closed the connection");
        }
        if framing.is_none() {
            framing = parse_head(buf)?;
        }
        if let Some((status, total)) = framing {
            match buf.len().cmp(&total) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(status),
                std::cmp::Ordering::Greater => {
                    bail!("{} bytes after the answer", buf.len() - total)
                }
            }
        }
        if buf.len() > 64 * 1024 {
            bail!("an answer of more than 64 KiB");
        }
    }
}

/// Once `buf` holds a whole head: the status and the answer's length
/// (head plus body).
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("a head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("not an HTTP/1.1 answer: {head:?}"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .ok_or_else(|| anyhow!("an answer without Content-Length: {head:?}"))?;
    Ok(Some((status, end + 4 + length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_and_length() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent").unwrap(), None);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nVia: 1.1 x\r\n\r\nok";
        assert_eq!(parse_head(head).unwrap(), Some((200, head.len())));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn runs_round_trip_through_json() {
        let run = IdleRun {
            opened: 10,
            open_errors: 1,
            first_error: Some("connect".into()),
            open_secs: 1.5,
            established_open: 10,
            established_end: 10,
            rss_open_kib: 2048,
            rss_active_kib: 4096,
            idle_cpu_pct: 0.5,
            requests: 100,
            active_errors: 0,
            secs: 2.0,
            p50_us: 100.0,
            p99_us: 900.0,
            cpu_us_per_request: 20.0,
            idle_closed: 0,
            idle_second_ok: 9,
        };
        assert_eq!(IdleRun::from_json(&run.to_json()).unwrap(), run);
    }

    /// A keep-alive server answering `200 ok` to every request head.
    async fn ok_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn holds_connections_and_checks_them_at_the_end() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = runtime.block_on(async {
            let addr = ok_server().await;
            run_async(IdleLoad {
                addr,
                connections: 50,
                active: 5,
                parallel: 8,
                settle: Duration::from_millis(50),
                duration: Duration::from_millis(200),
                proxy_group: std::process::id(),
            })
            .await
            .unwrap()
        });
        assert_eq!(run.opened, 50, "{run:?}");
        assert_eq!(
            run.open_errors + run.active_errors + run.idle_closed,
            0,
            "{run:?}"
        );
        assert_eq!(run.idle_second_ok, 45, "{run:?}");
        // The test's own server answers in this process, on its port.
        assert_eq!(run.established_open, 50, "{run:?}");
        assert_eq!(run.established_end, 50, "{run:?}");
        assert!(run.requests > 5, "{run:?}");
        assert!(run.p99_us >= run.p50_us, "{run:?}");
    }
}
