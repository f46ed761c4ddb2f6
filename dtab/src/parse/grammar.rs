//! The dtab grammar as nom parsers (Finagle's `NameTreeParsers`).
//!
//! Every parser works on `&str` and reports failures as [`Failure`]: the input
//! left where it failed and what it expected there. Once a construct is
//! recognised (a `'/'`, a `'('`, a weight) its rest is parsed with `cut`
//! semantics, so errors point at the real mistake rather than at an outer
//! alternative.
//!
//! The hot inner loops, labels and whitespace, scan bytes directly rather
//! than going through nom's character-wise combinators.

use nom::bytes::complete::take_while1;
use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::{IResult, Parser};

use crate::path::{INLINE_CAPACITY, is_showable};
use crate::{Dentry, Dtab, Label, NameTree, Path, Prefix, PrefixElem, Weighted};

/// How deeply parentheses may nest. Finagle has no limit (the JVM's stack
/// overflows instead); a limit keeps hostile input from exhausting ours.
pub const MAX_NESTING: usize = 100;

/// Where a parser failed and what it wanted there.
#[derive(Debug)]
pub(crate) struct Failure<'a> {
    pub(crate) rest: &'a str,
    pub(crate) expected: &'static str,
}

impl<'a> NomParseError<&'a str> for Failure<'a> {
    fn from_error_kind(rest: &'a str, _: ErrorKind) -> Self {
        Failure {
            rest,
            expected: "valid syntax",
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a str, O, Failure<'a>>;

/// A recoverable failure: the caller may try something else here.
fn backtrack<'a, O>(rest: &'a str, expected: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Error(Failure { rest, expected }))
}

/// A committed failure: the input is wrong here, whatever the caller tries.
fn fail<'a, O>(rest: &'a str, expected: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Failure(Failure { rest, expected }))
}

/// Java's `Character.isWhitespace`: ASCII and Unicode separators, but not
/// the non-breaking spaces U+00A0, U+2007 and U+202F, nor U+0085.
pub(crate) fn is_java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{1C}'..='\u{1F}' | ' ' | '\u{1680}'
            | '\u{2000}'..='\u{2006}' | '\u{2008}'..='\u{200A}' | '\u{2028}' | '\u{2029}'
            | '\u{205F}' | '\u{3000}'
    )
}

/// Skips whitespace and `#` comments (which run to `'\n'` or the end).
#[inline]
pub(crate) fn ws(input: &str) -> PResult<'_, ()> {
    // Usually there is nothing to skip: answer that without a call.
    match input.as_bytes().first() {
        Some(&b) if b.is_ascii_graphic() && b != b'#' => Ok((input, ())),
        _ => Ok((skip_ws_and_comments(input), ())),
    }
}

fn skip_ws_and_comments(mut input: &str) -> &str {
    loop {
        input = skip_whitespace(input);
        match input.strip_prefix('#') {
            Some(comment) => input = comment.find('\n').map_or("", |i| &comment[i + 1..]),
            None => return input,
        }
    }
}

/// `input` without its leading whitespace. Most calls find none, so ASCII
/// is checked byte by byte and characters are decoded only past a
/// non-ASCII byte.
fn skip_whitespace(input: &str) -> &str {
    for (i, b) in input.bytes().enumerate() {
        if !b.is_ascii() {
            // `i` is on a character boundary: every byte before it is ASCII.
            return input[i..].trim_start_matches(is_java_whitespace);
        }
        if !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F | b' ') {
            return &input[i..];
        }
    }
    ""
}

/// The text before the first byte that may not appear unescaped in a
/// label, and the rest. Showable bytes are ASCII, so the split is on a
/// character boundary.
fn split_showable(input: &str) -> (&str, &str) {
    let end = input
        .bytes()
        .position(|b| !is_showable(b))
        .unwrap_or(input.len());
    input.split_at(end)
}

/// Whether `input` starts with a character that may begin a label.
fn at_label(input: &str) -> bool {
    matches!(input.as_bytes().first(), Some(&b) if is_showable(b) || b == b'\\')
}

/// One label: showable characters and `\xHH` escapes, at least one of them.
// Inlined into its callers, the label is built where it is used; returned
// from a call, it is stored and reloaded in pieces of different widths,
// which stalls (about 5 % of parse time).
#[inline(always)]
fn label(input: &str) -> PResult<'_, Label> {
    let (plain, mut rest) = split_showable(input);
    if !rest.starts_with('\\') {
        let label = match input.as_bytes().first_chunk() {
            Some(window) if plain.len() <= INLINE_CAPACITY => {
                Label::from_window(window, plain.len())
            }
            _ => Label::new(plain),
        };
        return match label {
            Some(label) => Ok((rest, label)),
            None => backtrack(input, "a label"),
        };
    }
    let mut bytes = plain.as_bytes().to_vec();
    while let Some(escape) = rest.strip_prefix('\\') {
        let Some(hex) = escape.strip_prefix('x') else {
            return fail(escape, "'x' after '\\'");
        };
        let (after, byte) = hex_byte(hex)?;
        bytes.push(byte);
        let (more, after) = split_showable(after);
        bytes.extend_from_slice(more.as_bytes());
        rest = after;
    }
    match Label::new(bytes) {
        Some(label) => Ok((rest, label)),
        None => backtrack(input, "a label"),
    }
}

