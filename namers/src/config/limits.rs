//! `bindingLimits:`, the work one bind may do, and the size of a dtab a
//! client adds to a request (the router's `dtabHeaderLimits:`, namerd's
//! `localDtabLimits:`), in router and namerd configs alike.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use dtab::Dtab;

use crate::bind::BindLimits;

/// `bindingLimits:`; each key defaults to the `namers::bind` default.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingLimitsConfig {
    /// Path steps across the whole tree of one bind (default 10,000).
    #[serde(default)]
    pub max_lookups: Option<NonZeroUsize>,
    /// Leaves one bind may build (default 1,000).
    #[serde(default)]
    pub max_leaves: Option<NonZeroUsize>,
    /// Milliseconds one bind may take (default 100).
    #[serde(default)]
    pub max_bind_ms: Option<NonZeroU64>,
}

impl BindingLimitsConfig {
    /// The limits, each key's default where it is not set.
    pub fn limits(&self) -> BindLimits {
        let default = BindLimits::default();
        BindLimits {
            max_depth: default.max_depth,
            max_lookups: self.max_lookups.map_or(default.max_lookups, usize::from),
            max_leaves: self.max_leaves.map_or(default.max_leaves, usize::from),
            max_time: self
                .max_bind_ms
                .map_or(default.max_time, |ms| Duration::from_millis(ms.get())),
        }
    }
}

/// Default limit on the bytes of a client's local dtab.
pub const DEFAULT_LOCAL_DTAB_MAX_BYTES: usize = 32 * 1024;

/// Default limit on the dentries of a client's local dtab.
pub const DEFAULT_LOCAL_DTAB_MAX_DENTRIES: usize = 1_000;

/// How large a dtab a client adds to its request may be (the router's
/// `l5d-dtab` headers, namerd's `dtab` parameter). Real overrides are a few
/// dentries; the defaults leave room for hundreds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDtabLimits {
    /// Bytes of the dtab's text.
    pub max_bytes: usize,
    /// Dentries of the dtab.
    pub max_dentries: usize,
}

impl Default for LocalDtabLimits {
    fn default() -> Self {
        LocalDtabLimits {
            max_bytes: DEFAULT_LOCAL_DTAB_MAX_BYTES,
            max_dentries: DEFAULT_LOCAL_DTAB_MAX_DENTRIES,
        }
    }
}

impl LocalDtabLimits {
    /// Reads `text` as a dtab within the limits: its size is checked before
    /// it is parsed. The error says which limit, and the key that sets it.
    pub fn read(&self, text: &str, key: &str) -> Result<Dtab, String> {
        if text.len() > self.max_bytes {
            return Err(format!(
                "the dtab is {} bytes, over the limit of {} ({key}.maxBytes)",
                text.len(),
                self.max_bytes
            ));
        }
        let dtab = Dtab::read(text).map_err(|e| e.to_string())?;
        if dtab.len() > self.max_dentries {
            return Err(format!(
                "the dtab has {} dentries, over the limit of {} ({key}.maxDentries)",
                dtab.len(),
                self.max_dentries
            ));
        }
        Ok(dtab)
    }
}

/// The config block of [`LocalDtabLimits`]; each key defaults to the
/// default limit.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalDtabLimitsConfig {
    /// Bytes of a local dtab (default 32 KiB).
    #[serde(default)]
    pub max_bytes: Option<NonZeroUsize>,
    /// Dentries of a local dtab (default 1,000).
    #[serde(default)]
    pub max_dentries: Option<NonZeroUsize>,
}

impl LocalDtabLimitsConfig {
    /// The limits, each key's default where it is not set.
    pub fn limits(&self) -> LocalDtabLimits {
        let default = LocalDtabLimits::default();
        LocalDtabLimits {
            max_bytes: self.max_bytes.map_or(default.max_bytes, usize::from),
            max_dentries: self.max_dentries.map_or(default.max_dentries, usize::from),
        }
    }
}
