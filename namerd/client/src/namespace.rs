//! Namespace names: which dtab a router or operator is talking about.

use std::fmt;

/// The longest namespace name accepted.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// A valid namespace name: 1 to 128 characters from `[A-Za-z0-9_.-]`, not
/// `.` or `..`. Safe to use as a file name, a znode name, a key segment and
/// a URL path segment without escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

/// Why a namespace name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    /// The name is empty.
    #[error("a namespace name cannot be empty")]
    Empty,
    /// The name is too long.
    #[error("namespace name is {0} characters long; the limit is {MAX_NAMESPACE_LEN}")]
    TooLong(usize),
    /// The name has a character outside `[A-Za-z0-9_.-]`, or is `.`/`..`.
    #[error("invalid namespace name {0:?}: use letters, digits, '_', '.' and '-' only")]
    Invalid(String),
}

impl Namespace {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<Namespace, NamespaceError> {
        if name.is_empty() {
            return Err(NamespaceError::Empty);
        }
        if name.len() > MAX_NAMESPACE_LEN {
            return Err(NamespaceError::TooLong(name.len()));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if !name.bytes().all(allowed) || name == "." || name == ".." {
            return Err(NamespaceError::Invalid(name.to_string()));
        }
        Ok(Namespace(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Namespace {
    type Err = NamespaceError;
    fn from_str(s: &str) -> Result<Namespace, NamespaceError> {
        Namespace::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_refuses_the_rest() {
        assert!(Namespace::new("default").is_ok());
        assert!(Namespace::new("team-a_1.prod").is_ok());
        assert_eq!(Namespace::new(""), Err(NamespaceError::Empty));
        assert!(matches!(
            Namespace::new("a/b"),
            Err(NamespaceError::Invalid(_))
        ));
        assert!(matches!(
            Namespace::new(".."),
            Err(NamespaceError::Invalid(_))
        ));
        assert!(matches!(
            Namespace::new(&"a".repeat(129)),
            Err(NamespaceError::TooLong(129))
        ));
    }
}
