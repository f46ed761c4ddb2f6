//! The server against the `h2` crate's client (the one tonic uses) and
//! against frames written by hand for what no well-behaved client sends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::http2::frame::{self, Frame, Reason};

type Answer = BoxBody<Bytes, String>;

/// Answers with what it was sent: the body, and the trailers as its own.
/// Paths: `/hang` never answers; `/big/N` answers N bytes.
#[derive(Clone, Default)]
struct Echo {
    /// Answers dropped before they were done.
    dropped: Arc<AtomicUsize>,
}

struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Service for Echo {
    type Body = Answer;
    type Future = BoxFuture<'static, Response<Answer>>;

    fn call(&mut self, head: http::request::Parts, body: RequestBody) -> Self::Future {
        let dropped = self.dropped.clone();
        Box::pin(async move {
            let path = head.uri.path().to_owned();
            if path == "/hang" {
                let _count = CountDrop(dropped);
                std::future::pending::<()>().await;
            }
            if let Some(n) = path.strip_prefix("/big/") {
                let n: usize = n.parse().unwrap();
                return Response::new(
                    Full::new(Bytes::from(vec![b'x'; n]))
                        .map_err(|e: Infallible| e.to_string())
                        .boxed(),
                );
            }
            let kind = match &body {
                RequestBody::Empty => "empty",
                RequestBody::Whole(_) => "whole",
                RequestBody::Streaming(_) => "streaming",
            };
            let (data, trailers) = match body {
                RequestBody::Empty => (Bytes::new(), None),
                RequestBody::Whole(bytes) => (bytes, None),
                RequestBody::Streaming(inbound) => {
                    let collected = inbound.collect().await.unwrap();
                    let trailers = collected.trailers().cloned();
                    (collected.to_bytes(), trailers)
                }
            };
            let stream = futures_util::stream::iter(
                [Ok(hyper::body::Frame::data(data))]
                    .into_iter()
                    .chain(trailers.map(|t| Ok(hyper::body::Frame::trailers(t)))),
            );
            let mut response = Response::new(http_body_util::StreamBody::new(stream).boxed());
            response
                .headers_mut()
                .insert("x-body", kind.parse().unwrap());
            response.headers_mut().insert(
                "x-authority",
                head.uri
                    .authority()
                    .map_or("", |a| a.as_str())
                    .parse()
                    .unwrap(),
            );
            response
        })
    }
}

async fn serve(service: Echo, config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(Connection::new(
                stream,
                BytesMut::new(),
                service.clone(),
                config,
            ));
        }
    });
    addr
}

async fn client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    sender
}

fn request(method: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://web:8080{path}"))
        .body(())
        .unwrap()
}

/// Sends `body` (and `trailers`) and reads the whole answer.
async fn exchange(
    sender: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Option<Bytes>,
    trailers: Option<HeaderMap>,
) -> (http::response::Parts, Bytes, Option<HeaderMap>) {
    let mut sender = sender.clone().ready().await.unwrap();
    let end = body.is_none() && trailers.is_none();
    let (response, mut stream) = sender.send_request(request, end).unwrap();
    if let Some(body) = body {
        let mut rest = body;
        // Through flow control, a piece at a time.
        while !rest.is_empty() {
            stream.reserve_capacity(rest.len());
            let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                .await
                .unwrap()
                .unwrap();
            let piece = rest.split_to(granted.min(rest.len()));
            stream
                .send_data(piece, rest.is_empty() && trailers.is_none())
                .unwrap();
        }
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers).unwrap();
    }
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (head, data.freeze(), trailers)
}

