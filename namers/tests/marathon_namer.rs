//! The `io.l5d.marathon` namer against the fake Marathon of
//! `integration::marathon`: names bound through a dtab follow apps and
//! tasks as they come and go, health checks choose tasks, an outage keeps
//! the last answer, and DC/OS or basic credentials are used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use integration::marathon::{FakeMarathon, LOGIN_PATH, Task};
use namers::config::{NamerConfig, NamerContext, build_namers, parse};
use namers::marathon::{MarathonConfig, MarathonNamer};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Interpreter, NameInterpreter, Namer};

const DTAB: &str = "/svc=>/#/io.l5d.marathon";

fn interpreter(namers: namers::NamerList) -> Interpreter {
    Interpreter::new(
        namers,
        SystemNamers::with_linkerd_namers(Arc::new(InetResolver::system().unwrap())),
    )
}

/// A namer configured in YAML, as a router's or namerd's `namers:` entry.
fn from_yaml(fake: &FakeMarathon, extra: &str) -> Interpreter {
    let yaml = format!(
        "- kind: io.l5d.marathon\n  host: marathon.mesos\n  dst: /$/inet/127.0.0.1/{}\n  \
         uriPrefix: /marathon\n  ttlMs: 50\n  jitterMs: 10\n{extra}",
        fake.addr().port()
    );
    let configs: Vec<NamerConfig> = parse("linkerd.yaml", &yaml).unwrap();
    let context = NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    interpreter(build_namers(&configs, &context).unwrap())
}

fn bind(interpreter: &Interpreter, path: &str) -> Binding {
    interpreter.bind(&Dtab::read(DTAB).unwrap(), &Path::read(path).unwrap())
}

/// `~`, a failure, or the leaf's id, residual and sorted endpoints.
fn state(binding: &Binding) -> String {
    match &*binding.load() {
        Activity::Pending => "pending".into(),
        Activity::Failed(e) => format!("failed: {e}"),
        Activity::Ok(NameTree::Neg) => "~".into(),
        Activity::Ok(NameTree::Leaf(b)) => {
            let endpoints = match &*b.addr.load() {
                Addr::Bound(set) => {
                    let mut e: Vec<String> =
                        set.endpoints().iter().map(|e| e.addr.to_string()).collect();
                    e.sort();
                    e.join(",")
                }
                other => format!("{other:?}"),
            };
            format!("{} {} {endpoints}", b.id.show(), b.residual.show())
        }
        Activity::Ok(other) => format!("{other:?}"),
    }
}

async fn wait_for(binding: &Binding, expected: &str) {
    for _ in 0..200 {
        if state(binding) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state(binding), expected);
}

