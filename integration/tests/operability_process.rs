//! The router and namerd binaries as an orchestrator and a log collector
//! see them: stderr read through a pipe (no terminal colours; one JSON
//! object a line in json mode, with the fields of a namer outage and its
//! recovery), `/admin/ready` flipping from 503 to 200 when namerd comes
//! up, and the log level changed at run time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use integration::consul::{FakeConsul, Instance};
use integration::process::{Process, binary, free_port};
use serde_json::Value;

/// One request on a fresh connection; (status, body).
fn http(addr: SocketAddr, method: &str, target: &str, host: &str, body: &str) -> (u16, String) {
    integration::process::http(addr, method, target, host, &[], body)
}

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A backend process answering 200.
fn backend(dir: &Path) -> (SocketAddr, Process) {
    let port = free_port();
    let mut process = Process::start(
        &binary("integration", "flaky_backend"),
        &[&port.to_string(), "200", "0", "web"],
        dir,
    );
    process.wait_listening(local(port));
    (local(port), process)
}

/// Every line of a json-mode log, parsed; panics on a line that is not
/// one JSON object with the four fields every line has.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nlog:\n{log}"));
            for field in ["time", "level", "target", "message"] {
                assert!(
                    value.get(field).is_some_and(Value::is_string),
                    "no {field} in {line}"
                );
            }
            value
        })
        .collect()
}