#[tokio::test]
async fn requests_and_answers_pass_through_many_streams() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut sender = client(addr).await;
    let mut calls = Vec::new();
    for i in 0..100 {
        let mut sender = sender.clone();
        calls.push(tokio::spawn(async move {
            let body = Bytes::from(format!("request {i}"));
            exchange(
                &mut sender,
                request("POST", &format!("/echo/{i}")),
                Some(body),
                None,
            )
            .await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let (head, body, trailers) = call.await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(body, format!("request {i}"));
        assert_eq!(head.headers["x-authority"], "web:8080");
        assert!(trailers.is_none());
    }
    // A GET has no body at all.
    let (head, body, _) = exchange(&mut sender, request("GET", "/"), None, None).await;
    assert_eq!(head.headers["x-body"], "empty");
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_body_that_comes_with_its_head_is_handed_over_whole() {
    let addr = serve(Echo::default(), Config::default()).await;
    // HEADERS and the body's one DATA frame in one write, as a unary call
    // usually comes.
    let mut raw = Raw::open(addr).await;
    let mut call = headers(1, false, &[0x83, 0x86, 0x84, 0x01, 0x01, b'a']);
    frame::write_data_head(&mut call, 1, true, 5);
    call.extend_from_slice(b"unary");
    raw.send(&call).await;
    let Some(Frame::Headers {
        stream: 1,
        end_stream: false,
        fragment,
        ..
    }) = raw.next().await
    else {
        panic!("no answer");
    };
    let mut fields = Vec::new();
    crate::http2::hpack::Decoder::new(4096)
        .decode(&fragment, |field| {
            fields.push((format!("{:?}", field.name), field.value))
        })
        .unwrap();
    assert!(
        fields
            .iter()
            .any(|(name, value)| name.contains("x-body") && value == "whole"),
        "{fields:?}"
    );
    assert!(
        matches!(raw.next().await, Some(Frame::Data { stream: 1, data, .. }) if data == "unary")
    );

    // Through the h2 client, whose HEADERS go out before its DATA, the
    // body streams.
    let mut sender = client(addr).await;
    let (head, body, _) = exchange(
        &mut sender,
        request("POST", "/"),
        Some(Bytes::from_static(b"unary")),
        None,
    )
    .await;
    assert_eq!(head.headers["x-body"], "streaming");
    assert_eq!(body, "unary");
}

#[tokio::test]
async fn bodies_larger_than_every_window_go_both_ways() {
    let config = Config {
        stream_window: 65_535,
        connection_window: 65_535,
        ..Config::default()
    };
    let addr = serve(Echo::default(), config).await;
    let mut sender = client(addr).await;
    let big: Bytes = (0..1_000_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let (mut sender, big) = (sender.clone(), big.clone());
        calls.push(tokio::spawn(async move {
            exchange(&mut sender, request("PUT", "/"), Some(big), None).await
        }));
    }
    for call in calls {
        let (head, body, _) = call.await.unwrap();
        assert_eq!(head.headers["x-body"], "streaming");
        assert_eq!(body, big);
    }
    let (head, body, _) = exchange(&mut sender, request("GET", "/big/3000000"), None, None).await;
    assert_eq!(body.len(), 3_000_000);
    // A body of known length gets its content-length.
    assert_eq!(head.headers["content-length"], "3000000");
}

#[tokio::test]
async fn trailers_go_both_ways() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut sender = client(addr).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let (_, body, back) = exchange(
        &mut sender,
        request("POST", "/"),
        Some(Bytes::from_static(b"msg")),
        Some(trailers),
    )
    .await;
    assert_eq!(body, "msg");
    assert_eq!(back.unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn a_stream_the_client_resets_drops_its_answer() {
    let echo = Echo::default();
    let addr = serve(echo.clone(), Config::default()).await;
    let sender = client(addr).await;
    let mut sender = sender.ready().await.unwrap();
    let (response, mut stream) = sender.send_request(request("GET", "/hang"), true).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.send_reset(h2::Reason::CANCEL);
    drop(response);
    for _ in 0..100 {
        if echo.dropped.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the answer's future was not dropped");
}

#[tokio::test]
async fn fields_past_the_limit_are_answered_431() {
    let config = Config {
        max_header_list_size: 1024,
        ..Config::default()
    };
    let addr = serve(Echo::default(), config).await;
    let mut sender = client(addr).await;
    let mut big = request("GET", "/");
    big.headers_mut()
        .insert("x-big", "v".repeat(2000).parse().unwrap());
    let (head, _, _) = exchange(&mut sender, big, None, None).await;
    assert_eq!(head.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(head.headers.contains_key("l5d-err"));
    // The connection serves on.
    let (head, _, _) = exchange(&mut sender, request("GET", "/"), None, None).await;
    assert_eq!(head.status, StatusCode::OK);
}

/// A raw connection: the preface, our SETTINGS, and the frames read back.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut hello = BytesMut::from(frame::PREFACE);
        frame::write_settings(&mut hello, &[]);
        stream.write_all(&hello).await.unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame other than SETTINGS, its ACK and WINDOW_UPDATE;
    /// `None` once the connection has closed.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            while let Some(frame) = frame::read(&mut self.buf, 1 << 20).unwrap() {
                match frame {
                    Frame::Settings(_) | Frame::SettingsAck | Frame::WindowUpdate { .. } => {}
                    other => return Some(other),
                }
            }
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the server answered");
            if read.unwrap() == 0 {
                return None;
            }
        }
    }
}

/// A HEADERS frame with a raw header block.
fn headers(stream: u32, end_stream: bool, block: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    frame::write_headers(
        &mut buf,
        stream,
        end_stream,
        block,
        frame::DEFAULT_MAX_FRAME_SIZE,
    );
    buf
}

/// `GET http://a/` in HPACK, then `extra`.
fn get_block(extra: &[u8]) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 0x01, b'a'];
    block.extend_from_slice(extra);
    block
}

