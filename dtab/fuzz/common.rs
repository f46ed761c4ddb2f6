//! Checks shared by the fuzz targets: whatever parses must print and read
//! back, up to what printing is known to lose; whatever does not parse must
//! fail with an error that points into the input.

#![allow(dead_code)]

use std::fmt::Debug;

use dtab::{Dentry, Dtab, NameTree, ParseError, Path, Prefix, Weighted, format_weight};

/// An error's offset is inside the input, at a char boundary, and its line
/// and column describe that offset.
fn check_error(input: &str, e: &ParseError) {
    assert!(e.offset <= input.len(), "offset past the input: {e:?}");
    assert!(
        input.is_char_boundary(e.offset),
        "offset inside a char: {e:?}"
    );
    let before = &input[..e.offset];
    assert_eq!(e.line, before.matches('\n').count() + 1, "{e:?}");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    assert_eq!(e.column, before[line_start..].chars().count() + 1, "{e:?}");
}

/// What a weight reads back as after printing: exactly 1 is not printed,
/// anything else is printed with two decimals.
fn normalise_weight(w: f64) -> f64 {
    if w == Weighted::<Path>::DEFAULT_WEIGHT {
        return w;
    }
    format_weight(w)
        .parse()
        .expect("a printed weight reads back")
}

/// What printing and reading a tree gives: weights cut to two decimals,
/// single-child Alts and Unions unwrapped (parsing never makes those).
fn normalise(tree: &NameTree<Path>) -> NameTree<Path> {
    match tree {
        NameTree::Alt(ts) if ts.len() == 1 => normalise(&ts[0]),
        NameTree::Union(ws) if ws.len() == 1 => normalise(&ws[0].tree),
        NameTree::Alt(ts) => NameTree::Alt(ts.iter().map(normalise).collect()),
        NameTree::Union(ws) => NameTree::Union(
            ws.iter()
                .map(|w| Weighted::new(normalise_weight(w.weight), normalise(&w.tree)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether every union weight in `tree` is finite. A weight of 309 or more
/// digits overflows to infinity when read (as Java's `parseDouble` does) and
/// then prints as `Infinity`, which does not read back; Finagle behaves the
/// same. The targets skip the round trip for such trees so that fuzzing can
/// go on past this known case.
fn finite_weights(tree: &NameTree<Path>) -> bool {
    match tree {
        NameTree::Alt(ts) => ts.iter().all(finite_weights),
        NameTree::Union(ws) => ws
            .iter()
            .all(|w| w.weight.is_finite() && finite_weights(&w.tree)),
        _ => true,
    }
}

fn normalise_dentry(d: &Dentry) -> Dentry {
    Dentry::new(d.prefix.clone(), normalise(&d.dst))
}

/// Print `value`, read it back, and compare with `expected`; then check that
/// a second round trip changes neither the value nor its text.
fn round_trip<T: PartialEq + Debug>(
    value: &T,
    expected: &T,
    show: impl Fn(&T) -> String,
    read: impl Fn(&str) -> Result<T, ParseError>,
) {
    let shown = show(value);
    let again = match read(&shown) {
        Ok(again) => again,
        Err(e) => panic!("{shown:?} does not read back: {e}"),
    };
    assert_eq!(&again, expected, "read back from {shown:?}");
    let settled = show(&again);
    let twice = read(&settled).expect("a settled value reads back");
    assert_eq!(twice, again, "second round trip of {settled:?}");
    assert_eq!(show(&twice), settled, "text of the second round trip");
}

pub fn check_path(input: &str) {
    match Path::read(input) {
        Ok(p) => round_trip(&p, &p, Path::show, Path::read),
        Err(e) => check_error(input, &e),
    }
    match Prefix::read(input) {
        Ok(p) => round_trip(&p, &p, Prefix::show, Prefix::read),
        Err(e) => check_error(input, &e),
    }
}

pub fn check_tree(input: &str) {
    match NameTree::read(input) {
        Ok(t) if !finite_weights(&t) => {}
        Ok(t) => round_trip(&t, &normalise(&t), NameTree::show, NameTree::read),
        Err(e) => check_error(input, &e),
    }
}

pub fn check_dentry(input: &str) {
    match Dentry::read(input) {
        Ok(d) if !finite_weights(&d.dst) => {}
        Ok(d) => round_trip(&d, &normalise_dentry(&d), Dentry::show, Dentry::read),
        Err(e) => check_error(input, &e),
    }
}

pub fn check_dtab(input: &str) {
    match Dtab::read(input) {
        Ok(d) if !d.iter().all(|d| finite_weights(&d.dst)) => {}
        Ok(d) => {
            let expected: Dtab = d.iter().map(normalise_dentry).collect();
            round_trip(&d, &expected, Dtab::show, Dtab::read);
        }
        Err(e) => check_error(input, &e),
    }
}
