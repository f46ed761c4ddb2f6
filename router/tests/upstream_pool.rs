//! The router's upstream HTTP/1.1 connections: reused when a response was
//! read to the end, closed when it was abandoned, and replaced without a
//! failed request when the backend closes an idle one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use support::{
    Backend, FsDir, STEP, client, config, empty, get, mode, raw_backend, read_head, request,
    start_router, within,
};
use tokio::io::AsyncWriteExt;

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

#[tokio::test]
async fn sequential_requests_of_every_kind_reuse_one_upstream_connection() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    for i in 0..30 {
        let reply = get(&client, router.addr(), "web", &format!("/get/{i}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        // A HEAD answer has no body to read: its connection is reusable
        // as soon as the head is in.
        let head = request(router.addr(), "web", "/head")
            .method("HEAD")
            .body(empty())
            .unwrap();
        let reply = support::send(&client, head).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.is_empty());
    }
    assert_eq!(backend.requests(), 60);
    assert_eq!(
        backend.connections(),
        1,
        "60 sequential requests should share one upstream connection"
    );
    router.stop().await;
}

#[tokio::test]
async fn an_abandoned_response_closes_its_connection_and_traffic_goes_on() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    // The backend sends the first line of a stream and holds the rest; the
    // client reads the head and walks away.
    let streaming = request(router.addr(), "web", "/stream")
        .header(mode::HEADER, mode::STREAM)
        .body(empty())
        .unwrap();
    let response = within(STEP, "the streamed head", client.request(streaming))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = within(STEP, "the first chunk", body.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    drop(body);
    backend.release();

    // That connection is not handed to the next request half-read.
    for i in 0..5 {
        let reply = get(&client, router.addr(), "web", &format!("/after/{i}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.seen_uri(), format!("/after/{i}"));
    }
    assert_eq!(backend.connections(), 2);
    router.stop().await;
}

/// A backend that answers one request per connection with keep-alive
/// headers, then closes the connection anyway, as servers with a short
/// idle timeout do.
async fn one_request_per_connection_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    raw_backend(|mut stream| async move {
        if read_head(&mut stream, &mut Vec::new()).await.is_none() {
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Dropping the stream closes the connection.
    })
    .await
}

#[tokio::test]
async fn a_connection_the_backend_closed_is_replaced_without_a_failed_request() {
    let (backend, connections) = one_request_per_connection_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    for i in 0..10 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
        assert_eq!(reply.text(), "ok");
        // Let the backend close the idle connection before the next one.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 10);
    router.stop().await;
}

/// A backend that writes fixed bytes per request path, to check how the
/// router reads each way of framing a response. It closes the connection
/// after answers that end that way.
async fn wire_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    raw_backend(|mut stream| async move {
        let mut pending = Vec::new();
        while let Some(head) = read_head(&mut stream, &mut pending).await {
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let (answer, close): (&[u8], bool) = match path.as_str() {
                "/length" => (b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nlength", false),
                "/chunked" => (
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                      3;x=y\r\nchu\r\n4\r\nnked\r\n0\r\nx-sum: 7\r\n\r\n",
                    false,
                ),
                "/continue" => (
                    b"HTTP/1.1 100 Continue\r\n\r\n\
                      HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
                    false,
                ),
                "/no-content" => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
                "/until-close" => (b"HTTP/1.0 200 OK\r\n\r\nread to the end", true),
                "/truncated" => (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", true),
                "/garbage" => (b"HTTP/1.1 twohundred\r\n\r\n", true),
                _ => (
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                    false,
                ),
            };
            if stream.write_all(answer).await.is_err() || close {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn every_response_framing_is_read_and_the_connection_reused_when_it_can_be() {
    let (backend, connections) = wire_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    // Keep-alive framings, twice round: all on one upstream connection.
    for _ in 0..2 {
        for (path, status, body) in [
            ("/length", StatusCode::OK, "length"),
            ("/chunked", StatusCode::OK, "chunked"),
            ("/continue", StatusCode::OK, "final"),
            ("/no-content", StatusCode::NO_CONTENT, ""),
        ] {
            let reply = get(&client, router.addr(), "web", path, &[]).await;
            assert_eq!(reply.status, status, "{path}: {}", reply.text());
            assert_eq!(reply.text(), body, "{path}");
        }
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // A body that lasts until the server closes: read whole, not reused.
    let reply = get(&client, router.addr(), "web", "/until-close", &[]).await;
    assert_eq!(reply.text(), "read to the end");
    let reply = get(&client, router.addr(), "web", "/length", &[]).await;
    assert_eq!(reply.text(), "length");
    assert_eq!(connections.load(Ordering::SeqCst), 2);

    // A malformed head is a 502 naming the problem.
    let reply = get(&client, router.addr(), "web", "/garbage", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    // (l5d-err is form-encoded, as Linkerd sends it.)
    let err = reply.headers["l5d-err"].to_str().unwrap().to_string();
    assert!(err.contains("invalid+response+head"), "{err}");

    // A body cut short reaches the client as an aborted response (the
    // router's side may fail before or after the head is flushed), never
    // as a complete short one.
    let truncated = request(router.addr(), "web", "/truncated")
        .body(empty())
        .unwrap();
    let outcome = within(STEP, "the truncated response", async {
        let response = client.request(truncated).await.map_err(|e| e.to_string())?;
        response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| e.to_string())
    })
    .await;
    assert!(outcome.is_err(), "a cut body looked complete: {outcome:?}");

    // And traffic goes on.
    let reply = get(&client, router.addr(), "web", "/length", &[]).await;
    assert_eq!(reply.text(), "length");
    router.stop().await;
}

#[tokio::test]
async fn many_dead_idle_connections_cost_no_failed_request() {
    let (backend, connections) = one_request_per_connection_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    // Ten requests at once leave ten idle connections, which the backend
    // then closes: what a backend restart does to a pool.
    let burst: Vec<_> = (0..10)
        .map(|_| get(&client, router.addr(), "web", "/", &[]))
        .collect();
    for reply in futures_util::future::join_all(burst).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let opened = connections.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;

    for i in 0..5 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
    }
    // Each of those went out on a new connection in the end.
    assert_eq!(connections.load(Ordering::SeqCst), opened + 5);
    router.stop().await;
}

/// A backend that answers the first request on a connection, then, after a
/// while idle, writes a `408` nobody asked for and keeps the connection
/// open; later requests on the connection get nothing.
async fn unsolicited_408_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    raw_backend(|mut stream| async move {
        if read_head(&mut stream, &mut Vec::new()).await.is_none() {
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stream
            .write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

#[tokio::test]
async fn bytes_sent_on_an_idle_connection_are_not_taken_for_an_answer() {
    let (backend, connections) = unsolicited_408_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Idle long enough for the 408 to arrive and for the pool to check
    // the connection before using it again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    router.stop().await;
}

/// `hostConnectionPool`: at most `maxSize` connections to an endpoint;
/// requests beyond them wait for one to be free, up to `maxWaiters`, and
/// the rest are refused at once with 503.
#[tokio::test]
async fn host_connection_pool_bounds_connections_and_waiters() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let yaml = format!(
        "{ROUTER}  client:\n    hostConnectionPool:\n      maxSize: 2\n      maxWaiters: 1\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let client = client();
    let gated = |i: usize| {
        let client = client.clone();
        let addr = router.addr();
        tokio::spawn(async move {
            get(
                &client,
                addr,
                "web",
                &format!("/gated/{i}"),
                &[(mode::HEADER, mode::GATE)],
            )
            .await
        })
    };
    let first = [gated(0), gated(1)];
    backend.wait_received().await;
    backend.wait_received().await;
    // Both connections are busy: the next request waits ...
    let waiting = gated(2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(backend.requests(), 2);
    // ... and one more is one too many.
    let refused = get(&client, router.addr(), "web", "/refused", &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert!(
        refused.l5d_err().contains("maxWaiters"),
        "{}",
        refused.l5d_err()
    );

    for _ in 0..3 {
        backend.release();
    }
    for call in first.into_iter().chain([waiting]) {
        let reply = within(STEP, "a gated answer", call).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(backend.requests(), 3);
    assert_eq!(backend.connections(), 2);
}

#[tokio::test]
async fn whole_bodies_go_out_intact_and_share_one_connection() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let mut sent = 0;
    for (i, size) in [1usize, 1_000, 16_384, 60_000].into_iter().enumerate() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let body: String = (0..size)
                .map(|n| char::from(b'a' + ((n + i) % 26) as u8))
                .collect();
            let post = request(router.addr(), "web", &format!("/up/{i}"))
                .method(method)
                .body(support::full(body.clone()))
                .unwrap();
            let reply = support::send(&client, post).await;
            sent += 1;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let echo = reply.echo();
            assert_eq!(echo["method"], method);
            assert_eq!(
                echo["body"].as_str(),
                Some(body.as_str()),
                "{method} {size}"
            );
            assert_eq!(
                reply.seen_headers("content-length"),
                vec![size.to_string()],
                "{method} {size}"
            );
            assert!(reply.seen_header("l5d-dst-service").is_some());
        }
    }
    assert_eq!(backend.requests(), sent);
    assert_eq!(
        backend.connections(),
        1,
        "sequential requests with bodies should share one upstream connection"
    );
    router.stop().await;
}

/// The next request on `stream`: its head, and its body as its
/// `Content-Length` says.
async fn read_request(stream: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let head = read_head(stream, pending).await?;
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut buf = [0u8; 4096];
    while pending.len() < length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
    pending.drain(..length);
    Some(head)
}

/// A backend that reads every request whole and counts it; it answers the
/// first on each connection, then closes the connection after reading the
/// second, with no answer: the server may have acted on it.
async fn answers_one_then_drops_the_next() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let (addr, _) = raw_backend(move |mut stream| {
        let seen = counted.clone();
        async move {
            let mut pending = Vec::new();
            if read_request(&mut stream, &mut pending).await.is_none() {
                return;
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            if read_request(&mut stream, &mut pending).await.is_some() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    (addr, seen)
}

#[tokio::test]
async fn a_request_that_may_not_be_repeated_is_not_sent_twice_when_its_connection_dies() {
    let (backend, seen) = answers_one_then_drops_the_next().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();
    let send = |method: &'static str| {
        let request = request(router.addr(), "web", "/")
            .method(method)
            .body(support::full("payload"))
            .unwrap();
        support::send(&client, request)
    };

    assert_eq!(send("POST").await.status, StatusCode::OK);
    // The second POST reaches the backend, which closes the connection
    // without answering: the router must not send it again.
    let reply = send("POST").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(
        reply.l5d_err().contains("connection closed"),
        "{}",
        reply.l5d_err()
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // A PUT may be repeated: the router sends it again on a new connection.
    assert_eq!(send("PUT").await.status, StatusCode::OK);
    let reply = send("PUT").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    router.stop().await;
}

#[tokio::test]
async fn a_request_that_may_not_be_repeated_skips_an_idle_connection_the_backend_closed() {
    // Each connection answers one request and is closed 20 ms later, well
    // before the pool would check an idle connection for a GET.
    let (backend, connections) = raw_backend(|mut stream| async move {
        if read_request(&mut stream, &mut Vec::new()).await.is_none() {
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    })
    .await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    for i in 0..5 {
        let post = request(router.addr(), "web", "/")
            .method("POST")
            .body(support::full(format!("request {i}")))
            .unwrap();
        let reply = support::send(&client, post).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);
    router.stop().await;
}
