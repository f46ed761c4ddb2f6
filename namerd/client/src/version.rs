//! Dtab versions, as namerd's stores keep them and its API shows them.

use std::fmt;

use base64::Engine as _;
use dtab::Dtab;

/// An opaque version of a stored dtab, compared for compare-and-set and
/// shown to clients as an ETag (base64 of the bytes, as Linkerd does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub Vec<u8>);

impl Version {
    /// A version from a counter, as 8 big-endian bytes (Linkerd's in-memory
    /// store: version 1 is the ETag `AAAAAAAAAAE=`).
    pub fn from_u64(n: u64) -> Version {
        Version(n.to_be_bytes().to_vec())
    }

    /// The counter of a version made by [`Version::from_u64`].
    pub fn to_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(self.0.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    }

    /// The ETag form: standard base64.
    pub fn to_etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// Reads an ETag (quotes and a weak `W/` prefix are tolerated).
    pub fn from_etag(etag: &str) -> Option<Version> {
        let etag = etag.trim();
        let etag = etag.strip_prefix("W/").unwrap_or(etag);
        let etag = etag.trim_matches('"');
        base64::engine::general_purpose::STANDARD
            .decode(etag)
            .ok()
            .map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_etag())
    }
}

/// A stored dtab and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionedDtab {
    /// The dtab.
    pub dtab: Dtab,
    /// Its version, for compare-and-set.
    pub version: Version,
}
