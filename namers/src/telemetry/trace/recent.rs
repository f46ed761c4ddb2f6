//! `io.l5d.recentRequests`: the last few sampled requests, kept in memory
//! for the admin server to show (`/requests`, `/requests.json`).
//!
//! As in Linkerd, a row is built from a request's server span (when, from
//! where, which router and server, the logical name) and the client span
//! of its last attempt (the bound id and the endpoint it went to). Unlike
//! Linkerd, a request that never reached an endpoint is kept too, with
//! what is known of it: those are often the ones worth looking at.
//!
//! Like the tracelog, this telemeter records what a trace's decision says
//! and samples at its own rate only traces nobody decided on; it never
//! decides for a trace that goes downstream.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::context::{SpanId, TraceId};
use super::sampling::SampleRate;
use super::span::{Span, SpanKind, tags};

/// The telemeter's kind.
pub(super) const KIND: &str = "io.l5d.recentRequests";

/// Linkerd's default number of requests kept.
const DEFAULT_CAPACITY: usize = 10;

/// The most requests one table may keep: they live in the router's memory.
const MAX_CAPACITY: usize = 10_000;

/// Requests whose attempts wait for their server span. Attempts end
/// before their request does, so only the few in flight wait here; beyond
/// this many the oldest are forgotten (their request's row then has no
/// destination).
const MAX_WAITING_ATTEMPTS: usize = 4096;

/// `{kind: io.l5d.recentRequests, sampleRate, capacity}` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    sample_rate: Option<f64>,
    capacity: Option<i64>,
}

/// A checked `io.l5d.recentRequests` telemeter.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentRequestsConfig {
    /// The share of undecided requests kept (required, as in Linkerd).
    pub sample_rate: SampleRate,
    /// How many requests are kept (default 10).
    pub capacity: usize,
}

impl RecentRequestsConfig {
    /// Reads and checks the telemeter's keys; `at` names the entry.
    pub(super) fn from_params(params: &Map<String, Value>, at: &str) -> Result<Self, String> {
        let p: Params = serde_path_to_error::deserialize(Value::Object(params.clone()))
            .map_err(|e| format!("{at} ({KIND}): {e}"))?;
        let rate = p.sample_rate.ok_or_else(|| {
            format!("{at} ({KIND}): sampleRate: required, a number from 0.0 to 1.0")
        })?;
        let sample_rate =
            SampleRate::new(rate).map_err(|why| format!("{at} ({KIND}): sampleRate: {why}"))?;
        let capacity = match p.capacity {
            None => DEFAULT_CAPACITY,
            Some(n) if (1..=MAX_CAPACITY as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(format!(
                    "{at} ({KIND}): capacity: {n} is not from 1 to {MAX_CAPACITY}"
                ));
            }
        };
        Ok(RecentRequestsConfig {
            sample_rate,
            capacity,
        })
    }
}

/// One request as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentRequest {
    /// When it arrived.
    pub timestamp: SystemTime,
    /// How long the router took to answer it.
    pub duration: Duration,
    /// Its trace.
    pub trace_id: TraceId,
    /// The caller.
    pub source: Option<SocketAddr>,
    /// The router's server it came in on.
    pub server: Option<SocketAddr>,
    /// The router's label.
    pub router: String,
    /// The method and path.
    pub request: String,
    /// The name the router identified (`/svc/web`).
    pub logical_name: Option<String>,
    /// The bound id its last attempt went to (`/#/io.l5d.fs/web`).
    pub concrete_name: Option<String>,
    /// The endpoint of its last attempt.
    pub destination: Option<SocketAddr>,
    /// How many attempts were sent.
    pub attempts: u32,
    /// The answer's status code.
    pub status: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl RecentRequest {
    /// The row as JSON, with Linkerd's column names in camelCase.
    pub fn to_json(&self) -> Value {
        let millis = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        };
        json!({
            "timestamp": millis(self.timestamp),
            "durationMs": self.duration.as_secs_f64() * 1000.0,
            "traceId": self.trace_id.to_string(),
            "source": address_text(self.source),
            "server": self.server.map(|a| a.to_string()),
            "router": self.router,
            "request": self.request,
            "logicalName": self.logical_name,
            "concreteName": self.concrete_name,
            "destination": self.destination.map(|a| a.to_string()),
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
        })
    }
}

