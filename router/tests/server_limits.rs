//! What a router's servers bound on a client connection: how long it may be
//! idle or live (`serverSession`), how long a request head may take, how
//! large a head may be (`maxInitialLineKB`, `maxHeadersKB`), heads that
//! could be read as two different requests (RFC 9112), requests in flight
//! (`maxConcurrentRequests`) and HTTP/2 streams. Each HTTP/1 case is tried
//! on the router's own server (a bodiless request first on a connection)
//! and on hyper's (a connection that began with a request with a body),
//! on raw sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{
    Backend, FsDir, RunningRouter, STEP, closed, closes_within, config, empty, mode, read_response,
    start_router, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

/// A request the router's own server takes.
const GET: &str = "GET /own HTTP/1.1\r\nHost: web\r\n\r\n";
/// A request hyper's server takes: it has a body.
const POST: &str = "POST /hyper HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi";
/// The two ways a connection starts.
const FIRSTS: [(&str, &str); 2] = [("own server", GET), ("hyper", POST)];

/// Long enough for anything a test waits for with time paused.
const FOREVER: Duration = Duration::from_secs(3600);

async fn setup(routers: &str) -> (Backend, FsDir, RunningRouter) {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, routers)).await;
    (backend, fs, router)
}

/// A connection to `addr` on which `first` has been answered 200.
async fn served(addr: SocketAddr, first: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    let reply = read_response(&mut stream, &mut Vec::new(), false).await;
    assert_eq!(reply.status, 200, "{first:?}: {}", reply.text());
    stream
}

fn between(waited: Option<Duration>, low: u64, high: u64, what: &str) {
    let waited = waited.unwrap_or_else(|| panic!("{what}: still open"));
    assert!(
        waited >= Duration::from_secs(low) && waited < Duration::from_secs(high),
        "{what}: closed after {waited:?}"
    );
}

/// Routes one request for `host` through the router at `addr` on a fresh
/// connection, then pauses time: from then on, when every task waits, the
/// clock jumps to the next timer. The name is bound first, with time
/// running, because the `io.l5d.fs` namer reads its files on a thread of
/// its own, which paused time does not wait for.
async fn warm_then_pause(addr: SocketAddr, host: &str, h2: bool) {
    if h2 {
        let (mut sender, _connection) = h2_connect(addr).await;
        let request = http::Request::get(format!("http://{host}/warm"))
            .body(empty())
            .unwrap();
        let response = within(STEP, "the first answer", sender.send_request(request))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        within(STEP, "the first body", response.into_body().collect())
            .await
            .unwrap();
    } else {
        served(addr, &GET.replace("Host: web", &format!("Host: {host}"))).await;
    }
    tokio::time::pause();
}

#[tokio::test]
async fn idle_connections_close_after_60_s() {
    let (_backend, _fs, router) = setup(ROUTER).await;
    warm_then_pause(router.addr(), "web", false).await;
    for (path, first) in FIRSTS {
        let mut stream = served(router.addr(), first).await;
        let waited = closes_within(&mut stream, FOREVER).await;
        between(waited, 60, 61, path);
    }
    let mut silent = TcpStream::connect(router.addr()).await.unwrap();
    between(
        closes_within(&mut silent, FOREVER).await,
        60,
        61,
        "a connection that sends nothing",
    );
    router.stop().await;
}

#[tokio::test]
async fn server_session_sets_the_idle_time() {
    let routers = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    serverSession:
      idleTimeMs: 5000
";
    let (_backend, _fs, router) = setup(routers).await;
    warm_then_pause(router.addr(), "web", false).await;
    for (path, first) in FIRSTS {
        let mut stream = served(router.addr(), first).await;
        // Used again within the idle time, it stays open.
        tokio::time::sleep(Duration::from_secs(4)).await;
        stream.write_all(first.as_bytes()).await.unwrap();
        let again = read_response(&mut stream, &mut Vec::new(), false).await;
        assert_eq!(again.status, 200, "{path}");
        between(closes_within(&mut stream, FOREVER).await, 5, 6, path);
    }
    router.stop().await;
}

