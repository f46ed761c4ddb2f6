//! The client stage's config: `client:`.

use namers::config::KindConfig;

/// `client:`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientConfig {
    /// `{kind: p2c}` (the only balancer so far).
    #[serde(default)]
    pub load_balancer: Option<KindConfig>,
    /// Time limit for one attempt, in ms.
    #[serde(default)]
    pub request_attempt_timeout_ms: Option<u64>,
    /// Timeout for opening a connection, in ms (default 3000).
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}
