//! Reading dtab text: paths, prefixes, name trees, dentries and dtabs.
//!
//! The syntax is Finagle's, including where whitespace and `#` comments may
//! appear. Each entry point requires the whole input to be consumed (trailing
//! whitespace and comments are fine) and reports the first error with its
//! line, column and what was expected there.

mod error;
mod grammar;

pub use error::ParseError;
pub use grammar::MAX_NESTING;

use crate::{Dentry, Dtab, NameTree, Path, Prefix};

/// Runs `parser` over all of `input`.
fn complete<'a, T>(
    input: &'a str,
    parser: impl FnOnce(&'a str) -> nom::IResult<&'a str, T, grammar::Failure<'a>>,
) -> Result<T, ParseError> {
    let to_error =
        |f: grammar::Failure<'a>| ParseError::at(input, input.len() - f.rest.len(), f.expected);
    match parser(input) {
        Ok((rest, value)) => match grammar::ws(rest) {
            Ok(("", ())) => Ok(value),
            Ok((rest, ())) => Err(to_error(grammar::Failure {
                rest,
                expected: "end of input",
            })),
            Err(nom::Err::Error(f) | nom::Err::Failure(f)) => Err(to_error(f)),
            Err(nom::Err::Incomplete(_)) => Err(ParseError::at(input, input.len(), "more input")),
        },
        Err(nom::Err::Error(f) | nom::Err::Failure(f)) => Err(to_error(f)),
        Err(nom::Err::Incomplete(_)) => Err(ParseError::at(input, input.len(), "more input")),
    }
}

/// Reads a path such as `/svc/web` (`/` is the empty path).
pub fn path(input: &str) -> Result<Path, ParseError> {
    complete(input, grammar::path)
}

/// Reads a dentry prefix such as `/svc/*/web`.
pub fn prefix(input: &str) -> Result<Prefix, ParseError> {
    complete(input, grammar::prefix)
}

/// Reads a name tree such as `/a | 3 * /b & /c`.
pub fn tree(input: &str) -> Result<NameTree<Path>, ParseError> {
    complete(input, |i| grammar::tree(i, 0))
}

/// Reads one dentry such as `/svc => /#/io.l5d.fs` (no trailing `;`).
pub fn dentry(input: &str) -> Result<Dentry, ParseError> {
    complete(input, grammar::dentry)
}

/// Reads a dtab: `;`-separated dentries, with one optional trailing `;`.
pub fn dtab(input: &str) -> Result<Dtab, ParseError> {
    complete(input, grammar::dtab).map_err(|mut e| {
        // After a dentry, the likeliest mistake is a missing separator.
        if e.expected == "end of input" {
            e.expected = "';' or end of input";
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use crate::Label;

    #[test]
    fn labels_read_equal_labels_built() {
        for len in [1, 21, 22, 23, 40] {
            let name = "x".repeat(len);
            let built = Label::new(&name).unwrap();
            // Mid-text (the bytes after the label must not leak into it) and
            // at the very end.
            for text in [format!("/{name}/{}", "y".repeat(30)), format!("/{name}")] {
                let read = super::path(&text).unwrap();
                assert_eq!(read.elems()[0], built, "{text}");
                assert_eq!(read.elems()[0].as_bytes(), name.as_bytes());
            }
        }
    }

    #[test]
    fn a_missing_separator_is_named() {
        let e = super::dtab("/a=>/b\n/c=>/d").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected ';' or end of input at 2:1: \"/c=>/d\""
        );
        let e = super::dtab("/svc =/#/io.l5d.fs").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected '=>' at 1:6: \"/svc =/#/io.l5d.fs\""
        );
    }
}