#[tokio::test]
async fn server_session_life_time_closes_connections_but_not_requests_in_flight() {
    let routers = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    serverSession:
      lifeTimeMs: 20000
";
    let (backend, _fs, router) = setup(routers).await;
    warm_then_pause(router.addr(), "web", false).await;
    for (path, first) in FIRSTS {
        // Requests within the life time are served on one connection,
        // which closes when its life is over.
        let accepted = tokio::time::Instant::now();
        let mut stream = served(router.addr(), first).await;
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            stream.write_all(first.as_bytes()).await.unwrap();
            let reply = read_response(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.status, 200, "{path}");
        }
        assert!(
            closes_within(&mut stream, FOREVER).await.is_some(),
            "{path}"
        );
        let lived = accepted.elapsed();
        assert!(
            lived >= Duration::from_secs(20) && lived < Duration::from_secs(21),
            "{path}: lived {lived:?}"
        );

        // A request in flight when the life time ends is answered first.
        let mut stream = served(router.addr(), first).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        let gated = first.replacen(
            "Host: web\r\n",
            &format!("Host: web\r\n{}: {}\r\n", mode::HEADER, mode::GATE),
            1,
        );
        stream.write_all(gated.as_bytes()).await.unwrap();
        backend.wait_received().await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        backend.release();
        let reply = read_response(&mut stream, &mut Vec::new(), false).await;
        assert_eq!(reply.status, 200, "{path}: answered after the life time");
        between(closes_within(&mut stream, FOREVER).await, 0, 1, path);
    }
    router.stop().await;
}

#[tokio::test]
async fn a_head_that_stops_halfway_is_dropped_after_30_s_on_every_path() {
    let (backend, _fs, router) = setup(ROUTER).await;
    warm_then_pause(router.addr(), "web", false).await;
    for (path, first) in FIRSTS {
        let mut stream = served(router.addr(), first).await;
        // Idle a while first: the head time starts with the head.
        tokio::time::sleep(Duration::from_secs(40)).await;
        stream.write_all(b"GET /slow HTTP/1.1\r\nHo").await.unwrap();
        let waited = closes_within(&mut stream, FOREVER).await;
        between(waited, 30, 31, path);
    }
    assert_eq!(backend.requests(), 3, "only the first requests");
    router.stop().await;
}

/// `request` with `line_extra` bytes added to its path and a field of
/// `field` bytes.
fn sized(request: &str, line_extra: usize, field: usize) -> String {
    let request = request.replacen(
        " HTTP/1.1",
        &format!("{} HTTP/1.1", "a".repeat(line_extra)),
        1,
    );
    request.replacen(
        "Host: web\r\n",
        &format!("Host: web\r\nx-big: {}\r\n", "b".repeat(field)),
        1,
    )
}

/// Sends `request` on `stream` and expects `status` and, unless it is 200,
/// the connection closed.
async fn expect(stream: &mut TcpStream, request: &str, status: u16, what: &str) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let reply = read_response(stream, &mut Vec::new(), false).await;
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    if status != 200 {
        assert_eq!(reply.header("connection"), Some("close"), "{what}");
        assert!(closed(stream).await, "{what}: the connection is closed");
    }
}

#[tokio::test]
async fn long_request_lines_get_414_and_large_header_sections_431() {
    let (backend, _fs, router) = setup(ROUTER).await;
    let mut served_ok = 0;
    for (path, request) in FIRSTS {
        // First on a connection, and after a request hyper served.
        for after in [None, Some(POST)] {
            let cases = [
                (sized(request, 4000, 7900), 200),
                (sized(request, 4100, 10), 414),
                (sized(request, 10, 8200), 431),
                (sized(request, 9000, 9000), 414),
            ];
            for (request, status) in cases {
                let what = format!("{path}, after {after:?}: {status}");
                let mut stream = match after {
                    Some(after) => served(router.addr(), after).await,
                    None => TcpStream::connect(router.addr()).await.unwrap(),
                };
                served_ok += usize::from(after.is_some());
                expect(&mut stream, &request, status, &what).await;
                served_ok += usize::from(status == 200);
            }
        }
    }
    assert_eq!(
        backend.requests(),
        served_ok,
        "refused heads reach no backend"
    );

    // A line that goes on is refused before it ends.
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let endless = format!("GET /{}", "a".repeat(5000));
    expect(&mut stream, &endless, 414, "an endless line").await;
    router.stop().await;
}

