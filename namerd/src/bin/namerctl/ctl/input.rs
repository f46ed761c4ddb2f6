//! Dtab input from a file or stdin: dtab text (what `dtab get` prints,
//! `#` comment lines allowed) or JSON (a list of `{"prefix","dst"}`, or
//! `{"version":..,"dtab":[...]}` as `dtab get --json` prints), checked
//! locally with positions before anything is sent.

use std::fmt;
use std::io::Read;

use dtab::{Dentry, Dtab, NameTree, Prefix};
use serde_json::Value;

use super::{CtlError, Exit};
use namerd::store::Version;

/// How the input was written: JSON if it starts with `{` or `[`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `[{"prefix":..,"dst":..}]` or `{"version":..,"dtab":[...]}`.
    Json,
    /// `/svc => /#/io.l5d.fs;` text.
    Text,
}

/// A parsed dtab input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DtabInput {
    /// The dtab.
    pub(crate) dtab: Dtab,
    /// The version carried by the JSON object form, if any.
    pub(crate) version: Option<Version>,
    /// How it was written.
    pub(crate) format: Format,
}

/// Why an input was refused, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputError {
    /// The file name, or `<stdin>`.
    pub(crate) source: String,
    /// 1-based line, when known.
    pub(crate) line: Option<usize>,
    /// 1-based column, when known.
    pub(crate) column: Option<usize>,
    /// What is wrong.
    pub(crate) message: String,
    /// The offending line of input, when known.
    pub(crate) excerpt: Option<String>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(excerpt) = &self.excerpt {
            write!(f, "\n    {excerpt}")?;
            if let Some(column) = self.column {
                let pad: String = excerpt
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n    {pad}^")?;
            }
        }
        Ok(())
    }
}

impl From<InputError> for CtlError {
    fn from(e: InputError) -> CtlError {
        CtlError::new(Exit::BadInput, e.to_string())
    }
}

/// Reads the input named on the command line: a file, or `-` for `stdin`.
/// Returns the name to use in messages and the text.
pub(crate) fn read_source(arg: &str, stdin: &mut dyn Read) -> Result<(String, String), CtlError> {
    if arg.is_empty() {
        return Err(CtlError::new(Exit::Usage, "empty dtab path"));
    }
    if arg == "-" {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| CtlError::new(Exit::BadInput, format!("cannot read stdin: {e}")))?;
        return Ok(("<stdin>".to_string(), text));
    }
    match std::fs::read_to_string(arg) {
        Ok(text) => Ok((arg.to_string(), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CtlError::new(
            Exit::NotFound,
            format!("{arg}: no such file"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(CtlError::new(
            Exit::BadInput,
            format!("{arg}: not UTF-8 text"),
        )),
        Err(e) => Err(CtlError::new(
            Exit::NotFound,
            format!("cannot read {arg}: {e}"),
        )),
    }
}

/// How `text` is written (Linkerd's namerctl's rule: JSON if it starts
/// with `{` or `[`; leading whitespace is skipped here).
pub(crate) fn detect(text: &str) -> Format {
    match text.trim_start().chars().next() {
        Some('{' | '[') => Format::Json,
        _ => Format::Text,
    }
}

/// Parses and checks a dtab input named `source`.
pub(crate) fn parse(source: &str, text: &str) -> Result<DtabInput, InputError> {
    match detect(text) {
        Format::Text => parse_text(source, text).map(|dtab| DtabInput {
            dtab,
            version: None,
            format: Format::Text,
        }),
        Format::Json => parse_json(source, text),
    }
}

/// Blanks out lines whose first non-blank character is `#`, keeping line
/// and column numbers, so `dtab get` output (with its `# version` line)
/// can be read back.
pub(crate) fn strip_comment_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            if line.trim_start().starts_with('#') {
                if line.ends_with('\n') { "\n" } else { "" }
            } else {
                line
            }
        })
        .collect()
}

/// Whether `text` has nothing but blanks and comment lines.
pub(crate) fn is_blank(text: &str) -> bool {
    strip_comment_lines(text).trim().is_empty()
}

fn parse_text(source: &str, text: &str) -> Result<Dtab, InputError> {
    let cleaned = strip_comment_lines(text);
    Dtab::read(&cleaned).map_err(|e| InputError {
        source: source.to_string(),
        line: Some(e.line),
        column: Some(e.column),
        message: format!("expected {}", e.expected),
        excerpt: text.lines().nth(e.line - 1).map(str::to_string),
    })
}

