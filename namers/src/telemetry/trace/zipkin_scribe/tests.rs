//! The scribe exporter against a fake collector, with a Thrift decoder of
//! its own so that a mistake in the encoder cannot hide in the tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::telemetry::trace::span::tests::client_span;
use crate::telemetry::trace::{ExportOptions, Tracer, TracerConfig};

/// A decoded Thrift value.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    Bin(Vec<u8>),
    Struct(BTreeMap<i16, V>),
    List(Vec<V>),
}

impl V {
    fn field(&self, id: i16) -> &V {
        match self {
            V::Struct(fields) => fields
                .get(&id)
                .unwrap_or_else(|| panic!("no field {id} in {self:?}")),
            other => panic!("not a struct: {other:?}"),
        }
    }
    fn has(&self, id: i16) -> bool {
        matches!(self, V::Struct(fields) if fields.contains_key(&id))
    }
    fn i64(&self) -> i64 {
        match self {
            V::I64(v) => *v,
            other => panic!("not an i64: {other:?}"),
        }
    }
    fn text(&self) -> String {
        match self {
            V::Bin(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("not a string: {other:?}"),
        }
    }
    fn list(&self) -> &[V] {
        match self {
            V::List(items) => items,
            other => panic!("not a list: {other:?}"),
        }
    }
}

/// Reads the binary protocol, panicking on anything unexpected.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1)[0]
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.bytes(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.bytes(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.bytes(8).try_into().unwrap())
    }
    fn value(&mut self, kind: u8) -> V {
        match kind {
            2 => V::Bool(self.u8() != 0),
            6 => V::I16(self.i16()),
            8 => V::I32(self.i32()),
            10 => V::I64(self.i64()),
            11 => {
                let len = self.i32() as usize;
                V::Bin(self.bytes(len))
            }
            12 => {
                let mut fields = BTreeMap::new();
                loop {
                    let kind = self.u8();
                    if kind == 0 {
                        break V::Struct(fields);
                    }
                    let id = self.i16();
                    fields.insert(id, self.value(kind));
                }
            }
            15 => {
                let element = self.u8();
                let len = self.i32();
                V::List((0..len).map(|_| self.value(element)).collect())
            }
            other => panic!("type {other} not expected"),
        }
    }
}

/// A whole struct from `bytes`, which must hold nothing else.
fn decode_struct(bytes: &[u8]) -> V {
    let mut cursor = Cursor(bytes);
    let value = cursor.value(12);
    assert!(cursor.0.is_empty(), "{} bytes left over", cursor.0.len());
    value
}

/// A `Log` call: (seqid, [(category, message)]).
fn decode_log_call(payload: &[u8]) -> (i32, Vec<(String, String)>) {
    let mut cursor = Cursor(payload);
    assert_eq!(cursor.i32() as u32, 0x8001_0001, "a strict CALL");
    let name_len = cursor.i32() as usize;
    assert_eq!(cursor.bytes(name_len), b"Log");
    let seqid = cursor.i32();
    let args = cursor.value(12);
    assert!(cursor.0.is_empty());
    let entries = args
        .field(1)
        .list()
        .iter()
        .map(|entry| (entry.field(1).text(), entry.field(2).text()))
        .collect();
    (seqid, entries)
}

/// The span in a scribe message: base64 with a newline after it.
fn decode_message(message: &str) -> V {
    let encoded = message.strip_suffix('\n').expect("a trailing newline");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    decode_struct(&bytes)
}

/// A fake scribe collector: it reads framed `Log` calls, keeps them, and
/// answers each with one result code (0 OK, 1 TRY_LATER). It is not
/// Zipkin: nothing is checked or stored beyond the calls.
struct Collector {
    calls: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    fn serve(listener: TcpListener, code: i32) -> Collector {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let kept = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if stream.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                        stream.read_exact(&mut payload).await.unwrap();
                        let (seqid, _) = decode_log_call(&payload);
                        kept.lock().unwrap().push(payload);
                        let mut reply = Vec::new();
                        reply.extend_from_slice(&0x8001_0002_u32.to_be_bytes());
                        reply.extend_from_slice(&3_i32.to_be_bytes());
                        reply.extend_from_slice(b"Log");
                        reply.extend_from_slice(&seqid.to_be_bytes());
                        reply.extend_from_slice(&[8, 0, 0]); // i32 field 0
                        reply.extend_from_slice(&code.to_be_bytes());
                        reply.push(0);
                        let mut frame = (reply.len() as u32).to_be_bytes().to_vec();
                        frame.extend_from_slice(&reply);
                        stream.write_all(&frame).await.unwrap();
                    }
                });
            }
        });
        Collector { calls, task }
    }

    fn calls(&self) -> Vec<(i32, Vec<(String, String)>)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| decode_log_call(c))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn scribe_to(port: u16) -> TracerConfig {
    TracerConfig::ZipkinScribe(ZipkinScribeConfig {
        host: "127.0.0.1".into(),
        port,
        sample_rate: SampleRate::ALWAYS,
    })
}

