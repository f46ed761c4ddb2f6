//! The bind stage's config: `bindingCache:` and `bindingLimits:` (the
//! latter shared with namerd).

pub use namers::config::BindingLimitsConfig;

/// `bindingCache:`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingCacheConfig {
    /// Cached (dtab, name) bindings (default 1000).
    #[serde(default)]
    pub paths: Option<usize>,
    /// Accepted for compatibility; bound trees are cached with paths.
    #[serde(default)]
    pub trees: Option<usize>,
    /// Accepted for compatibility; addresses live in the clients.
    #[serde(default)]
    pub bounds: Option<usize>,
    /// Cached clients, one per bound name (default 1000).
    #[serde(default)]
    pub clients: Option<usize>,
    /// Seconds an unused entry is kept (default 600).
    #[serde(default)]
    pub idle_ttl_secs: Option<u64>,
}
