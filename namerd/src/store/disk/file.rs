//! The text of one namespace file.
//!
//! ```text
//! # version: 7
//! /svc=>/#/io.l5d.fs;
//! /svc/web=>/srv/web-v2 | /srv/web;
//! ```
//!
//! The first line is the version; then one dentry per line, each ended by
//! `;`. The header is a `#` comment, so the whole file is also plain dtab
//! text. A deleted namespace keeps its file as a tombstone, so that its
//! versions are never reused:
//!
//! ```text
//! # version: 8
//! # deleted
//! ```

use std::fmt::Write as _;

use dtab::{Dentry, Dtab, NameTree, Path, Weighted, format_weight};

const VERSION_PREFIX: &str = "# version: ";
const DELETED: &str = "# deleted";

/// What one namespace file holds.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    /// The version of the last write, a delete included.
    pub(super) version: u64,
    /// The dtab, or `None` for a deleted namespace.
    pub(super) dtab: Option<Dtab>,
}

/// The file text for `record`, refused unless it reads back as exactly the
/// same record (so what is acknowledged is what a restart serves).
pub(super) fn render(record: &Record) -> Result<String, String> {
    let mut out = format!("{VERSION_PREFIX}{}\n", record.version);
    match &record.dtab {
        None => {
            out.push_str(DELETED);
            out.push('\n');
        }
        Some(dtab) => {
            for dentry in dtab {
                write_dentry(dentry, &mut out);
                out.push_str(";\n");
            }
        }
    }
    match parse(&out) {
        Ok(back) if back == *record => Ok(out),
        Ok(back) => Err(format!(
            "it cannot be written down exactly (it would read back as {:?})",
            back.dtab.map(|d| d.show()).unwrap_or_default()
        )),
        Err(e) => Err(format!("its text form does not read back: {e}")),
    }
}

/// Reads a namespace file; the error says what is wrong and where.
pub(super) fn parse(text: &str) -> Result<Record, String> {
    let (first, rest) = text
        .split_once('\n')
        .ok_or_else(|| format!("expected a first line '{VERSION_PREFIX}N'"))?;
    let digits = first
        .trim_end_matches('\r')
        .strip_prefix(VERSION_PREFIX)
        .ok_or_else(|| format!("expected a first line '{VERSION_PREFIX}N', found {first:?}"))?;
    let version = digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse::<u64>().ok())
        .flatten()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("line 1: {digits:?} is not a version (1 or more)"))?;
    let deleted = rest.lines().next().map(|l| l.trim_end_matches('\r')) == Some(DELETED);
    // The header is a comment, so the whole text reads as a dtab and parse
    // errors carry the file's own line numbers.
    let dtab = Dtab::read(text).map_err(|e| e.to_string())?;
    if deleted {
        if !dtab.is_empty() {
            return Err("a deleted namespace's file holds dentries".to_string());
        }
        return Ok(Record {
            version,
            dtab: None,
        });
    }
    Ok(Record {
        version,
        dtab: Some(dtab),
    })
}

/// [`Dentry::show`], except that a weight `show` would round (it prints two
/// decimals) is written with all the digits that read back as that weight.
/// Every other dentry line is byte for byte its `show`.
fn write_dentry(dentry: &Dentry, out: &mut String) {
    dentry.prefix.write_show(out);
    out.push_str("=>");
    write_tree(&dentry.dst, out);
}

// The three functions below follow `NameTree::write_show` and its helpers
// (SPEC §3.2); only `write_weight` differs.

fn write_tree(tree: &NameTree<Path>, out: &mut String) {
    match tree {
        NameTree::Union(ws) if ws.len() == 1 => write_tree(&ws[0].tree, out),
        NameTree::Alt(ts) if ts.len() == 1 => write_tree(&ts[0], out),
        NameTree::Alt(ts) => {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                write_alt_child(t, out);
            }
        }
        other => write_alt_child(other, out),
    }
}

fn write_alt_child(tree: &NameTree<Path>, out: &mut String) {
    match tree {
        NameTree::Union(ws) if ws.len() == 1 => write_alt_child(&ws[0].tree, out),
        NameTree::Alt(ts) if ts.len() == 1 => write_alt_child(&ts[0], out),
        NameTree::Union(ws) => {
            for (i, w) in ws.iter().enumerate() {
                if i > 0 {
                    out.push_str(" & ");
                }
                // Exactly 1.0 is the default weight and is not printed.
                #[allow(clippy::float_cmp)]
                if w.weight != Weighted::<Path>::DEFAULT_WEIGHT {
                    write_weight(w.weight, out);
                    out.push('*');
                }
                write_simple(&w.tree, out);
            }
        }
        NameTree::Alt(_) => {
            out.push('(');
            write_tree(tree, out);
            out.push(')');
        }
        other => write_simple(other, out),
    }
}