#[tokio::test]
async fn a_binding_follows_apps_and_tasks_as_they_come_and_go() {
    let fake = FakeMarathon::start("/marathon").await.unwrap();
    fake.add_app("/group/web", 0);
    fake.add_task("/group/web", Task::running("w1", "127.0.0.1", 31000));
    let interpreter = from_yaml(&fake, "");
    let binding = bind(&interpreter, "/svc/Group/web/api");
    wait_for(
        &binding,
        "/#/io.l5d.marathon/group/web /api 127.0.0.1:31000",
    )
    .await;

    fake.add_task("/group/web", Task::running("w2", "127.0.0.2", 31001));
    wait_for(
        &binding,
        "/#/io.l5d.marathon/group/web /api 127.0.0.1:31000,127.0.0.2:31001",
    )
    .await;

    // No task left: `~`, so that a dtab fallback can serve the name.
    fake.remove_task("/group/web", "w1");
    fake.remove_task("/group/web", "w2");
    wait_for(&binding, "~").await;
    fake.add_task("/group/web", Task::running("w3", "127.0.0.3", 31003));
    wait_for(
        &binding,
        "/#/io.l5d.marathon/group/web /api 127.0.0.3:31003",
    )
    .await;

    // The app goes away: `~`.
    fake.remove_app("/group/web");
    wait_for(&binding, "~").await;
    // An app that never was: `~`.
    wait_for(&bind(&interpreter, "/svc/nope"), "~").await;

    // Every request went to the API below the prefix, with the Host header.
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.path == "/marathon/v2/apps"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/marathon/v2/apps/group/web?embed=app.tasks"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.host.as_deref() == Some("marathon.mesos")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn health_checks_choose_the_tasks_and_ip_per_task_uses_the_discovery_port() {
    let fake = FakeMarathon::start("/marathon").await.unwrap();
    fake.add_app("/web", 2);
    let mut a = Task::running("a", "127.0.0.1", 31000);
    a.alive = vec![true, true];
    let mut b = Task::running("b", "127.0.0.2", 31000);
    b.alive = vec![true, false];
    fake.add_task("/web", a);
    fake.add_task("/web", b);
    let checked = from_yaml(&fake, "  useHealthCheck: true\n");
    let binding = bind(&checked, "/svc/web");
    wait_for(&binding, "/#/io.l5d.marathon/web / 127.0.0.1:31000").await;
    fake.set_alive("/web", "b", &[true, true]);
    wait_for(
        &binding,
        "/#/io.l5d.marathon/web / 127.0.0.1:31000,127.0.0.2:31000",
    )
    .await;
    fake.set_alive("/web", "a", &[false, true]);
    fake.set_alive("/web", "b", &[false, false]);
    wait_for(&binding, "~").await;

    // Without useHealthCheck every task counts.
    let unchecked = from_yaml(&fake, "");
    wait_for(
        &bind(&unchecked, "/svc/web"),
        "/#/io.l5d.marathon/web / 127.0.0.1:31000,127.0.0.2:31000",
    )
    .await;

    fake.add_app("/ipt", 0);
    fake.set_discovery_port("/ipt", 8080);
    let mut t = Task::running("t", "agent-1.invalid", 31000);
    t.ip = Some("127.0.0.9".into());
    fake.add_task("/ipt", t);
    wait_for(
        &bind(&unchecked, "/svc/ipt"),
        "/#/io.l5d.marathon/ipt / 127.0.0.9:8080",
    )
    .await;
}

fn namer(fake: &FakeMarathon, env: &dyn Fn(&str) -> Option<String>) -> Arc<MarathonNamer> {
    let config: MarathonConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": fake.addr().port(),
        "ttlMs": 50,
        "jitterMs": 0,
    }))
    .unwrap();
    config
        .build(Path::read("/#/io.l5d.marathon").unwrap(), env)
        .unwrap()
}

#[tokio::test]
async fn an_outage_keeps_the_last_answer_and_is_counted() {
    let fake = FakeMarathon::start("").await.unwrap();
    fake.add_app("/web", 0);
    fake.add_task("/web", Task::running("w1", "127.0.0.1", 31000));
    let namer = namer(&fake, &|_| None);
    let interpreter = interpreter(vec![(
        Path::read("/#/io.l5d.marathon").unwrap(),
        namer.clone(),
    )]);
    let binding = bind(&interpreter, "/svc/web");
    wait_for(&binding, "/#/io.l5d.marathon/web / 127.0.0.1:31000").await;

    fake.set_down(true);
    fake.remove_app("/web");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&binding), "/#/io.l5d.marathon/web / 127.0.0.1:31000");
    assert!(namer.stats().errors.load(Ordering::Relaxed) >= 2);
    // The app list and the app's poll each went from answering to failing.
    assert_eq!(namer.stats().state_changes.load(Ordering::Relaxed), 2);
    let counters = namer.counters();
    assert!(counters.iter().any(|c| c.name == "errors" && c.value > 0));

    fake.set_down(false);
    wait_for(&binding, "~").await;
    // The recovery is counted: the app list answers again (and the app's
    // own poll too, unless it ended first because the app is gone).
    for _ in 0..100 {
        if namer.stats().state_changes.load(Ordering::Relaxed) > 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let changes = namer.stats().state_changes.load(Ordering::Relaxed);
    assert!((3..=4).contains(&changes), "{changes} state changes");
}

