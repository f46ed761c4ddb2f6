use std::time::Duration;

use dtab::{NameTree, Path};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Binding};

use super::*;
use crate::config::KindConfig;
use crate::interpreter::RouterNaming;

const WAIT: Duration = Duration::from_secs(2);

fn default() -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet))
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

/// The bound id of a binding that is a single leaf, or a description of
/// what it is instead.
fn leaf(binding: &Binding) -> String {
    match &*binding.load() {
        Activity::Ok(NameTree::Leaf(b)) => b.id.show(),
        other => format!("{other:?}"),
    }
}

/// Waits until the binding is a leaf with this id.
async fn until_leaf(binding: &mut Binding, id: &str) {
    let waited = tokio::time::timeout(WAIT, async {
        while leaf(binding) != id {
            binding.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "still {} instead of {id}", leaf(binding));
}

/// Waits until the file's state satisfies `ok`.
async fn until_file(file: &mut Live<FileDtab>, ok: impl Fn(&FileDtab) -> bool) -> Arc<FileDtab> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            let state = file.load();
            if ok(&state) {
                return state;
            }
            file.changed().await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("file state still {:?}", file.load()))
}

/// Replaces the file at once (write aside, rename over), as editors and
/// config management do.
fn replace(file: &FsPath, text: &str) {
    let aside = file.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, file).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    file: PathBuf,
    interpreter: FsInterpreter,
    default: Interpreter,
}

fn setup(text: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dtab.txt");
    if let Some(text) = text {
        std::fs::write(&file, text).unwrap();
    }
    let default = default();
    Setup {
        interpreter: FsInterpreter::new(file.clone(), default.clone()),
        default,
        file,
        _dir: dir,
    }
}

const WEB: &str = "/svc/web";

#[tokio::test]
async fn an_edit_rebinds_live_bindings_and_the_router_dtab_wins() {
    let s = setup(Some(
        "/svc => /$/inet/127.0.0.1/1;\n/svc/web => /$/inet/127.0.0.1/8080;\n",
    ));
    let mut binding = s.interpreter.bind(&Dtab::empty(), &path(WEB));
    // The first answer is there at once.
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    let local = Dtab::read("/svc/web => /$/inet/127.0.0.1/7070").unwrap();
    let overridden = s.interpreter.bind(&local, &path(WEB));
    assert_eq!(leaf(&overridden), "/$/inet/127.0.0.1/7070");

    // An in-place write (truncate, then write) is seen through the watch:
    // the periodic re-read is far slower than the wait.
    std::fs::write(&s.file, "/svc/web => /$/inet/127.0.0.1/9090\n").unwrap();
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert_eq!(leaf(&overridden), "/$/inet/127.0.0.1/7070");

    replace(&s.file, "/svc/web => /$/inet/127.0.0.1/9191");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9191").await;
}

#[tokio::test]
async fn a_bad_edit_or_a_deleted_file_keeps_the_last_good_dtab() {
    let s = setup(Some("/svc/web => /$/inet/127.0.0.1/8080"));
    let mut binding = s.interpreter.bind(&Dtab::empty(), &path(WEB));
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    let mut file = s.interpreter.file_dtab();

    replace(
        &s.file,
        "/svc/x => /$/inet/127.0.0.1/1;\n/svc/web =>> /oops\n",
    );
    let state = until_file(&mut file, |f| f.error.is_some()).await;
    let error = state.error.as_deref().unwrap();
    assert!(error.contains("dtab.txt:2:12: expected"), "{error}");
    assert_eq!(
        state.dtab.as_ref().map(Dtab::show).as_deref(),
        Some("/svc/web=>/$/inet/127.0.0.1/8080")
    );
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    std::fs::remove_file(&s.file).unwrap();
    let state = until_file(&mut file, |f| {
        f.error.as_deref().is_some_and(|e| !e.contains("expected"))
    })
    .await;
    assert!(state.dtab.is_some());
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    replace(&s.file, "/svc/web => /$/inet/127.0.0.1/9090");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert_eq!(file.load().error, None);
}