/// Waits until the process's log has a JSON line for which `want` holds.
fn wait_for_line(process: &Process, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        if let Some(line) = json_lines(&process.log()).into_iter().find(|l| want(l)) {
            return line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no log line {what}:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn message_has(line: &Value, text: &str) -> bool {
    line["message"].as_str().is_some_and(|m| m.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_namer_through_an_outage_and_its_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _web) = backend(dir.path());
    let consul = FakeConsul::start().await.unwrap();
    consul.register(&Instance::new("web", "127.0.0.1", web.port()));
    let (port, admin) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "router.yaml",
        &format!(
            "admin: {{ip: 127.0.0.1, port: {admin}}}
namers:
- kind: io.l5d.consul
  host: 127.0.0.1
  port: {consul_port}
routers:
- protocol: http
  label: edge
  dtab: /svc => /#/io.l5d.consul/dc1;
  servers: [{{ip: 127.0.0.1, port: {port}}}]
",
            consul_port = consul.addr().port()
        ),
    );
    let mut router = Process::start_piped(
        &binary("router", "router"),
        &["--log-format", "json", &config],
        &[],
        dir.path(),
    );
    router.wait_listening(local(admin));
    let loaded = wait_for_line(&router, "saying the config loaded", |l| {
        message_has(l, "config loaded")
    });
    assert_eq!(loaded["level"], "info");
    assert!(loaded["config"].as_str().unwrap().ends_with("router.yaml"));

    let answer = tokio::task::spawn_blocking(move || http(local(port), "GET", "/", "web", ""));
    assert_eq!(answer.await.unwrap().0, 200);

    // Consul loses its leader: the namer keeps the last endpoints, and
    // says so once, naming itself.
    consul.set_down(true);
    let failing = wait_for_line(&router, "about the consul outage", |l| {
        l["namer"] == "io.l5d.consul" && message_has(l, "watch failing")
    });
    assert_eq!(failing["level"], "warn");
    assert!(failing["error"].is_string(), "{failing}");
    assert!(
        failing["watch"].as_str().unwrap().contains("web"),
        "{failing}"
    );
    let answer = tokio::task::spawn_blocking(move || http(local(port), "GET", "/", "web", ""));
    assert_eq!(
        answer.await.unwrap().0,
        200,
        "the last good endpoints route"
    );

    consul.set_down(false);
    let recovered = wait_for_line(&router, "about the recovery", |l| {
        l["namer"] == "io.l5d.consul" && message_has(l, "recovered")
    });
    assert_eq!(recovered["level"], "info");

    // Every line, to the last, is one JSON object.
    let lines = json_lines(&router.log());
    let outage_lines = lines
        .iter()
        .filter(|l| l["namer"] == "io.l5d.consul" && message_has(l, "watch failing"))
        .count();
    assert_eq!(outage_lines, 1, "one warning per outage:\n{}", router.log());
    assert!(!router.log().contains('\u{1b}'));
}

#[test]
fn ready_flips_when_namerd_comes_up_and_logs_have_no_colours_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _web) = backend(dir.path());
    let (namerd_port, namerd_admin) = (free_port(), free_port());
    let (port, admin) = (free_port(), free_port());
    let router_config = write(
        dir.path(),
        "router.yaml",
        &format!(
            "admin: {{ip: 127.0.0.1, port: {admin}}}
routers:
- protocol: http
  label: edge
  interpreter:
    kind: io.l5d.namerd.http
    dst: 127.0.0.1:{namerd_port}
    namespace: web
    retry: {{baseSeconds: 0.1, maxSeconds: 0.5}}
  servers: [{{ip: 127.0.0.1, port: {port}}}]
"
        ),
    );
    // Text mode (the default), read through a pipe.
    let mut router = Process::start_piped(
        &binary("router", "router"),
        &[&router_config],
        &[],
        dir.path(),
    );
    router.wait_listening(local(admin));
    assert_eq!(http(local(admin), "GET", "/admin/ping", "a", "").0, 200);
    let (status, why) = http(local(admin), "GET", "/admin/ready", "a", "");
    assert_eq!(status, 503, "{why}");
    assert!(
        why.contains("router edge") && why.contains("namerd"),
        "{why}"
    );

    let namerd_config = write(
        dir.path(),
        "namerd.yaml",
        &format!(
            "admin: {{ip: 127.0.0.1, port: {namerd_admin}}}
storage:
  kind: io.l5d.inMemory
  namespaces:
    web: /svc => /$/inet/127.0.0.1/{web_port}
interfaces:
- kind: io.l5d.httpController
  ip: 127.0.0.1
  port: {namerd_port}
",
            web_port = web.port()
        ),
    );
    // JSON chosen by the environment variable.
    let mut namerd = Process::start_piped(
        &binary("namerd", "namerd"),
        &[&namerd_config],
        &[("SWITCHBOARD_LOG_FORMAT", "json")],
        dir.path(),
    );
    namerd.wait_listening(local(namerd_port));
    assert_eq!(
        http(local(namerd_admin), "GET", "/admin/ready", "a", "").0,
        200
    );

    let started = Instant::now();
    loop {
        let (status, body) = http(local(admin), "GET", "/admin/ready", "a", "");
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {status}: {body}\n{}",
            router.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(local(port), "GET", "/", "web", "").0, 200);
    // The interpreter's own figures, in the metrics tree.
    let (_, metrics) = http(local(admin), "GET", "/admin/metrics.json", "a", "");
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    let interpreter = "rt/edge/interpreter/io.l5d.namerd.http";
    assert_eq!(
        metrics[format!("{interpreter}/namerd/answering")].as_f64(),
        Some(1.0),
        "{metrics:#}"
    );
    assert!(metrics[format!("{interpreter}/watches/opened")].as_u64() >= Some(1));
    assert_eq!(
        metrics[format!("{interpreter}/bindcache.size")].as_f64(),
        Some(1.0)
    );

    let router_log = router.log();
    assert!(
        router_log.contains("namerd unreachable") && router_log.contains("namerd answers again"),
        "{router_log}"
    );
    assert!(router_log.contains("INFO"), "{router_log}");
    assert!(
        !router_log.contains('\u{1b}'),
        "colour codes in a pipe: {router_log:?}"
    );
    let namerd_lines = json_lines(&namerd.log());
    assert!(
        namerd_lines.iter().any(|l| message_has(l, "config loaded")),
        "{}",
        namerd.log()
    );

    // SIGHUP, as `systemctl reload` sends it: namerd logs it and goes on.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &namerd.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for_line(&namerd, "about SIGHUP", |l| message_has(l, "SIGHUP"));
    assert_eq!(
        http(local(namerd_admin), "GET", "/admin/ping", "a", "").0,
        200
    );

    // The log level, changed at run time, Linkerd's way and as a filter.
    let (status, _) = http(
        local(admin),
        "POST",
        "/logging.json?logger=router&level=DEBUG",
        "a",
        "",
    );
    assert_eq!(status, 200);
    let (_, loggers) = http(local(admin), "GET", "/logging.json", "a", "");
    let loggers: Value = serde_json::from_str(&loggers).unwrap();
    assert!(
        loggers
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["logger"] == "router" && l["level"] == "DEBUG"),
        "{loggers}"
    );
    let (status, why) = http(local(admin), "PUT", "/admin/logging", "a", "info,=[");
    assert_eq!(status, 400, "{why}");
    let (_, filter) = http(local(admin), "GET", "/admin/logging", "a", "");
    assert!(filter.contains("router=debug"), "{filter}");
    let (status, _) = http(local(namerd_admin), "PUT", "/admin/logging", "a", "warn");
    assert_eq!(status, 200);
    assert_eq!(
        http(local(namerd_admin), "GET", "/admin/logging", "a", "").1,
        "warn\n"
    );

    assert!(router.terminate().success());
    assert!(namerd.terminate().success());
}
