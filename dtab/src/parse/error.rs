//! Parse errors that say where and what was expected.

use std::fmt;

/// Why a dtab, dentry, tree or path was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What the parser was looking for, e.g. `'=>'` or `a label`.
    pub expected: &'static str,
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub column: usize,
    /// Byte offset of the offending character in the input.
    pub offset: usize,
    /// The line around the error, shortened when long.
    pub context: String,
}

/// How much of a long line an error message quotes on each side.
const CONTEXT_CHARS: usize = 40;

impl ParseError {
    /// Builds the error for `input` failing at byte `offset`.
    pub(crate) fn at(input: &str, offset: usize, expected: &'static str) -> ParseError {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = input[line_start..offset].chars().count() + 1;
        let line_end = input[offset..]
            .find('\n')
            .map_or(input.len(), |i| offset + i);
        let context = excerpt(&input[line_start..offset], &input[offset..line_end]);
        ParseError {
            expected,
            line,
            column,
            offset,
            context,
        }
    }
}

/// The text around the error position, at most `CONTEXT_CHARS` either side.
fn excerpt(before: &str, after: &str) -> String {
    let mut out = String::new();
    let skip = before.chars().count().saturating_sub(CONTEXT_CHARS);
    if skip > 0 {
        out.push('…');
    }
    out.extend(before.chars().skip(skip));
    let mut rest = after.chars();
    out.extend(rest.by_ref().take(CONTEXT_CHARS));
    if rest.next().is_some() {
        out.push('…');
    }
    // Control characters are escaped so the message stays on one line.
    out.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} at {}:{}: \"{}\"",
            self.expected, self.line, self.column, self.context
        )
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let e = ParseError::at("/a=>/b;\n/svc =/#/io.l5d.fs", 13, "'=>'");
        assert_eq!((e.line, e.column), (2, 6));
        assert_eq!(
            e.to_string(),
            "expected '=>' at 2:6: \"/svc =/#/io.l5d.fs\""
        );
    }

    #[test]
    fn long_lines_are_shortened() {
        let input = format!("{}^{}", "/a".repeat(1000), "/b".repeat(1000));
        let e = ParseError::at(&input, 2000, "end of input");
        assert!(e.context.len() < 100, "{}", e.context);
        assert!(e.context.starts_with('…') && e.context.ends_with('…'));
        assert_eq!(e.column, 2001);
    }
}
