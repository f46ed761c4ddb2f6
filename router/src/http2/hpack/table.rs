//! HPACK's two tables (RFC 7541, section 2.3): the static table every
//! connection shares, and a decoder's dynamic table of recent fields.

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{self, HeaderName};

use super::{Name, Pseudo};

/// What an entry costs in a dynamic table beyond its bytes (section 4.1).
const ENTRY_OVERHEAD: usize = 32;

/// One static entry: its name and, where the table gives one, its value
/// (empty otherwise).
pub(super) struct StaticEntry {
    pub(super) name: Name,
    pub(super) value: &'static [u8],
}

const fn pseudo(pseudo: Pseudo, value: &'static [u8]) -> StaticEntry {
    StaticEntry {
        name: Name::Pseudo(pseudo),
        value,
    }
}

const fn named(name: HeaderName, value: &'static [u8]) -> StaticEntry {
    StaticEntry {
        name: Name::Header(name),
        value,
    }
}

/// The static table (Appendix A); index 1 is `STATIC[0]`.
pub(super) static STATIC: [StaticEntry; 61] = [
    pseudo(Pseudo::Authority, b""),
    pseudo(Pseudo::Method, b"GET"),
    pseudo(Pseudo::Method, b"POST"),
    pseudo(Pseudo::Path, b"/"),
    pseudo(Pseudo::Path, b"/index.html"),
    pseudo(Pseudo::Scheme, b"http"),
    pseudo(Pseudo::Scheme, b"https"),
    pseudo(Pseudo::Status, b"200"),
    pseudo(Pseudo::Status, b"204"),
    pseudo(Pseudo::Status, b"206"),
    pseudo(Pseudo::Status, b"304"),
    pseudo(Pseudo::Status, b"400"),
    pseudo(Pseudo::Status, b"404"),
    pseudo(Pseudo::Status, b"500"),
    named(header::ACCEPT_CHARSET, b""),
    named(header::ACCEPT_ENCODING, b"gzip, deflate"),
    named(header::ACCEPT_LANGUAGE, b""),
    named(header::ACCEPT_RANGES, b""),
    named(header::ACCEPT, b""),
    named(header::ACCESS_CONTROL_ALLOW_ORIGIN, b""),
    named(header::AGE, b""),
    named(header::ALLOW, b""),
    named(header::AUTHORIZATION, b""),
    named(header::CACHE_CONTROL, b""),
    named(header::CONTENT_DISPOSITION, b""),
    named(header::CONTENT_ENCODING, b""),
    named(header::CONTENT_LANGUAGE, b""),
    named(header::CONTENT_LENGTH, b""),
    named(header::CONTENT_LOCATION, b""),
    named(header::CONTENT_RANGE, b""),
    named(header::CONTENT_TYPE, b""),
    named(header::COOKIE, b""),
    named(header::DATE, b""),
    named(header::ETAG, b""),
    named(header::EXPECT, b""),
    named(header::EXPIRES, b""),
    named(header::FROM, b""),
    named(header::HOST, b""),
    named(header::IF_MATCH, b""),
    named(header::IF_MODIFIED_SINCE, b""),
    named(header::IF_NONE_MATCH, b""),
    named(header::IF_RANGE, b""),
    named(header::IF_UNMODIFIED_SINCE, b""),
    named(header::LAST_MODIFIED, b""),
    named(header::LINK, b""),
    named(header::LOCATION, b""),
    named(header::MAX_FORWARDS, b""),
    named(header::PROXY_AUTHENTICATE, b""),
    named(header::PROXY_AUTHORIZATION, b""),
    named(header::RANGE, b""),
    named(header::REFERER, b""),
    named(header::REFRESH, b""),
    named(header::RETRY_AFTER, b""),
    named(header::SERVER, b""),
    named(header::SET_COOKIE, b""),
    named(header::STRICT_TRANSPORT_SECURITY, b""),
    named(header::TRANSFER_ENCODING, b""),
    named(header::USER_AGENT, b""),
    named(header::VARY, b""),
    named(header::VIA, b""),
    named(header::WWW_AUTHENTICATE, b""),
];

/// The static index of a header name, for a literal that refers to it.
pub(super) fn static_name_index(name: &HeaderName) -> Option<u8> {
    let index = match name.as_str() {
        "accept-charset" => 15,
        "accept-encoding" => 16,
        "accept-language" => 17,
        "accept-ranges" => 18,
        "accept" => 19,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "authorization" => 23,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "cookie" => 32,
        "date" => 33,
        "etag" => 34,
        "expect" => 35,
        "expires" => 36,
        "from" => 37,
        "host" => 38,
        "if-match" => 39,
        "if-modified-since" => 40,
        "if-none-match" => 41,
        "if-range" => 42,
        "if-unmodified-since" => 43,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "max-forwards" => 47,
        "proxy-authenticate" => 48,
        "proxy-authorization" => 49,
        "range" => 50,
        "referer" => 51,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "transfer-encoding" => 57,
        "user-agent" => 58,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

/// A field in the dynamic table. Its name was parsed when it was added,
/// so a reference to it costs a clone.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) name: Name,
    pub(super) value: Bytes,
    /// The entry's size as section 4.1 counts it.
    size: usize,
}

/// A decoder's dynamic table: newest entry first (index 62).
#[derive(Debug)]
pub(super) struct Dynamic {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl Dynamic {
    pub(super) fn new(max_size: usize) -> Self {
        Dynamic {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The entry at a dynamic index (62 is the first).
    pub(super) fn get(&self, index: usize) -> Option<&Entry> {
        index
            .checked_sub(STATIC.len() + 1)
            .and_then(|i| self.entries.get(i))
    }

    /// Adds a field, evicting the oldest until it fits. A field larger
    /// than the whole table empties it and is not kept (section 4.4).
    pub(super) fn insert(&mut self, name: Name, name_len: usize, value: Bytes) {
        let size = name_len + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front(Entry { name, value, size });
    }

    /// Takes a new maximum size from a size update.
    pub(super) fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            match self.entries.pop_back() {
                Some(oldest) => self.size -= oldest.size,
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
