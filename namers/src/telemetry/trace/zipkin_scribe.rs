//! `io.l5d.zipkin`: Zipkin v1 spans to a scribe collector, as Linkerd's
//! Finagle tracer sent them. Each span is Thrift-encoded (binary
//! protocol), base64'd with a trailing newline, and sent as a
//! `LogEntry{category: "zipkin", message}`; a batch is one scribe
//! `Log(messages)` call over a framed Thrift connection, which is kept
//! open between batches and opened again after any error. The reply's
//! `TRY_LATER` counts as a failure: the batch is not sent again.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::sampling::SampleRate;
use super::span::{Span, SpanKind};
use super::thrift::{self, Reader, Type, Writer};

/// The telemeter's kind.
pub(super) const KIND: &str = "io.l5d.zipkin";

/// The scribe category Zipkin's collector reads.
const CATEGORY: &str = "zipkin";

/// The largest reply read from the collector (a `Log` reply is a few
/// bytes).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Zipkin's `AnnotationType` values this module writes.
const BOOL: i32 = 0;
const STRING: i32 = 6;

/// `{kind: io.l5d.zipkin, host, port, sampleRate}` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_sample_rate")]
    sample_rate: f64,
}

fn default_host() -> String {
    "localhost".into()
}

fn default_port() -> u16 {
    9410
}

/// Finagle's default rate.
fn default_sample_rate() -> f64 {
    0.001
}

/// A checked `io.l5d.zipkin` telemeter.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipkinScribeConfig {
    /// The scribe collector's host (default `localhost`).
    pub host: String,
    /// Its port (default 9410, Zipkin's scribe port).
    pub port: u16,
    /// The share of traces recorded (default 0.001).
    pub sample_rate: SampleRate,
}

impl ZipkinScribeConfig {
    /// Reads and checks the telemeter's keys; `at` names the entry.
    pub(super) fn from_params(params: &Map<String, Value>, at: &str) -> Result<Self, String> {
        let p: Params = serde_path_to_error::deserialize(Value::Object(params.clone()))
            .map_err(|e| format!("{at} ({KIND}): {e}"))?;
        if p.host.trim().is_empty() {
            return Err(format!("{at} ({KIND}): host: must not be empty"));
        }
        if p.port == 0 {
            return Err(format!("{at} ({KIND}): port: must not be 0"));
        }
        let sample_rate = SampleRate::new(p.sample_rate)
            .map_err(|why| format!("{at} ({KIND}): sampleRate: {why}"))?;
        Ok(ZipkinScribeConfig {
            host: p.host,
            port: p.port,
            sample_rate,
        })
    }
}

/// Sends batches to one scribe collector.
pub(super) struct ScribeExporter {
    host: String,
    port: u16,
    connection: Option<TcpStream>,
    /// Set while a call is under way.
    in_call: bool,
    seqid: i32,
}

impl ScribeExporter {
    pub(super) fn new(config: &ZipkinScribeConfig) -> ScribeExporter {
        ScribeExporter {
            host: config.host.clone(),
            port: config.port,
            connection: None,
            in_call: false,
            seqid: 0,
        }
    }

    /// Where spans go, for logs.
    pub(super) fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Sends `spans` in one `Log` call.
    pub(super) async fn export(&mut self, spans: &[std::sync::Arc<Span>]) -> Result<(), String> {
        let messages: Vec<String> = spans.iter().map(|s| log_message(s)).collect();
        self.seqid = self.seqid.wrapping_add(1);
        let call = log_call(&messages, self.seqid);
        if self.in_call {
            // The last call was cut short (a timeout): its reply may
            // still come, so that connection is no use.
            self.connection = None;
        }
        self.in_call = true;
        let outcome = match self.call(&call).await {
            Ok(reply) => check_reply(&reply, self.seqid),
            Err(e) => Err(e),
        };
        self.in_call = false;
        if outcome.is_err() {
            // Whatever went wrong, the next batch starts on a new connection.
            self.connection = None;
        }
        match outcome? {
            ResultCode::Ok => Ok(()),
            ResultCode::TryLater => Err("the collector answered TRY_LATER".into()),
        }
    }

    async fn call(&mut self, frame: &[u8]) -> Result<Vec<u8>, String> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                self.connection.insert(stream)
            }
        };
        connection
            .write_all(frame)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut len = [0u8; 4];
        connection
            .read_exact(&mut len)
            .await
            .map_err(|e| format!("no reply: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_REPLY_BYTES {
            return Err(format!("a reply of {len} bytes is too large"));
        }
        let mut reply = vec![0u8; len];
        connection
            .read_exact(&mut reply)
            .await
            .map_err(|e| format!("the reply ends too soon: {e}"))?;
        Ok(reply)
    }
}

