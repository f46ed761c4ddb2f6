//! A trace collector for tests: an HTTP server that keeps every JSON body
//! posted to it (Zipkin v2 at `/api/v2/spans`, OTLP at `/v1/traces`),
//! gzipped or not, and reads the spans back out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A collector that keeps every JSON body posted to it.
#[derive(Clone, Default)]
pub struct SpanCollector {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
    /// Whether each post came gzipped.
    gzipped: Arc<Mutex<Vec<bool>>>,
}

impl SpanCollector {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> (SocketAddr, SpanCollector) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = SpanCollector::default();
        let keeping = collector.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keeping = keeping.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let keeping = keeping.clone();
                            async move {
                                let path = request.uri().path().to_string();
                                let gzipped = request
                                    .headers()
                                    .get(http::header::CONTENT_ENCODING)
                                    .is_some_and(|v| v == "gzip");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let body = if gzipped {
                                    gunzip(&body)
                                } else {
                                    body.to_vec()
                                };
                                let json: Value = serde_json::from_slice(&body).unwrap();
                                keeping.gzipped.lock().unwrap().push(gzipped);
                                keeping.posts.lock().unwrap().push((path, json));
                                Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from_static(b"{}"),
                                )))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, collector)
    }

    /// Whether each post so far came gzipped (`Content-Encoding: gzip`).
    pub fn gzipped(&self) -> Vec<bool> {
        self.gzipped.lock().unwrap().clone()
    }

    /// The Zipkin v2 spans posted so far.
    pub fn zipkin_spans(&self) -> Vec<Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path == "/api/v2/spans")
            .flat_map(|(_, body)| body.as_array().unwrap().clone())
            .collect()
    }

    /// The OTLP spans posted so far, each with its resource's
    /// `service.name` as `"service"`.
    pub fn otlp_spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for (path, body) in self.posts.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            for resource in body["resourceSpans"].as_array().unwrap() {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone())
                    .unwrap();
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        let mut span = span.clone();
                        span["service"] = service.clone();
                        spans.push(span);
                    }
                }
            }
        }
        spans
    }

    /// Waits until `count` spans came, and a moment more to see that no
    /// other does.
    pub async fn wait_for(
        &self,
        count: usize,
        spans: impl Fn(&SpanCollector) -> Vec<Value>,
    ) -> Vec<Value> {
        for _ in 0..100 {
            if spans(self).len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let spans = spans(self);
        assert_eq!(spans.len(), count, "spans: {spans:#?}");
        spans
    }
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
        .expect("a gzip body");
    out
}
