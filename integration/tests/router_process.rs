//! The router as users run it: the real `router` and `namerd` binaries, a
//! backend, and traffic that must keep flowing while namerd restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration::process::{Process, binary, free_port, hello_backend, run};

/// GET through the router on a fresh connection; returns (status, body).
fn get(router: SocketAddr, host: &str, extra: &[(&str, &str)]) -> (u16, String) {
    integration::process::http(router, "GET", "/", host, extra, "")
}

struct Mesh {
    dir: tempfile::TempDir,
    namerd_config: std::path::PathBuf,
    namerd_api: SocketAddr,
    namerd: Option<Process>,
    router: Process,
    router_addr: SocketAddr,
}

impl Mesh {
    fn start() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let disco = dir.path().join("disco");
        std::fs::create_dir_all(&disco).unwrap();
        let v1 = hello_backend("v1");
        let v2 = hello_backend("v2");
        std::fs::write(disco.join("web-v1"), format!("127.0.0.1 {}\n", v1.port())).unwrap();
        std::fs::write(disco.join("web-v2"), format!("127.0.0.1 {}\n", v2.port())).unwrap();

        let namerd_port = free_port();
        let namerd_config = dir.path().join("namerd.yaml");
        std::fs::write(
            &namerd_config,
            format!(
                "admin:\n  port: {}\nstorage:\n  kind: io.switchboard.disk\n  dir: {}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: {namerd_port}\n",
                free_port(),
                dir.path().join("dtabs").display(),
                disco.display()
            ),
        )
        .unwrap();
        let namerd_api: SocketAddr = ([127, 0, 0, 1], namerd_port).into();
        let mut namerd = Process::start(
            &binary("namerd", "namerd"),
            &[namerd_config.to_str().unwrap()],
            dir.path(),
        );
        namerd.wait_listening(namerd_api);
        let dtab = dir.path().join("default.dtab");
        std::fs::write(
            &dtab,
            "/svc => /#/io.l5d.fs;\n/svc/web => /#/io.l5d.fs/web-v1;\n",
        )
        .unwrap();
        let base = format!("http://{namerd_api}");
        let out = run(
            &binary("namerd", "namerctl"),
            &[
                "--base-url",
                &base,
                "dtab",
                "create",
                "default",
                dtab.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let router_port = free_port();
        let router_config = dir.path().join("router.yaml");
        std::fs::write(
            &router_config,
            format!(
                "admin:\n  port: {}\nrouters:\n- protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{namerd_port}\n    namespace: default\n    retry: {{baseSeconds: 0.05, maxSeconds: 0.5}}\n  servers:\n  - port: {router_port}\n",
                free_port()
            ),
        )
        .unwrap();
        let check = run(
            &binary("router", "router"),
            &["--check", router_config.to_str().unwrap()],
        );
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let router_addr: SocketAddr = ([127, 0, 0, 1], router_port).into();
        let mut router = Process::start(
            &binary("router", "router"),
            &[router_config.to_str().unwrap()],
            dir.path(),
        );
        router.wait_listening(router_addr);
        Mesh {
            dir,
            namerd_config,
            namerd_api,
            namerd: Some(namerd),
            router,
            router_addr,
        }
    }

    fn namerctl_update(&self, text: &str) {
        let dtab = self.dir.path().join("update.dtab");
        std::fs::write(&dtab, text).unwrap();
        let base = format!("http://{}", self.namerd_api);
        let out = run(
            &binary("namerd", "namerctl"),
            &[
                "--base-url",
                &base,
                "dtab",
                "update",
                "default",
                dtab.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until a request for `host` is answered by `expected`.
    fn wait_for(&self, host: &str, expected: &str) {
        let started = Instant::now();
        loop {
            let (status, body) = get(self.router_addr, host, &[]);
            if status == 200 && body.contains(expected) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still {status} {body:?}:\n{}",
                self.router.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn routes_through_namerd_follow_namerctl_and_overrides() {
    let mesh = Mesh::start();
    mesh.wait_for("web", "v1");
    // A per-request override.
    let (status, body) = get(
        mesh.router_addr,
        "web",
        &[("l5d-dtab", "/svc/web => /#/io.l5d.fs/web-v2")],
    );
    assert_eq!((status, body.as_str()), (200, "hello from v2\n"));
    // A malformed override is the client's mistake.
    let (status, _) = get(mesh.router_addr, "web", &[("l5d-dtab", "/svc/web =>")]);
    assert_eq!(status, 400);
    // An unknown name says so.
    let (status, body) = get(mesh.router_addr, "nope", &[]);
    assert_eq!(status, 502, "{body}");
    // A dtab change made with namerctl reaches the router's routing.
    mesh.namerctl_update("/svc => /#/io.l5d.fs;\n/svc/web => /#/io.l5d.fs/web-v2;\n");
    mesh.wait_for("web", "v2");
}

#[test]
fn traffic_keeps_flowing_while_namerd_restarts() {
    traffic_keeps_flowing_while_namerd_stops(Stop::Kill);
}

#[test]
fn traffic_keeps_flowing_while_namerd_is_stopped_and_started() {
    traffic_keeps_flowing_while_namerd_stops(Stop::Terminate);
}

/// How namerd goes away.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL, as a crash.
    Kill,
    /// SIGTERM, as a deploy or a restart by the service manager.
    Terminate,
}

fn traffic_keeps_flowing_while_namerd_stops(how: Stop) {
    let mut mesh = Mesh::start();
    mesh.wait_for("web", "v1");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, router) =
                (stop.clone(), ok.clone(), failed.clone(), mesh.router_addr);
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                    match get(router, "web", &[]) {
                        (200, body) if body == "hello from v1\n" => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    // namerd goes away, stays down for a while, and comes back.
    let namerd = mesh.namerd.take().unwrap();
    match how {
        Stop::Kill => namerd.kill(),
        Stop::Terminate => {
            namerd.terminate();
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let mut namerd = Process::start(
        &binary("namerd", "namerd"),
        &[mesh.namerd_config.to_str().unwrap()],
        mesh.dir.path(),
    );
    namerd.wait_listening(mesh.namerd_api);
    mesh.namerd = Some(namerd);
    // After the restart, updates flow to the router again.
    mesh.namerctl_update("/svc => /#/io.l5d.fs;\n/svc/web => /#/io.l5d.fs/web-v1;\n/svc/new => /#/io.l5d.fs/web-v2;\n");
    mesh.wait_for("new", "v2");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "only {ok} requests completed");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed while namerd restarted ({how:?}):\n{}",
        ok + failed,
        mesh.router.log()
    );
}

#[test]
fn check_names_the_mistake_in_a_bad_router_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("linkerd.yaml");
    std::fs::write(
        &bad,
        "routers:\n- protocol: thriftmux\n  servers:\n  - port: 4140\n",
    )
    .unwrap();
    let out = run(
        &binary("router", "router"),
        &["--check", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linkerd.yaml")
            && err.contains("routers[0].protocol: line 2:")
            && err.contains("protocol kind \"thriftmux\" is not supported yet"),
        "{err}"
    );
    assert!(err.contains("http, h2"), "{err}");

    std::fs::write(
        &bad,
        "routers:\n- protocol: http\n  servers:\n  - port: 4140\n    portt: 1\n",
    )
    .unwrap();
    let out = run(
        &binary("router", "router"),
        &["--check", bad.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("routers[0].servers[0].portt") || err.contains("unknown field `portt`"),
        "{err}"
    );
}

#[test]
fn the_example_configs_are_valid() {
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let dir = tempfile::tempdir().unwrap();
    // standalone.yaml reads services from ./disco.
    std::fs::create_dir(dir.path().join("disco")).unwrap();
    for name in [
        "per-host.yaml",
        "sidecar.yaml",
        "standalone.yaml",
        "k8s-daemonset.yaml",
        "retries.yaml",
    ] {
        let out = std::process::Command::new(binary("router", "router"))
            .arg("--check")
            .arg(configs.join(name))
            .current_dir(dir.path())
            // The daemonset config's localnode transformer needs to know
            // its node, as the pod's downward API would tell it.
            .env("NODE_NAME", "node-a")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // namerd.yaml, with its store and its io.l5d.fs directory moved to a
    // temporary directory (--check builds the namers, which need it).
    let text = std::fs::read_to_string(configs.join("namerd.yaml")).unwrap();
    let disco = dir.path().join("disco");
    std::fs::create_dir_all(&disco).unwrap();
    let moved = text
        .replace(
            "/var/lib/namerd",
            &dir.path().join("store").display().to_string(),
        )
        .replace("/etc/switchboard/disco", &disco.display().to_string());
    let config = dir.path().join("namerd.yaml");
    std::fs::write(&config, moved).unwrap();
    let out = run(
        &binary("namerd", "namerd"),
        &["--check", config.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "namerd.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Linkerd config that uses what this build lacks is refused with "not
/// supported yet", the file, the key path and the line; one that only says
/// `experimental: true` is accepted.
#[test]
fn linkerd_kinds_and_keys_not_here_yet_are_named_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linkerd.yaml");
    let head = "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/1\n";
    let cases = [
        (
            format!(
                "{head}  client:\n    clientSession:\n      idleTimeMs: 5\n  servers:\n  - port: 0\n"
            ),
            "routers[0].client: clientSession: line 5",
        ),
        (
            format!(
                "{head}  servers:\n  - port: 0\n    announce:\n    - /#/io.l5d.serversets/web\n"
            ),
            "routers[0].servers[0].announce: line 6",
        ),
        (
            format!("{head}  servers:\n  - port: 0\nnamers:\n- kind: io.l5d.rancher\n"),
            "namers[0]: line 7",
        ),
        (
            format!(
                "{head}  identifier:\n    kind: io.l5d.k8s.istio-ingress\n  servers:\n  - port: 0\n"
            ),
            "routers[0].identifier[0]: line 4",
        ),
    ];
    for (config, at) in cases {
        std::fs::write(&path, &config).unwrap();
        let out = run(
            &binary("router", "router"),
            &["--check", path.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(
            err.contains("linkerd.yaml") && err.contains(at) && err.contains("not supported yet"),
            "{config}\n{err}"
        );
    }
    std::fs::write(
        &path,
        format!("{head}  experimental: true\n  interpreter:\n    kind: default\n    experimental: true\n  servers:\n  - port: 0\n"),
    )
    .unwrap();
    let out = run(
        &binary("router", "router"),
        &["--check", path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
