//! Loopback ports and the `GET /` that tells a proxy is up.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::procs::{Proc, log_tail};

/// Loopback only: the harness never sends traffic anywhere else.
pub const HOST: [u8; 4] = [127, 0, 0, 1];

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((HOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((HOST, port))
}

/// The request every probe sends.
pub fn get_request(addr: SocketAddr) -> String {
    get_request_for(addr, "/")
}

/// `GET path` with `Connection: close`.
pub fn get_request_for(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
}

/// The status of an HTTP/1 answer.
pub fn parse_status(answer: &str) -> std::io::Result<u16> {
    answer
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| answer.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))
}

/// One `GET /` with `Connection: close`: the status and the whole answer.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    http_get_path(addr, "/", timeout, 64 * 1024)
}

/// One `GET path` with `Connection: close`: the status and the answer,
/// at most `limit` bytes of it.
pub fn http_get_path(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    limit: u64,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    stream.write_all(get_request_for(addr, path).as_bytes())?;
    let mut answer = Vec::new();
    stream.take(limit).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    Ok((parse_status(&answer)?, answer))
}

/// Polls `addr` with plain HTTP about every millisecond until it answers
/// `200 … ok`; returns the time from `since`.
pub fn wait_for_ok(
    proc: &mut Proc,
    addr: SocketAddr,
    since: Instant,
    limit: Duration,
) -> Result<Duration> {
    wait_for_ok_with(proc, addr, since, limit, http_get)
}

/// As [`wait_for_ok`], asking with `get` (plain HTTP or HTTPS).
pub fn wait_for_ok_with(
    proc: &mut Proc,
    addr: SocketAddr,
    since: Instant,
    limit: Duration,
    get: impl Fn(SocketAddr, Duration) -> std::io::Result<(u16, String)>,
) -> Result<Duration> {
    let deadline = since + limit;
    let mut last: String;
    loop {
        match get(addr, Duration::from_secs(2)) {
            Ok((200, answer)) if answer.ends_with("ok") || answer.contains("\r\n\r\nok") => {
                return Ok(since.elapsed());
            }
            Ok((status, answer)) => {
                last = format!("status {status}: {}", answer.lines().last().unwrap_or(""));
            }
            Err(e) => last = e.to_string(),
        }
        proc.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "{} at {addr} did not answer 200 ok within {limit:?} (last: {last}); end of {}:\n{}",
                proc.name(),
                proc.log().display(),
                log_tail(proc.log())
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