#[tokio::test]
async fn a_malformed_request_resets_its_stream_only() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut raw = Raw::open(addr).await;
    // An uppercase field name: "X-A: 1".
    raw.send(&headers(1, true, &get_block(b"\x00\x03X-A\x011")))
        .await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 1,
            reason: Reason::PROTOCOL_ERROR
        })
    );
    // The next stream is served.
    raw.send(&headers(3, true, &get_block(b""))).await;
    assert!(matches!(
        raw.next().await,
        Some(Frame::Headers { stream: 3, .. })
    ));
}

#[tokio::test]
async fn protocol_errors_end_the_connection_with_goaway() {
    let addr = serve(Echo::default(), Config::default()).await;
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        // A header block HPACK cannot decode (index 70, table empty).
        (
            headers(1, true, &[0xc6]).to_vec(),
            Reason::COMPRESSION_ERROR,
        ),
        // An even stream id.
        (
            headers(2, true, &get_block(b"")).to_vec(),
            Reason::PROTOCOL_ERROR,
        ),
        // DATA on a stream never opened.
        (
            {
                let mut b = BytesMut::new();
                frame::write_data_head(&mut b, 5, true, 1);
                b.extend_from_slice(b"x");
                b.to_vec()
            },
            Reason::PROTOCOL_ERROR,
        ),
        // HEADERS, then something other than its CONTINUATION.
        (
            {
                let mut b = BytesMut::from(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82][..]);
                frame::write_ping(&mut b, false, [0; 8]);
                b.to_vec()
            },
            Reason::PROTOCOL_ERROR,
        ),
    ];
    for (bytes, reason) in cases {
        let mut raw = Raw::open(addr).await;
        raw.send(&bytes).await;
        match raw.next().await {
            Some(Frame::GoAway { reason: sent, .. }) => assert_eq!(sent, reason),
            other => panic!("{reason:?}: {other:?}"),
        }
        assert_eq!(raw.next().await, None);
    }
}

#[tokio::test]
async fn a_bad_preface_closes_the_connection() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    // Our SETTINGS, then a GOAWAY.
    let mut buf = BytesMut::from(&buf[..]);
    assert!(matches!(
        frame::read(&mut buf, 1 << 20),
        Ok(Some(Frame::Settings(_)))
    ));
}

