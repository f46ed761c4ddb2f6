//! The pure core: Finagle's binding rules, and the work limits.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::time::Duration;

use super::*;
use crate::{Addr, Live};

fn tree(s: &str) -> NameTree<Name> {
    NameTree::read(s)
        .unwrap()
        .map(&mut |p: &Path| Name::Path(p.clone()))
}

fn bound(id: &str) -> NameTree<Name> {
    let id = Path::read(id).unwrap();
    NameTree::Leaf(Name::Bound(Bound::new(
        id,
        Path::empty(),
        Live::constant(Addr::Pending),
    )))
}

/// A lookup that binds `/b/<x>` to a bound `/b/<x>` and rewrites `/l/<n>`
/// into `/l/<n+1>` forever.
fn lookup(path: &Path) -> Snapshot {
    let show = path.show();
    if show.starts_with("/b/") {
        Activity::Ok(bound(&show))
    } else if let Some(n) = show.strip_prefix("/l/") {
        let n: usize = n.parse().unwrap();
        Activity::Ok(tree(&format!("/l/{}", n + 1)))
    } else if show == "/pending" {
        Activity::Pending
    } else if show == "/error" {
        Activity::Failed(NamingError::namer("boom"))
    } else {
        Activity::Ok(NameTree::Neg)
    }
}

fn bind(s: &str) -> Activity<NameTree<Bound>> {
    bind_tree(&tree(s), &BindLimits::default(), &mut lookup)
}

fn shown(a: Activity<NameTree<Bound>>) -> String {
    match a {
        Activity::Ok(t) => t.show(),
        Activity::Pending => "pending".into(),
        Activity::Failed(e) => format!("failed: {e}"),
    }
}

#[test]
fn alt_falls_through_only_on_neg() {
    assert_eq!(shown(bind("/nothing | /b/1")), "/b/1");
    assert_eq!(shown(bind("! | /b/1")), "!");
    assert_eq!(shown(bind("$ | /b/1")), "$");
    assert_eq!(shown(bind("/pending | /b/1")), "pending");
    assert_eq!(shown(bind("/error | /b/1")), "failed: boom");
    assert_eq!(shown(bind("(! & !) | /b/1")), "/b/1");
}

#[test]
fn union_ignores_failed_branches_while_one_answers() {
    assert_eq!(shown(bind("/error & /b/1")), "/b/1");
    assert_eq!(shown(bind("/pending & /error")), "failed: boom");
    assert_eq!(shown(bind("/pending & /pending")), "pending");
    assert_eq!(shown(bind("2*/b/1 & 3*/b/2")), "2.00*/b/1 & 3.00*/b/2");
}

#[test]
fn union_weights_reach_the_bound_leaves() {
    let Activity::Ok(NameTree::Union(branches)) = bind("2*(/nothing | /b/1) & /b/2") else {
        panic!("not a union");
    };
    let weights: Vec<_> = branches
        .iter()
        .map(|w| match &w.tree {
            NameTree::Leaf(b) => b.weight,
            _ => None,
        })
        .collect();
    assert_eq!(weights, vec![Some(2.0), Some(1.0)]);
    let Activity::Ok(NameTree::Leaf(b)) = bind("/b/1") else {
        panic!()
    };
    assert_eq!(b.weight, None);
}

#[test]
fn depth_counts_lookups() {
    let chain = |n: usize| {
        bind_tree(&tree("/l/0"), &depth(n), &mut |p: &Path| {
            // /l/k rewrites to /l/k+1 until /l/5, which is bound.
            if p.show() == "/l/5" {
                Activity::Ok(bound("/b/done"))
            } else {
                lookup(p)
            }
        })
    };
    // Six lookups: /l/0 .. /l/5.
    assert_eq!(shown(chain(6)), "/b/done");
    assert_eq!(
        shown(chain(5)),
        "failed: Max recursion level: 5 reached in Namer lookup"
    );
}

#[test]
fn dtab_answers_first_and_only_exact_neg_reaches_the_namers() {
    let dtab = Dtab::read("/s=>/b/x;/t=>~;/u=>~;/u=>~").unwrap();
    let mut namers = |p: &Path| Activity::Ok(tree(&format!("/namer{}", p.show())));
    let show = |a: Snapshot| match a {
        Activity::Ok(t) => t.show(),
        _ => "?".into(),
    };
    assert_eq!(
        show(dtab_then(&dtab, &Path::read("/s/1").unwrap(), &mut namers)),
        "/b/x/1"
    );
    assert_eq!(
        show(dtab_then(&dtab, &Path::read("/t").unwrap(), &mut namers)),
        "/namer/t"
    );
    assert_eq!(
        show(dtab_then(&dtab, &Path::read("/u").unwrap(), &mut namers)),
        "~ | ~"
    );
}

fn depth(max_depth: usize) -> BindLimits {
    BindLimits {
        max_depth,
        ..BindLimits::default()
    }
}

/// The dtab of the exponential-binding report: 22 levels of `/a => /b & /b`
/// after `/svc/web => /a0`, and `last` as the last level's destination.
fn doubling_dtab(last: &str) -> Dtab {
    let mut text = String::from("/svc/web=>/a0;");
    for i in 0..22 {
        text.push_str(&format!("/a{i}=>/a{}&/a{};", i + 1, i + 1));
    }
    text.push_str(&format!("/a22=>{last}"));
    Dtab::read(&text).unwrap()
}

