//! The service stage's config: `service:` and `dtabHeaderLimits:`.

use std::num::NonZeroUsize;

use super::dtab_headers::DtabHeaderLimits;

/// `dtabHeaderLimits:`; each key defaults to the `dtab_headers` default.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DtabHeaderLimitsConfig {
    /// Bytes of all dtab header values of a request (default 32 KiB).
    #[serde(default)]
    pub max_bytes: Option<NonZeroUsize>,
    /// Dentries of a request's local dtab (default 1,000).
    #[serde(default)]
    pub max_dentries: Option<NonZeroUsize>,
}

impl DtabHeaderLimitsConfig {
    /// The limits, each key's default where it is not set.
    pub fn limits(&self) -> DtabHeaderLimits {
        let default = DtabHeaderLimits::default();
        DtabHeaderLimits {
            max_bytes: self.max_bytes.map_or(default.max_bytes, usize::from),
            max_dentries: self.max_dentries.map_or(default.max_dentries, usize::from),
        }
    }
}

/// `service:`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Time limit for a whole request, in ms.
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
}
