//! The data of the binding benchmarks, shared by `benches/bind.rs` and
//! `examples/bind_timing.rs`: a name that takes five rewrite steps through a
//! 1,000-dentry dtab before a `/$/inet` system namer binds it.
//!
//! The chain is `/svc/web` → `/env/prod/web` → `/team/a/web` →
//! `/region/x/web` → `/dc/1/web` → `/$/inet/127.0.0.1/8080`. Each step's
//! dentry is preceded in the table by one or two fall-back dentries that
//! match the same path (so every lookup answers an Alt, as a layered
//! production dtab would), and 989 generated dentries that match none of the
//! chain's paths are interleaved. The data is deterministic.

use std::sync::Arc;

use dtab::{Dtab, NameTree, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::bind::{BindLimits, Snapshot, bind_tree, dtab_then};
use namers::system::SystemNamers;
use namers::system::inet::{DnsAnswer, DnsResolve, InetResolver};
use namers::{Activity, Addr, Bound, Interpreter, Name, NameInterpreter};

/// The name bound in every benchmark.
pub(crate) const NAME: &str = "/svc/web";

/// The paths of the chain, in the order they are looked up.
pub(crate) const CHAIN: [&str; 6] = [
    "/svc/web",
    "/env/prod/web",
    "/team/a/web",
    "/region/x/web",
    "/dc/1/web",
    "/$/inet/127.0.0.1/8080",
];

/// The dentry of each step that wins (placed after its fall-backs, so the
/// lookup tries it first), and where in the table it goes.
const PRIMARY: [(usize, &str, &str); 5] = [
    (980, "/svc/web", "/env/prod/web"),
    (620, "/env/prod", "/team/a"),
    (999, "/team/a/web", "/region/x/web"),
    (870, "/region/x", "/dc/1"),
    (
        750,
        "/dc/1/web",
        "/$/inet/127.0.0.1/8080 | /$/inet/127.0.0.2/8080",
    ),
];

/// Fall-backs matching the same paths, earlier in the table.
const FALLBACKS: [(usize, &str, &str); 6] = [
    (0, "/svc", "/env/default"),
    (310, "/svc", "/env/staging"),
    (120, "/env/prod", "/team/shared"),
    (455, "/team/*/web", "/region/default/web"),
    (40, "/region/x", "/dc/2"),
    (530, "/dc/1", "/$/inet/127.0.0.1/9090"),
];

const DENTRIES: usize = 1000;

/// A small deterministic pseudo-random sequence (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// A generated dentry in the style of a large routing table, over the same
/// top-level prefixes as the chain, but for other services, teams, regions
/// and data centres.
fn generated_dentry(index: u64, rng: &mut Lcg) -> (String, String) {
    let service = match rng.next(3) {
        0 => format!("web{}", rng.next(50)),
        1 => format!("api{}", rng.next(50)),
        _ => format!("grpc{}", rng.next(50)),
    };
    let team = ["a", "b", "c", "d", "e", "f"][rng.next(6) as usize];
    let env = ["prod", "staging", "canary"][rng.next(3) as usize];
    let region = ["x", "y", "z"][rng.next(3) as usize];
    let dc = 1 + rng.next(9);
    let ip = format!("10.{}.{}.{}", rng.next(256), rng.next(256), rng.next(256));
    match index % 8 {
        0 | 1 => (format!("/svc/{service}"), format!("/env/{env}/{service}")),
        2 => (
            format!("/env/{env}/{service}"),
            format!("/team/{team}/{service}"),
        ),
        3 => (
            format!("/team/{team}/{service}"),
            format!("0.9 * /region/{region}/{service} & 0.1 * /region/canary/{service}"),
        ),
        4 => (
            format!("/region/{region}/{service}"),
            format!("/dc/{dc}/{service} | /dc/{}/{service}", 1 + (dc % 9)),
        ),
        5 => (
            format!("/dc/{dc}/{service}"),
            format!("/$/inet/{ip}/8080 | /#/io.l5d.fs/{service}"),
        ),
        6 => (
            format!("/srv/{env}/{service}"),
            format!("/#/io.l5d.k8s/{env}/http/{service} | /#/io.l5d.fs/{service}"),
        ),
        _ => (
            format!("/host/{service}.team-{team}.example.com"),
            format!("/svc/{service}"),
        ),
    }
}

pub(crate) fn read_path(text: &str) -> Path {
    match Path::read(text) {
        Ok(path) => path,
        Err(e) => panic!("benchmark path {text} does not parse: {e}"),
    }
}

/// The 1,000-dentry dtab described at the top of this file.
pub(crate) fn large_dtab() -> Dtab {
    let chain: Vec<Path> = CHAIN.iter().map(|p| read_path(p)).collect();
    let placed: Vec<(usize, &str, &str)> = PRIMARY.iter().chain(&FALLBACKS).copied().collect();
    let mut rng = Lcg(0xb1d);
    let mut index = 0;
    let mut text = String::new();
    for slot in 0..DENTRIES {
        if let Some((_, prefix, dst)) = placed.iter().find(|(at, _, _)| *at == slot) {
            text.push_str(&format!("{prefix} => {dst};\n"));
            continue;
        }
        loop {
            let (prefix, dst) = generated_dentry(index, &mut rng);
            index += 1;
            let parsed = match dtab::Prefix::read(&prefix) {
                Ok(parsed) => parsed,
                Err(e) => panic!("generated prefix {prefix} does not parse: {e}"),
            };
            if !chain.iter().any(|p| parsed.matches(p)) {
                text.push_str(&format!("{prefix} => {dst};\n"));
                break;
            }
        }
    }
    match Dtab::read(&text) {
        Ok(dtab) => dtab,
        Err(e) => panic!("benchmark dtab does not parse: {e}"),
    }
}

/// The large dtab with its last three generated dentries replaced by three
/// that send [`NAME`] through weighted unions: still 1,000 dentries, and the
/// name binds to a union of four leaves.
pub(crate) fn union_dtab() -> Dtab {
    let mut dentries = large_dtab().dentries().to_vec();
    // Slots 996-998 hold generated dentries (see PRIMARY and FALLBACKS).
    dentries.drain(996..999);
    for text in [
        "/svc/web => 0.9 * /env/prod/web & 0.1 * /env/canary/web",
        "/env/canary => /team/a",
        "/team/a/web => 0.5 * /region/x/web & 0.5 * /dc/1/web",
    ] {
        match dtab::Dentry::read(text) {
            Ok(dentry) => dentries.push(dentry),
            Err(e) => panic!("benchmark dentry {text} does not parse: {e}"),
        }
    }
    Dtab::new(dentries)
}

/// The dtab of the exponential-binding report after a one-line base dtab:
/// `/svc/web => /a0`, 22 levels of `/a<i> => /a<i+1> & /a<i+1>`, and
/// `/a22` bound by `/$/inet`.
pub(crate) fn doubling_dtab() -> Dtab {
    let mut text = String::from("/svc => /$/inet/127.0.0.1/8080;/svc/web=>/a0;");
    for i in 0..22 {
        text.push_str(&format!("/a{i}=>/a{}&/a{};", i + 1, i + 1));
    }
    text.push_str("/a22=>/$/inet/127.0.0.1/8080");
    match Dtab::read(&text) {
        Ok(dtab) => dtab,
        Err(e) => panic!("benchmark dtab does not parse: {e}"),
    }
}

/// DNS that is never asked: every host in the benchmark is an IP literal.
struct NoDns;

impl DnsResolve for NoDns {
    fn resolve(&self, host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>> {
        let host = host.to_owned();
        Box::pin(async move { Err(format!("no DNS in this benchmark (asked for {host})")) })
    }
}

pub(crate) fn system_namers() -> SystemNamers {
    SystemNamers::with_linkerd_namers(Arc::new(InetResolver::new(Arc::new(NoDns))))
}

/// The pure core as the interpreter runs it, minus the subscriptions: the
/// dtab first, then the system namers' current answer.
pub(crate) fn bind_core(
    dtab: &Dtab,
    system: &SystemNamers,
    name: &Path,
) -> Activity<NameTree<Bound>> {
    let root = NameTree::Leaf(Name::Path(name.clone()));
    bind_tree(&root, &BindLimits::default(), &mut |p| {
        dtab_then(dtab, p, &mut |p| -> Snapshot {
            (*system.lookup(p).load()).clone()
        })
    })
}

/// Checks that the data is what the benchmarks claim to measure.
pub(crate) fn check(dtab: &Dtab, system: &SystemNamers, interpreter: &Interpreter) {
    assert_eq!(dtab.len(), DENTRIES);
    let expected_matches = [3, 2, 2, 2, 2, 0];
    for (step, (path, want)) in CHAIN.iter().zip(expected_matches).enumerate() {
        let path = read_path(path);
        let matching = dtab.iter().filter(|d| d.prefix.matches(&path)).count();
        assert_eq!(
            matching, want,
            "step {step}: {path} matches {matching} dentries"
        );
    }

    let mut lookups = 0;
    let root = NameTree::Leaf(Name::Path(read_path(NAME)));
    let result = bind_tree(&root, &BindLimits::default(), &mut |p| {
        lookups += 1;
        dtab_then(dtab, p, &mut |p| (*system.lookup(p).load()).clone())
    });
    assert_eq!(lookups, 6, "five dtab steps and one system lookup");
    let Activity::Ok(NameTree::Leaf(bound)) = result else {
        panic!("{NAME} did not bind to one leaf");
    };
    assert_eq!(bound.id.show(), "/$/inet/127.0.0.1/8080");
    assert!(bound.residual.is_empty());
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("the address of {NAME} is not bound");
    };
    assert_eq!(set.endpoints().len(), 1);

    let unions = union_dtab();
    assert_eq!(unions.len(), DENTRIES);
    match bind_core(&unions, system, &read_path(NAME)) {
        Activity::Ok(tree @ NameTree::Union(_)) => {
            let shown = tree.show();
            assert_eq!(
                shown.matches("/$/inet/127.0.0.1/8080").count(),
                4,
                "{shown}"
            );
        }
        other => panic!("{NAME} did not bind to a union through the union dtab: {other:?}"),
    }
    match bind_core(&doubling_dtab(), system, &read_path(NAME)) {
        Activity::Failed(namers::NamingError::OverBudget { .. }) => {}
        other => panic!("the doubling dtab was not refused: {other:?}"),
    }

    let live = interpreter.bind(dtab, &read_path(NAME));
    match &*live.load() {
        Activity::Ok(tree) => assert_eq!(tree.show(), "/$/inet/127.0.0.1/8080"),
        _ => panic!("the live binding of {NAME} has no first answer"),
    }

    let delegation = interpreter.delegate(dtab, &read_path(NAME)).now_or_never();
    let Some(Ok(delegation)) = delegation else {
        panic!("the delegation of {NAME} did not complete at once");
    };
    let json = namers::json::delegate_tree(&delegation).to_string();
    assert!(json.contains("/$/inet/127.0.0.1/8080"), "{json}");
    assert!(
        json.contains("/env/staging/web"),
        "fall-backs explored: {json}"
    );
}
