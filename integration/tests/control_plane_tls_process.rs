//! The control plane over TLS as users run it: the real `namerd`,
//! `namerctl` and `router` binaries with certificates from a test CA;
//! namerd's API on mutual TLS driven with namerctl and Debian's curl, a
//! router that reaches it over mutual TLS and routes a request, both admin
//! servers on TLS checked with curl and `openssl s_client`, and the ways
//! it goes wrong: plaintext to a TLS port, no client certificate, the
//! wrong name, bad files at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration::pki::{Leaf, Pki};
use integration::process::{Process, binary, free_port, hello_backend, run};
use integration::tls_clients::{self, Run};

/// The names in namerd's certificates (the API's and the admin server's).
const NAMERD_NAMES: &[&str] = &["namerd.test", "127.0.0.1"];

/// Everything one test's processes read: the CA, the leaves, the configs.
struct Setup {
    pki: Pki,
    /// namerd's API certificate.
    api: Leaf,
    /// namerd's admin certificate.
    admin: Leaf,
    /// The certificate namerctl, curl and the router show namerd.
    client: Leaf,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let pki = Pki::new("control");
        Setup {
            api: pki.leaf("namerd-api", NAMERD_NAMES),
            admin: pki.leaf("namerd-admin", &["namerd-admin.test", "127.0.0.1"]),
            client: pki.leaf("operator", &["operator.test"]),
            pki,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ca(&self) -> &Path {
        self.pki.ca()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts namerd: its API on mutual TLS, its admin server on TLS, the
    /// embedded store, an `io.l5d.fs` namer on `disco`.
    fn namerd(&self, disco: &Path) -> Namerd {
        let api = free_port();
        let admin = free_port();
        let config = self.file(
            "namerd.yaml",
            &format!(
                "admin:\n  port: {admin}\n  tls:\n    certPath: {}\n    keyPath: {}\n\
                 storage:\n  kind: io.switchboard.disk\n  dir: {}\n\
                 namers:\n- kind: io.l5d.fs\n  rootDir: {}\n\
                 interfaces:\n- kind: io.l5d.httpController\n  port: {api}\n  tls:\n    certPath: {}\n    keyPath: {}\n    caCertPath: {}\n    requireClientAuth: true\n",
                self.admin.cert.display(),
                self.admin.key.display(),
                self.dir.path().join("dtabs").display(),
                disco.display(),
                self.api.cert.display(),
                self.api.key.display(),
                self.ca().display(),
            ),
        );
        let mut process = Process::start(
            &binary("namerd", "namerd"),
            &[config.to_str().unwrap()],
            self.dir.path(),
        );
        let api: SocketAddr = ([127, 0, 0, 1], api).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
        process.wait_listening(api);
        process.wait_listening(admin);
        Namerd {
            _process: process,
            api,
            admin,
        }
    }

    /// namerctl against `base` with `args`, and the TLS flags `tls`.
    fn namerctl(&self, base: &str, tls: &[&str], args: &[&str]) -> Run {
        let mut all = vec!["--base-url", base];
        all.extend_from_slice(tls);
        all.extend_from_slice(args);
        run(&binary("namerd", "namerctl"), &all).into()
    }

    /// `--ca-cert <ca> --client-cert <cert> --client-key <key>`.
    fn mtls_flags(&self) -> Vec<String> {
        vec![
            "--ca-cert".into(),
            self.ca().display().to_string(),
            "--client-cert".into(),
            self.client.cert.display().to_string(),
            "--client-key".into(),
            self.client.key.display().to_string(),
        ]
    }

    /// curl's `--cacert <ca> --cert <cert> --key <key>`.
    fn curl_mtls(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            self.ca().display().to_string(),
            "--cert".into(),
            self.client.cert.display().to_string(),
            "--key".into(),
            self.client.key.display().to_string(),
        ]
    }
}

struct Namerd {
    _process: Process,
    api: SocketAddr,
    admin: SocketAddr,
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether `run` failed without a byte of answer: the connection closed.
fn closed_unanswered(run: &Run) -> bool {
    run.code != 0 && run.stdout.is_empty()
}

/// The one-line text of the certificate file at `path`, as `first_pem`
/// gives it.
fn pem_of(path: &Path) -> String {
    tls_clients::first_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn namerd_over_mutual_tls_with_namerctl_and_curl() {
    let setup = Setup::new();
    let disco = tempfile::tempdir().unwrap();
    let namerd = setup.namerd(disco.path());
    let base = format!("https://{}", namerd.api);
    let flags = setup.mtls_flags();
    let mtls = strs(&flags);

    // namerctl: create, get, update, get.
    let first = setup.file("first.dtab", "/svc => /#/io.l5d.fs;\n");
    let out = setup.namerctl(
        &base,
        &mtls,
        &["dtab", "create", "web", first.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "create: {out:?}");
    let out = setup.namerctl(&base, &mtls, &["dtab", "get", "web"]);
    assert_eq!(out.code, 0, "get: {out:?}");
    assert!(
        out.stdout.contains("/svc") && out.stdout.contains("/#/io.l5d.fs"),
        "{out:?}"
    );
    let second = setup.file(
        "second.dtab",
        "/svc => /#/io.l5d.fs;\n/svc/web => /#/io.l5d.fs/web-v2;\n",
    );
    let out = setup.namerctl(
        &base,
        &mtls,
        &["dtab", "update", "web", second.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "update: {out:?}");
    let out = setup.namerctl(&base, &mtls, &["dtab", "get", "web", "--pretty=false"]);
    assert_eq!(
        out.stdout.trim(),
        "/svc=>/#/io.l5d.fs;/svc/web=>/#/io.l5d.fs/web-v2;",
        "{out:?}"
    );

    // The same settings from the environment.
    let env = Command::new(binary("namerd", "namerctl"))
        .args(["--base-url", &base, "dtab", "list"])
        .env("NAMERCTL_CA_CERT", setup.ca())
        .env("NAMERCTL_CLIENT_CERT", &setup.client.cert)
        .env("NAMERCTL_CLIENT_KEY", &setup.client.key)
        .output()
        .unwrap();
    let env = Run::from(env);
    assert_eq!(env.code, 0, "{env:?}");
    assert!(env.stdout.contains("web"), "{env:?}");

    // No client certificate: namerd refuses the handshake, and namerctl
    // says so (69: namerd unavailable).
    let ca = setup.ca().display().to_string();
    let out = setup.namerctl(&base, &["--ca-cert", &ca], &["dtab", "list"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr.contains("refused the client certificate"),
        "{out:?}"
    );
    assert!(out.stderr.contains("--client-cert"), "{out:?}");

    // A CA namerctl was not given.
    let stranger = Pki::new("stranger");
    let mut other_ca = flags.clone();
    other_ca[1] = stranger.ca().display().to_string();
    let out = setup.namerctl(&base, &strs(&other_ca), &["dtab", "list"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("not signed by a trusted CA"), "{out:?}");

    // A name namerd's certificate does not carry.
    let localhost = format!("https://localhost:{}", namerd.api.port());
    let out = setup.namerctl(&localhost, &mtls, &["dtab", "list"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("not valid for the name"), "{out:?}");
    assert!(out.stderr.contains("localhost"), "{out:?}");

    // A file that is not PEM, named with its flag.
    let garbage = setup.file("garbage.pem", "not a certificate\n");
    let mut bad = flags.clone();
    bad[1] = garbage.display().to_string();
    let out = setup.namerctl(&base, &strs(&bad), &["dtab", "list"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("--ca-cert: {}: not PEM", garbage.display())),
        "{out:?}"
    );

    // Plain HTTP to the TLS port: closed unanswered.
    let out = setup.namerctl(&format!("http://{}", namerd.api), &[], &["dtab", "list"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("use an https:// base URL"), "{out:?}");

    if !tls_clients::curl_available() {
        return;
    }
    let curl_flags = setup.curl_mtls();
    let mut args = strs(&curl_flags);
    let url = format!("https://{}/api/1/dtabs/web", namerd.api);
    args.push(&url);
    let out = tls_clients::curl(&args);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web-v2"), "{out:?}");

    // Without a client certificate.
    let out = tls_clients::curl(&["--cacert", &ca, &url]);
    assert!(closed_unanswered(&out), "{out:?}");
    // Plaintext to the TLS port.
    let out = tls_clients::curl(&[&format!("http://{}/api/1/dtabs", namerd.api)]);
    assert!(closed_unanswered(&out), "{out:?}");

    // The admin server: TLS, no client certificate needed.
    let out = tls_clients::curl(&[
        "--cacert",
        &ca,
        &format!("https://{}/admin/ping", namerd.admin),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "pong"), "{out:?}");
    let out = tls_clients::curl(&[&format!("http://{}/admin/ping", namerd.admin)]);
    assert!(closed_unanswered(&out), "{out:?}");

    if tls_clients::openssl_available() {
        let shown = tls_clients::s_client(namerd.admin, "namerd-admin.test", setup.ca(), &[]);
        assert!(
            shown.stdout.contains("Verify return code: 0 (ok)"),
            "{shown:?}"
        );
        assert_eq!(
            tls_clients::first_pem(&shown.stdout),
            Some(pem_of(&setup.admin.cert)),
            "the admin server sends its own certificate"
        );
    }
}

/// Polls `ready` every 100 ms for up to 20 s; panics with `what`.
fn eventually(what: &str, mut ready: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match ready() {
            Ok(()) => return,
            Err(e) if started.elapsed() > Duration::from_secs(20) => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn a_router_reaches_namerd_over_mutual_tls_and_serves_admin_over_tls() {
    let setup = Setup::new();
    let disco = tempfile::tempdir().unwrap();
    let web = hello_backend("web");
    std::fs::write(
        disco.path().join("web"),
        format!("127.0.0.1 {}\n", web.port()),
    )
    .unwrap();
    let namerd = setup.namerd(disco.path());
    let flags = setup.mtls_flags();
    let dtab = setup.file("default.dtab", "/svc => /#/io.l5d.fs;\n");
    let out = setup.namerctl(
        &format!("https://{}", namerd.api),
        &strs(&flags),
        &["dtab", "create", "default", dtab.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out:?}");

    // The router's admin certificate is read from copies, replaced below.
    let router_admin = setup
        .pki
        .leaf("router-admin", &["router-admin.test", "127.0.0.1"]);
    let rotated = setup
        .pki
        .leaf("router-admin-2", &["router-admin-2.test", "127.0.0.1"]);
    let live = Leaf {
        cert: setup.dir.path().join("admin-live.pem"),
        key: setup.dir.path().join("admin-live-key.pem"),
    };
    std::fs::copy(&router_admin.cert, &live.cert).unwrap();
    std::fs::copy(&router_admin.key, &live.key).unwrap();
    let (port, admin) = (free_port(), free_port());
    let config = setup.file(
        "linkerd.yaml",
        &format!(
            "admin:\n  port: {admin}\n  tls:\n    certPath: {}\n    keyPath: {}\n\
             routers:\n- protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/127.0.0.1/{}\n    tls:\n      commonName: namerd.test\n      trustCertsBundle: {}\n      clientAuth:\n        certPath: {}\n        keyPath: {}\n  servers:\n  - port: {port}\n",
            live.cert.display(),
            live.key.display(),
            namerd.api.port(),
            setup.ca().display(),
            setup.client.cert.display(),
            setup.client.key.display(),
        ),
    );
    let mut router = Process::start(
        &binary("router", "router"),
        &[config.to_str().unwrap()],
        setup.dir.path(),
    );
    let router_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
    router.wait_listening(router_addr);
    router.wait_listening(admin);

    let (status, body) = integration::process::http(router_addr, "GET", "/", "web", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from web\n"),
        "{}",
        router.log()
    );

    // Plaintext to the router's TLS admin port: closed unanswered.
    let mut plain = TcpStream::connect(admin).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /admin/ping HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));

    if !tls_clients::curl_available() {
        return;
    }
    let ca = setup.ca().display().to_string();
    let ping = format!("https://{admin}/admin/ping");
    let out = tls_clients::curl(&["--cacert", &ca, &ping]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "pong"), "{out:?}");
    let out = tls_clients::curl(&["--cacert", &ca, &format!("https://{admin}/admin/ready")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("ready"), "{out:?}");
    let out = tls_clients::curl(&[&format!("http://{admin}/admin/ping")]);
    assert!(closed_unanswered(&out), "{out:?}");

    if !tls_clients::openssl_available() {
        return;
    }
    let shown = tls_clients::s_client(admin, "router-admin.test", setup.ca(), &[]);
    assert!(
        shown.stdout.contains("Verify return code: 0 (ok)"),
        "{shown:?}"
    );
    assert_eq!(
        tls_clients::first_pem(&shown.stdout),
        Some(pem_of(&router_admin.cert))
    );

    // New files are taken without a restart: each put in place whole, the
    // certificate dated later so that the change shows on a coarse clock.
    for (from, to) in [(&rotated.key, &live.key), (&rotated.cert, &live.cert)] {
        let staged = setup.dir.path().join("staged.pem");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&live.cert)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let wanted = pem_of(&rotated.cert);
    eventually(
        "the router's admin server takes the new certificate",
        || {
            let shown = tls_clients::s_client(admin, "router-admin-2.test", setup.ca(), &[]);
            match tls_clients::first_pem(&shown.stdout) {
                Some(pem) if pem == wanted => Ok(()),
                _ => Err(shown.stdout),
            }
        },
    );
    let out = tls_clients::curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &format!("router-admin-2.test:{}:127.0.0.1", admin.port()),
        &format!("https://router-admin-2.test:{}/admin/ping", admin.port()),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "pong"), "{out:?}");
}

#[test]
fn bad_certificate_files_at_start_are_errors_that_name_the_file() {
    let setup = Setup::new();
    let expired = setup.pki.expired("expired", NAMERD_NAMES);
    let garbage = setup.file("garbage.pem", "not a certificate\n");

    // namerd: an expired API certificate; a key that is not PEM on the
    // admin server. Both at start and with --check.
    let cases = [
        (
            format!(
                "interfaces:\n- kind: io.l5d.httpController\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n",
                expired.cert.display(),
                expired.key.display()
            ),
            format!(
                "interfaces[0] (io.l5d.httpController): tls: line 6: {}: the certificate expired on ",
                expired.cert.display()
            ),
        ),
        (
            format!(
                "admin:\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n",
                setup.admin.cert.display(),
                garbage.display()
            ),
            format!("admin.tls: line 5: {}: not PEM", garbage.display()),
        ),
    ];
    for (yaml, wanted) in cases {
        let config = setup.file(
            "namerd.yaml",
            &format!("storage:\n  kind: io.l5d.inMemory\n{yaml}"),
        );
        for args in [
            vec![config.to_str().unwrap()],
            vec!["--check", config.to_str().unwrap()],
        ] {
            let out: Run = run(&binary("namerd", "namerd"), &args).into();
            assert_ne!(out.code, 0, "{args:?}: {out:?}");
            assert!(
                out.stderr.contains(&format!("namerd.yaml: {wanted}")),
                "{args:?}: {out:?}"
            );
        }
    }

    // The router: an admin certificate that is not PEM.
    let config = setup.file(
        "linkerd.yaml",
        &format!(
            "admin:\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\nrouters:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/1\n  servers:\n  - port: 0\n",
            garbage.display(),
            setup.admin.key.display()
        ),
    );
    for args in [
        vec![config.to_str().unwrap()],
        vec!["--check", config.to_str().unwrap()],
    ] {
        let out: Run = run(&binary("router", "router"), &args).into();
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "linkerd.yaml: admin.tls: line 3: {}: not PEM",
                garbage.display()
            )),
            "{args:?}: {out:?}"
        );
    }
}
