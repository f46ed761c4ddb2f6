//! Live behaviour of the interpreter: bindings follow their namers, keep the
//! last good answer through failures, publish only real changes, and release
//! their namer watches when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{
    Activity, Addr, Bound, Interpreter, Live, Lookup, Name, NameInterpreter, Namer, NamingError,
    Publisher,
};

type Answers = Arc<Publisher<Activity<NameTree<Name>>>>;

/// A namer whose answers the test sets by hand, one publisher per path.
#[derive(Default)]
struct ScriptedNamer {
    paths: Mutex<HashMap<String, Answers>>,
}

impl ScriptedNamer {
    fn publisher(&self, path: &str) -> Answers {
        self.paths
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_insert_with(|| Arc::new(Publisher::new(Activity::Pending)))
            .clone()
    }

    fn answer(&self, path: &str, state: Activity<NameTree<Name>>) {
        self.publisher(path).publish(state);
    }

    fn subscribers(&self) -> usize {
        self.paths
            .lock()
            .unwrap()
            .values()
            .map(|p| p.subscriber_count())
            .sum()
    }
}

impl Namer for ScriptedNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        self.publisher(&path.show()).subscribe()
    }
}

fn bound(id: &str) -> Activity<NameTree<Name>> {
    let bound = Bound::new(
        Path::read(id).unwrap(),
        Path::empty(),
        Live::constant(Addr::Pending),
    );
    Activity::Ok(NameTree::Leaf(Name::Bound(bound)))
}

fn setup() -> (Arc<ScriptedNamer>, Interpreter) {
    let namer = Arc::new(ScriptedNamer::default());
    let system = SystemNamers::new(Arc::new(InetResolver::system().unwrap()));
    let interpreter = Interpreter::new(
        vec![(
            Path::read("/#/mock").unwrap(),
            namer.clone() as Arc<dyn Namer>,
        )],
        system,
    );
    (namer, interpreter)
}

fn shown(binding: &Live<Activity<NameTree<Bound>>>) -> String {
    match &*binding.load() {
        Activity::Ok(tree) => tree.show(),
        Activity::Pending => "pending".into(),
        Activity::Failed(e) => format!("failed: {e}"),
    }
}

async fn next_change(binding: &mut Live<Activity<NameTree<Bound>>>) {
    tokio::time::timeout(Duration::from_secs(5), binding.changed())
        .await
        .expect("no change within 5 s");
}

