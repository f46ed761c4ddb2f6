//! namerd as users run it: the real `namerd` binary driven with the real
//! `namerctl` and plain HTTP, on the embedded store, ZooKeeper and etcd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use integration::process::{Process, binary, free_port, run};
use integration::servers::{Etcd, ZooKeeper};

/// One HTTP request; returns (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: namerd\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A `watch=true` stream's lines, read on a thread.
fn watch(addr: SocketAddr, target: &str) -> std::sync::mpsc::Receiver<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: namerd\r\n\r\n").as_bytes())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if (line.starts_with('[') || line.starts_with('{')) && tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

struct Namerd {
    process: Option<Process>,
    api: SocketAddr,
    config: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Namerd {
    fn start(storage_yaml: &str) -> Namerd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("namerd.yaml");
        std::fs::write(
            &config,
            format!(
                "admin:\n  port: {}\n{storage_yaml}interfaces:\n- kind: io.l5d.httpController\n  port: {port}\n",
                free_port()
            ),
        )
        .unwrap();
        let api: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut namerd = Namerd {
            process: None,
            api,
            config,
            dir,
        };
        namerd.restart();
        namerd
    }

    fn restart(&mut self) {
        let mut process = Process::start(
            &binary("namerd", "namerd"),
            &[self.config.to_str().unwrap()],
            self.dir.path(),
        );
        process.wait_listening(self.api);
        self.process = Some(process);
    }

    fn stop(&mut self) {
        let status = self.process.take().unwrap().terminate();
        assert!(
            status.success(),
            "namerd did not exit cleanly on SIGTERM: {status}"
        );
    }

    fn namerctl(&self, args: &[&str]) -> (i32, String, String) {
        let base = format!("http://{}", self.api);
        let mut all = vec!["--base-url", base.as_str()];
        all.extend_from_slice(args);
        let out = run(&binary("namerd", "namerctl"), &all);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

/// The operator's round: create, read, update with and without a version,
/// a rejected bad dtab, a watch that sees the update, delete, and a restart
/// that keeps what was stored.
fn operator_round(namerd: &mut Namerd, ns: &str) {
    let first = namerd.file("first.dtab", "/svc => /#/io.l5d.fs;\n");
    let (code, _, err) = namerd.namerctl(&["dtab", "create", ns, &first]);
    assert_eq!(code, 0, "create: {err}");
    let (code, _, _) = namerd.namerctl(&["dtab", "create", ns, &first]);
    assert_ne!(code, 0, "a second create must fail");

    let (code, out, err) = namerd.namerctl(&["dtab", "get", ns]);
    assert_eq!(code, 0, "get: {err}");
    assert!(out.starts_with("# version "), "{out}");
    assert!(out.contains("/svc  => /#/io.l5d.fs ;"), "{out}");
    let version = out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# version ")
        .trim()
        .to_string();

    let watcher = watch(namerd.api, &format!("/api/1/dtabs/{ns}?watch=true"));
    assert!(
        watcher
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .contains("/#/io.l5d.fs")
    );

    // An update with the current version wins and reaches the watcher.
    let second = namerd.file(
        "second.dtab",
        "/svc => /#/io.l5d.fs;\n/svc/web => /$/inet/127.0.0.1/8080;\n",
    );
    let (code, _, err) = namerd.namerctl(&["dtab", "update", ns, &second, "--version", &version]);
    assert_eq!(code, 0, "update: {err}");
    let seen = watcher.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(seen.contains("/$/inet/127.0.0.1/8080"), "{seen}");

    // The same version again is a conflict (HTTP 412), and nothing changes.
    let (code, _, err) = namerd.namerctl(&["dtab", "update", ns, &first, "--version", &version]);
    assert_eq!(code, 67, "a stale update must be a conflict: {err}");
    let (status, _) = http(
        namerd.api,
        "PUT",
        &format!("/api/1/dtabs/{ns}"),
        &[("Content-Type", "application/dtab"), ("If-Match", &version)],
        "/a=>/b",
    );
    assert_eq!(status, 412);

    // A bad dtab is refused with its position, and the stored one stays.
    let bad = namerd.file("bad.dtab", "/svc => /#/io.l5d.fs;\n/svc/web =/x;\n");
    let (code, _, err) = namerd.namerctl(&["dtab", "update", ns, &bad]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("2:10"),
        "the error should point at line 2: {err}"
    );
    let (status, body) = http(
        namerd.api,
        "PUT",
        &format!("/api/1/dtabs/{ns}"),
        &[("Content-Type", "application/dtab")],
        "/svc/web =/x",
    );
    assert_eq!(status, 400, "{body}");
    let (_, stored) = http(
        namerd.api,
        "GET",
        &format!("/api/1/dtabs/{ns}"),
        &[("Accept", "application/dtab")],
        "",
    );
    assert_eq!(
        stored.trim(),
        "/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/8080"
    );

    // A restart keeps the data.
    namerd.stop();
    namerd.restart();
    let (_, stored) = http(
        namerd.api,
        "GET",
        &format!("/api/1/dtabs/{ns}"),
        &[("Accept", "application/dtab")],
        "",
    );
    assert_eq!(
        stored.trim(),
        "/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/8080"
    );

    let (code, _, err) = namerd.namerctl(&["dtab", "delete", ns]);
    assert_eq!(code, 0, "delete: {err}");
    let (code, _, err) = namerd.namerctl(&["dtab", "get", ns]);
    assert_eq!(code, 66, "get of a deleted namespace: {err}");
    assert!(err.contains("resource was not found"), "{err}");
}

#[test]
fn embedded_store_round_trip_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "storage:\n  kind: io.switchboard.disk\n  dir: {}\n",
        dir.path().display()
    );
    let mut namerd = Namerd::start(&storage);
    operator_round(&mut namerd, "web");
}