#[tokio::test]
async fn max_initial_line_kb_and_max_headers_kb_set_the_limits() {
    let routers = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  maxInitialLineKB: 1
  maxHeadersKB: 2
  servers:
  - port: 0
";
    let (_backend, _fs, router) = setup(routers).await;
    for (path, request) in FIRSTS {
        for (request, status) in [
            (sized(request, 900, 1900), 200),
            (sized(request, 1100, 10), 414),
            (sized(request, 10, 2100), 431),
        ] {
            let mut stream = TcpStream::connect(router.addr()).await.unwrap();
            expect(&mut stream, &request, status, &format!("{path}: {status}")).await;
        }
    }
    router.stop().await;
}

/// Heads that two readers could take for different requests.
const AMBIGUOUS: [&str; 8] = [
    "GET /two-hosts HTTP/1.1\r\nHost: web\r\nHost: evil\r\n\r\n",
    "POST /two-hosts HTTP/1.1\r\nHost: web\r\nHost: evil\r\nContent-Length: 2\r\n\r\nhi",
    "POST /cl-te HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /te-cl HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "GET /cl0-te HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /cl-cl HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
    "GET /cl0-cl HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\nContent-Length: 3\r\n\r\nabc",
    "GET /folded HTTP/1.1\r\nHost: web\r\nx-folded: a\r\n b\r\n\r\n",
];

#[tokio::test]
async fn heads_that_could_be_read_two_ways_get_400_and_the_connection_closed() {
    let (backend, _fs, router) = setup(ROUTER).await;
    let mut served_ok = 0;
    for bad in AMBIGUOUS {
        // First on a connection: the own server's, or hyper's for a body.
        let mut stream = TcpStream::connect(router.addr()).await.unwrap();
        stream.write_all(bad.as_bytes()).await.unwrap();
        let reply = read_response(&mut stream, &mut Vec::new(), false).await;
        assert_eq!(reply.status, 400, "first: {bad:?}: {}", reply.text());
        assert!(closed(&mut stream).await, "first: {bad:?}");

        // Pipelined behind a request on each path.
        for (path, first) in FIRSTS {
            let mut stream = TcpStream::connect(router.addr()).await.unwrap();
            stream
                .write_all(format!("{first}{bad}").as_bytes())
                .await
                .unwrap();
            let mut buf = Vec::new();
            let ok = read_response(&mut stream, &mut buf, false).await;
            assert_eq!(ok.status, 200, "{path}, then {bad:?}");
            served_ok += 1;
            let reply = read_response(&mut stream, &mut buf, false).await;
            assert_eq!(reply.status, 400, "{path}, then {bad:?}: {}", reply.text());
            assert!(closed(&mut stream).await, "{path}, then {bad:?}");
        }
    }
    assert_eq!(
        backend.requests(),
        served_ok,
        "no ambiguous request is routed"
    );
    router.stop().await;
}