/// Binds `name` through `dtab`, then [`lookup`]; also says how many times
/// the lookup function was called.
fn bind_through(
    dtab: &Dtab,
    name: &str,
    limits: &BindLimits,
) -> (Activity<NameTree<Bound>>, usize) {
    let mut calls = 0;
    let result = bind_tree(&tree(name), limits, &mut |p| {
        calls += 1;
        dtab_then(dtab, p, &mut lookup)
    });
    (result, calls)
}

#[test]
fn a_doubling_dtab_fails_fast_naming_the_leaf_limit() {
    let dtab = Dtab::read("/svc=>/b/base")
        .unwrap()
        .concat(&doubling_dtab("/b/x"));
    let (result, calls) = bind_through(&dtab, "/svc/web", &BindLimits::default());
    assert_eq!(
        shown(result.clone()),
        "failed: binding /svc/web built more than 1000 leaves (limit bindingLimits.maxLeaves)"
    );
    assert!(matches!(
        result,
        Activity::Failed(NamingError::OverBudget {
            exceeded: Exceeded::Leaves(1000),
            ..
        })
    ));
    // One lookup per distinct path: /svc/web, /a0 to /a22 and /b/x.
    assert_eq!(calls, 25);
}

#[test]
fn a_doubling_dtab_that_ends_in_neg_binds_cheaply() {
    // Without reuse this is 2^23 path steps; with it, four per level, and
    // the alternative after the union of `~`s answers.
    let dtab = Dtab::read("/svc=>/b/base")
        .unwrap()
        .concat(&doubling_dtab("~"));
    let limits = BindLimits {
        max_lookups: 100,
        ..BindLimits::default()
    };
    let (result, calls) = bind_through(&dtab, "/svc/web", &limits);
    assert_eq!(shown(result), "/b/base/web");
    // /svc/web, /a0 to /a22 and /b/base/web.
    assert_eq!(calls, 25);
}

#[test]
fn reused_results_keep_weights_and_the_depth_limit_exact() {
    let dtab = Dtab::read("/p=>/b/1;/x=>/c&/y;/y=>/c;/c=>/b/1").unwrap();
    // The same path under two weights: each leaf keeps its own.
    let (result, _) = bind_through(&dtab, "2*/p & 3*/p", &BindLimits::default());
    let Activity::Ok(NameTree::Union(branches)) = result else {
        panic!("not a union");
    };
    let weights: Vec<_> = branches
        .iter()
        .map(|w| match &w.tree {
            NameTree::Leaf(b) => b.weight,
            _ => None,
        })
        .collect();
    assert_eq!(weights, [Some(2.0), Some(3.0)]);

    // `/c` is looked up at depth 1 and at depth 2; its leaf then lies at
    // depth 3 or 4. A depth limit of 3 leaves one leaf (a result reused
    // across depths would give two).
    assert_eq!(shown(bind_through(&dtab, "/x", &depth(4)).0), "/b/1 & /b/1");
    assert_eq!(shown(bind_through(&dtab, "/x", &depth(3)).0), "/b/1");
}

#[test]
fn the_lookup_limit_counts_the_whole_tree_and_no_union_hides_it() {
    let limits = BindLimits {
        max_lookups: 50,
        ..BindLimits::default()
    };
    // A chain deeper than the lookup limit but within the depth limit.
    let result = bind_tree(&tree("/l/0 & /b/1"), &limits, &mut lookup);
    assert_eq!(
        shown(result),
        "failed: binding /l/0 & /b/1 took more than 50 lookups (limit bindingLimits.maxLookups)"
    );
    // The depth limit, by contrast, is an ordinary failure a union skips.
    let result = bind_tree(&tree("/l/0 & /b/1"), &depth(20), &mut lookup);
    assert_eq!(shown(result), "/b/1");

    // Breadth counts too: 60 distinct paths, each one step deep.
    let wide = (0..60)
        .map(|i| format!("/w/{i}"))
        .collect::<Vec<_>>()
        .join(" & ");
    let dtab = Dtab::read("/w=>/b").unwrap();
    let (result, _) = bind_through(&dtab, &wide, &limits);
    assert!(
        shown(result).contains("took more than 50 lookups"),
        "a wide tree is counted whole"
    );
}

#[test]
fn the_time_limit_is_checked_while_binding() {
    // A clock that moves 1 ms each time it is read.
    let start = std::time::Instant::now();
    let reads = Cell::new(0u32);
    let clock = || {
        reads.set(reads.get() + 1);
        start + Duration::from_millis(u64::from(reads.get()))
    };
    let limits = BindLimits {
        max_depth: 10_000,
        max_time: Duration::from_millis(5),
        ..BindLimits::default()
    };
    let result = bind_tree_timed(&tree("/l/0"), &limits, &clock, &mut lookup);
    assert_eq!(
        shown(result),
        "failed: binding /l/0 took more than 5 ms (limit bindingLimits.maxBindMs)"
    );
    // Read once at the start, then every 16 steps until 6 ms have passed.
    assert_eq!(reads.get(), 7);
}

#[test]
fn within_the_limits_the_result_is_unchanged() {
    // Exactly at the leaf limit binds; one more does not.
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("/b/{i}"))
            .collect::<Vec<_>>()
            .join(" & ")
    };
    let limits = BindLimits {
        max_leaves: 3,
        ..BindLimits::default()
    };
    let result = bind_tree(&tree(&names(3)), &limits, &mut lookup);
    assert_eq!(shown(result), "/b/0 & /b/1 & /b/2");
    let result = bind_tree(&tree(&names(4)), &limits, &mut lookup);
    assert!(shown(result).contains("built more than 3 leaves"));
}