/// Scribe's `ResultCode`.
#[derive(Debug, PartialEq, Eq)]
enum ResultCode {
    Ok,
    TryLater,
}

/// A framed `Log(messages)` call.
fn log_call(messages: &[String], seqid: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.extend_from_slice(&[0; 4]); // the frame's length, set below
    w.message_begin("Log", thrift::CALL, seqid);
    w.field(Type::List, 1);
    w.list_begin(Type::Struct, messages.len());
    for message in messages {
        w.field(Type::String, 1);
        w.string(CATEGORY);
        w.field(Type::String, 2);
        w.string(message);
        w.stop();
    }
    w.stop();
    let len = u32::try_from(w.buf.len() - 4).unwrap_or(u32::MAX);
    w.buf[..4].copy_from_slice(&len.to_be_bytes());
    w.buf
}

/// The result code of a `Log` reply, or why there is none.
fn check_reply(reply: &[u8], seqid: i32) -> Result<ResultCode, String> {
    let mut r = Reader::new(reply);
    let (name, kind, got) = r.message_begin()?;
    if kind == thrift::EXCEPTION {
        // TApplicationException: 1: string message, 2: i32 type.
        let mut message = String::new();
        loop {
            let (field, id) = r.field()?;
            match (field, id) {
                (0, _) => break,
                (f, 1) if f == Type::String as u8 => {
                    message = String::from_utf8_lossy(r.binary()?).into_owned();
                }
                (f, _) => r.skip(f)?,
            }
        }
        return Err(format!("the collector answered an exception: {message}"));
    }
    if kind != thrift::REPLY || name != "Log" || got != seqid {
        return Err(format!(
            "an unexpected reply (message {name:?}, type {kind}, seqid {got}, expected Log reply {seqid})"
        ));
    }
    let mut code = None;
    loop {
        let (field, id) = r.field()?;
        match (field, id) {
            (0, _) => break,
            (f, 0) if f == Type::I32 as u8 => code = Some(r.i32()?),
            (f, _) => r.skip(f)?,
        }
    }
    match code {
        Some(0) => Ok(ResultCode::Ok),
        Some(1) => Ok(ResultCode::TryLater),
        Some(other) => Err(format!("the collector answered result code {other}")),
        None => Err("the collector's reply has no result".into()),
    }
}

/// A span as scribe carries it: Thrift, base64, a newline (Finagle's
/// form).
pub(super) fn log_message(span: &Span) -> String {
    let mut w = Writer::default();
    write_span(&mut w, &V1Span::of(span));
    let mut message = base64::engine::general_purpose::STANDARD.encode(&w.buf);
    message.push('\n');
    message
}

/// zipkinCore.thrift's `Endpoint`.
#[derive(Clone, Copy, Debug)]
struct V1Endpoint<'a> {
    ipv4: i32,
    ipv6: Option<[u8; 16]>,
    port: u16,
    service_name: &'a str,
}

impl<'a> V1Endpoint<'a> {
    fn of(addr: Option<SocketAddr>, service_name: &'a str) -> V1Endpoint<'a> {
        let (ipv4, ipv6) = match addr.map(|a| a.ip().to_canonical()) {
            None => (0, None),
            Some(IpAddr::V4(ip)) => (u32::from(ip) as i32, None),
            Some(IpAddr::V6(ip)) => (0, Some(ip.octets())),
        };
        V1Endpoint {
            ipv4,
            ipv6,
            port: addr.map_or(0, |a| a.port()),
            service_name,
        }
    }
}

/// zipkinCore.thrift's `Annotation`.
struct V1Annotation<'a> {
    timestamp: i64,
    value: &'a str,
    host: Option<V1Endpoint<'a>>,
}

/// zipkinCore.thrift's `BinaryAnnotation`.
struct V1BinaryAnnotation<'a> {
    key: &'a str,
    value: &'a [u8],
    annotation_type: i32,
    host: Option<V1Endpoint<'a>>,
}