#[tokio::test(start_paused = true)]
async fn a_binding_follows_its_namer_and_releases_it_when_dropped() {
    let (namer, interpreter) = setup();
    let dtab = Dtab::read("/svc => /#/mock").unwrap();
    let mut binding = interpreter.bind(&dtab, &Path::read("/svc/web").unwrap());
    assert_eq!(shown(&binding), "pending");
    assert_eq!(namer.subscribers(), 1);

    namer.answer("/web", bound("/#/mock/web"));
    next_change(&mut binding).await;
    assert_eq!(shown(&binding), "/#/mock/web");

    // The namer now delegates elsewhere; the binding follows the new path.
    namer.answer(
        "/web",
        Activity::Ok(NameTree::Leaf(Name::Path(
            Path::read("/#/mock/web-v2").unwrap(),
        ))),
    );
    namer.answer("/web-v2", bound("/#/mock/web-v2"));
    next_change(&mut binding).await;
    assert_eq!(shown(&binding), "/#/mock/web-v2");
    assert_eq!(namer.subscribers(), 2);

    drop(binding);
    tokio::time::timeout(Duration::from_secs(5), async {
        while namer.subscribers() > 0 || interpreter.stats().active_bindings() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("namer watches were not released");
}

#[tokio::test(start_paused = true)]
async fn a_failing_namer_keeps_its_last_good_answer() {
    let (namer, interpreter) = setup();
    let dtab = Dtab::read("/svc => /#/mock").unwrap();
    namer.answer("/web", bound("/#/mock/web"));
    let mut binding = interpreter.bind(&dtab, &Path::read("/svc/web").unwrap());
    assert_eq!(shown(&binding), "/#/mock/web");

    namer.answer("/web", Activity::Failed(NamingError::namer("backend down")));
    // Nothing changes for the binding's users...
    let waited = tokio::time::timeout(Duration::from_secs(2), binding.changed()).await;
    assert!(waited.is_err(), "binding changed: {}", shown(&binding));
    assert_eq!(shown(&binding), "/#/mock/web");
    // ...but the failure is counted.
    assert_eq!(
        interpreter.stats().failures_masked.load(Ordering::Relaxed),
        1
    );

    // A first answer that fails is a failure.
    let mut other = interpreter.bind(&dtab, &Path::read("/svc/api").unwrap());
    namer.answer("/api", Activity::Failed(NamingError::namer("backend down")));
    next_change(&mut other).await;
    assert_eq!(shown(&other), "failed: backend down");
}

#[tokio::test(start_paused = true)]
async fn equal_results_are_not_republished() {
    let (namer, interpreter) = setup();
    let dtab = Dtab::read("/svc => /#/mock").unwrap();
    namer.answer("/web", bound("/#/mock/web"));
    let mut binding = interpreter.bind(&dtab, &Path::read("/svc/web").unwrap());
    namer.answer("/web", bound("/#/mock/web"));
    let waited = tokio::time::timeout(Duration::from_secs(2), binding.changed()).await;
    assert!(waited.is_err(), "an equal result was published again");
    assert!(interpreter.stats().recomputations.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(start_paused = true)]
async fn names_that_need_no_io_are_bound_at_once() {
    let (_, interpreter) = setup();
    let dtab = Dtab::read("/svc/web => /$/inet/127.0.0.1/8080").unwrap();
    let binding = interpreter.bind(&dtab, &Path::read("/svc/web/api").unwrap());
    let Activity::Ok(NameTree::Leaf(bound)) = &*binding.load() else {
        panic!("{}", shown(&binding))
    };
    assert_eq!(bound.id.show(), "/$/inet/127.0.0.1/8080");
    assert_eq!(bound.residual.show(), "/api");
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.endpoints()[0].addr, "127.0.0.1:8080".parse().unwrap());

    let unknown = interpreter.bind(&Dtab::empty(), &Path::read("/$/nope/x").unwrap());
    assert_eq!(
        shown(&unknown),
        "failed: Unknown namer: nope for path: /$/nope/x"
    );
}

#[tokio::test(start_paused = true)]
async fn delegation_waits_for_pending_namers() {
    let (namer, interpreter) = setup();
    let dtab = Dtab::read("/svc => /#/mock").unwrap();
    let path = Path::read("/svc/web").unwrap();
    let pending = interpreter.delegate(&dtab, &path);
    let answer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        namer.answer("/web", bound("/#/mock/web"));
    };
    let (tree, ()) = tokio::join!(pending, answer);
    let json = serde_json::to_string(&namers::json::delegate_tree(&tree.unwrap())).unwrap();
    assert_eq!(
        json,
        r#"{"type":"delegate","path":"/svc/web","delegate":{"type":"leaf","path":"/#/mock/web","dentry":{"prefix":"/svc","dst":"/#/mock"},"bound":{"addr":{"type":"pending"},"id":"/#/mock/web","path":"/"}}}"#
    );
}

/// The dtab of the exponential-binding report: `/svc/web => /a0`, then 22
/// levels of `/a<i> => /a<i+1> & /a<i+1>`, then `/a22 => last`.
fn doubling_dtab(last: &str) -> Dtab {
    let mut text = String::from("/svc => /$/inet/127.0.0.1/8080;/svc/web=>/a0;");
    for i in 0..22 {
        text.push_str(&format!("/a{i}=>/a{}&/a{};", i + 1, i + 1));
    }
    text.push_str(&format!("/a22=>{last}"));
    Dtab::read(&text).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_doubling_dtab_fails_binding_and_delegation_at_once() {
    use futures_util::FutureExt;

    let (_, interpreter) = setup();
    let dtab = doubling_dtab("/$/inet/127.0.0.1/8080");
    let web = Path::read("/svc/web").unwrap();
    let binding = interpreter.bind(&dtab, &web);
    assert_eq!(
        shown(&binding),
        "failed: binding /svc/web built more than 1000 leaves (limit bindingLimits.maxLeaves)"
    );
    // Other names bind through the same dtab as before.
    let other = interpreter.bind(&dtab, &Path::read("/svc/other").unwrap());
    assert_eq!(shown(&other), "/$/inet/127.0.0.1/8080");

    // A delegation over budget answers at once, even with a namer that
    // has not answered yet in its tree.
    let dtab = doubling_dtab("/#/mock/never & /$/inet/127.0.0.1/8080");
    let explained = interpreter.delegate(&dtab, &web).now_or_never();
    let Some(Err(error)) = explained else {
        panic!("the delegation did not fail at once: {explained:?}");
    };
    assert!(matches!(error, NamingError::OverBudget { .. }), "{error}");
    assert!(
        error.to_string().starts_with("binding /svc/web "),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_interpreter_has_its_own_limits() {
    let (_, interpreter) = setup();
    let dtab = Dtab::read("/svc => /$/inet/127.0.0.1/1 & /$/inet/127.0.0.1/2").unwrap();
    let web = Path::read("/svc/web").unwrap();
    assert_eq!(
        shown(&interpreter.bind(&dtab, &web)),
        "/$/inet/127.0.0.1/1 & /$/inet/127.0.0.1/2"
    );
    let tight = interpreter.with_bind_limits(namers::bind::BindLimits {
        max_leaves: 1,
        ..namers::bind::BindLimits::default()
    });
    assert_eq!(tight.bind_limits().max_leaves, 1);
    assert_eq!(
        shown(&tight.bind(&dtab, &web)),
        "failed: binding /svc/web built more than 1 leaves (limit bindingLimits.maxLeaves)"
    );
    let error = tight.delegate(&dtab, &web).await.unwrap_err();
    assert!(
        error.to_string().contains("bindingLimits.maxLeaves"),
        "{error}"
    );
}