#[tokio::test]
async fn pings_are_answered() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut raw = Raw::open(addr).await;
    let mut ping = BytesMut::new();
    frame::write_ping(&mut ping, false, *b"pingpong");
    raw.send(&ping).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Ping {
            ack: true,
            payload: *b"pingpong"
        })
    );
}

#[tokio::test]
async fn streams_reset_faster_than_answered_end_the_connection() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut raw = Raw::open(addr).await;
    let mut flood = BytesMut::new();
    let hang = [
        0x82, 0x86, 0x04, 0x05, b'/', b'h', b'a', b'n', b'g', 0x01, 0x01, b'a',
    ];
    for i in 0..1100u32 {
        let id = 2 * i + 1;
        flood.extend_from_slice(&headers(id, true, &hang));
        frame::write_reset(&mut flood, id, Reason::CANCEL);
    }
    raw.send(&flood).await;
    assert!(matches!(
        raw.next().await,
        Some(Frame::GoAway {
            reason: Reason::ENHANCE_YOUR_CALM,
            ..
        })
    ));
}

#[tokio::test]
async fn a_graceful_shutdown_finishes_the_streams_it_has() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut connection =
            Connection::new(stream, BytesMut::new(), Echo::default(), Config::default());
        let mut stop_rx = Some(stop_rx);
        std::future::poll_fn(|cx| {
            if let Some(rx) = &mut stop_rx
                && Pin::new(rx).poll(cx).is_ready()
            {
                stop_rx = None;
                connection.graceful_shutdown();
            }
            Pin::new(&mut connection).poll(cx)
        })
        .await
    });
    let sender = client(addr).await;
    let mut sender = sender.ready().await.unwrap();
    // A request still sending its body when the shutdown begins.
    let (response, mut body) = sender.send_request(request("POST", "/"), false).unwrap();
    body.send_data(Bytes::from_static(b"part one, "), false)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    body.send_data(Bytes::from_static(b"part two"), true)
        .unwrap();
    let (_, mut answer) = response.await.unwrap().into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = answer.data().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(data, "part one, part two");
    // Then the connection ends by itself.
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bytes_read_before_the_connection_was_made_are_served() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut hello = BytesMut::from(frame::PREFACE);
    frame::write_settings(&mut hello, &[]);
    hello.extend_from_slice(&headers(1, true, &get_block(b"")));
    let expected = hello.len();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // As the router does: the preface and what came with it are read
        // first, to tell HTTP/2 from HTTP/1.
        let mut read = BytesMut::new();
        while read.len() < expected {
            stream.read_buf(&mut read).await.unwrap();
        }
        Connection::new(stream, read, Echo::default(), Config::default())
            .await
            .unwrap();
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&hello).await.unwrap();
    // Nothing more is sent (not even the SETTINGS ACK): the answer comes.
    let mut raw = Raw {
        stream,
        buf: BytesMut::new(),
    };
    assert!(matches!(
        raw.next().await,
        Some(Frame::Headers { stream: 1, .. })
    ));
}

/// A POST to `/` in HPACK with `content-length: <length>`.
fn post_block(length: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x84, 0x01, 0x01, b'a', 0x0f, 0x0d];
    block.push(length.len() as u8);
    block.extend_from_slice(length.as_bytes());
    block
}

fn data(stream: u32, end_stream: bool, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    frame::write_data_head(&mut buf, stream, end_stream, payload.len());
    buf.extend_from_slice(payload);
    buf
}

