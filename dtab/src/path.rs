//! Paths: sequences of non-empty byte-string labels, written `/a/b/c`.

use std::fmt;
use std::sync::Arc;

/// One element of a [`Path`]: a non-empty string of bytes.
///
/// Labels are compared byte for byte. They are reference counted so that the
/// paths a dtab lookup builds share their bytes with the dtab.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(Arc<[u8]>);

impl Label {
    /// Makes a label from bytes; `None` when `bytes` is empty.
    pub fn new(bytes: impl AsRef<[u8]>) -> Option<Label> {
        let bytes = bytes.as_ref();
        if bytes.is_empty() {
            None
        } else {
            Some(Label(Arc::from(bytes)))
        }
    }

    /// The label's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The label as text when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Appends the label's `show` form: plain when every byte is showable,
    /// otherwise every byte as `\xhh` (Finagle prints all or nothing).
    pub fn write_show(&self, out: &mut String) {
        if self.0.iter().all(|&b| is_showable(b)) {
            // Showable bytes are ASCII, so this cannot split a character.
            out.extend(self.0.iter().map(|&b| char::from(b)));
        } else {
            for &b in self.0.iter() {
                out.push_str("\\x");
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0xf));
            }
        }
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_show(&mut s);
        f.write_str(&s)
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

/// Whether `b` may appear unescaped in a label: `[A-Za-z0-9_:.#$%-]`.
pub fn is_showable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'#' | b'$' | b'%' | b'-')
}

/// A hierarchical name such as `/svc/web`; `/` is the empty path.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    elems: Vec<Label>,
}

impl Path {
    /// The empty path, written `/`.
    pub fn empty() -> Path {
        Path { elems: Vec::new() }
    }

    /// A path of the given labels.
    pub fn from_labels(elems: Vec<Label>) -> Path {
        Path { elems }
    }

    /// A path from UTF-8 segments; `None` if any segment is empty.
    pub fn from_strs<S: AsRef<str>>(segments: impl IntoIterator<Item = S>) -> Option<Path> {
        segments
            .into_iter()
            .map(|s| Label::new(s.as_ref().as_bytes()))
            .collect::<Option<Vec<_>>>()
            .map(Path::from_labels)
    }

    /// The labels of the path.
    pub fn elems(&self) -> &[Label] {
        &self.elems
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether this is the empty path `/`.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Whether `prefix` is an element-wise prefix of this path (`/s` is not a
    /// prefix of `/s#/x`).
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.elems.starts_with(&prefix.elems)
    }

    /// The first `n` labels (all of them when `n` is larger).
    pub fn take(&self, n: usize) -> Path {
        Path::from_labels(self.elems[..n.min(self.len())].to_vec())
    }

    /// The path without its first `n` labels (empty when `n` is larger).
    pub fn drop_first(&self, n: usize) -> Path {
        Path::from_labels(self.elems[n.min(self.len())..].to_vec())
    }

    /// This path followed by `other`.
    pub fn concat(&self, other: &Path) -> Path {
        self.concat_labels(&other.elems)
    }

    /// This path followed by `labels`.
    pub fn concat_labels(&self, labels: &[Label]) -> Path {
        let mut elems = Vec::with_capacity(self.len() + labels.len());
        elems.extend_from_slice(&self.elems);
        elems.extend_from_slice(labels);
        Path { elems }
    }

    /// Appends one label.
    pub fn push(&mut self, label: Label) {
        self.elems.push(label);
    }

    /// Finagle's `show`: `/` joined labels, each plain or fully `\xhh`-escaped.
    /// Reading it back gives the same path.
    pub fn show(&self) -> String {
        let mut out = String::with_capacity(self.elems.iter().map(|l| l.0.len() + 1).sum());
        self.write_show(&mut out);
        out
    }

    /// Appends [`Path::show`] to `out`.
    pub fn write_show(&self, out: &mut String) {
        if self.elems.is_empty() {
            out.push('/');
        }
        for label in &self.elems {
            out.push('/');
            label.write_show(out);
        }
    }

    /// Parses Finagle's path syntax (see [`crate::parse`]).
    pub fn read(text: &str) -> Result<Path, crate::ParseError> {
        crate::parse::path(text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({})", self.show())
    }
}

impl std::str::FromStr for Path {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Path, Self::Err> {
        Path::read(s)
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.show())
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Path, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Path::read(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::read(s).unwrap()
    }

    #[test]
    fn show_escapes_whole_label_when_any_byte_is_unshowable() {
        let path = Path::from_strs(["foo/bar", "ok"]).unwrap();
        assert_eq!(path.show(), "/\\x66\\x6f\\x6f\\x2f\\x62\\x61\\x72/ok");
        assert_eq!(p(&path.show()), path);
    }

    #[test]
    fn starts_with_compares_whole_labels() {
        assert!(p("/s/x").starts_with(&p("/s")));
        assert!(!p("/s#/x").starts_with(&p("/s")));
        assert!(p("/a").starts_with(&Path::empty()));
    }

    #[test]
    fn take_and_drop_clamp() {
        assert_eq!(p("/a/b").take(5), p("/a/b"));
        assert_eq!(p("/a/b").drop_first(5), Path::empty());
        assert_eq!(p("/a/b/c").drop_first(1), p("/b/c"));
        assert_eq!(p("/a").concat(&Path::empty()), p("/a"));
    }
}