/// An address as shown: the IP alone when the port is not known (0).
pub fn address_text(address: Option<SocketAddr>) -> Option<String> {
    address.map(|a| {
        if a.port() == 0 {
            a.ip().to_string()
        } else {
            a.to_string()
        }
    })
}

/// The table the admin server reads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RecentRequests {
    table: Arc<Mutex<Table>>,
}

#[derive(Debug)]
struct Table {
    capacity: usize,
    /// Newest last.
    rows: VecDeque<RecentRequest>,
    /// The attempts of requests whose server span has not come yet, by
    /// the server span (trace id and span id).
    attempts: HashMap<(TraceId, SpanId), Attempts>,
    /// The keys of `attempts` in the order they came, to forget the
    /// oldest; a key whose request came is skipped when it is reached.
    arrived: VecDeque<(TraceId, SpanId)>,
}

/// A request's attempts so far: how many, and where the last one went.
#[derive(Debug)]
struct Attempts {
    count: u32,
    bound_id: String,
    endpoint: Option<SocketAddr>,
}

impl RecentRequests {
    /// An empty table keeping at most `capacity` requests.
    pub fn new(capacity: usize) -> RecentRequests {
        RecentRequests {
            table: Arc::new(Mutex::new(Table {
                capacity: capacity.max(1),
                rows: VecDeque::new(),
                attempts: HashMap::new(),
                arrived: VecDeque::new(),
            })),
        }
    }

    /// The requests kept, newest first.
    pub fn requests(&self) -> Vec<RecentRequest> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.rows.iter().rev().cloned().collect()
    }

    /// Takes a finished span into the table.
    pub(super) fn add(&self, span: &Span) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match span.kind {
            SpanKind::Client => table.attempt(span),
            SpanKind::Server => table.request(span),
        }
    }
}

impl Table {
    fn attempt(&mut self, span: &Span) {
        let Some(parent) = span.context.parent_id else {
            return;
        };
        let key = (span.context.trace_id, parent);
        let bound_id = tag(span, tags::DST_ID).unwrap_or_else(|| span.local_service.clone());
        if let Some(seen) = self.attempts.get_mut(&key) {
            seen.count += 1;
            seen.bound_id = bound_id;
            seen.endpoint = span.remote_endpoint;
            return;
        }
        while self.arrived.len() >= MAX_WAITING_ATTEMPTS {
            if let Some(oldest) = self.arrived.pop_front() {
                self.attempts.remove(&oldest);
            }
        }
        self.arrived.push_back(key);
        self.attempts.insert(
            key,
            Attempts {
                count: 1,
                bound_id,
                endpoint: span.remote_endpoint,
            },
        );
    }

    fn request(&mut self, span: &Span) {
        let context = &span.context;
        // The request's attempts, taken off the waiting list; the last
        // one says where it went.
        let (attempts, concrete_name, destination) =
            match self.attempts.remove(&(context.trace_id, context.span_id)) {
                Some(seen) => (seen.count, Some(seen.bound_id), seen.endpoint),
                None => (0, None, None),
            };
        if self.rows.len() >= self.capacity {
            self.rows.pop_front();
        }
        self.rows.push_back(RecentRequest {
            timestamp: span.start,
            duration: span.duration,
            trace_id: context.trace_id,
            source: span.remote_endpoint,
            server: span.local_endpoint,
            router: span.local_service.clone(),
            request: span.name.clone(),
            logical_name: tag(span, tags::NAMER_PATH),
            concrete_name,
            destination,
            attempts,
            status: tag(span, tags::HTTP_STATUS_CODE),
            error: tag(span, tags::ERROR),
        });
    }
}

