//! The `/api/1` HTTP API, driven with plain HTTP requests against an
//! in-process namerd (in-memory store, an `io.l5d.fs` namer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: namerd\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A watch: the response's lines, as they arrive.
struct Watch {
    reader: BufReader<TcpStream>,
}

impl Watch {
    async fn open(addr: SocketAddr, target: &str) -> Watch {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: namerd\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            assert!(
                !line.to_ascii_lowercase().starts_with("content-length"),
                "a watch must be chunked"
            );
        }
        Watch { reader }
    }

    /// Waits for the server to end the stream.
    async fn ended(&mut self) {
        tokio::time::timeout(Duration::from_secs(5), async {
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest).await.unwrap();
        })
        .await
        .expect("the watch stream was not ended within 5 s");
    }

    /// The next JSON document (chunk framing skipped).
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).await.unwrap();
                let line = line.trim();
                // Skip chunk-size lines and empty lines.
                if line.is_empty() || line.chars().all(|c| c.is_ascii_hexdigit()) {
                    continue;
                }
                return line.to_string();
            }
        })
        .await
        .expect("no watch update within 5 s")
    }
}

struct Namerd {
    api: SocketAddr,
    admin: SocketAddr,
    disco: tempfile::TempDir,
    running: namerd::server::Running,
}

async fn start(extra: &str) -> Namerd {
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n{extra}",
        disco.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    Namerd {
        api: running.api_addrs[0],
        admin: running.admin_addr,
        disco,
        running,
    }
}

const DTAB: (&str, &str) = ("Content-Type", "application/dtab");