#[tokio::test]
async fn bindings_fail_until_the_file_first_parses() {
    let s = setup(Some("/a => /b;\n/svc/web => => /c\n"));
    let mut binding = s.interpreter.bind(&Dtab::empty(), &path(WEB));
    match &*binding.load() {
        Activity::Failed(e) => assert!(e.to_string().contains("dtab.txt:2:"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    replace(&s.file, "/svc/web => /$/inet/127.0.0.1/8080");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;

    let missing = setup(None);
    let mut binding = missing.interpreter.bind(&Dtab::empty(), &path(WEB));
    match &*binding.load() {
        Activity::Failed(e) => assert!(e.to_string().contains("dtab.txt"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    replace(&missing.file, "/svc/web => /$/inet/127.0.0.1/8081");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8081").await;
}

#[tokio::test]
async fn bindings_and_the_watch_end_when_dropped() {
    let s = setup(Some("/svc/web => /$/inet/127.0.0.1/8080"));
    let a = s.interpreter.bind(&Dtab::empty(), &path(WEB));
    let b = s.interpreter.bind(&Dtab::empty(), &path("/svc/web/x"));
    assert!(s.interpreter.is_watching());
    assert_eq!(s.default.stats().active_bindings(), 2);
    drop((a, b));
    let ended = tokio::time::timeout(WAIT, async {
        while s.interpreter.is_watching() || s.default.stats().active_bindings() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the file watch or a binding outlived its users"
    );
}

#[tokio::test]
async fn delegation_explains_the_file_dtab_plus_the_router_dtab() {
    let s = setup(Some("/svc => /$/inet/127.0.0.1/8080"));
    let local = Dtab::read("/svc/web => /$/inet/127.0.0.1/7070").unwrap();
    let tree = s.interpreter.delegate(&local, &path(WEB)).await.unwrap();
    let text = tree.to_string();
    assert!(
        text.contains("\"dst\":\"/$/inet/127.0.0.1/7070\""),
        "{text}"
    );
    assert!(
        text.contains("\"dst\":\"/$/inet/127.0.0.1/8080\""),
        "{text}"
    );

    let broken = setup(Some("/svc =>"));
    let error = broken
        .interpreter
        .delegate(&Dtab::empty(), &path(WEB))
        .await
        .unwrap_err();
    assert!(error.contains("dtab.txt:1:"), "{error}");
}

#[tokio::test]
async fn config_keys_are_checked() {
    let params = |json: serde_json::Value| match json {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    };
    let build = |json| {
        crate::interpreter::build(
            Some(&KindConfig {
                experimental: false,
                kind: KIND.to_string(),
                params: params(json),
            }),
            &default(),
            Duration::from_secs(600),
            1000,
        )
        .map(drop)
    };
    let e = build(serde_json::json!({})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.fs): dtabFile: missing field"),
        "{e}"
    );
    let e = build(serde_json::json!({"dtabFile": "/x", "rootDir": "/y"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.fs): rootDir: unknown field"),
        "{e}"
    );
    let e = build(serde_json::json!({"dtabFile": ""})).unwrap_err();
    assert_eq!(e, "interpreter (io.l5d.fs): dtabFile: must not be empty");
    build(serde_json::json!({"dtabFile": "/etc/linkerd/dtab"})).unwrap();
}

#[tokio::test]
async fn the_watcher_wakes_for_the_dtab_file_and_not_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dtab.txt");
    std::fs::write(&file, "/a => /b").unwrap();
    let (tx, mut wakes) = mpsc::channel(1);
    let _watcher = start_watcher(&file, tx, Arc::new(AtomicBool::new(false))).unwrap();

    std::fs::write(dir.path().join("neighbour"), "x").unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), wakes.recv()).await;
    assert!(quiet.is_err(), "woken by another file");

    std::fs::write(&file, "/a => /c").unwrap();
    assert_eq!(tokio::time::timeout(WAIT, wakes.recv()).await, Ok(Some(())));
    while wakes.try_recv().is_ok() {}
    replace(&file, "/a => /d");
    assert_eq!(tokio::time::timeout(WAIT, wakes.recv()).await, Ok(Some(())));
    while wakes.try_recv().is_ok() {}
    std::fs::remove_file(&file).unwrap();
    assert_eq!(tokio::time::timeout(WAIT, wakes.recv()).await, Ok(Some(())));
}
