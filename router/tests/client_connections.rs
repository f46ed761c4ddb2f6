//! The client side of an `http` router, spoken to on raw sockets: what its
//! own HTTP/1.1 server does with pipelined requests, `Connection: close`,
//! malformed heads, and the requests it hands to hyper's server (bodies,
//! HTTP/1.0) on the same connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{
    Backend, FsDir, STEP, closed, config, raw_backend, read_head, read_response, start_router,
    within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

async fn setup() -> (Backend, FsDir, support::RunningRouter) {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    (backend, fs, router)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let mut burst = Vec::new();
    for i in 0..5 {
        burst.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: web\r\n\r\n").as_bytes());
    }
    burst.extend_from_slice(b"HEAD /p/head HTTP/1.1\r\nHost: web\r\n\r\n");
    stream.write_all(&burst).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..5 {
        let reply = read_response(&mut stream, &mut buf, false).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["uri"], format!("/p/{i}"));
    }
    let head = read_response(&mut stream, &mut buf, true).await;
    assert_eq!(head.status, 200);
    assert!(buf.is_empty(), "nothing follows the answer to HEAD");
    router.stop().await;
}

#[tokio::test]
async fn connection_close_is_honoured_after_the_answer() {
    let (_backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    stream
        .write_all(b"GET /bye HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let reply = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(closed(&mut stream).await);
    router.stop().await;
}

#[tokio::test]
async fn requests_with_bodies_and_old_versions_are_served_on_the_same_connection() {
    let (_backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let mut buf = Vec::new();

    // A bodiless request first, then one with a chunked body: the
    // connection changes servers between the two, keeping the bytes
    // already read.
    stream
        .write_all(
            b"GET /first HTTP/1.1\r\nHost: web\r\n\r\n\
              POST /second HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let first = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(first.json()["uri"], "/first");
    let second = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["uri"], "/second");
    assert_eq!(second.json()["method"], "POST");
    assert_eq!(second.json()["body"], "hello");

    // Later bodiless requests on it still work.
    stream
        .write_all(b"GET /third HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let third = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(third.json()["uri"], "/third");

    // HTTP/1.0 on a new connection.
    let mut old = TcpStream::connect(router.addr()).await.unwrap();
    old.write_all(b"GET /old HTTP/1.0\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    within(STEP, "the HTTP/1.0 answer", old.read_to_end(&mut all))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(text.contains("\"/old\""), "{text}");
    router.stop().await;
}

#[tokio::test]
async fn small_bodies_are_read_whole_however_they_arrive() {
    let (backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let mut buf = Vec::new();

    // The head, then the body in two pieces with a pause, then a
    // pipelined bodiless request in the same write as the body's end.
    stream
        .write_all(b"POST /a HTTP/1.1\r\nHost: web\r\nContent-Length: 11\r\n\r\nhel")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b"lo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(b" worldGET /b HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["method"], "POST");
    assert_eq!(first.json()["body"], "hello world");
    let second = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(second.json()["uri"], "/b");
    assert_eq!(second.json()["body"], "");

    // At the limit, and one byte over it (hyper's server then reads it).
    for (method, length) in [("PUT", 64 * 1024), ("POST", 64 * 1024 + 1)] {
        let body = "x".repeat(length);
        let request = format!(
            "{method} /big HTTP/1.1\r\nHost: web\r\nContent-Length: {length}\r\n\r\n{body}"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let reply = read_response(&mut stream, &mut buf, false).await;
        assert_eq!(reply.status, 200, "{method} {length}");
        assert_eq!(reply.json()["method"], method);
        assert_eq!(reply.json()["body"].as_str().map(str::len), Some(length));
    }
    assert_eq!(backend.requests(), 4);

    // A client that leaves in the middle of a body: nothing is sent on,
    // and the connection is closed.
    let mut leaving = TcpStream::connect(router.addr()).await.unwrap();
    leaving
        .write_all(b"POST /cut HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    leaving.shutdown().await.unwrap();
    assert!(closed(&mut leaving).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(backend.requests(), 4, "a partial body is not forwarded");
    router.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_refused_without_reaching_a_backend() {
    let (backend, _fs, router) = setup().await;
    for bad in [
        &b"GET /a b HTTP/1.1\r\nHost: web\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost web\r\n\r\n",
        b"GET http://[bad/ HTTP/1.1\r\nHost: web\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(router.addr()).await.unwrap();
        stream.write_all(bad).await.unwrap();
        let mut buf = Vec::new();
        let reply = read_response(&mut stream, &mut buf, false).await;
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(bad));
        assert!(closed(&mut stream).await);
    }
    assert_eq!(backend.requests(), 0);
    router.stop().await;
}

#[tokio::test]
async fn stopping_closes_idle_connections_and_finishes_busy_ones() {
    let (backend, _fs, router) = setup().await;
    let mut idle = TcpStream::connect(router.addr()).await.unwrap();
    idle.write_all(b"GET /once HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut idle, &mut buf, false).await.status, 200);

    // A request held by the backend while the router stops.
    let mut busy = TcpStream::connect(router.addr()).await.unwrap();
    busy.write_all(
        format!(
            "GET /slow HTTP/1.1\r\nHost: web\r\n{}: {}\r\n\r\n",
            support::mode::HEADER,
            support::mode::GATE
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    backend.wait_received().await;
    let stopping = tokio::spawn(router.stop());
    assert!(closed(&mut idle).await, "an idle connection is closed");
    tokio::time::sleep(Duration::from_millis(50)).await;
    backend.release();
    let mut buf = Vec::new();
    let reply = read_response(&mut busy, &mut buf, false).await;
    assert_eq!(reply.status, 200, "the request in flight is answered");
    within(STEP, "the router to stop", stopping).await.unwrap();
}

#[tokio::test]
async fn answers_to_head_have_no_body_even_when_they_are_errors() {
    let (_backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    // No such service: the router's own 502, which has a body for a GET.
    stream
        .write_all(
            b"HEAD /x HTTP/1.1\r\nHost: nowhere\r\n\r\n\
              GET /x HTTP/1.1\r\nHost: nowhere\r\n\r\n\
              HEAD /y HTTP/1.1\r\nHost: web\r\n\r\n\
              GET /y HTTP/1.1\r\nHost: web\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head_error = read_response(&mut stream, &mut buf, true).await;
    assert_eq!(head_error.status, 502);
    let get_error = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(get_error.status, 502);
    assert!(!get_error.body.is_empty());
    assert_eq!(
        head_error.header("content-length"),
        get_error.header("content-length"),
        "HEAD is told the length a GET would get"
    );
    let head = read_response(&mut stream, &mut buf, true).await;
    assert_eq!(head.status, 200);
    let get = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(get.json()["uri"], "/y");
    router.stop().await;
}

// Time is paused: once every task waits, the clock jumps to the next timer,
// so the 30 s allowed for a head pass at once.
#[tokio::test(start_paused = true)]
async fn a_head_that_never_completes_is_dropped_after_a_while() {
    let (backend, _fs, router) = setup().await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: we")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut chunk = [0u8; 64];
    let read = stream.read(&mut chunk).await;
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
    assert_eq!(backend.requests(), 0);
    router.stop().await;
}

/// A backend on a raw socket that answers every request on a connection
/// with `body`, framed by Content-Length or chunked (in 100 KB chunks),
/// written in several pieces.
async fn big_body_backend(body: Arc<Vec<u8>>, chunked: bool) -> std::net::SocketAddr {
    let (addr, _) = raw_backend(move |mut stream| {
        let body = body.clone();
        async move {
            let mut pending = Vec::new();
            while read_head(&mut stream, &mut pending).await.is_some() {
                let framing = if chunked {
                    "transfer-encoding: chunked".to_string()
                } else {
                    format!("content-length: {}", body.len())
                };
                let mut answer = format!("HTTP/1.1 200 OK\r\n{framing}\r\n\r\n").into_bytes();
                for piece in body.chunks(100 * 1024) {
                    if chunked {
                        answer.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    }
                    answer.extend_from_slice(piece);
                    if chunked {
                        answer.extend_from_slice(b"\r\n");
                    }
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                    answer.clear();
                }
                if chunked && stream.write_all(b"0\r\n\r\n").await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    addr
}

#[tokio::test]
async fn large_answers_arrive_whole_in_either_framing() {
    let body: Arc<Vec<u8>> = Arc::new((0..3_000_000u32).map(|i| (i % 251) as u8).collect());
    let fs = FsDir::new();
    let sized = big_body_backend(body.clone(), false).await;
    let chunked = big_body_backend(body.clone(), true).await;
    fs.write("sized", &format!("127.0.0.1 {}\n", sized.port()));
    fs.write("chunked", &format!("127.0.0.1 {}\n", chunked.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        for host in ["sized", "chunked"] {
            stream
                .write_all(format!("GET /big HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let reply = read_response(&mut stream, &mut buf, false).await;
            assert_eq!(reply.status, 200, "{host}");
            assert_eq!(reply.body.len(), body.len(), "{host}");
            assert!(reply.body == *body, "{host}: the bytes differ");
        }
    }
    router.stop().await;
}
