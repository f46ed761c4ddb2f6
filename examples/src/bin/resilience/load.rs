//! The open-loop client: requests due at a fixed rate, each on its own
//! task, over keep-alive connections opened as needed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::report::Run;

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Keep-alive connections to one proxy; one request at a time on each,
/// and a new connection whenever none is free.
pub(crate) struct Connections {
    addr: SocketAddr,
    idle: Mutex<Vec<Sender>>,
    pub(crate) opened: AtomicU64,
}

/// What a request got back.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) l5d_err: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A 5xx without `l5d-err`.
    ServerError,
    /// A 5xx with `l5d-err`: the router's own answer.
    L5dErr,
    /// Neither 2xx nor 5xx.
    OtherStatus,
    Timeout,
    ConnectionError,
}

impl Answer {
    pub(crate) fn outcome(&self) -> Outcome {
        if self.status.is_success() {
            Outcome::Success
        } else if self.status.is_server_error() && self.l5d_err.is_some() {
            Outcome::L5dErr
        } else if self.status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::OtherStatus
        }
    }
}

impl Connections {
    pub(crate) fn new(addr: SocketAddr) -> Connections {
        Connections {
            addr,
            idle: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
        }
    }

    /// A free connection: an idle one still open, else a new one. Also
    /// says whether it was reused.
    async fn checkout(&self) -> std::io::Result<(Sender, bool)> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(mut sender) = idle else { break };
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok((sender, false))
    }

    /// One `GET /` with `Host: web`, its body read to the end.
    pub(crate) async fn send(&self) -> Result<Answer, Outcome> {
        let mut reused = true;
        while reused {
            let (mut sender, was_reused) = self
                .checkout()
                .await
                .map_err(|_| Outcome::ConnectionError)?;
            reused = was_reused;
            let request = hyper::Request::get("/")
                .header(hyper::header::HOST, "web")
                .body(Empty::new())
                .map_err(|_| Outcome::ConnectionError)?;
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let l5d_err = response
                        .headers()
                        .get("l5d-err")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|_| Outcome::ConnectionError)?;
                    self.idle
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(sender);
                    return Ok(Answer { status, l5d_err });
                }
                // The proxy closed an idle connection before the request
                // went out; any client sends it again on a new one.
                Err(e) if was_reused && e.is_canceled() => continue,
                Err(_) => return Err(Outcome::ConnectionError),
            }
        }
        Err(Outcome::ConnectionError)
    }
}

/// How one run is driven.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) rate: u32,
    pub(crate) secs: u64,
    pub(crate) timeout: Duration,
}

/// One request's end and its latency from its due time, in µs.
pub(crate) type Sample = (Outcome, u64);

/// Sends `GET /` at `load.rate` for `load.secs`, each request on its own
/// task so that slow answers never delay the schedule.
pub(crate) async fn run_load(
    connections: Arc<Connections>,
    load: Load,
    label: &str,
) -> Result<Run> {
    let total = u64::from(load.rate) * load.secs;
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(usize::try_from(total)?);
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(load.rate));
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        max_lag = max_lag.max(due.elapsed());
        let connections = connections.clone();
        tasks.push(tokio::spawn(async move {
            let outcome =
                match tokio::time::timeout_at(due + load.timeout, connections.send()).await {
                    Err(_) => Outcome::Timeout,
                    Ok(Ok(answer)) => answer.outcome(),
                    Ok(Err(outcome)) => outcome,
                };
            let latency = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
            (outcome, latency)
        }));
        if i > 0 && i % (u64::from(load.rate) * 10) == 0 {
            eprintln!("  {label}: {} s", i / u64::from(load.rate));
        }
    }
    let mut samples: Vec<Sample> = Vec::with_capacity(tasks.len());
    for task in tasks {
        samples.push(task.await.context("a request task failed")?);
    }
    Ok(Run::tally(
        &samples,
        connections.opened.load(Ordering::Relaxed),
        max_lag,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn answers_are_classified() {
        let answer = |status: u16, l5d: bool| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            l5d_err: l5d.then(|| "no endpoints".to_string()),
        };
        assert_eq!(answer(200, false).outcome(), Outcome::Success);
        assert_eq!(answer(500, false).outcome(), Outcome::ServerError);
        assert_eq!(answer(502, true).outcome(), Outcome::L5dErr);
        assert_eq!(answer(400, true).outcome(), Outcome::OtherStatus);
    }
}