fn hex_byte(input: &str) -> PResult<'_, u8> {
    let mut value = 0u8;
    let mut rest = input;
    for _ in 0..2 {
        match rest.chars().next().and_then(|c| c.to_digit(16)) {
            Some(d) => {
                value = value * 16 + d as u8;
                rest = &rest[1..];
            }
            None => return fail(rest, "a hex digit"),
        }
    }
    Ok((rest, value))
}

/// `'/'` followed by `/`-separated elements; `/` alone is empty. `elem`
/// parses one element and is only called where one must follow.
fn slash_separated<'a, E>(
    input: &'a str,
    mut elem: impl FnMut(&'a str) -> PResult<'a, E>,
    starts_elem: impl Fn(&str) -> bool,
) -> PResult<'a, Vec<E>> {
    let (rest, ()) = ws(input)?;
    let Some(mut rest) = rest.strip_prefix('/') else {
        return backtrack(rest, "'/'");
    };
    if !starts_elem(rest) {
        return Ok((rest, Vec::new()));
    }
    let mut elems = Vec::with_capacity(count_elems(rest));
    loop {
        let (after, e) = match elem(rest) {
            Err(nom::Err::Error(f)) => return fail(f.rest, f.expected),
            other => other?,
        };
        elems.push(e);
        match after.strip_prefix('/') {
            Some(next) => rest = next,
            None => return Ok((after, elems)),
        }
    }
}

/// How many `/`-separated elements the text at the start of `input` can
/// hold, for sizing the `Vec` they are parsed into: one more than the `/`s
/// before the first byte that cannot be part of a path or prefix.
fn count_elems(input: &str) -> usize {
    let mut slashes = 0;
    for b in input.bytes() {
        match b {
            b'/' => slashes += 1,
            b'\\' | b'*' => {}
            _ if is_showable(b) => {}
            _ => break,
        }
    }
    slashes + 1
}

/// A path, after optional whitespace: `/a/b`, or `/` for the empty path.
pub(crate) fn path(input: &str) -> PResult<'_, Path> {
    let (rest, labels) = slash_separated(input, label, at_label)?;
    Ok((rest, Path::from_labels(labels)))
}

/// A dentry prefix: like a path, but an element may be the wildcard `*`.
pub(crate) fn prefix(input: &str) -> PResult<'_, Prefix> {
    let starts = |i: &str| at_label(i) || i.starts_with('*');
    let (rest, elems) = slash_separated(input, prefix_elem, starts)?;
    Ok((rest, Prefix::new(elems)))
}

/// `*` or a label.
fn prefix_elem(input: &str) -> PResult<'_, PrefixElem> {
    match input.strip_prefix('*') {
        Some(rest) => Ok((rest, PrefixElem::Any)),
        None => label(input).map(|(rest, l)| (rest, PrefixElem::Label(l))),
    }
}

/// A weight: digits with at most one `'.'`, as Java's `parseDouble` reads them.
fn number(input: &str) -> PResult<'_, f64> {
    let (rest, digits) = take_while1(|c: char| c.is_ascii_digit() || c == '.').parse(input)?;
    if digits.matches('.').count() > 1 || digits == "." {
        return fail(input, "a weight such as 2 or 0.5");
    }
    // Unlike Finagle, a weight too large for a double is refused rather
    // than read as Infinity, which would print as text that does not parse.
    match digits.parse::<f64>() {
        Ok(w) if w.is_finite() => Ok((rest, w)),
        _ => fail(input, "a weight such as 2 or 0.5 (a finite number)"),
    }
}

/// `( tree )`, a path, `!`, `~` or `$`.
fn simple(input: &str, depth: usize) -> PResult<'_, NameTree<Path>> {
    let (rest, ()) = ws(input)?;
    if let Some(inner) = rest.strip_prefix('(') {
        if depth >= MAX_NESTING {
            return fail(rest, "at most 100 nested parentheses");
        }
        let (after, tree) = tree(inner, depth + 1)?;
        let (after, ()) = ws(after)?;
        return match after.strip_prefix(')') {
            Some(after) => Ok((after, tree)),
            None => fail(after, "')'"),
        };
    }
    match rest.as_bytes().first() {
        Some(b'!') => Ok((&rest[1..], NameTree::Fail)),
        Some(b'~') => Ok((&rest[1..], NameTree::Neg)),
        Some(b'$') => Ok((&rest[1..], NameTree::Empty)),
        Some(b'/') => path(rest).map(|(after, p)| (after, NameTree::Leaf(p))),
        _ => fail(rest, "a name tree ('/path', '!', '~', '$' or '(')"),
    }
}

