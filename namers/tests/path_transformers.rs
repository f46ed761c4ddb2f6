//! `io.l5d.replace` and `io.l5d.const` on a namer, configured in YAML: the
//! names of the namer are replaced by the binding of another path, live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use namers::config::{NamerConfig, NamerContext, build_namers, parse};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Interpreter, NameInterpreter};

struct Setup {
    interpreter: Interpreter,
    dir: tempfile::TempDir,
}

/// An `io.l5d.fs` namer (with `transformers`) and a second one under
/// `/#/other` over the same directory, holding `web` and `api`.
fn setup(transformers: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web"), "127.0.0.1 8080\n").unwrap();
    std::fs::write(dir.path().join("api"), "127.0.0.2 7000\n").unwrap();
    let root = dir.path().display();
    let yaml = format!(
        "- kind: io.l5d.fs\n  prefix: /other\n  rootDir: {root}\n\
         - kind: io.l5d.fs\n  rootDir: {root}\n  transformers:\n{transformers}"
    );
    let configs: Vec<NamerConfig> = parse("test.yaml", &yaml).unwrap();
    let inet = Arc::new(InetResolver::system().unwrap());
    let context = NamerContext { inet: inet.clone() };
    let namers = build_namers(&configs, &context).unwrap();
    let interpreter = Interpreter::new(namers, SystemNamers::with_linkerd_namers(inet));
    Setup { interpreter, dir }
}

fn bind(interpreter: &Interpreter, path: &str) -> Binding {
    interpreter.bind(&Dtab::default(), &Path::read(path).unwrap())
}

/// The ids and endpoints of every leaf, once the tree and its addresses
/// have answered and `done` holds.
async fn wait_for(
    binding: &Binding,
    done: impl Fn(&[(String, Vec<String>)]) -> bool,
) -> Vec<(String, Vec<String>)> {
    let mut last = Vec::new();
    for _ in 0..200 {
        if let Activity::Ok(tree) = &*binding.load() {
            last = tree
                .eval()
                .unwrap_or_default()
                .into_iter()
                .map(|b| {
                    let endpoints = match &*b.addr.load() {
                        Addr::Bound(set) => {
                            set.endpoints().iter().map(|e| e.addr.to_string()).collect()
                        }
                        other => vec![format!("{other:?}")],
                    };
                    (b.id.show(), endpoints)
                })
                .collect();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "binding never got there: last {last:?}, now {:?}",
        binding.load()
    );
}

#[tokio::test]
async fn replace_puts_another_binding_at_every_bound_name_and_keeps_neg() {
    let setup = setup("  - kind: io.l5d.replace\n    path: /$/inet/127.0.0.1/9999\n");
    let binding = bind(&setup.interpreter, "/#/io.l5d.fs/web/x");
    let leaves = wait_for(&binding, |l| !l.is_empty()).await;
    assert_eq!(
        leaves,
        [(
            "/%/io.l5d.replace/$/inet/127.0.0.1/9999".to_string(),
            vec!["127.0.0.1:9999".to_string()]
        )]
    );
    // The residual is the replacement's, not the original's (as Linkerd).
    let Activity::Ok(NameTree::Leaf(bound)) = &*binding.load() else {
        panic!("{:?}", binding.load())
    };
    assert_eq!(bound.residual.show(), "/");

    // A name the namer does not have stays `~`, so dtab fallbacks work.
    let missing = bind(&setup.interpreter, "/#/io.l5d.fs/nope");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*missing.load(), Activity::Ok(NameTree::Neg));

    // The namer's file going away makes the name `~` again.
    std::fs::remove_file(setup.dir.path().join("web")).unwrap();
    for _ in 0..200 {
        if *binding.load() == Activity::Ok(NameTree::Neg) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(*binding.load(), Activity::Ok(NameTree::Neg));
}

#[tokio::test]
async fn const_answers_with_its_path_even_for_a_name_the_namer_lacks() {
    let setup = setup("  - kind: io.l5d.const\n    prefix: /fixed\n    path: /#/other/api\n");
    let missing = bind(&setup.interpreter, "/#/io.l5d.fs/nope");
    let leaves = wait_for(&missing, |l| l.iter().all(|(_, e)| e[0] != "Pending")).await;
    assert_eq!(
        leaves,
        [(
            "/%/fixed/#/other/api".to_string(),
            vec!["127.0.0.2:7000".to_string()]
        )]
    );
    // The replacement is live: an edit of the file behind the path shows.
    std::fs::write(setup.dir.path().join("api"), "127.0.0.3 7001\n").unwrap();
    wait_for(&missing, |l| {
        l.first().is_some_and(|(_, e)| e == &["127.0.0.3:7001"])
    })
    .await;
}

#[tokio::test]
async fn per_name_transformers_apply_after_a_replace_in_list_order() {
    let setup = setup(
        "  - kind: io.l5d.replace\n    path: /#/other/api\n  - kind: io.l5d.port\n    port: 4141\n",
    );
    let binding = bind(&setup.interpreter, "/#/io.l5d.fs/web");
    let leaves = wait_for(&binding, |l| l.iter().all(|(_, e)| e[0] != "Pending")).await;
    assert_eq!(
        leaves,
        [(
            "/%/io.l5d.port/4141/%/io.l5d.replace/#/other/api".to_string(),
            vec!["127.0.0.2:4141".to_string()]
        )]
    );

    // The delegator shows the namer's transformed answer.
    let delegation = setup
        .interpreter
        .delegate(
            &Dtab::read("/svc=>/#/io.l5d.fs").unwrap(),
            &Path::read("/svc/web").unwrap(),
        )
        .await
        .unwrap();
    let json = namers::json::delegate_tree(&delegation).to_string();
    assert!(
        json.contains("\"id\":\"/%/io.l5d.port/4141/%/io.l5d.replace/#/other/api\""),
        "{json}"
    );
}

#[tokio::test]
async fn bad_configs_say_which_entry_and_key() {
    let context = NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = |transformer: &str| {
        let yaml = format!(
            "- kind: io.l5d.fs\n  rootDir: {}\n  transformers:\n{transformer}",
            dir.path().display()
        );
        let configs: Vec<NamerConfig> = parse("t.yaml", &yaml).unwrap();
        build_namers(&configs, &context).err().unwrap()
    };
    let e = err("  - kind: io.l5d.replace\n");
    assert!(
        e.starts_with("namers[0] (io.l5d.fs): transformers[0] (io.l5d.replace): "),
        "{e}"
    );
    assert!(e.contains("missing field `path`"), "{e}");
    let e = err("  - kind: io.l5d.const\n    path: not-a-path\n");
    assert!(
        e.starts_with("namers[0] (io.l5d.fs): transformers[0] (io.l5d.const): path: "),
        "{e}"
    );
    let e = err("  - kind: io.l5d.const\n    path: /a\n    paht: /b\n");
    assert!(e.contains("unknown field `paht`"), "{e}");
}