#[test]
fn spans_are_encoded_byte_for_byte_as_finagle_did() {
    // Finagle's ScribeRawZipkinTracerTest "formulate scribe log message
    // correctly": trace, span and parent 123, debug, name "foo", service
    // "hickupquail", five annotations on two endpoints, no binary
    // annotations, timestamp 123 s and no duration.
    let expected = "CgABAAAAAAAAAHsLAAMAAAADZm9vCgAEAAAAAAAAAHsKAAUAAAAAAAAAe\
        w8ABgwAAAAFCgABAAAAAAdU1MALAAIAAAACY3MMAAMIAAEAAAkTBgACABcLAAMAAAA\
        LaGlja3VwcXVhaWwAAAoAAQAAAAAHgpuACwACAAAAAmNyDAADCAABAAAJEwYAAgAXC\
        wADAAAAC2hpY2t1cHF1YWlsAAAKAAEAAAAAB1TUwAsAAgAAAAJzcwwAAwgAAQAAAU0\
        GAAIAFgsAAwAAAAtoaWNrdXBxdWFpbAAACgABAAAAAAdkFwALAAIAAAACc3IMAAMIA\
        AEAAAFNBgACABYLAAMAAAALaGlja3VwcXVhaWwAAAoAAQAAAAAHVNTACwACAAAABmx\
        sYW1hcwwAAwgAAQAACRMGAAIAFwsAAwAAAAtoaWNrdXBxdWFpbAAAAgAJAQoACgAAAA\
        AHVNTAAA==";
    let local = V1Endpoint {
        ipv4: 2323,
        ipv6: None,
        port: 23,
        service_name: "hickupquail",
    };
    let remote = V1Endpoint {
        ipv4: 333,
        port: 22,
        ..local
    };
    let at = |seconds: i64, value, host| V1Annotation {
        timestamp: seconds * 1_000_000,
        value,
        host: Some(host),
    };
    let span = V1Span {
        trace_id: 123,
        trace_id_high: 0,
        name: "foo",
        id: 123,
        parent_id: Some(123),
        annotations: vec![
            at(123, "cs", local),
            at(126, "cr", local),
            at(123, "ss", remote),
            at(124, "sr", remote),
            at(123, "llamas", local),
        ],
        binary_annotations: Vec::new(),
        debug: true,
        timestamp: Some(123_000_000),
        duration: None,
    };
    let mut w = Writer::default();
    write_span(&mut w, &span);
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(&w.buf),
        expected
    );
}

#[test]
fn a_span_carries_every_field() {
    let message = log_message(&client_span());
    let span = decode_message(&message);
    assert_eq!(span.field(1).i64(), 0xabcd, "trace_id");
    assert_eq!(span.field(12).i64(), 0x0102, "trace_id_high");
    assert_eq!(span.field(3).text(), "GET /svc/web");
    assert_eq!(span.field(4).i64(), 0x22);
    assert_eq!(span.field(5).i64(), 0x11);
    assert_eq!(span.field(9), &V::Bool(true));
    assert_eq!(span.field(10).i64(), 1_609_459_200_000_001);
    assert_eq!(span.field(11).i64(), 1500);

    let local = |v: &V| {
        let host = v.field(3);
        assert_eq!(host.field(1), &V::I32(0x0a00_0001), "10.0.0.1");
        assert_eq!(host.field(2), &V::I16(4140));
        assert_eq!(host.field(3).text(), "#/io.l5d.fs/web");
        assert!(!host.has(4));
    };
    let annotations = span.field(6).list();
    let values: Vec<(i64, String)> = annotations
        .iter()
        .map(|a| (a.field(1).i64(), a.field(2).text()))
        .collect();
    assert_eq!(
        values,
        [
            (1_609_459_200_000_001, "cs".to_string()),
            (1_609_459_200_001_501, "cr".to_string()),
            (1_609_459_200_000_701, "l5d.retryable".to_string())
        ]
    );
    annotations.iter().for_each(local);

    let binary = span.field(8).list();
    let tags: Vec<(String, String, &V)> = binary
        .iter()
        .map(|b| (b.field(1).text(), b.field(2).text(), b.field(3)))
        .collect();
    assert_eq!(
        tags[..3],
        [
            ("http.method".into(), "GET".into(), &V::I32(6)),
            ("http.status_code".into(), "503".into(), &V::I32(6)),
            ("error".into(), "upstream said 503".into(), &V::I32(6)),
        ]
    );
    for b in &binary[..3] {
        assert_eq!(b.field(4).field(2), &V::I16(4140));
    }
    // The peer of a client span is its server: `sa`, a BOOL true.
    let sa = &binary[3];
    assert_eq!(sa.field(1).text(), "sa");
    assert_eq!((sa.field(2), sa.field(3)), (&V::Bin(vec![1]), &V::I32(0)));
    let host = sa.field(4);
    assert_eq!(host.field(1), &V::I32(0));
    assert_eq!(host.field(2), &V::I16(8080));
    let ipv6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert_eq!(host.field(4), &V::Bin(ipv6.octets().to_vec()));
}