/// An optional `weight *` followed by a simple tree.
fn weighted(input: &str, depth: usize) -> PResult<'_, Weighted<Path>> {
    let (rest, ()) = ws(input)?;
    if !matches!(rest.as_bytes().first(), Some(b'0'..=b'9' | b'.')) {
        let (rest, tree) = simple(rest, depth)?;
        return Ok((rest, Weighted::new(Weighted::<Path>::DEFAULT_WEIGHT, tree)));
    }
    let (rest, weight) = number(rest)?;
    let (rest, ()) = ws(rest)?;
    let Some(rest) = rest.strip_prefix('*') else {
        return fail(rest, "'*' after a weight");
    };
    let (rest, tree) = simple(rest, depth)?;
    Ok((rest, Weighted::new(weight, tree)))
}

/// What [`separated`] found. Most `|` and `&` lists have a single item,
/// which needs no `Vec`.
enum List<T> {
    One(T),
    Many(Vec<T>),
}

/// Parses `item (ws sep item)*`, committing after each separator.
fn separated<'a, T>(
    input: &'a str,
    sep: char,
    mut item: impl FnMut(&'a str) -> PResult<'a, T>,
) -> PResult<'a, List<T>> {
    let (rest, first) = item(input)?;
    let (after_ws, ()) = ws(rest)?;
    let Some(after_sep) = after_ws.strip_prefix(sep) else {
        return Ok((rest, List::One(first)));
    };
    let (mut rest, second) = item(after_sep)?;
    let mut items = vec![first, second];
    loop {
        let (after_ws, ()) = ws(rest)?;
        let Some(after_sep) = after_ws.strip_prefix(sep) else {
            return Ok((rest, List::Many(items)));
        };
        let (after, next) = item(after_sep)?;
        items.push(next);
        rest = after;
    }
}

/// `&`-joined weighted terms; one term alone loses its weight.
fn union(input: &str, depth: usize) -> PResult<'_, NameTree<Path>> {
    let (rest, terms) = separated(input, '&', |i| weighted(i, depth))?;
    let tree = match terms {
        List::One(only) => only.tree,
        List::Many(terms) => NameTree::Union(terms),
    };
    Ok((rest, tree))
}

/// `|`-joined unions.
pub(crate) fn tree(input: &str, depth: usize) -> PResult<'_, NameTree<Path>> {
    let (rest, alts) = separated(input, '|', |i| union(i, depth))?;
    let tree = match alts {
        List::One(only) => only,
        List::Many(alts) => NameTree::Alt(alts),
    };
    Ok((rest, tree))
}

/// `prefix => tree`; `=>` must be written without a space inside it.
pub(crate) fn dentry(input: &str) -> PResult<'_, Dentry> {
    let (rest, prefix) = match prefix(input) {
        Err(nom::Err::Error(f)) => return fail(f.rest, f.expected),
        other => other?,
    };
    let (rest, ()) = ws(rest)?;
    let Some(rest) = rest.strip_prefix("=>") else {
        return fail(rest, "'=>'");
    };
    let (rest, dst) = tree(rest, 0)?;
    Ok((rest, Dentry::new(prefix, dst)))
}

/// How often `needle` occurs in `bytes`. Counting into a `u8` per chunk lets
/// the compiler compare and add many bytes at a time.
fn count_byte(bytes: &[u8], needle: u8) -> usize {
    bytes
        .chunks(usize::from(u8::MAX))
        .map(|chunk| usize::from(chunk.iter().map(|&b| u8::from(b == needle)).sum::<u8>()))
        .sum()
}

/// `;`-separated dentries; one trailing `;` is allowed, and no dentries at all.
pub(crate) fn dtab(input: &str) -> PResult<'_, Dtab> {
    // About one dentry per `;`, but no more than the text can hold (the
    // shortest is `/=>~`), so `;`s in comments cannot inflate the guess much.
    let separators = count_byte(input.as_bytes(), b';');
    let mut dentries = Vec::with_capacity((separators + 1).min(input.len() / 4));
    let mut rest = input;
    loop {
        let (after, ()) = ws(rest)?;
        rest = after;
        if !rest.is_empty() {
            let (after, d) = dentry(rest)?;
            dentries.push(d);
            rest = ws(after)?.0;
        }
        match rest.strip_prefix(';') {
            Some(after) => rest = after,
            None => return Ok((rest, Dtab::new(dentries))),
        }
    }
}