#[tokio::test]
async fn a_first_answer_that_fails_is_a_failure() {
    let fake = FakeMarathon::start("").await.unwrap();
    fake.set_down(true);
    let namer = namer(&fake, &|_| None);
    let lookup = namer.lookup(&Path::read("/web").unwrap());
    for _ in 0..100 {
        if matches!(&*lookup.load(), Activity::Failed(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Activity::Failed(e) = &*lookup.load() else {
        panic!("{:?}", lookup.load())
    };
    assert!(e.to_string().contains("503"), "{e}");
}

/// An RSA key in PEM (PKCS#8), made by openssl.
fn rsa_key() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn dcos_service_account_login_and_token_renewal() {
    let fake = FakeMarathon::start("").await.unwrap();
    fake.require_dcos_login("linkerd");
    fake.add_app("/web", 0);
    fake.add_task("/web", Task::running("w1", "127.0.0.1", 31000));
    let secret = serde_json::json!({
        "login_endpoint": "https://leader.mesos/acs/api/v1/auth/login",
        "private_key": rsa_key(),
        "scheme": "RS256",
        "uid": "linkerd",
    })
    .to_string();
    let env = move |key: &str| (key == "DCOS_SERVICE_ACCOUNT_CREDENTIAL").then(|| secret.clone());
    let namer = namer(&fake, &env);
    let interpreter = interpreter(vec![(Path::read("/#/io.l5d.marathon").unwrap(), namer)]);
    let binding = bind(&interpreter, "/svc/web");
    wait_for(&binding, "/#/io.l5d.marathon/web / 127.0.0.1:31000").await;
    let requests = fake.requests();
    assert_eq!(
        requests.iter().filter(|r| r.path == LOGIN_PATH).count(),
        1,
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.path != LOGIN_PATH)
            .all(|r| r.authorization.as_deref() == Some("token=tok-1")),
        "{requests:?}"
    );

    // An expired token is renewed, and the change still arrives.
    fake.expire_tokens();
    fake.add_task("/web", Task::running("w2", "127.0.0.2", 31000));
    wait_for(
        &binding,
        "/#/io.l5d.marathon/web / 127.0.0.1:31000,127.0.0.2:31000",
    )
    .await;
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.authorization.as_deref() == Some("token=tok-2"))
    );

    // Bad credentials are a config error that names the variable.
    let config = MarathonConfig::default();
    let bad = |_: &str| Some("{\"uid\":\"x\"}".to_string());
    let err = config
        .build(Path::read("/#/io.l5d.marathon").unwrap(), &bad)
        .err()
        .unwrap();
    assert!(
        err.starts_with("DCOS_SERVICE_ACCOUNT_CREDENTIAL: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_basic_credential_is_sent_as_basic_auth() {
    let fake = FakeMarathon::start("").await.unwrap();
    fake.require_basic("dXNlcjpwdw==");
    fake.add_app("/web", 0);
    fake.add_task("/web", Task::running("w1", "127.0.0.1", 31000));
    let env = |key: &str| (key == "MARATHON_HTTP_AUTH_CREDENTIAL").then(|| "dXNlcjpwdw==".into());
    let namer = namer(&fake, &env);
    let interpreter = interpreter(vec![(Path::read("/#/io.l5d.marathon").unwrap(), namer)]);
    wait_for(
        &bind(&interpreter, "/svc/web"),
        "/#/io.l5d.marathon/web / 127.0.0.1:31000",
    )
    .await;
}

#[tokio::test]
async fn config_errors_name_the_entry_and_key() {
    let context = NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    let err = |yaml: &str| {
        let configs: Vec<NamerConfig> = parse("linkerd.yaml", yaml).unwrap();
        build_namers(&configs, &context).err().unwrap()
    };
    let e = err("- kind: io.l5d.marathon\n  ttlMs: 0\n");
    assert_eq!(e, "namers[0] (io.l5d.marathon): ttlMs: must be at least 1");
    let e = err("- kind: io.l5d.marathon\n  ttl: 5\n");
    assert!(
        e.starts_with("namers[0] (io.l5d.marathon): ") && e.contains("unknown field `ttl`"),
        "{e}"
    );
}
