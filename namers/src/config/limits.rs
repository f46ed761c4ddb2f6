//! `bindingLimits:`, the work one bind may do, in router and namerd
//! configs alike.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

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