fn write_simple(tree: &NameTree<Path>, out: &mut String) {
    match tree {
        NameTree::Union(ws) if ws.len() == 1 => write_simple(&ws[0].tree, out),
        NameTree::Alt(ts) if ts.len() == 1 => write_simple(&ts[0], out),
        NameTree::Union(_) | NameTree::Alt(_) => {
            out.push('(');
            write_tree(tree, out);
            out.push(')');
        }
        NameTree::Leaf(path) => out.push_str(&path.show()),
        NameTree::Fail => out.push('!'),
        NameTree::Neg => out.push('~'),
        NameTree::Empty => out.push('$'),
    }
}

/// `show`'s two decimals when they are exact, else the shortest decimal that
/// reads back as `w` (Rust's `Display`, never in exponent form).
fn write_weight(w: f64, out: &mut String) {
    let shown = format_weight(w);
    #[allow(clippy::float_cmp)]
    if shown.parse::<f64>() == Ok(w) {
        out.push_str(&shown);
    } else {
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(version: u64, text: &str) -> Record {
        Record {
            version,
            dtab: Some(Dtab::read(text).unwrap()),
        }
    }

    #[test]
    fn a_file_is_the_version_then_one_dentry_per_line() {
        let record = live(7, "/svc => /#/io.l5d.fs; /svc/web => /a | 2 * /b & /c");
        let text = render(&record).unwrap();
        assert_eq!(
            text,
            "# version: 7\n/svc=>/#/io.l5d.fs;\n/svc/web=>/a | 2.00*/b & /c;\n"
        );
        // Each line is the dentry's `show`, and the file is dtab text.
        let dtab = record.dtab.as_ref().unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        let shown: Vec<String> = dtab.iter().map(|d| format!("{};", d.show())).collect();
        assert_eq!(lines, shown);
        assert_eq!(&Dtab::read(&text).unwrap(), dtab);
        assert_eq!(parse(&text).unwrap(), record);
    }

    #[test]
    fn empty_and_deleted_namespaces_have_their_own_forms() {
        let empty = live(3, "");
        assert_eq!(render(&empty).unwrap(), "# version: 3\n");
        assert_eq!(parse("# version: 3\n").unwrap(), empty);
        let deleted = Record {
            version: 4,
            dtab: None,
        };
        assert_eq!(render(&deleted).unwrap(), "# version: 4\n# deleted\n");
        assert_eq!(parse("# version: 4\n# deleted\n").unwrap(), deleted);
    }

    #[test]
    fn weights_that_show_would_round_are_kept_exactly() {
        for text in [
            "/a=>0.125*/b & /c",
            "/a=>1.005*/b & 0.001*/c",
            "/a=>1.0000001*/b & /c",
            "/a=>100000000000000000000*/b & /c",
        ] {
            let record = live(1, text);
            let rendered = render(&record).unwrap();
            assert_eq!(parse(&rendered).unwrap(), record, "{text} as {rendered:?}");
        }
        assert_eq!(
            render(&live(1, "/a=>0.125*/b & /c")).unwrap(),
            "# version: 1\n/a=>0.125*/b & /c;\n"
        );
    }

    #[test]
    fn a_dtab_that_cannot_be_written_exactly_is_refused() {
        // An infinite weight (which the parser refuses, but code can build)
        // has no dtab text.
        let record = Record {
            version: 1,
            dtab: Some(Dtab::new(vec![Dentry::new(
                dtab::Prefix::read("/a").unwrap(),
                NameTree::Union(vec![
                    Weighted::new(f64::INFINITY, NameTree::read("/b").unwrap()),
                    Weighted::new(1.0, NameTree::read("/c").unwrap()),
                ]),
            )])),
        };
        let err = render(&record).unwrap_err();
        assert!(err.contains("does not read back"), "{err}");
        // A single-branch union built in code prints as its branch alone.
        let wrapped = Record {
            version: 1,
            dtab: Some(Dtab::new(vec![Dentry::new(
                dtab::Prefix::read("/a").unwrap(),
                NameTree::Union(vec![Weighted::new(2.0, NameTree::read("/b").unwrap())]),
            )])),
        };
        let err = render(&wrapped).unwrap_err();
        assert!(err.contains("cannot be written down exactly"), "{err}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("", "expected a first line"),
            (
                "/a=>/b;\n",
                "expected a first line '# version: N', found \"/a=>/b;\"",
            ),
            ("# version: x\n", "\"x\" is not a version"),
            ("# version: 0\n", "\"0\" is not a version"),
            ("# version: +5\n", "\"+5\" is not a version"),
            ("# version: 2\n/a=>/b;\n/c=>>/d;\n", "at 3:"),
            ("# version: 2\n# deleted\n/a=>/b;\n", "holds dentries"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        // Hand edits with CRLF line ends still read.
        assert_eq!(
            parse("# version: 2\r\n/a=>/b;\r\n").unwrap(),
            live(2, "/a=>/b")
        );
    }
}