#[test]
fn embedded_store_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "storage:\n  kind: io.switchboard.disk\n  dir: {}\n",
        dir.path().display()
    );
    let mut namerd = Namerd::start(&storage);
    for i in 0..20 {
        let (status, _) = http(
            namerd.api,
            "PUT",
            "/api/1/dtabs/prod",
            &[("Content-Type", "application/dtab")],
            &format!("/svc => /$/inet/127.0.0.1/{}", 8000 + i),
        );
        assert_eq!(status, 204);
    }
    namerd.process.take().unwrap().kill();
    namerd.restart();
    let (_, stored) = http(
        namerd.api,
        "GET",
        "/api/1/dtabs/prod",
        &[("Accept", "application/dtab")],
        "",
    );
    assert_eq!(
        stored.trim(),
        "/svc=>/$/inet/127.0.0.1/8019",
        "the last acknowledged write was lost"
    );
}

#[test]
fn zookeeper_store_round_trip_and_restart() {
    let Some(zk) = ZooKeeper::start() else { return };
    let storage = format!(
        "storage:\n  kind: io.l5d.zk\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n  pathPrefix: /namerd-process-test\n",
        zk.port()
    );
    let mut namerd = Namerd::start(&storage);
    operator_round(&mut namerd, "web");
}

#[test]
fn etcd_store_round_trip_and_restart() {
    let Some(etcd) = Etcd::start() else { return };
    let storage = format!(
        "storage:\n  kind: io.l5d.etcd\n  host: 127.0.0.1\n  port: {}\n  pathPrefix: /namerd-process-test\n",
        etcd.port()
    );
    let mut namerd = Namerd::start(&storage);
    operator_round(&mut namerd, "web");
}

#[test]
fn check_accepts_good_configs_and_names_the_mistake_in_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write(
        "good.yaml",
        "storage:\n  kind: io.l5d.inMemory\ninterfaces:\n- kind: io.l5d.httpController\n",
    );
    let out = run(
        &binary("namerd", "namerd"),
        &["--check", good.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = write(
        "bad.yaml",
        "storage:\n  kind: io.l5d.inMemory\ninterfaces:\n- kind: io.l5d.destination\n",
    );
    let out = run(
        &binary("namerd", "namerd"),
        &["--check", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("io.l5d.destination"),
        "{err}"
    );
    assert!(Path::new(&bad).exists());

    // --check builds what a start builds: a namer's own keys are checked.
    let bad_namer = write(
        "bad_namer.yaml",
        "storage:\n  kind: io.l5d.inMemory\nnamers:\n- kind: io.l5d.fs\n  rootDir: /tmp\n  rootdirr: /tmp\n\
         interfaces:\n- kind: io.l5d.httpController\n",
    );
    let out = run(
        &binary("namerd", "namerd"),
        &["--check", bad_namer.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("bad_namer.yaml") && err.contains("namers[0]") && err.contains("rootdirr"),
        "{err}"
    );
}