fn parse_json(source: &str, text: &str) -> Result<DtabInput, InputError> {
    let err = |line: Option<usize>, column: Option<usize>, message: String| InputError {
        source: source.to_string(),
        line,
        column,
        message,
        excerpt: line.and_then(|l| text.lines().nth(l.saturating_sub(1)).map(str::to_string)),
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(
            Some(e.line()),
            Some(e.column()),
            format!("invalid JSON: {e}")
                .split(" at line ")
                .next()
                .unwrap_or("invalid JSON")
                .to_string(),
        )
    })?;
    let (entries, version) = match value {
        Value::Array(entries) => (entries, None),
        Value::Object(mut map) => {
            let version = match map.remove("version") {
                None | Some(Value::Null) => None,
                Some(Value::String(v)) if v.is_empty() => None,
                Some(Value::String(v)) => Some(Version::from_etag(&v).ok_or_else(|| {
                    err(
                        None,
                        None,
                        format!("\"version\" {v:?} is not a namerd version"),
                    )
                })?),
                Some(other) => {
                    return Err(err(
                        None,
                        None,
                        format!("\"version\" must be a string, not {other}"),
                    ));
                }
            };
            match map.remove("dtab") {
                Some(Value::Array(entries)) => (entries, version),
                Some(Value::Null) | None => {
                    return Err(err(
                        None,
                        None,
                        "expected a \"dtab\" list of dentries".into(),
                    ));
                }
                Some(other) => {
                    return Err(err(
                        None,
                        None,
                        format!("\"dtab\" must be a list, not {other}"),
                    ));
                }
            }
        }
        other => {
            return Err(err(
                None,
                None,
                format!("expected a list of dentries, found {other}"),
            ));
        }
    };
    let mut dentries = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let n = i + 1;
        let field = |name: &str| -> Result<&str, InputError> {
            entry.get(name).and_then(Value::as_str).ok_or_else(|| {
                err(
                    None,
                    None,
                    format!("dentry {n}: expected {{\"prefix\": \"...\", \"dst\": \"...\"}}, found {entry}"),
                )
            })
        };
        let (prefix, dst) = (field("prefix")?, field("dst")?);
        let located = |what: &str, s: &str, e: dtab::ParseError| {
            let (line, column) = locate(text, s, e.column);
            InputError {
                source: source.to_string(),
                line,
                column,
                message: format!(
                    "dentry {n}: {what} {s:?}: expected {} at character {}",
                    e.expected, e.column
                ),
                excerpt: line.and_then(|l| text.lines().nth(l - 1).map(str::to_string)),
            }
        };
        let prefix_v = Prefix::read(prefix).map_err(|e| located("prefix", prefix, e))?;
        let dst_v = NameTree::read(dst).map_err(|e| located("dst", dst, e))?;
        dentries.push(Dentry::new(prefix_v, dst_v));
    }
    Ok(DtabInput {
        dtab: Dtab::new(dentries),
        version,
        format: Format::Json,
    })
}

/// Where the JSON string `s` (first occurrence) puts its `column`-th
/// character in `text`; good enough to point at a bad dentry.
fn locate(text: &str, s: &str, column: usize) -> (Option<usize>, Option<usize>) {
    let Ok(quoted) = serde_json::to_string(s) else {
        return (None, None);
    };
    let Some(at) = text.find(&quoted) else {
        return (None, None);
    };
    let line = text[..at].matches('\n').count() + 1;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..at].chars().count() + 1 + column;
    (Some(line), Some(col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_comments_and_the_pretty_form_read_back() {
        let text = "# version AAAAAAAAAAE=\n/svc      => /#/io.l5d.fs ;\n/svc/web  => /srv/web ;\n";
        let input = parse("f", text).unwrap();
        assert_eq!(input.format, Format::Text);
        assert_eq!(input.dtab.show(), "/svc=>/#/io.l5d.fs;/svc/web=>/srv/web");
    }

    #[test]
    fn text_errors_point_at_line_and_column() {
        let text = "# header\n/svc => /a;\n/web =/b\n";
        let e = parse("my.dtab", text).unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(6)));
        assert_eq!(
            e.to_string(),
            "my.dtab:3:6: expected '=>'\n    /web =/b\n         ^"
        );
    }

    #[test]
    fn json_lists_and_versioned_objects() {
        let list = parse("f", r#" [{"prefix":"/a","dst":"/b | /c"}]"#).unwrap();
        assert_eq!(list.format, Format::Json);
        assert_eq!(list.dtab.show(), "/a=>/b | /c");
        assert_eq!(list.version, None);
        let obj = parse(
            "f",
            r#"{"version":"AAAAAAAAAAI=","dtab":[{"prefix":"/a","dst":"/b"}]}"#,
        )
        .unwrap();
        assert_eq!(obj.version, Some(Version::from_u64(2)));
        assert_eq!(obj.dtab.show(), "/a=>/b");
    }

    #[test]
    fn json_errors_say_where() {
        let e = parse("f.json", "[\n  {\"prefix\": \"/a\", \"dst\": }\n]").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("invalid JSON"), "{e}");

        let text = "[\n  {\"prefix\": \"/a\", \"dst\": \"/b |\"}\n]";
        let e = parse("f.json", text).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.starts_with("dentry 1: dst \"/b |\": expected"),
            "{e}"
        );
        assert_eq!(e.column, Some(27 + 5));

        let e = parse("f.json", r#"[{"prefix":"/a"}]"#).unwrap_err();
        assert!(e.message.starts_with("dentry 1: expected {"), "{e}");
        let e = parse("f.json", r#"{"dtab": 3}"#).unwrap_err();
        assert!(e.message.contains("must be a list"), "{e}");
    }

    #[test]
    fn blank_input_is_an_empty_dtab() {
        assert!(is_blank("# only\n\n  # comments\n"));
        assert_eq!(parse("f", "").unwrap().dtab, Dtab::empty());
    }
}
