//! The handshake load: connections opened back to back, each making a
//! TLS handshake, sending one `GET` with `Connection: close`, reading
//! the answer and closing, as `wrk -H 'Connection: close'` does, but
//! with the choice of full or resumed handshakes, and a count of which
//! the server made.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::tls::{Negotiated, SERVER_NAME, TicketStore, load_client, negotiated};

/// The request of every connection.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// How long one connection may take before it counts as an error.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A handshake load.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLoad {
    /// The proxy.
    pub addr: SocketAddr,
    /// Connections open at once.
    pub connections: u32,
    /// How long new connections are started.
    pub duration: Duration,
    /// Offer to resume a session the server gave earlier.
    pub resume: bool,
}

/// What a handshake load measured.
#[derive(Debug, Clone, Default)]
pub struct HandshakeRun {
    /// Connections (handshake, request, answer) completed per second.
    pub rate: f64,
    /// Connections completed.
    pub completed: u64,
    /// Of those, how many handshakes the server resumed.
    pub resumed: u64,
    /// Connections that offered a session ticket (when resuming).
    pub offered: u64,
    /// Connections that failed (refused, reset, bad answer, timed out).
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Median time from connect to the end of the answer, µs.
    pub p50_us: f64,
    /// Its 99th percentile, µs.
    pub p99_us: f64,
    /// What the first handshake negotiated: protocol, cipher, group.
    pub negotiated: Option<String>,
}

impl HandshakeRun {
    /// As one line of JSON, for the harness that started the load.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rate": self.rate,
            "completed": self.completed,
            "resumed": self.resumed,
            "offered": self.offered,
            "errors": self.errors,
            "first_error": self.first_error,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "negotiated": self.negotiated,
        })
    }

    /// Reads what [`HandshakeRun::to_json`] wrote.
    pub fn from_json(value: &serde_json::Value) -> Result<HandshakeRun> {
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
        Ok(HandshakeRun {
            rate: f("rate")?,
            completed: u("completed")?,
            resumed: u("resumed")?,
            offered: u("offered")?,
            errors: u("errors")?,
            first_error: value["first_error"].as_str().map(str::to_string),
            p50_us: f("p50_us")?,
            p99_us: f("p99_us")?,
            negotiated: value["negotiated"].as_str().map(str::to_string),
        })
    }
}

/// What one connection loop saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    resumed: u64,
    errors: u64,
    first_error: Option<String>,
    negotiated: Option<Negotiated>,
}

/// Runs the load on a single-threaded runtime in this thread.
pub fn run(load: HandshakeLoad) -> Result<HandshakeRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(load))
}

