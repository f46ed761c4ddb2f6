//! Paths: sequences of non-empty byte-string labels, written `/a/b/c`.

use std::fmt;
use std::sync::Arc;

/// One element of a [`Path`]: a non-empty string of bytes.
///
/// Labels are compared, hashed and ordered byte for byte. Short labels (the
/// great majority: `svc`, `#`, `io.l5d.k8s`) are stored inline, so reading a
/// dtab does not allocate per label; longer ones are reference counted, so
/// the paths a dtab lookup builds share their bytes with the dtab.
#[derive(Clone, PartialEq, Eq)]
pub struct Label(Repr);

/// The longest label stored inline. With the length byte and the enum tag
/// this keeps a `Label` at 24 bytes, the size of a `Vec`.
pub(crate) const INLINE_CAPACITY: usize = 22;

/// How a label's bytes are held. Which variant is used depends only on the
/// length, so equal labels always have the same variant and the derived
/// equality (inline: length and zero-padded buffer; shared: contents) is
/// equality of bytes.
#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_CAPACITY] },
    Shared(Arc<[u8]>),
}

impl Label {
    /// Makes a label from bytes; `None` when `bytes` is empty.
    pub fn new(bytes: impl AsRef<[u8]>) -> Option<Label> {
        let bytes = bytes.as_ref();
        match u8::try_from(bytes.len()) {
            Ok(0) => None,
            Ok(len) if bytes.len() <= INLINE_CAPACITY => {
                let mut buf = [0; INLINE_CAPACITY];
                buf[..bytes.len()].copy_from_slice(bytes);
                Some(Label(Repr::Inline { len, buf }))
            }
            _ => Some(Label(Repr::Shared(Arc::from(bytes)))),
        }
    }

    /// The label of the first `len` bytes of `window`, which must be from 1
    /// to [`INLINE_CAPACITY`] (otherwise `None`). For the parser:
    /// copying a whole window and clearing its tail takes a fixed number of
    /// wide moves, where copying `len` bytes takes a `memcpy` call whose
    /// narrow stores then stall the wide loads that move the label on.
    #[inline]
    pub(crate) fn from_window(window: &[u8; INLINE_CAPACITY], len: usize) -> Option<Label> {
        let len = u8::try_from(len)
            .ok()
            .filter(|&l| l > 0 && usize::from(l) <= INLINE_CAPACITY)?;
        let mut buf = *window;
        for (i, b) in buf.iter_mut().enumerate() {
            if i >= usize::from(len) {
                *b = 0;
            }
        }
        Some(Label(Repr::Inline { len, buf }))
    }

    /// The label's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(bytes) => bytes,
        }
    }

    /// The label as text when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// Appends the label's `show` form: plain when every byte is showable,
    /// otherwise every byte as `\xhh` (Finagle prints all or nothing).
    pub fn write_show(&self, out: &mut String) {
        let bytes = self.as_bytes();
        if bytes.iter().all(|&b| is_showable(b)) {
            // Showable bytes are ASCII, one byte each in UTF-8. Pushing them
            // as chars (the `String` is reserved first) measured faster than
            // pushing a `&str`, which needs a UTF-8 check per label.
            out.extend(bytes.iter().map(|&b| char::from(b)));
        } else {
            out.reserve(bytes.len() * 4);
            for &b in bytes {
                out.push_str("\\x");
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0xf));
            }
        }
    }
}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
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

/// Which bytes [`is_showable`] accepts, indexed by byte.
static SHOWABLE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b':' | b'.' | b'#' | b'$' | b'%' | b'-');
        b += 1;
    }
    table
};

/// Whether `b` may appear unescaped in a label: `[A-Za-z0-9_:.#$%-]`.
pub fn is_showable(b: u8) -> bool {
    SHOWABLE[usize::from(b)]
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
        let mut out =
            String::with_capacity(self.elems.iter().map(|l| l.as_bytes().len() + 1).sum());
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
    fn labels_compare_by_bytes_whether_inline_or_shared() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |bytes: &[u8]| {
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        };
        let lengths = [
            1,
            INLINE_CAPACITY - 1,
            INLINE_CAPACITY,
            INLINE_CAPACITY + 1,
            300,
        ];
        for len in lengths {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let label = Label::new(&bytes).unwrap();
            assert_eq!(label.as_bytes(), &bytes[..]);
            assert_eq!(label.clone(), label);
            let mut h = DefaultHasher::new();
            label.hash(&mut h);
            assert_eq!(h.finish(), hash(&bytes), "hash of a {len}-byte label");
            for other in lengths {
                let other_bytes: Vec<u8> = (0..other).map(|i| b'a' + (i % 26) as u8).collect();
                let other = Label::new(&other_bytes).unwrap();
                assert_eq!(label.cmp(&other), bytes.cmp(&other_bytes));
                assert_eq!(label == other, bytes == other_bytes);
            }
        }
        assert_eq!(Label::new(b""), None);
        assert!(Label::new(b"a").unwrap() < Label::new(b"a\0").unwrap());
        assert_eq!(std::mem::size_of::<Label>(), 24);
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
