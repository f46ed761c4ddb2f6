//! The client against hyper's HTTP/2 server (on the `h2` crate).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use super::*;

type Body = BoxBody<Bytes, String>;

fn body(data: &'static [u8]) -> Body {
    Full::new(Bytes::from_static(data))
        .map_err(|e: Infallible| e.to_string())
        .boxed()
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|e: Infallible| e.to_string())
        .boxed()
}

/// Answers are dropped before they were done, counted.
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// hyper's HTTP/2 server: echoes bodies and trailers; `/hang` never
/// answers; `/big/N` answers N bytes; `/fields` lists the request's
/// fields, a line each.
async fn server(max_streams: u32, dropped: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let dropped = dropped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let dropped = dropped.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        if path == "/hang" {
                            let _count = CountDrop(dropped);
                            std::future::pending::<()>().await;
                        }
                        if let Some(n) = path.strip_prefix("/big/") {
                            let data = Bytes::from(vec![b'y'; n.parse().unwrap()]);
                            return Ok::<_, Infallible>(Response::new(
                                Full::new(data).map_err(|e| match e {}).boxed(),
                            ));
                        }
                        if path == "/fields" {
                            let mut listed = String::new();
                            for (name, value) in request.headers() {
                                let value = value.to_str().unwrap();
                                listed.push_str(&format!("{name}: {value}\n"));
                            }
                            return Ok(Response::new(
                                Full::new(Bytes::from(listed))
                                    .map_err(|e| match e {})
                                    .boxed(),
                            ));
                        }
                        let authority = request.uri().authority().map(|a| a.to_string());
                        let collected = request.into_body().collect().await.unwrap();
                        let trailers = collected.trailers().cloned();
                        let data = collected.to_bytes();
                        let frames = futures_util::stream::iter(
                            [Ok::<_, Infallible>(Frame::data(data))]
                                .into_iter()
                                .chain(trailers.map(|t| Ok(Frame::trailers(t)))),
                        );
                        let mut response =
                            Response::new(http_body_util::StreamBody::new(frames).boxed());
                        if let Some(authority) = authority {
                            response
                                .headers_mut()
                                .insert("x-authority", authority.parse().unwrap());
                        }
                        Ok(response)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(max_streams)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

const CONFIG: Config = Config {
    stream_window: 65_535,
    connection_window: 65_535,
    max_header_list_size: 16 * 1024,
};

async fn connect(addr: SocketAddr) -> (SendRequest<Body>, Owner<Body>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, owner, connection) = handshake(stream, CONFIG);
    tokio::spawn(connection);
    (sender, owner)
}

fn request(method: &str, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("http://web:8080{path}"))
        .body(body)
        .unwrap()
}

async fn read(response: Response<Inbound>) -> (http::response::Parts, Bytes, Option<HeaderMap>) {
    let (head, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (head, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn added_fields_replace_or_follow_the_heads_own() {
    let addr = server(10, Arc::default()).await;
    let (sender, _owner) = connect(addr).await;
    let mut request = request("GET", "/fields", empty());
    let headers = request.headers_mut();
    headers.append("via", "1.1 first".parse().unwrap());
    headers.append("l5d-dst-service", "/svc/old".parse().unwrap());
    headers.append("l5d-dst-service", "/svc/older".parse().unwrap());
    headers.append("x-kept", "yes".parse().unwrap());
    let mut added = Added::default();
    added.push(
        http::header::VIA,
        "1.1 second".parse().unwrap(),
        super::super::Adding::Appending,
    );
    added.push(
        http::HeaderName::from_static("l5d-dst-service"),
        "/svc/new".parse().unwrap(),
        super::super::Adding::Replacing,
    );
    // Forbidden in HTTP/2 wherever it comes from.
    added.push(
        http::header::CONNECTION,
        "close".parse().unwrap(),
        super::super::Adding::Appending,
    );
    let response = sender.send_with(request, added).await.unwrap();
    let (_, listed, _) = read(response).await;
    let mut lines: Vec<&str> = std::str::from_utf8(&listed).unwrap().lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "l5d-dst-service: /svc/new",
            "via: 1.1 first",
            "via: 1.1 second",
            "x-kept: yes"
        ]
    );
}

#[tokio::test]
async fn many_requests_on_one_connection_within_the_upstreams_stream_limit() {
    let addr = server(3, Arc::default()).await;
    let (sender, _owner) = connect(addr).await;
    let mut calls = Vec::new();
    for i in 0..50 {
        let sender = sender.clone();
        calls.push(tokio::spawn(async move {
            let message: &'static [u8] = if i % 2 == 0 { b"even" } else { b"odd" };
            let response = sender
                .send(request("POST", "/echo", body(message)))
                .await
                .unwrap();
            (message, read(response).await)
        }));
    }
    for call in calls {
        let (message, (head, data, _)) = call.await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["x-authority"], "web:8080");
        assert_eq!(data, message);
    }
    let response = sender.send(request("GET", "/echo", empty())).await.unwrap();
    assert!(read(response).await.1.is_empty());
}

#[tokio::test]
async fn bodies_larger_than_every_window_and_trailers_go_both_ways() {
    let addr = server(100, Arc::default()).await;
    let (sender, _owner) = connect(addr).await;
    let big: Bytes = (0..700_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = futures_util::stream::iter([
        Ok::<_, String>(Frame::data(big.slice(..300_000))),
        Ok(Frame::data(big.slice(300_000..))),
        Ok(Frame::trailers(trailers)),
    ]);
    let streamed = http_body_util::StreamBody::new(frames).boxed();
    let response = sender
        .send(request("POST", "/echo", streamed))
        .await
        .unwrap();
    let (_, data, back) = read(response).await;
    assert_eq!(data, big);
    assert_eq!(back.unwrap()["grpc-status"], "0");
    let response = sender
        .send(request("GET", "/big/2000000", empty()))
        .await
        .unwrap();
    assert_eq!(read(response).await.1.len(), 2_000_000);
}

#[tokio::test]
async fn a_dropped_answer_resets_its_stream() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let addr = server(100, dropped.clone()).await;
    let (sender, _owner) = connect(addr).await;
    let waiting = sender.send(request("GET", "/hang", empty()));
    tokio::time::timeout(Duration::from_millis(100), waiting)
        .await
        .unwrap_err();
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) == 1 {
            // The connection still serves.
            let response = sender
                .send(request("POST", "/echo", body(b"on")))
                .await
                .unwrap();
            assert_eq!(read(response).await.1, "on");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream's stream was not reset");
}

#[tokio::test]
async fn requests_after_the_upstream_closes_come_back_unsent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Accepts, then closes at once.
        let (stream, _) = listener.accept().await.unwrap();
        drop(stream);
    });
    let (sender, _owner) = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    match sender.send(request("POST", "/echo", body(b"x"))).await {
        Err(SendError::Unprocessed {
            going_away: true,
            request: Some(request),
            ..
        }) => assert_eq!(request.uri().path(), "/echo"),
        other => panic!("{other:?}"),
    }
    assert!(sender.is_closed());
}

#[tokio::test]
async fn the_connection_ends_once_its_owner_and_streams_are_gone() {
    let addr = server(100, Arc::default()).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, owner, connection) = handshake::<_, Body>(stream, CONFIG);
    let running = tokio::spawn(connection);
    // Larger than the window: the answer stays open until it is read.
    let response = sender
        .send(request("GET", "/big/2000000", empty()))
        .await
        .unwrap();
    drop(owner);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!running.is_finished());
    assert_eq!(read(response).await.1.len(), 2_000_000);
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