fn tag(span: &Span, key: &str) -> Option<String> {
    span.tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// The table as an HTML page, Linkerd's columns and a few more.
pub fn html(rows: &[RecentRequest]) -> String {
    let mut body = String::new();
    for row in rows {
        let millis = row
            .timestamp
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let cells = [
            millis.to_string(),
            address_text(row.source).unwrap_or_default(),
            address_text(row.server).unwrap_or_default(),
            row.router.clone(),
            row.request.clone(),
            row.logical_name.clone().unwrap_or_default(),
            row.concrete_name.clone().unwrap_or_default(),
            address_text(row.destination).unwrap_or_default(),
            row.attempts.to_string(),
            row.status.clone().unwrap_or_default(),
            format!("{:.3}", row.duration.as_secs_f64() * 1000.0),
            row.error.clone().unwrap_or_default(),
        ];
        body.push_str("<tr>");
        for cell in cells {
            body.push_str("<td>");
            body.push_str(&escape_html(&cell));
            body.push_str("</td>");
        }
        body.push_str("</tr>\n");
    }
    let header: String = [
        "Timestamp (ms)",
        "Source",
        "Server",
        "Router",
        "Request",
        "Logical Name",
        "Concrete Name",
        "Destination",
        "Attempts",
        "Status",
        "Latency (ms)",
        "Error",
    ]
    .iter()
    .map(|h| format!("<th>{h}</th>"))
    .collect();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Recent Requests</title></head>\n\
         <body><h1>Recent Requests</h1>\n<table border=\"1\">\n<thead><tr>{header}</tr></thead>\n\
         <tbody>\n{body}</tbody>\n</table>\n</body></html>\n"
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Puts spans into the table.
pub(super) struct RecentRequestsExporter {
    table: RecentRequests,
}

impl RecentRequestsExporter {
    pub(super) fn new(config: &RecentRequestsConfig) -> RecentRequestsExporter {
        RecentRequestsExporter {
            table: RecentRequests::new(config.capacity),
        }
    }

    /// The table it fills.
    pub(super) fn table(&self) -> RecentRequests {
        self.table.clone()
    }

    pub(super) fn target(&self) -> String {
        "the recent requests table".into()
    }

    pub(super) fn export(&mut self, spans: &[Arc<Span>]) {
        for span in spans {
            self.table.add(span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::context::TraceContext;

    fn parse(json: &str) -> Result<RecentRequestsConfig, String> {
        let params: Map<String, Value> = serde_json::from_str(json).unwrap();
        RecentRequestsConfig::from_params(&params, "telemetry[0]")
    }

    #[test]
    fn keys_as_linkerd_reads_them() {
        assert_eq!(
            parse(r#"{"sampleRate": 1.0}"#),
            Ok(RecentRequestsConfig {
                sample_rate: SampleRate::ALWAYS,
                capacity: 10
            })
        );
        assert_eq!(
            parse(r#"{"sampleRate": 0.5, "capacity": 3}"#)
                .unwrap()
                .capacity,
            3
        );
        let e = parse("{}").unwrap_err();
        assert!(
            e.starts_with("telemetry[0] (io.l5d.recentRequests): sampleRate: required"),
            "{e}"
        );
        assert!(parse(r#"{"sampleRate": 1.5}"#).is_err());
        let e = parse(r#"{"sampleRate": 1, "capacity": 0}"#).unwrap_err();
        assert!(e.contains("capacity: 0 is not from 1 to 10000"), "{e}");
        let e = parse(r#"{"sampleRate": 1, "capcity": 5}"#).unwrap_err();
        assert!(e.contains("capcity"), "{e}");
    }

    fn server_span(rng: &mut impl rand::Rng, name: &str) -> Span {
        let mut span = Span::new(
            SpanKind::Server,
            format!("GET /{name}"),
            TraceContext::root(rng),
            "web",
        );
        span.local_endpoint = Some("127.0.0.1:4140".parse().unwrap());
        span.remote_endpoint = Some("10.0.0.9:0".parse().unwrap());
        span.tag(tags::NAMER_PATH, format!("/svc/{name}"));
        span
    }

    fn client_span(rng: &mut impl rand::Rng, server: &Span, endpoint: &str) -> Span {
        let mut span = Span::new(
            SpanKind::Client,
            server.name.clone(),
            server.context.child(rng),
            "/#/io.l5d.fs/web",
        );
        span.tag(tags::DST_ID, "/#/io.l5d.fs/web");
        span.remote_endpoint = Some(endpoint.parse().unwrap());
        span
    }

    #[test]
    fn a_row_joins_the_request_and_its_last_attempt() {
        let mut rng = rand::rng();
        let table = RecentRequests::new(10);
        let mut server = server_span(&mut rng, "a");
        let first = client_span(&mut rng, &server, "10.1.0.1:80");
        let second = client_span(&mut rng, &server, "10.1.0.2:80");
        // Another request's attempt stays waiting.
        let other = server_span(&mut rng, "b");
        let others = client_span(&mut rng, &other, "10.1.0.3:80");
        for span in [&first, &others, &second] {
            table.add(span);
        }
        server.tag(tags::HTTP_STATUS_CODE, "200");
        table.add(&server);
        let rows = table.requests();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.router, "web");
        assert_eq!(row.request, "GET /a");
        assert_eq!(row.logical_name.as_deref(), Some("/svc/a"));
        assert_eq!(row.concrete_name.as_deref(), Some("/#/io.l5d.fs/web"));
        assert_eq!(row.destination, Some("10.1.0.2:80".parse().unwrap()));
        assert_eq!(row.attempts, 2);
        assert_eq!(row.status.as_deref(), Some("200"));
        assert_eq!(row.to_json()["source"], "10.0.0.9");
        assert_eq!(row.to_json()["server"], "127.0.0.1:4140");
        assert_eq!(table.table.lock().unwrap().attempts.len(), 1);
    }

    #[test]
    fn keeps_the_newest_up_to_capacity_and_requests_without_attempts() {
        let mut rng = rand::rng();
        let table = RecentRequests::new(3);
        for i in 0..5 {
            let mut span = server_span(&mut rng, &format!("s{i}"));
            span.tag(tags::ERROR, "no route");
            table.add(&span);
        }
        let rows = table.requests();
        let names: Vec<&str> = rows.iter().map(|r| r.request.as_str()).collect();
        assert_eq!(names, ["GET /s4", "GET /s3", "GET /s2"]);
        assert_eq!(rows[0].attempts, 0);
        assert_eq!(rows[0].destination, None);
        assert_eq!(rows[0].error.as_deref(), Some("no route"));
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let mut rng = rand::rng();
        let table = RecentRequests::new(2);
        let mut span = server_span(&mut rng, "a");
        span.tag(tags::ERROR, "<script>&");
        table.add(&span);
        let page = html(&table.requests());
        assert!(page.contains("<td>&lt;script&gt;&amp;</td>"), "{page}");
        assert!(page.contains("<td>/svc/a</td>"), "{page}");
        assert!(page.contains("<th>Logical Name</th>"), "{page}");
    }

    #[test]
    fn waiting_attempts_are_bounded() {
        let mut rng = rand::rng();
        let table = RecentRequests::new(1);
        let server = server_span(&mut rng, "a");
        for _ in 0..MAX_WAITING_ATTEMPTS + 10 {
            let other = server_span(&mut rng, "x");
            table.add(&client_span(&mut rng, &other, "10.1.0.1:80"));
        }
        table.add(&client_span(&mut rng, &server, "10.1.0.1:80"));
        assert_eq!(
            table.table.lock().unwrap().attempts.len(),
            MAX_WAITING_ATTEMPTS
        );
        table.add(&server);
        assert_eq!(table.requests()[0].attempts, 1);
    }
}