/// zipkinCore.thrift's `Span`.
struct V1Span<'a> {
    trace_id: i64,
    trace_id_high: i64,
    name: &'a str,
    id: i64,
    parent_id: Option<i64>,
    annotations: Vec<V1Annotation<'a>>,
    binary_annotations: Vec<V1BinaryAnnotation<'a>>,
    debug: bool,
    timestamp: Option<i64>,
    duration: Option<i64>,
}

impl<'a> V1Span<'a> {
    /// Timed annotations on the local endpoint; tags as string binary
    /// annotations; the peer as `ca` (a server span's caller) or `sa` (a
    /// client span's server), as Finagle recorded them.
    fn of(span: &'a Span) -> V1Span<'a> {
        let local = V1Endpoint::of(span.local_endpoint, &span.local_service);
        let annotations = span
            .timed_annotations()
            .into_iter()
            .map(|a| V1Annotation {
                timestamp: a.micros,
                value: a.value,
                host: Some(local),
            })
            .collect();
        let mut binary_annotations: Vec<V1BinaryAnnotation<'a>> = span
            .tags
            .iter()
            .map(|(key, value)| V1BinaryAnnotation {
                key,
                value: value.as_bytes(),
                annotation_type: STRING,
                host: Some(local),
            })
            .collect();
        if let Some(remote) = span.remote_endpoint {
            let key = match span.kind {
                SpanKind::Server => "ca",
                SpanKind::Client => "sa",
            };
            binary_annotations.push(V1BinaryAnnotation {
                key,
                value: &[1],
                annotation_type: BOOL,
                host: Some(V1Endpoint::of(Some(remote), "")),
            });
        }
        let trace = span.context.trace_id;
        V1Span {
            trace_id: trace.low() as i64,
            trace_id_high: trace.high() as i64,
            name: &span.name,
            id: span.context.span_id.get() as i64,
            parent_id: span.context.parent_id.map(|p| p.get() as i64),
            annotations,
            binary_annotations,
            debug: span.context.debug,
            timestamp: Some(span.start_micros()),
            duration: Some(span.duration_micros()),
        }
    }
}

/// Fields in zipkinCore.thrift's order; optional fields only when set and
/// empty lists of binary annotations left out, as Finagle wrote them.
fn write_span(w: &mut Writer, span: &V1Span<'_>) {
    w.field(Type::I64, 1);
    w.i64(span.trace_id);
    w.field(Type::String, 3);
    w.string(span.name);
    w.field(Type::I64, 4);
    w.i64(span.id);
    if let Some(parent) = span.parent_id {
        w.field(Type::I64, 5);
        w.i64(parent);
    }
    w.field(Type::List, 6);
    w.list_begin(Type::Struct, span.annotations.len());
    for a in &span.annotations {
        w.field(Type::I64, 1);
        w.i64(a.timestamp);
        w.field(Type::String, 2);
        w.string(a.value);
        if let Some(host) = &a.host {
            w.field(Type::Struct, 3);
            write_endpoint(w, host);
        }
        w.stop();
    }
    if !span.binary_annotations.is_empty() {
        w.field(Type::List, 8);
        w.list_begin(Type::Struct, span.binary_annotations.len());
        for b in &span.binary_annotations {
            w.field(Type::String, 1);
            w.string(b.key);
            w.field(Type::String, 2);
            w.binary(b.value);
            w.field(Type::I32, 3);
            w.i32(b.annotation_type);
            if let Some(host) = &b.host {
                w.field(Type::Struct, 4);
                write_endpoint(w, host);
            }
            w.stop();
        }
    }
    if span.debug {
        w.field(Type::Bool, 9);
        w.bool(true);
    }
    if let Some(timestamp) = span.timestamp {
        w.field(Type::I64, 10);
        w.i64(timestamp);
    }
    if let Some(duration) = span.duration {
        w.field(Type::I64, 11);
        w.i64(duration);
    }
    if span.trace_id_high != 0 {
        w.field(Type::I64, 12);
        w.i64(span.trace_id_high);
    }
    w.stop();
}

fn write_endpoint(w: &mut Writer, endpoint: &V1Endpoint<'_>) {
    w.field(Type::I32, 1);
    w.i32(endpoint.ipv4);
    w.field(Type::I16, 2);
    // Thrift has no unsigned types: ports above 32767 go negative.
    w.i16(endpoint.port as i16);
    w.field(Type::String, 3);
    w.string(endpoint.service_name);
    if let Some(ipv6) = &endpoint.ipv6 {
        w.field(Type::String, 4);
        w.binary(ipv6);
    }
    w.stop();
}

#[cfg(test)]
mod tests;