/// Reads until `buf` holds `text`.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, text: &str) {
    while !String::from_utf8_lossy(buf).contains(text) {
        let mut chunk = [0u8; 4096];
        let n = within(STEP, text, stream.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed before {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn max_concurrent_requests_holds_a_request_until_its_body_ends() {
    let routers = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    maxConcurrentRequests: 1
";
    let (backend, _fs, router) = setup(routers).await;
    for (path, first) in FIRSTS {
        let streaming = first.replacen(
            "Host: web\r\n",
            &format!("Host: web\r\n{}: {}\r\n", mode::HEADER, mode::STREAM),
            1,
        );
        let mut long = TcpStream::connect(router.addr()).await.unwrap();
        long.write_all(streaming.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        read_until(&mut long, &mut buf, "first\n").await;

        // The head has been sent, the body has not ended: still in flight.
        for (other, request) in FIRSTS {
            let mut stream = TcpStream::connect(router.addr()).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let reply = read_response(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.status, 503, "{path} streaming, then {other}");
        }

        backend.release();
        read_until(&mut long, &mut buf, "rest\n").await;
        read_until(&mut long, &mut buf, "0\r\n\r\n").await;
        for (other, request) in FIRSTS {
            let mut stream = TcpStream::connect(router.addr()).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let reply = read_response(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.status, 200, "{path} done, then {other}");
        }
    }
    router.stop().await;
}

#[tokio::test]
async fn the_admin_port_closes_idle_and_slow_connections() {
    let (_backend, _fs, router) = setup(ROUTER).await;
    warm_then_pause(router.addr(), "web", false).await;
    let ping = "GET /admin/ping HTTP/1.1\r\nHost: admin\r\n\r\n";
    let mut stream = served(router.admin, ping).await;
    between(closes_within(&mut stream, FOREVER).await, 60, 61, "idle");
    let mut stream = served(router.admin, ping).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    stream.write_all(b"GET /admin/pi").await.unwrap();
    between(
        closes_within(&mut stream, FOREVER).await,
        30,
        31,
        "a slow head",
    );
    router.stop().await;
}

// ---------------------------------------------------------------------------
// HTTP/2

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Opens an HTTP/2 connection on a raw socket; the server's first
/// SETTINGS as (id, value) pairs.
async fn h2_settings(addr: SocketAddr) -> (TcpStream, Vec<(u16, u32)>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(H2_SETTINGS).await.unwrap();
    let mut head = [0u8; 9];
    within(STEP, "a SETTINGS frame", stream.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(head[3], 4, "the server's first frame is SETTINGS");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    let settings = payload
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect();
    (stream, settings)
}

const MAX_CONCURRENT_STREAMS: u16 = 3;

/// An HTTP/2 connection to `addr` with hyper's client, run on its own task.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    http2::SendRequest<support::Body>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(connection))
}

#[tokio::test]
async fn h2_servers_limit_the_streams_of_a_connection() {
    let routers = "- protocol: h2
  label: default
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
- protocol: h2
  label: limited
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    maxConcurrentStreamsPerConnection: 7
";
    let (_backend, _fs, router) = setup(routers).await;
    let (_, default) = h2_settings(router.servers[0]).await;
    assert!(
        default.contains(&(MAX_CONCURRENT_STREAMS, 200)),
        "{default:?}"
    );
    let (_, limited) = h2_settings(router.servers[1]).await;
    assert!(
        limited.contains(&(MAX_CONCURRENT_STREAMS, 7)),
        "{limited:?}"
    );
    router.stop().await;
}

// With time running: an h2 connection that is reused after paused time has
// jumped delays its next data frame until a later timer, even with no
// router in between.
#[tokio::test]
async fn idle_h2_connections_close_but_open_streams_keep_them() {
    let routers = "- protocol: h2
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    serverSession:
      idleTimeMs: 500
";
    let (backend, fs, router) = setup(routers).await;
    fs.point("web.svc", &[&backend]);
    let (_sender, connection) = h2_connect(router.addr()).await;
    let started = std::time::Instant::now();
    within(STEP, "an idle h2 connection to close", connection)
        .await
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A stream open for longer than the idle time keeps its connection.
    let (mut sender, connection) = h2_connect(router.addr()).await;
    let request = http::Request::get("http://web.svc/stream")
        .header(mode::HEADER, mode::STREAM)
        .body(empty())
        .unwrap();
    let response = within(STEP, "the head", sender.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = within(STEP, "the first chunk", body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    backend.release();
    let rest = within(STEP, "the rest", body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"rest\n");
    assert!(!connection.is_finished(), "open while the stream was");
    within(STEP, "the h2 connection to close once idle", connection)
        .await
        .unwrap()
        .unwrap();
    router.stop().await;
}

#[tokio::test]
async fn max_concurrent_requests_counts_h2_streams_until_their_bodies_end() {
    let routers = "- protocol: h2
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    maxConcurrentRequests: 1
";
    let (backend, fs, router) = setup(routers).await;
    fs.point("web.svc", &[&backend]);
    let (mut sender, _connection) = h2_connect(router.addr()).await;
    let get = |streaming: bool| {
        let mut request = http::Request::get("http://web.svc/x");
        if streaming {
            request = request.header(mode::HEADER, mode::STREAM);
        }
        request.body(empty()).unwrap()
    };
    let response = within(STEP, "the streaming head", sender.send_request(get(true)))
        .await
        .unwrap();
    let mut body = response.into_body();
    within(STEP, "the first chunk", body.frame())
        .await
        .unwrap()
        .unwrap();
    let refused = within(STEP, "a second answer", sender.send_request(get(false)))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "the first body has not ended");
    backend.release();
    within(STEP, "the rest", body.collect()).await.unwrap();
    let served = within(STEP, "a third answer", sender.send_request(get(false)))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    router.stop().await;
}

#[tokio::test]
async fn server_session_max_requests_closes_a_connection_with_its_last_answer() {
    let routers = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    serverSession:
      maxRequests: 3
";
    let (_backend, _fs, router) = setup(routers).await;
    for (path, first) in FIRSTS {
        let mut stream = TcpStream::connect(router.addr()).await.unwrap();
        for n in 1..=3 {
            stream.write_all(first.as_bytes()).await.unwrap();
            let reply = read_response(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.status, 200, "{path}: request {n}");
            let close = reply
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            assert_eq!(close, n == 3, "{path}: request {n} says close: {close}");
        }
        assert!(
            closes_within(&mut stream, STEP).await.is_some(),
            "{path}: closed after its last answer"
        );
    }
    router.stop().await;
}

#[tokio::test]
async fn an_h2_connection_that_reached_max_requests_says_goaway_and_clients_lose_nothing() {
    // The inner router rotates its client connections every 10 requests;
    // the outer one is its client, as a linker in front of another is,
    // and sends what a GOAWAY refused again on a new connection.
    let inner = "- protocol: h2
  label: inner
  dtab: /svc => /#/io.l5d.fs/web;
  servers:
  - port: 0
    serverSession:
      maxRequests: 10
";
    let (_backend, fs, inner) = setup(inner).await;
    let outer = start_router(&config(
        &fs,
        &format!(
            "- protocol: h2\n  label: outer\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  \
             servers:\n  - port: 0\n",
            inner.addr().port()
        ),
    ))
    .await;
    let (sender, _connection) = h2_connect(outer.addr()).await;
    let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    // Eight clients at once, 25 requests each.
    for client in 0..8 {
        let (mut sender, tx) = (sender.clone(), tx.clone());
        tokio::spawn(async move {
            for i in 0..25 {
                let request = http::Request::get(format!("http://web/{client}/{i}"))
                    .body(empty())
                    .unwrap();
                let status = match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.into_body().collect().await;
                        status
                    }
                    Err(_) => 0,
                };
                let _ = tx.send(status);
            }
        });
    }
    drop(tx);
    let mut statuses = Vec::new();
    while let Some(status) = within(STEP, "answers", answers.recv()).await {
        statuses.push(status);
    }
    assert_eq!(statuses.len(), 200);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "not every request was answered 200: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let reply = support::get(
        &support::client(),
        inner.admin,
        "a",
        "/admin/metrics.json",
        &[],
    )
    .await;
    let metrics: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
    let connects = metrics
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("rt/inner/server/") && k.ends_with("/connects"))
        .map(|(_, v)| v.as_f64().unwrap_or(0.0))
        .unwrap();
    // Each connection takes its 10 requests and the streams of the other
    // seven clients already open when it says GOAWAY: at most 17, so 200
    // requests need at least 12 connections.
    assert!(
        connects >= 12.0,
        "200 requests at 10 per connection (and at most 7 more in flight) need 12 connections or more, not {connects}"
    );
    outer.stop().await;
    inner.stop().await;
}

/// With hundreds of connections open, idle ones give their buffers back
/// and take new ones for the next request, and those accepted past the
/// first 512 keep each request's state on the heap: every connection still
/// answers a second request, a pipelined pair, and a head of 6 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_still_answer() {
    let (_backend, _fs, router) = setup(ROUTER).await;
    let mut connections = Vec::new();
    for _ in 0..600 {
        let mut stream = TcpStream::connect(router.addr()).await.unwrap();
        stream.write_all(GET.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let answer = within(
            STEP,
            "a first answer",
            read_response(&mut stream, &mut buf, false),
        )
        .await;
        assert_eq!(answer.status, 200);
        connections.push(stream);
    }
    let large = format!(
        "GET /large HTTP/1.1\r\nHost: web\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(6 * 1024)
    );
    for (i, stream) in connections.iter_mut().enumerate() {
        let request = match i % 3 {
            0 => GET.to_string(),
            1 => format!("{GET}{GET}"),
            _ => large.clone(),
        };
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        for _ in 0..if i % 3 == 1 { 2 } else { 1 } {
            let answer = within(
                STEP,
                "an answer after idling",
                read_response(stream, &mut buf, false),
            )
            .await;
            assert_eq!(answer.status, 200, "connection {i}");
        }
    }
    router.stop().await;
}
