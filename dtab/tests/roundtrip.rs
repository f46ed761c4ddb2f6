//! Property tests for the text forms: whatever `show` prints, `read` reads
//! back (up to the lossy parts of `show` that SPEC §3.2 describes), `show`
//! is stable under a round trip, and the parsers reject junk with an error
//! rather than a panic. Plus a few hostile inputs (huge, deeply nested).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dtab::{
    Dentry, Dtab, Label, NameTree, ParseError, Path, Prefix, PrefixElem, Weighted, format_weight,
    is_showable, parse,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Every byte a label may hold unescaped.
fn showable_bytes() -> Vec<u8> {
    (0..=255u8).filter(|&b| is_showable(b)).collect()
}

/// Label bytes: plain showable text, arbitrary bytes (mostly escaped when
/// shown), or showable text with one odd byte somewhere in it.
fn label_bytes() -> impl Strategy<Value = Vec<u8>> {
    let showable = prop::sample::select(showable_bytes());
    prop_oneof![
        3 => prop::collection::vec(showable.clone(), 1..8),
        2 => prop::collection::vec(any::<u8>(), 1..6),
        1 => (prop::collection::vec(showable, 0..6), any::<u8>(), any::<prop::sample::Index>())
            .prop_map(|(mut bytes, odd, at)| {
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, odd);
                bytes
            }),
    ]
}

fn label() -> impl Strategy<Value = Label> {
    label_bytes().prop_map(|bytes| Label::new(bytes).unwrap())
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(label(), 0..5).prop_map(Path::from_labels)
}

fn prefix() -> impl Strategy<Value = Prefix> {
    let elem = prop_oneof![
        1 => Just(PrefixElem::Any),
        3 => label().prop_map(PrefixElem::Label),
    ];
    prop::collection::vec(elem, 0..5).prop_map(Prefix::new)
}

/// Integer weights, as in Finagle's own random round-trip test: these print
/// and read back exactly.
fn integer_weight() -> BoxedStrategy<f64> {
    (0u8..10).prop_map(f64::from).boxed()
}

/// Any finite non-negative weight `show` prints readably, including ones that
/// lose precision or print as `1.00` without being 1.
fn any_weight() -> BoxedStrategy<f64> {
    prop_oneof![
        2 => integer_weight(),
        1 => Just(1.0),
        3 => 0.0f64..1000.0,
        1 => 0.0f64..1e12,
        1 => prop::sample::select(vec![
            0.5, 1.005, 0.125, 2.675, 0.995, 9.995, 0.001, 1e-7, 1.0000001, 0.999_999_9, 1e20,
            1e300, f64::MIN_POSITIVE, 5e-324,
        ]),
    ]
    .boxed()
}

/// Name trees of bounded depth. Alts and Unions have `min_children..5`
/// children; with `min_children == 1` single-child nodes appear too.
fn tree_with(weight: BoxedStrategy<f64>, min_children: usize) -> BoxedStrategy<NameTree<Path>> {
    let leaf = prop_oneof![
        4 => path().prop_map(NameTree::Leaf),
        1 => Just(NameTree::Neg),
        1 => Just(NameTree::Fail),
        1 => Just(NameTree::Empty),
    ];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), min_children..5).prop_map(NameTree::Alt),
            prop::collection::vec((weight.clone(), inner), min_children..5).prop_map(|ws| {
                NameTree::Union(ws.into_iter().map(|(w, t)| Weighted::new(w, t)).collect())
            }),
        ]
    })
    .boxed()
}

/// Trees `show` prints exactly: integer weights, no single-child nodes.
fn exact_tree() -> BoxedStrategy<NameTree<Path>> {
    tree_with(integer_weight(), 2)
}

/// Trees whose round trip loses information (weights, single-child nodes).
fn lossy_tree() -> BoxedStrategy<NameTree<Path>> {
    tree_with(any_weight(), 1)
}

fn dentry(tree: BoxedStrategy<NameTree<Path>>) -> impl Strategy<Value = Dentry> {
    (prefix(), tree).prop_map(|(p, t)| Dentry::new(p, t))
}

fn dtab(tree: BoxedStrategy<NameTree<Path>>) -> impl Strategy<Value = Dtab> {
    prop::collection::vec(dentry(tree), 0..5).prop_map(Dtab::new)
}

/// Text that is mostly dtab syntax, so that the parsers get deep before they
/// fail (and sometimes succeed).
fn dtabish_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "/", "/", "/", "a", "b", "#", "$", "(", ")", " | ", "|", " & ", "&", "*", "2*", "0.5*",
        "1.", ".5", ".", "..", "~", "!", "=>", "=", ">", ";", " ", "\n", "\t", "\\", "\\x", "\\x4",
        "\\x41", "\\xZZ", "\\X41", "x", "0", "9", "# c\n", "\u{a0}", "\u{2003}", "ä", "٣", "\r",
        "-", ":", "%",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