async fn run_async(load: HandshakeLoad) -> Result<HandshakeRun> {
    let tickets = load.resume.then(TicketStore::new);
    let connector = TlsConnector::from(load_client(tickets.clone())?);
    let name = ServerName::try_from(SERVER_NAME)?;
    let started = Instant::now();
    let deadline = started + load.duration;
    let loops: Vec<_> = (0..load.connections)
        .map(|_| {
            tokio::spawn(connection_loop(
                connector.clone(),
                load.addr,
                name.clone(),
                deadline,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for handle in loops {
        let tally = handle.await.context("a connection loop panicked")?;
        all.latencies_us.extend(tally.latencies_us);
        all.resumed += tally.resumed;
        all.errors += tally.errors;
        if all.first_error.is_none() {
            all.first_error = tally.first_error;
        }
        if all.negotiated.is_none() {
            all.negotiated = tally.negotiated;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let completed = all.latencies_us.len() as u64;
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
    Ok(HandshakeRun {
        rate: completed as f64 / elapsed,
        completed,
        resumed: all.resumed,
        offered: tickets.map_or(0, |t| t.counts().0),
        errors: all.errors,
        first_error: all.first_error,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        negotiated: all.negotiated.map(|n| n.to_string()),
    })
}

async fn connection_loop(
    connector: TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let start = Instant::now();
        let outcome = tokio::time::timeout(
            CONNECTION_TIMEOUT,
            one_connection(&connector, addr, name.clone()),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow!("no answer within {CONNECTION_TIMEOUT:?}")));
        match outcome {
            Ok(negotiated) => {
                let us = start.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                if negotiated.kind == Some(rustls::HandshakeKind::Resumed) {
                    tally.resumed += 1;
                }
                tally.negotiated.get_or_insert(negotiated);
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                // Do not spin on a proxy that refuses connections.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tally
}

/// Connects, shakes hands, asks, reads the whole answer and closes.
async fn one_connection(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
) -> Result<Negotiated> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await.context("handshake")?;
    tls.write_all(REQUEST)
        .await
        .context("writing the request")?;
    let mut answer = Vec::with_capacity(512);
    loop {
        let n = tls
            .read_buf(&mut answer)
            .await
            .context("reading the answer")?;
        match answer_complete(&answer, n == 0)? {
            Some(200) => break,
            Some(status) => bail!("status {status}"),
            None if n == 0 => bail!("closed before the end of the answer"),
            None if answer.len() > 64 * 1024 => bail!("answer over 64 KiB"),
            None => {}
        }
    }
    let negotiated = negotiated(tls.get_ref().1);
    // close_notify and FIN, as `wrk` does before it reconnects; the server
    // may have closed already.
    let _ = tls.shutdown().await;
    Ok(negotiated)
}

/// The status once `answer` holds a whole HTTP/1.1 answer (by its
/// `Content-Length`, its last chunk, or the end of the stream).
fn answer_complete(answer: &[u8], eof: bool) -> Result<Option<u16>> {
    let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&answer[..head_end]).context("answer head not UTF-8")?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer: {head:?}"))?;
    let body = &answer[head_end + 4..];
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_ascii_lowercase())
        })
    };
    let complete = if let Some(length) = header("content-length") {
        let length: usize = length.parse().context("Content-Length")?;
        body.len() >= length
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body.ends_with(b"0\r\n\r\n")
    } else {
        eof
    };
    Ok(complete.then_some(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_end_by_length_chunks_or_close() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(answer_complete(head, false).unwrap(), None);
        assert_eq!(
            answer_complete(&[&head[..], b"o"].concat(), false).unwrap(),
            None
        );
        assert_eq!(
            answer_complete(&[&head[..], b"ok"].concat(), false).unwrap(),
            Some(200)
        );
        let chunked = b"HTTP/1.1 503 No\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n";
        assert_eq!(answer_complete(chunked, false).unwrap(), None);
        assert_eq!(
            answer_complete(&[&chunked[..], b"0\r\n\r\n"].concat(), false).unwrap(),
            Some(503)
        );
        let bare = b"HTTP/1.1 200 OK\r\n\r\nok";
        assert_eq!(answer_complete(bare, false).unwrap(), None);
        assert_eq!(answer_complete(bare, true).unwrap(), Some(200));
        assert_eq!(answer_complete(b"HTTP/1.1 200", true).unwrap(), None);
        assert!(answer_complete(b"nonsense\r\n\r\n", false).is_err());
    }

    #[test]
    fn runs_round_trip_through_json() {
        let run = HandshakeRun {
            rate: 1234.5,
            completed: 12345,
            resumed: 12000,
            offered: 12001,
            errors: 1,
            first_error: Some("connect".into()),
            p50_us: 900.0,
            p99_us: 4000.0,
            negotiated: Some("TLSv1.3, TLS_AES_256_GCM_SHA384, X25519".into()),
        };
        let back = HandshakeRun::from_json(&run.to_json()).unwrap();
        assert_eq!(back.completed, 12345);
        assert_eq!(back.resumed, 12000);
        assert_eq!(back.offered, 12001);
        assert_eq!(back.first_error.as_deref(), Some("connect"));
        assert!((back.p99_us - 4000.0).abs() < 1e-9);
        assert_eq!(back.negotiated, run.negotiated);
    }
}
