//! Speaking HTTP/1.1 to the router on raw sockets: whole responses read off
//! a connection, and whether and when the router closes it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{STEP, within};

/// One response read off a raw connection.
pub struct Raw {
    /// Its status.
    pub status: u16,
    /// Its fields, in order.
    pub headers: Vec<(String, String)>,
    /// Its body, unchunked.
    pub body: Vec<u8>,
}

impl Raw {
    /// A field's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length or chunked) from `stream`, keeping
/// what follows it in `buf`. `head_only` for the answer to `HEAD`.
pub async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Raw {
    let (status, headers, head_len) = loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(len) = parsed.parse(buf).expect("a response head") {
            let headers = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect::<Vec<_>>();
            break (parsed.code.expect("a status"), headers, len);
        }
        fill(stream, buf).await;
    };
    buf.drain(..head_len);
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only {
        return raw;
    }
    if let Some(length) = raw.header("content-length") {
        let length: usize = length.parse().expect("a length");
        while buf.len() < length {
            fill(stream, buf).await;
        }
        raw.body = buf.drain(..length).collect();
        return raw;
    }
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    loop {
        let line_end = loop {
            if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            fill(stream, buf).await;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&buf[..line_end]).expect("a chunk size"),
            16,
        )
        .expect("a chunk size");
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            fill(stream, buf).await;
        }
        raw.body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return raw;
        }
    }
}

/// Reads more of `stream` into `buf`.
pub async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = within(STEP, "the router's answer", stream.read(&mut chunk))
        .await
        .expect("a read");
    assert!(n > 0, "the router closed the connection mid-answer");
    buf.extend_from_slice(&chunk[..n]);
}

/// Whether the router closes `stream` (after anything left in `buf`).
pub async fn closed(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 64];
    matches!(
        within(STEP, "the router to close", stream.read(&mut chunk)).await,
        Ok(0) | Err(_)
    )
}

/// How long the router takes to close `stream`, reading and dropping what
/// it sends meanwhile; `None` if it keeps it open for `limit`. For tests
/// with paused time, where waiting costs nothing.
pub async fn closes_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        while let Ok(1..) = stream.read(&mut chunk).await {}
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}