#[tokio::test]
async fn a_body_that_does_not_match_its_content_length_resets_its_stream() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut raw = Raw::open(addr).await;
    // Shorter than announced.
    let mut bytes = headers(1, false, &post_block("5"));
    bytes.extend_from_slice(&data(1, true, b"abc"));
    raw.send(&bytes).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 1,
            reason: Reason::PROTOCOL_ERROR
        })
    );
    // Longer than announced.
    let mut bytes = headers(3, false, &post_block("2"));
    bytes.extend_from_slice(&data(3, false, b"abc"));
    raw.send(&bytes).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 3,
            reason: Reason::PROTOCOL_ERROR
        })
    );
    // Announced but ended with the head.
    raw.send(&headers(5, true, &post_block("2"))).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 5,
            reason: Reason::PROTOCOL_ERROR
        })
    );
    // Trailers that do not end the stream.
    let mut bytes = headers(7, false, &post_block("1"));
    bytes.extend_from_slice(&data(7, false, b"a"));
    bytes.extend_from_slice(&headers(7, false, b"\x00\x01x\x01y"));
    raw.send(&bytes).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 7,
            reason: Reason::PROTOCOL_ERROR
        })
    );
    // The connection still serves.
    raw.send(&headers(9, true, &get_block(b""))).await;
    assert!(matches!(
        raw.next().await,
        Some(Frame::Headers { stream: 9, .. })
    ));
}

#[tokio::test]
async fn streams_past_the_limit_are_refused() {
    let config = Config {
        max_concurrent_streams: 2,
        ..Config::default()
    };
    let addr = serve(Echo::default(), config).await;
    let mut raw = Raw::open(addr).await;
    let hang = [
        0x82, 0x86, 0x04, 0x05, b'/', b'h', b'a', b'n', b'g', 0x01, 0x01, b'a',
    ];
    let mut bytes = BytesMut::new();
    for id in [1, 3, 5] {
        bytes.extend_from_slice(&headers(id, true, &hang));
    }
    raw.send(&bytes).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::Reset {
            stream: 5,
            reason: Reason::REFUSED_STREAM
        })
    );
    // One ends; a new one is taken.
    let mut reset = BytesMut::new();
    frame::write_reset(&mut reset, 1, Reason::CANCEL);
    reset.extend_from_slice(&headers(7, true, &get_block(b"")));
    raw.send(&reset).await;
    assert!(matches!(
        raw.next().await,
        Some(Frame::Headers { stream: 7, .. })
    ));
}

#[tokio::test]
async fn a_header_block_continued_without_end_closes_the_connection() {
    let config = Config {
        max_header_list_size: 1024,
        ..Config::default()
    };
    let addr = serve(Echo::default(), config).await;
    let mut raw = Raw::open(addr).await;
    // HEADERS without END_HEADERS, then CONTINUATIONs of nothing useful.
    let mut bytes = BytesMut::from(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82][..]);
    for _ in 0..40 {
        bytes.extend_from_slice(&[0x00, 0x04, 0x00, 9, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0x40; 1024]);
    }
    raw.send(&bytes).await;
    assert_eq!(
        raw.next().await,
        Some(Frame::GoAway {
            last_stream: 0,
            reason: Reason::ENHANCE_YOUR_CALM
        })
    );
}

#[tokio::test]
async fn answers_wait_for_the_window_the_client_gives() {
    let addr = serve(Echo::default(), Config::default()).await;
    let mut raw = Raw::open(addr).await;
    // A stream window of 10 bytes.
    let mut settings = BytesMut::new();
    frame::write_settings(&mut settings, &[(frame::setting::INITIAL_WINDOW_SIZE, 10)]);
    raw.send(&settings).await;
    let big = b"\x82\x86\x04\x07/big/25\x01\x01a";
    raw.send(&headers(1, true, big)).await;
    assert!(matches!(
        raw.next().await,
        Some(Frame::Headers { stream: 1, .. })
    ));
    let Some(Frame::Data { data, .. }) = raw.next().await else {
        panic!("no data");
    };
    assert_eq!(data.len(), 10, "no more than the window");
    // More window, more data; the rest ends the stream.
    let mut update = BytesMut::new();
    frame::write_window_update(&mut update, 1, 100);
    raw.send(&update).await;
    let Some(Frame::Data {
        data, end_stream, ..
    }) = raw.next().await
    else {
        panic!("no more data");
    };
    assert_eq!((data.len(), end_stream), (15, true));
}