#[tokio::test]
async fn dtab_crud_with_versions_and_conflicts() {
    let n = start("").await;
    let list = http(n.api, "GET", "/api/1/dtabs", &[], "").await;
    assert_eq!((list.status, list.body.as_str()), (200, "[\"default\"]\n"));

    let created = http(
        n.api,
        "POST",
        "/api/1/dtabs/web",
        &[DTAB],
        "/svc => /#/io.l5d.fs;",
    )
    .await;
    assert_eq!(created.status, 204);
    let again = http(n.api, "POST", "/api/1/dtabs/web", &[DTAB], "/a => /b").await;
    assert_eq!(again.status, 409);

    let got = http(n.api, "GET", "/api/1/dtabs/web", &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body,
        "[{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}]\n"
    );
    assert_eq!(got.header("etag"), Some("AAAAAAAAAAE="));
    let text = http(
        n.api,
        "GET",
        "/api/1/dtabs/web",
        &[("Accept", "application/dtab")],
        "",
    )
    .await;
    assert_eq!(text.body, "/svc=>/#/io.l5d.fs\n");
    let head = http(n.api, "HEAD", "/api/1/dtabs/web", &[], "").await;
    assert_eq!(
        (head.status, head.header("etag"), head.body.as_str()),
        (200, Some("AAAAAAAAAAE="), "")
    );

    // A compare-and-set with the current version wins; a stale one loses.
    let json = ("Content-Type", "application/json; charset=utf-8");
    let body = r#"[{"prefix":"/svc","dst":"/#/io.l5d.fs"},{"prefix":"/svc/web","dst":"/$/inet/127.0.0.1/9"}]"#;
    let updated = http(
        n.api,
        "PUT",
        "/api/1/dtabs/web",
        &[json, ("If-Match", "AAAAAAAAAAE=")],
        body,
    )
    .await;
    assert_eq!(updated.status, 204);
    let stale = http(
        n.api,
        "PUT",
        "/api/1/dtabs/web",
        &[DTAB, ("If-Match", "AAAAAAAAAAE=")],
        "/x=>/y",
    )
    .await;
    assert_eq!(stale.status, 412);
    let missing = http(
        n.api,
        "PUT",
        "/api/1/dtabs/nope",
        &[DTAB, ("If-Match", "AAAAAAAAAAE=")],
        "/x=>/y",
    )
    .await;
    assert_eq!(missing.status, 404);

    // A bad dtab is refused with the position of the mistake, and nothing changes.
    let bad = http(
        n.api,
        "PUT",
        "/api/1/dtabs/web",
        &[DTAB],
        "/svc =/#/io.l5d.fs",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("expected '=>' at 1:6"), "{}", bad.body);
    let bad_json = http(n.api, "PUT", "/api/1/dtabs/web", &[json], "[null]").await;
    assert_eq!(bad_json.status, 400);
    let no_type = http(n.api, "PUT", "/api/1/dtabs/web", &[], "/a=>/b").await;
    assert_eq!(no_type.status, 400);
    let odd_type = http(
        n.api,
        "PUT",
        "/api/1/dtabs/web",
        &[("Content-Type", "image/png")],
        "/a=>/b",
    )
    .await;
    assert_eq!(odd_type.status, 400);
    assert!(
        odd_type
            .body
            .starts_with("Invalid Content-Type \"image/png\"."),
        "{}",
        odd_type.body
    );
    let after = http(
        n.api,
        "GET",
        "/api/1/dtabs/web",
        &[("Accept", "text/plain")],
        "",
    )
    .await;
    assert_eq!(
        after.body,
        "/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/9\n"
    );
    assert_eq!(after.header("etag"), Some("AAAAAAAAAAI="));

    // PUT without If-Match creates.
    assert_eq!(
        http(n.api, "PUT", "/api/1/dtabs/other", &[DTAB], "/a=>/b")
            .await
            .status,
        204
    );
    assert_eq!(
        http(n.api, "DELETE", "/api/1/dtabs/other", &[], "")
            .await
            .status,
        204
    );
    assert_eq!(
        http(n.api, "DELETE", "/api/1/dtabs/other", &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        http(n.api, "GET", "/api/1/dtabs/other", &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        http(n.api, "GET", "/api/1/dtabs/bad%2Fname", &[], "")
            .await
            .status,
        400
    );

    let unmatched = http(n.api, "GET", "/api/2/whatever", &[], "").await;
    assert_eq!((unmatched.status, unmatched.body.as_str()), (404, ""));
}

#[tokio::test]
async fn binding_resolving_and_delegating() {
    let n = start("").await;
    let bound = http(
        n.api,
        "GET",
        "/api/1/bind/default?path=/svc/web/api",
        &[],
        "",
    )
    .await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    assert_eq!(
        bound.body,
        "{\"type\":\"leaf\",\"bound\":{\"addr\":{\"type\":\"bound\",\"addrs\":[{\"ip\":\"127.0.0.1\",\"port\":8080,\"meta\":{}}],\"meta\":{}},\"id\":\"/#/io.l5d.fs/web\",\"path\":\"/api\"}}\n"
    );
    let extra = http(
        n.api,
        "GET",
        "/api/1/bind/default?path=/svc/web&dtab=/svc/web%3D%3E/%24/inet/127.0.0.1/7",
        &[],
        "",
    )
    .await;
    assert!(
        extra.body.contains("\"id\":\"/$/inet/127.0.0.1/7\""),
        "{} {}",
        extra.status,
        extra.body
    );

    let resolved = http(
        n.api,
        "GET",
        "/api/1/resolve/default?path=/svc/web",
        &[],
        "",
    )
    .await;
    assert_eq!(
        resolved.body,
        "{\"type\":\"bound\",\"addrs\":[{\"ip\":\"127.0.0.1\",\"port\":8080,\"meta\":{}}],\"meta\":{}}\n"
    );
    let neg = http(
        n.api,
        "GET",
        "/api/1/resolve/default?path=/svc/missing",
        &[],
        "",
    )
    .await;
    assert_eq!(neg.body, "{\"type\":\"neg\"}\n");
    let addr = http(
        n.api,
        "GET",
        "/api/1/addr/default?path=/%23/io.l5d.fs/web",
        &[],
        "",
    )
    .await;
    assert_eq!(addr.body, resolved.body);

    let delegated = http(
        n.api,
        "GET",
        "/api/1/delegate/default?path=/svc/missing",
        &[],
        "",
    )
    .await;
    assert_eq!(
        delegated.body,
        "{\"type\":\"delegate\",\"path\":\"/svc/missing\",\"delegate\":{\"type\":\"neg\",\"path\":\"/#/io.l5d.fs/missing\",\"dentry\":{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}}}\n"
    );

    let bad_path = http(n.api, "GET", "/api/1/bind/default?path=svc", &[], "").await;
    assert_eq!(bad_path.status, 400);
    assert!(
        bad_path
            .body
            .starts_with("Invalid path: svc / expected '/'"),
        "{}",
        bad_path.body
    );
    let bad_dtab = http(
        n.api,
        "GET",
        "/api/1/delegate/default?path=/svc/web&dtab=/x%3D%3E",
        &[],
        "",
    )
    .await;
    assert_eq!(bad_dtab.status, 400);
    assert!(
        bad_dtab.body.starts_with("Invalid dtab: "),
        "{}",
        bad_dtab.body
    );
    assert_eq!(
        http(n.api, "GET", "/api/1/bind/nope?path=/svc/web", &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        http(n.api, "DELETE", "/api/1/delegate", &[], "")
            .await
            .status,
        405
    );
    assert_eq!(
        http(n.api, "POST", "/api/1/delegate", &[DTAB], "x")
            .await
            .status,
        415
    );
    let posted = http(
        n.api,
        "POST",
        "/api/1/delegate",
        &[("Content-Type", "application/json")],
        r#"{"namespace":"default","path":"/svc/missing"}"#,
    )
    .await;
    assert_eq!(posted.body, delegated.body);
}

#[tokio::test]
async fn watches_stream_each_change_once() {
    let n = start("").await;
    let mut dtab = Watch::open(n.api, "/api/1/dtabs/default?watch=true").await;
    assert_eq!(
        dtab.next().await,
        "[{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}]"
    );
    let mut bind = Watch::open(n.api, "/api/1/bind/default?path=/svc/web&watch=1").await;
    assert!(bind.next().await.contains("\"port\":8080"));

    // An endpoint change reaches the bind watch through the leaf's address.
    std::fs::write(n.disco.path().join("web"), "127.0.0.1 8081\n").unwrap();
    assert!(bind.next().await.contains("\"port\":8081"));

    // A dtab change reaches both.
    let put = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        &[DTAB],
        "/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/9",
    )
    .await;
    assert_eq!(put.status, 204);
    assert!(dtab.next().await.contains("/$/inet/127.0.0.1/9"));
    assert!(bind.next().await.contains("\"id\":\"/$/inet/127.0.0.1/9\""));

    // Writing the same dtab again sends nothing new on the bind watch; the
    // next real change arrives as the next line.
    http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        &[DTAB],
        "/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/9",
    )
    .await;
    http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        &[DTAB],
        "/svc=>/#/io.l5d.fs",
    )
    .await;
    assert!(bind.next().await.contains("\"port\":8081"));

    let names = http(n.api, "GET", "/api/1/bound-names", &[], "").await;
    assert_eq!(names.body, "[\"/#/io.l5d.fs/web\"]\n");
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_set() {
    let n = start("  writeToken: s3cret\n").await;
    let denied = http(n.api, "PUT", "/api/1/dtabs/default", &[DTAB], "/a=>/b").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let wrong = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        &[DTAB, ("Authorization", "Bearer nope")],
        "/a=>/b",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let ok = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        &[DTAB, ("Authorization", "Bearer s3cret")],
        "/a=>/b",
    )
    .await;
    assert_eq!(ok.status, 204);
    // Reads stay open.
    assert_eq!(
        http(n.api, "GET", "/api/1/dtabs/default", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn admin_exports_the_namers_counters() {
    // A Consul agent that is never asked: the counters are there, at zero.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\nnamers:\n- kind: io.l5d.consul\n  host: 127.0.0.1\n  port: {port}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n"
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let metrics = http(
        running.admin_addr,
        "GET",
        "/admin/metrics/prometheus",
        &[],
        "",
    )
    .await
    .body;
    // Linkerd's scope, `namer/<prefix>/`, escaped into the name.
    for line in [
        "namer:__io_l5d_consul:state_changes 0",
        "namer:__io_l5d_consul:errors 0",
        "namer:__io_l5d_consul:watches_started 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
    let json = http(running.admin_addr, "GET", "/admin/metrics.json", &[], "")
        .await
        .body;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["namer/#/io.l5d.consul/state_changes"], 0, "{json:#}");
    running.stop().await;
}

#[tokio::test]
async fn admin_serves_ping_and_metrics() {
    let n = start("").await;
    assert_eq!(
        http(n.admin, "GET", "/admin/ping", &[], "").await.body,
        "pong"
    );
    http(n.api, "PUT", "/api/1/dtabs/default", &[DTAB], "/a=>/b").await;
    let metrics = http(n.admin, "GET", "/admin/metrics/prometheus", &[], "")
        .await
        .body;
    for line in [
        "interface:io_l5d_httpController:io_l5d_httpController:route:api_1_dtabs__ns_:PUT:status:204 1",
        "dtabstore:put:success 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

#[tokio::test]
async fn stopping_namerd_ends_open_watches() {
    let n = start("").await;
    let mut watch = Watch::open(n.api, "/api/1/bind/default?path=/svc/web&watch=1").await;
    assert!(watch.next().await.contains("\"port\":8080"));
    let stopped = tokio::spawn(n.running.stop());
    watch.ended().await;
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(n.api).await.is_err(),
        "namerd still accepts after stop"
    );
}

/// A response read strictly as HTTP/1.1: the head, then the body by its
/// `Content-Length` or chunk by chunk.
struct RawResponse {
    reader: BufReader<TcpStream>,
    status_line: String,
    headers: Vec<(String, String)>,
}

impl RawResponse {
    async fn read(stream: TcpStream) -> RawResponse {
        Self::read_from(BufReader::new(stream)).await
    }

    async fn read_from(mut reader: BufReader<TcpStream>) -> RawResponse {
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            assert!(line.ends_with("\r\n"), "{line:?}");
            if line == "\r\n" {
                break;
            }
            let (k, v) = line.trim_end().split_once(": ").unwrap();
            headers.push((k.to_ascii_lowercase(), v.to_string()));
        }
        RawResponse {
            reader,
            status_line: status_line.trim_end().to_string(),
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next chunk's data; empty for the last chunk.
    async fn chunk(&mut self) -> String {
        assert_eq!(self.header("transfer-encoding"), Some("chunked"));
        tokio::time::timeout(Duration::from_secs(5), async {
            let mut size = String::new();
            self.reader.read_line(&mut size).await.unwrap();
            let size = usize::from_str_radix(size.trim_end(), 16).unwrap();
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).await.unwrap();
            assert_eq!(&data[size..], b"\r\n");
            data.truncate(size);
            String::from_utf8(data).unwrap()
        })
        .await
        .expect("no chunk within 5 s")
    }

    async fn fixed_body(&mut self) -> String {
        let len: usize = self.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }

    async fn closed(mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), self.reader.read_to_end(&mut rest))
            .await
            .expect("the connection stayed open")
            .unwrap();
        assert!(rest.is_empty(), "bytes after the response: {rest:?}");
    }
}

async fn send(addr: SocketAddr, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn a_watch_connection_is_chunked_and_closes_when_the_stream_ends() {
    let n = start("").await;
    let stream = send(
        n.api,
        "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: namerd\r\n\r\n",
    )
    .await;
    let mut watch = RawResponse::read(stream).await;
    assert_eq!(watch.status_line, "HTTP/1.1 200 OK");
    assert_eq!(watch.header("content-type"), Some("application/json"));
    assert_eq!(watch.header("content-length"), None);
    assert!(watch.header("date").is_some());
    // Served by the watch path, which closes the connection after the body.
    assert_eq!(watch.header("connection"), Some("close"));
    assert_eq!(
        watch.chunk().await,
        "[{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}]\n"
    );

    let put = http(n.api, "PUT", "/api/1/dtabs/default", &[DTAB], "/a=>/b").await;
    assert_eq!(put.status, 204);
    assert_eq!(
        watch.chunk().await,
        "[{\"prefix\":\"/a\",\"dst\":\"/b\"}]\n"
    );

    // Deleting the namespace ends the stream with a message, the last
    // chunk, and the end of the connection.
    let deleted = http(n.api, "DELETE", "/api/1/dtabs/default", &[], "").await;
    assert_eq!(deleted.status, 204);
    assert_eq!(watch.chunk().await, "namespace default was deleted\n");
    assert_eq!(watch.chunk().await, "");
    watch.closed().await;

    // Counted like any other request, and as a stream that has ended.
    let json = http(n.admin, "GET", "/admin/metrics.json", &[], "")
        .await
        .body;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let server = "interface/io.l5d.httpController/io.l5d.httpController";
    for (key, value) in [
        ("route/api/1/dtabs/{ns}/GET/status/200", 1),
        ("http/stream/response/opened", 1),
        ("http/stream/response/closed", 1),
    ] {
        assert_eq!(json[format!("{server}/{key}")], value, "{key}: {json:#}");
    }
}

#[tokio::test]
async fn a_watch_of_a_missing_namespace_gets_a_complete_error() {
    let n = start("").await;
    let stream = send(
        n.api,
        "GET /api/1/dtabs/nope?watch=1 HTTP/1.1\r\nHost: namerd\r\n\r\n",
    )
    .await;
    let mut reply = RawResponse::read(stream).await;
    assert_eq!(reply.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(reply.header("transfer-encoding"), None);
    assert_eq!(reply.fixed_body().await, "namespace nope does not exist\n");
    assert_eq!(reply.header("connection"), Some("close"));
    reply.closed().await;
}

#[tokio::test]
async fn other_requests_keep_their_connection_alive() {
    let n = start("").await;
    // Two plain requests, then a watch, on one connection.
    let list = "GET /api/1/dtabs HTTP/1.1\r\nHost: namerd\r\n\r\n";
    let mut stream = send(n.api, list).await;
    for round in 0..2 {
        let mut reply = RawResponse::read(stream).await;
        assert_eq!(reply.status_line, "HTTP/1.1 200 OK");
        assert_eq!(reply.header("connection"), None);
        assert_eq!(reply.fixed_body().await, "[\"default\"]\n");
        // Nothing is left unread: the body was exactly Content-Length long.
        stream = reply.reader.into_inner();
        let next = if round == 0 {
            list
        } else {
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: namerd\r\n\r\n"
        };
        stream.write_all(next.as_bytes()).await.unwrap();
    }
    let mut watch = RawResponse::read(stream).await;
    assert_eq!(watch.status_line, "HTTP/1.1 200 OK");
    // hyper serves the whole connection, watch included.
    assert_eq!(watch.header("connection"), None);
    assert_eq!(
        watch.chunk().await,
        "[{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}]\n"
    );
    http(n.api, "PUT", "/api/1/dtabs/default", &[DTAB], "/a=>/b").await;
    assert_eq!(
        watch.chunk().await,
        "[{\"prefix\":\"/a\",\"dst\":\"/b\"}]\n"
    );
}

#[tokio::test]
async fn closing_a_watch_connection_releases_the_watch() {
    // Kept a second after its last watcher leaves, then released.
    let n = start("bindingCache:\n  idleTtlSecs: 1\n").await;
    let stream = send(
        n.api,
        "GET /api/1/bind/default?path=/svc/web&watch=true HTTP/1.1\r\nHost: namerd\r\n\r\n",
    )
    .await;
    let mut watch = RawResponse::read(stream).await;
    assert!(watch.chunk().await.contains("\"port\":8080"));
    assert_eq!(n.running.namerd.live_bindings(), 1);
    drop(watch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        n.running.namerd.live_bindings(),
        1,
        "released before the idle TTL"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        while n.running.namerd.live_bindings() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the binding outlived its only watcher");
}

#[tokio::test]
async fn an_admin_shutdown_before_anyone_waits_is_not_lost() {
    let yaml = "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n";
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let reply = http(running.admin_addr, "POST", "/admin/shutdown", &[], "").await;
    assert_eq!(reply.status, 200);
    // Only now does anything wait for the request: it must still be seen.
    tokio::time::timeout(Duration::from_secs(5), running.shutdown_requested())
        .await
        .expect("the shutdown request was lost");
    // And the API still answered until the stop.
    let reply = http(running.api_addrs[0], "GET", "/api/1/dtabs", &[], "").await;
    assert_eq!(reply.status, 200);
    running.stop().await;
}

/// `text` with everything but unreserved characters and `/` percent-encoded,
/// for a query parameter.
fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// Time is paused: a request that waited for a timer (the wait for a first
// answer, the settle timeout) would show it in the elapsed time.
#[tokio::test(start_paused = true)]
async fn a_dtab_over_the_binding_limits_is_a_400() {
    let n = start("").await;
    // The exponential-binding report's dtab: 22 levels of `/a => /b & /b`.
    let mut hostile = String::from("/svc/web=>/a0;");
    for i in 0..22 {
        hostile.push_str(&format!("/a{i}=>/a{}&/a{};", i + 1, i + 1));
    }
    hostile.push_str("/a22=>/$/inet/127.0.0.1/8080");
    let dtab = query_encode(&hostile);
    let expected = "binding /svc/web built more than 1000 leaves (limit bindingLimits.maxLeaves), \
                    with the request's dtab\n";

    let started = tokio::time::Instant::now();
    for target in [
        format!("/api/1/bind/default?path=/svc/web&dtab={dtab}"),
        format!("/api/1/bind/default?path=/svc/web&dtab={dtab}&watch=true"),
        format!("/api/1/resolve/default?path=/svc/web&dtab={dtab}"),
        format!("/api/1/resolve/default?path=/svc/web&dtab={dtab}&watch=1"),
    ] {
        let reply = http(n.api, "GET", &target, &[], "").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, expected),
            "{target}"
        );
    }
    let delegated = http(
        n.api,
        "GET",
        &format!("/api/1/delegate/default?path=/svc/web&dtab={dtab}"),
        &[],
        "",
    )
    .await;
    assert_eq!(delegated.status, 400, "{}", delegated.body);
    assert!(
        delegated
            .body
            .starts_with("binding /svc/web built more than 1000 leaves"),
        "{}",
        delegated.body
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");

    // The name binds as before without the dtab.
    let bound = http(n.api, "GET", "/api/1/bind/default?path=/svc/web", &[], "").await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    assert!(bound.body.contains("/#/io.l5d.fs/web"), "{}", bound.body);
}

#[tokio::test]
async fn binding_limits_are_configurable() {
    let n = start("bindingLimits:\n  maxLeaves: 2\n").await;
    let dtab = query_encode("/svc/web=>/a&/a&/a;/a=>/$/inet/127.0.0.1/8080");
    let reply = http(
        n.api,
        "GET",
        &format!("/api/1/bind/default?path=/svc/web&dtab={dtab}"),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("(limit bindingLimits.maxLeaves)"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_request_dtab_over_the_size_limits_is_a_400_naming_the_limit() {
    let n = start("").await;
    // 1,001 dentries (about 9 KB): within the bytes, over the dentries.
    let many: String = (0..1001).map(|i| format!("/a{i}=>/b;")).collect();
    let target = format!(
        "/api/1/bind/default?path=/svc/web&dtab={}",
        query_encode(&many)
    );
    let reply = http(n.api, "GET", &target, &[], "").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("1001 dentries, over the limit of 1000 (localDtabLimits.maxDentries)"),
        "{}",
        reply.body
    );
    // 40 KB in a delegation's JSON body: refused before it is parsed.
    let big = format!("/svc/web=>/{}", "x".repeat(40 * 1024));
    let body = serde_json::json!({"namespace": "default", "path": "/svc/web", "dtab": big});
    let reply = http(
        n.api,
        "POST",
        "/api/1/delegate",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("over the limit of 32768 (localDtabLimits.maxBytes)"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn local_dtab_limits_are_configurable() {
    let n = start("localDtabLimits:\n  maxDentries: 2\n").await;
    let dtab = query_encode("/a=>/b;/b=>/c;/c=>/d");
    for target in [
        format!("/api/1/resolve/default?path=/svc/web&dtab={dtab}"),
        format!("/api/1/delegate/default?path=/svc/web&dtab={dtab}"),
    ] {
        let reply = http(n.api, "GET", &target, &[], "").await;
        assert_eq!(reply.status, 400, "{target}: {}", reply.body);
        assert!(
            reply.body.contains("(localDtabLimits.maxDentries)"),
            "{}",
            reply.body
        );
    }
}

/// `admin.shutdownGraceMs`: a request still in flight when namerd stops
/// (a delegation waiting on a Consul agent that never answers; namerd
/// gives up on it after 2 s) is waited for that long, then cut.
#[tokio::test]
async fn the_shutdown_grace_is_configurable() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let yaml = format!(
        "admin:\n  port: 0\n  shutdownGraceMs: 300\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    \
         default: /svc => /#/io.l5d.consul/dc1\nnamers:\n- kind: io.l5d.consul\n  host: 127.0.0.1\n  \
         port: {port}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n"
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let api = running.api_addrs[0];
    let in_flight = tokio::spawn(async move {
        http(api, "GET", "/api/1/delegate/default?path=/svc/web", &[], "").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "the delegation should still wait");
    let started = std::time::Instant::now();
    running.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "stopping took {took:?}, not about the configured 300 ms"
    );
}