// ---------------------------------------------------------------------------
// The expected value of a round trip
// ---------------------------------------------------------------------------

/// What a weight reads back as after `show`: exactly 1.0 is not printed,
/// anything else is printed with two decimals.
fn normalise_weight(w: f64) -> f64 {
    #[allow(clippy::float_cmp)]
    if w == Weighted::<Path>::DEFAULT_WEIGHT {
        return w;
    }
    format_weight(w).parse().unwrap()
}

/// What `NameTree::read(t.show())` gives (SPEC §3.2): single-child Alts and
/// Unions lose their wrapper, and with it the weight of a Union's only
/// branch; weights in multi-child Unions are cut to two decimals.
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

fn normalise_dentry(d: &Dentry) -> Dentry {
    Dentry::new(d.prefix.clone(), normalise(&d.dst))
}

fn normalise_dtab(d: &Dtab) -> Dtab {
    d.iter().map(normalise_dentry).collect()
}

/// A parse error must point into the input, at a character boundary, and
/// its line and column must describe that offset.
fn check_error(input: &str, e: &ParseError) -> Result<(), TestCaseError> {
    prop_assert!(
        e.offset <= input.len(),
        "offset {} past {} bytes: {e}",
        e.offset,
        input.len()
    );
    prop_assert!(
        input.is_char_boundary(e.offset),
        "offset {} inside a char: {e}",
        e.offset
    );
    let before = &input[..e.offset];
    prop_assert_eq!(e.line, before.matches('\n').count() + 1);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    prop_assert_eq!(e.column, before[line_start..].chars().count() + 1);
    Ok(())
}