#[test]
fn a_root_span_has_no_parent_and_a_64_bit_trace_no_high_half() {
    let mut span = client_span();
    span.context.parent_id = None;
    span.context.debug = false;
    span.context.trace_id = crate::telemetry::trace::TraceId::new(7).unwrap();
    span.kind = SpanKind::Server;
    span.local_endpoint = Some("127.0.0.1:65535".parse().unwrap());
    let decoded = decode_message(&log_message(&span));
    for absent in [5, 9, 12] {
        assert!(!decoded.has(absent), "field {absent} in {decoded:?}");
    }
    let annotations = decoded.field(6).list();
    assert_eq!(annotations[0].field(2).text(), "sr");
    assert_eq!(annotations[1].field(2).text(), "ss");
    // Thrift's i16 carries ports above 32767 as negative numbers.
    assert_eq!(annotations[0].field(3).field(2), &V::I16(-1));
    let last = decoded.field(8).list().last().unwrap().clone();
    assert_eq!(
        last.field(1).text(),
        "ca",
        "a server span's peer is its client"
    );
}

#[tokio::test]
async fn spans_reach_the_collector_in_one_log_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::serve(listener, 0);
    let tracer = Tracer::with_options(&[scribe_to(port)], ExportOptions::default());
    let mut second = client_span();
    second.context.span_id = crate::telemetry::trace::SpanId::new(0x33).unwrap();
    tracer.record(client_span());
    tracer.record(second);
    tracer.flush().await;
    let calls = collector.calls();
    assert_eq!(calls.len(), 1);
    let (_, entries) = &calls[0];
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|(category, _)| category == "zipkin"));
    let ids: Vec<i64> = entries
        .iter()
        .map(|(_, m)| decode_message(m).field(4).i64())
        .collect();
    assert_eq!(ids, [0x22, 0x33]);
    // The connection is kept for the next batch.
    tracer.record(client_span());
    tracer.flush().await;
    let calls = collector.calls();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].0, calls[1].0, "each call has its own seqid");
    let counts = tracer.figures_of(KIND);
    assert_eq!((counts.sent, counts.batches_sent, counts.failed), (3, 2, 0));
}

#[tokio::test]
async fn try_later_is_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::serve(listener, 1);
    let tracer = Tracer::with_options(&[scribe_to(port)], ExportOptions::default());
    tracer.record(client_span());
    tracer.flush().await;
    assert_eq!(collector.calls().len(), 1);
    let counts = tracer.figures_of(KIND);
    assert_eq!(
        (counts.sent, counts.failed, counts.batches_failed),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn spans_flow_again_once_a_down_collector_comes_up() {
    // A port nothing listens on, until the collector comes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let tracer = Tracer::with_options(&[scribe_to(addr.port())], ExportOptions::default());
    tracer.record(client_span());
    tracer.record(client_span());
    tracer.flush().await;
    let counts = tracer.figures_of(KIND);
    assert_eq!(
        (counts.sent, counts.failed, counts.batches_failed),
        (0, 2, 1)
    );

    let collector = Collector::serve(TcpListener::bind(addr).await.unwrap(), 0);
    let mut after = client_span();
    after.name = "after".into();
    tracer.record(after);
    tracer.flush().await;
    let calls = collector.calls();
    assert_eq!(calls.len(), 1, "the failed batch is not sent again");
    let names: Vec<String> = calls[0]
        .1
        .iter()
        .map(|(_, m)| decode_message(m).field(3).text())
        .collect();
    assert_eq!(names, ["after"]);
    let counts = tracer.figures_of(KIND);
    assert_eq!((counts.sent, counts.failed), (1, 2));
}

#[test]
fn replies_other_than_ok_or_try_later_are_errors() {
    let reply = |kind: u32, name: &[u8], seqid: i32, body: &[u8]| {
        let mut r = (0x8001_0000 | kind).to_be_bytes().to_vec();
        r.extend_from_slice(&(name.len() as i32).to_be_bytes());
        r.extend_from_slice(name);
        r.extend_from_slice(&seqid.to_be_bytes());
        r.extend_from_slice(body);
        r
    };
    let ok = [8, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        check_reply(&reply(2, b"Log", 4, &ok), 4),
        Ok(ResultCode::Ok)
    );
    let e = check_reply(&reply(2, b"Log", 5, &ok), 4).unwrap_err();
    assert!(e.contains("seqid 5"), "{e}");
    let e = check_reply(&reply(2, b"Log", 4, &[8, 0, 0, 0, 0, 0, 7, 0]), 4).unwrap_err();
    assert!(e.contains("result code 7"), "{e}");
    let e = check_reply(&reply(2, b"Log", 4, &[0]), 4).unwrap_err();
    assert!(e.contains("no result"), "{e}");
    // A TApplicationException with its message.
    let mut exception = vec![11, 0, 1, 0, 0, 0, 4];
    exception.extend_from_slice(b"oops");
    exception.extend_from_slice(&[8, 0, 2, 0, 0, 0, 1, 0]);
    let e = check_reply(&reply(3, b"Log", 4, &exception), 4).unwrap_err();
    assert!(e.ends_with("exception: oops"), "{e}");
    assert!(check_reply(&[0, 0], 1).is_err());
}