/// After one `show`/`read` round trip the value is settled: further round
/// trips change neither it nor its text. (The first round trip may change the
/// text: a weight such as 0.995 prints as `1.00`, reads back as exactly 1 and
/// is then not printed at all.)
fn settled<T: PartialEq + std::fmt::Debug>(
    value: &T,
    show: impl Fn(&T) -> String,
    read: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<(), TestCaseError> {
    let shown = show(value);
    let back = read(&shown).unwrap();
    prop_assert_eq!(&back, value, "{}", shown);
    prop_assert_eq!(show(&back), shown);
    Ok(())
}

/// Runs every parser on `input`: none may panic; errors must be well formed;
/// whatever parses must survive a show/read round trip.
fn parse_everything(input: &str) -> Result<(), TestCaseError> {
    match parse::path(input) {
        Ok(p) => prop_assert_eq!(Path::read(&p.show()).unwrap(), p),
        Err(e) => check_error(input, &e)?,
    }
    match parse::prefix(input) {
        Ok(p) => prop_assert_eq!(Prefix::read(&p.show()).unwrap(), p),
        Err(e) => check_error(input, &e)?,
    }
    match parse::tree(input) {
        Ok(t) => {
            let shown = t.show();
            let again = NameTree::read(&shown).unwrap();
            settled(&again, NameTree::show, NameTree::read)?;
            prop_assert_eq!(again, normalise(&t));
        }
        Err(e) => check_error(input, &e)?,
    }
    match parse::dentry(input) {
        Ok(d) => {
            let shown = d.show();
            let again = Dentry::read(&shown).unwrap();
            settled(&again, Dentry::show, Dentry::read)?;
            prop_assert_eq!(again, normalise_dentry(&d));
        }
        Err(e) => check_error(input, &e)?,
    }
    match parse::dtab(input) {
        Ok(d) => {
            let shown = d.show();
            let again = Dtab::read(&shown).unwrap();
            settled(&again, Dtab::show, Dtab::read)?;
            prop_assert_eq!(again, normalise_dtab(&d));
        }
        Err(e) => check_error(input, &e)?,
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn path_round_trips(p in path()) {
        let shown = p.show();
        prop_assert_eq!(Path::read(&shown).unwrap(), p.clone());
        // A label prints plain only when every byte is showable.
        for label in p.elems() {
            let mut one = String::new();
            label.write_show(&mut one);
            let plain = label.as_bytes().iter().all(|&b| is_showable(b));
            prop_assert_eq!(plain, one.as_bytes() == label.as_bytes());
        }
    }

    #[test]
    fn prefix_round_trips(p in prefix()) {
        let shown = p.show();
        prop_assert_eq!(Prefix::read(&shown).unwrap(), p.clone());
        prop_assert_eq!(Prefix::read(&shown).unwrap().show(), shown);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn exact_tree_round_trips(t in exact_tree()) {
        let shown = t.show();
        let again = NameTree::read(&shown).unwrap();
        prop_assert_eq!(&again, &t, "{}", shown);
        prop_assert_eq!(again.show(), shown);
    }

    #[test]
    fn lossy_tree_round_trips_up_to_normalisation(t in lossy_tree()) {
        let shown = t.show();
        let again = NameTree::read(&shown).unwrap();
        prop_assert_eq!(&again, &normalise(&t), "{}", shown);
        settled(&again, NameTree::show, NameTree::read)?;
        // Normalising is what a round trip does, so doing it twice is a no-op.
        prop_assert_eq!(normalise(&again), again);
    }

    #[test]
    fn dentry_round_trips(d in dentry(lossy_tree())) {
        let shown = d.show();
        let again = Dentry::read(&shown).unwrap();
        prop_assert_eq!(&again, &normalise_dentry(&d), "{}", shown);
        settled(&again, Dentry::show, Dentry::read)?;
    }

    #[test]
    fn exact_dtab_round_trips(d in dtab(exact_tree())) {
        let shown = d.show();
        let again = Dtab::read(&shown).unwrap();
        prop_assert_eq!(&again, &d, "{}", shown);
        prop_assert_eq!(again.show(), shown);
    }

    #[test]
    fn lossy_dtab_round_trips_up_to_normalisation(d in dtab(lossy_tree())) {
        let shown = d.show();
        let again = Dtab::read(&shown).unwrap();
        prop_assert_eq!(&again, &normalise_dtab(&d), "{}", shown);
        settled(&again, Dtab::show, Dtab::read)?;
        // The one-trailing-`;` form reads the same.
        if !d.is_empty() {
            prop_assert_eq!(Dtab::read(&format!("{shown};")).unwrap(), again);
        }
    }

    #[test]
    fn finagle_print_form_of_a_tree_is_readable(d in dtab(exact_tree())) {
        // `print` puts spaces around `=>`, which the parser allows.
        for (line, dentry) in d.print().lines().skip(1).zip(d.iter()) {
            prop_assert_eq!(&Dentry::read(line).unwrap(), dentry);
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn parsers_survive_arbitrary_strings(input in any::<String>()) {
        parse_everything(&input)?;
    }

    #[test]
    fn parsers_survive_dtabish_strings(input in dtabish_text()) {
        parse_everything(&input)?;
    }

    #[test]
    fn parsers_survive_mangled_shown_dtabs(
        d in dtab(lossy_tree()),
        cut in any::<prop::sample::Index>(),
        junk in prop::sample::select(vec!["", "(", ")", "|", "&", "*", ";", "=>", "\\", "\\x", "é", " # "]),
    ) {
        // Splice junk into a valid dtab at a char boundary.
        let shown = d.show();
        let mut at = cut.index(shown.len() + 1);
        while !shown.is_char_boundary(at) {
            at -= 1;
        }
        let input = format!("{}{junk}{}", &shown[..at], &shown[at..]);
        parse_everything(&input)?;
        parse_everything(&shown[..at])?;
    }
}

// ---------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------

#[test]
fn normalisation_matches_the_spec_examples() {
    let t = |s: &str| NameTree::read(s).unwrap();
    let leaf = |s: &str| NameTree::Leaf(Path::read(s).unwrap());
    // A single-child wrapper disappears, and with it the branch weight.
    let single = NameTree::Union(vec![Weighted::new(2.0, NameTree::Alt(vec![leaf("/a")]))]);
    assert_eq!(single.show(), "/a");
    assert_eq!(normalise(&single), t("/a"));
    // Weights are cut to two decimals; 1.0000001 prints as 1.00 and reads as 1.
    let union = NameTree::Union(vec![
        Weighted::new(1.005, leaf("/a")),
        Weighted::new(1.000_000_1, leaf("/b")),
        Weighted::new(1.0, leaf("/c")),
    ]);
    assert_eq!(union.show(), "1.01*/a & 1.00*/b & /c");
    assert_eq!(t(&union.show()), normalise(&union));
    assert_eq!(t(&union.show()), t("1.01*/a & /b & /c"));
    // So the text can change once: `1.00*` is printed, then read as the default.
    let shown = t("0.995*/a & /b").show();
    assert_eq!(shown, "1.00*/a & /b");
    assert_eq!(t(&shown).show(), "/a & /b");
}

#[test]
fn error_offsets_for_bad_escapes() {
    for (input, offset) in [
        ("/a\\xZZ", 4),
        ("/a\\xZ", 4),
        ("/a\\x", 4),
        ("/a\\x4", 5),
        ("/a\\", 3),
        ("/a\\X41", 3),
        ("/\\x4ä", 4),
        ("/a\\xä1", 4),
    ] {
        let e = Path::read(input).unwrap_err();
        assert_eq!(e.offset, offset, "{input:?}: {e}");
        assert!(input.is_char_boundary(e.offset));
        assert!(Dtab::read(&format!("/p=>{input}")).is_err(), "{input:?}");
    }
    // Escapes of showable bytes are legal, and print plain.
    assert_eq!(Path::read("/\\x41\\x62c").unwrap().show(), "/Abc");
}

#[test]
fn hostile_deep_nesting_is_an_error_not_a_stack_overflow() {
    let open = "(".repeat(1 << 20);
    assert!(NameTree::read(&open).is_err());
    assert!(Dtab::read(&format!("/a=>{open}")).is_err());
    let balanced = format!("{open}/a{}", ")".repeat(1 << 20));
    let e = NameTree::read(&balanced).unwrap_err();
    assert!(e.offset <= parse::MAX_NESTING + 1, "{e}");
    // Right at the limit still parses.
    let deepest = format!(
        "{}/a{}",
        "(".repeat(parse::MAX_NESTING),
        ")".repeat(parse::MAX_NESTING)
    );
    assert_eq!(NameTree::read(&deepest).unwrap().show(), "/a");
    // Nesting that `show` keeps: Alts in Alts, each level parenthesised.
    let mut nested = String::from("/a");
    for _ in 0..parse::MAX_NESTING {
        nested = format!("({nested}) | /b");
    }
    let tree = NameTree::read(&nested).unwrap();
    assert_eq!(NameTree::read(&tree.show()).unwrap(), tree);
}

#[test]
fn hostile_large_dtab_parses() {
    let mut text = String::with_capacity(2 << 20);
    let mut n = 0;
    while text.len() < 2 << 20 {
        text.push_str(&format!(
            "/svc/s{n}/* => 3 * /#/io.l5d.fs/s{n} & /\\x00\\xff{n} | ~ | (! & $) ; # entry {n}\n"
        ));
        n += 1;
    }
    let dtab = Dtab::read(&text).unwrap();
    assert_eq!(dtab.len(), n);
    assert_eq!(Dtab::read(&dtab.show()).unwrap(), dtab);
}

#[test]
fn hostile_huge_weights() {
    let digits = "1".repeat(1 << 20);
    // Java's parseDouble overflows to Infinity; this parser refuses it,
    // quickly and without a huge message.
    let err = NameTree::read(&format!("{digits} * /a & /b")).unwrap_err();
    assert!(err.to_string().len() < 200, "{err}");
    assert!(NameTree::read(&format!("{digits}*/a")).is_err());
    // Long but in range.
    let zeros = format!("{}2.5{}", "0".repeat(1 << 20), "0".repeat(1 << 20));
    let t = NameTree::read(&format!("{zeros}*/a & /b")).unwrap();
    assert_eq!(t.show(), "2.50*/a & /b");
    let tiny = format!("0.{}1*/a & /b", "0".repeat(1 << 20));
    assert_eq!(NameTree::read(&tiny).unwrap().show(), "0.00*/a & /b");
    // Malformed ones are errors.
    for bad in [
        digits.clone(),
        format!("{digits}.1.1*/a & /b"),
        format!("{digits} /a"),
    ] {
        let e = NameTree::read(&bad).unwrap_err();
        assert!(e.offset <= bad.len());
    }
}

#[test]
fn hostile_huge_label() {
    let plain = format!("/{}", "a".repeat(1 << 20));
    let p = Path::read(&plain).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p.elems()[0].as_bytes().len(), 1 << 20);
    assert_eq!(p.show(), plain);

    let escaped = format!("/{}", "\\xff".repeat(1 << 18));
    let p = Path::read(&escaped).unwrap();
    assert_eq!(p.elems()[0].as_bytes().len(), 1 << 18);
    assert_eq!(p.show(), escaped);

    // One odd byte at the end escapes the whole label.
    let mixed = format!("/{}\\x20", "a".repeat(1 << 18));
    let p = Path::read(&mixed).unwrap();
    assert_eq!(p.show().len(), 4 * ((1 << 18) + 1) + 1);
    assert_eq!(Path::read(&p.show()).unwrap(), p);

    // A bad char at the far end of a huge label is reported there.
    let bad = format!("{plain}^");
    assert_eq!(Path::read(&bad).unwrap_err().offset, plain.len());
}

/// A weight too large for a double is refused (Finagle reads it as
/// Infinity, which then prints as text that does not parse).
#[test]
fn overflowing_weights_are_refused() {
    let input = format!("1{}*/a & /b", "0".repeat(309));
    let err = NameTree::read(&input).unwrap_err();
    assert!(err.expected.contains("finite"), "{err}");
    assert_eq!(err.offset, 0);
    // The largest finite doubles still parse and round-trip up to show's rounding.
    let big = format!("1{}*/a & /b", "0".repeat(300));
    assert!(NameTree::read(&big).is_ok());
}
