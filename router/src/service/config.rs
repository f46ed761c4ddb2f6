//! The service stage's config: `service:` and `dtabHeaderLimits:`.

use std::sync::Arc;
use std::time::Duration;

use dtab::Path;
use namers::config::{KindConfig, kind_params};
use serde_json::{Map, Value};

use crate::client::config::{static_configs, take_kind};
use crate::policy::backoff::BackoffConfig;
use crate::policy::budget::BudgetConfig;
use crate::policy::classifier::Classifier;
use crate::policy::prefix::PrefixPattern;

/// `dtabHeaderLimits:` {maxBytes, maxDentries}, the same block as namerd's
/// `localDtabLimits:`.
pub type DtabHeaderLimitsConfig = namers::config::LocalDtabLimitsConfig;

/// `service:` as written; read by [`ServicePolicies::from_config`]. Its
/// `kind` is `io.l5d.global` (the default) or `io.l5d.static` (`configs:`
/// matched by `prefix` against the destination path; later entries
/// override earlier ones key by key).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct ServiceConfig(pub Map<String, Value>);

/// The parameters of one service block.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceParams {
    /// Time limit for a whole request, retries included, in ms.
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
    /// Which answers are failures, and which of those may be retried.
    #[serde(default)]
    pub response_classifier: Option<KindConfig>,
    /// `{budget, backoff}` of retries.
    #[serde(default)]
    pub retries: Option<RetriesConfig>,
    /// How much of a request body is kept so that it can be sent again.
    #[serde(default)]
    pub retry_buffer_size: Option<RetryBufferSize>,
}

/// `retries:`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetriesConfig {
    /// How many retries the service may make.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// The pause before each retry (default: none).
    #[serde(default)]
    pub backoff: Option<BackoffConfig>,
}

/// `retryBufferSize:` (Linkerd's h2 key, used by both protocols here).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryBufferSize {
    /// A request whose body is larger is not retried (default 16383).
    #[serde(default)]
    pub request_bytes: Option<u64>,
}

/// Linkerd's default `retryBufferSize.requestBytes`.
pub const DEFAULT_RETRY_BUFFER_BYTES: u64 = 16_383;

/// What one service block sets, checked.
#[derive(Debug, Default, Clone)]
pub struct ServiceLayer {
    total_timeout: Option<Duration>,
    classifier: Option<Classifier>,
    budget: Option<BudgetConfig>,
    backoff: Option<BackoffConfig>,
    retry_buffer: Option<u64>,
}

/// What the service stage does for one destination.
#[derive(Debug, Clone)]
pub struct ServicePolicy {
    /// The limit of a whole request.
    pub total_timeout: Option<Duration>,
    /// Classifies answers.
    pub classifier: Classifier,
    /// The retry budget's config.
    pub budget: BudgetConfig,
    /// The pause before each retry.
    pub backoff: BackoffConfig,
    /// The largest request body kept for retries.
    pub retry_buffer: u64,
}

/// A router's service policies: one for all, or per prefix.
#[derive(Debug, Clone)]
pub enum ServicePolicies {
    /// `io.l5d.global`.
    Global(Arc<ServicePolicy>),
    /// `io.l5d.static`: layers applied in order, and the classifier of
    /// services none of them sets.
    Static(Vec<(PrefixPattern, ServiceLayer)>, Classifier),
}

/// The config's service kinds.
pub const SERVICE_KINDS: &[&str] = &["io.l5d.global", "io.l5d.static"];

impl ServicePolicies {
    /// The policies when `service:` is not set; `classifier` is the
    /// router's default (see [`ServicePolicies::from_config`]).
    pub fn defaults(classifier: Classifier) -> ServicePolicies {
        ServicePolicies::Global(Arc::new(ServiceLayer::default().finish(&classifier)))
    }

    /// Reads `service:` (at key path `at`) of an `h2` router or not.
    /// `classifier` is the default of services that set none: the
    /// router-level `responseClassifier` older Linkerd configs have, or
    /// `nonRetryable5XX`.
    pub fn from_config(
        at: &str,
        config: &ServiceConfig,
        h2: bool,
        classifier: Classifier,
    ) -> Result<ServicePolicies, String> {
        let mut map = config.0.clone();
        let kind = take_kind(at, &mut map)?;
        match kind.as_deref().unwrap_or("io.l5d.global") {
            "io.l5d.global" => {
                let params: ServiceParams = kind_params(&map).map_err(|e| format!("{at}: {e}"))?;
                let layer = ServiceLayer::check(at, &params, h2)?;
                Ok(ServicePolicies::Global(Arc::new(layer.finish(&classifier))))
            }
            "io.l5d.static" => {
                let layers = static_configs(at, map, |at, params: ServiceParams| {
                    ServiceLayer::check(at, &params, h2)
                })?;
                Ok(ServicePolicies::Static(layers, classifier))
            }
            other => Err(format!(
                "{at}: kind: unknown service kind {other:?}; expected one of {}",
                SERVICE_KINDS.join(", ")
            )),
        }
    }

    /// The policy of destination `path`.
    pub fn for_path(&self, path: &Path) -> Arc<ServicePolicy> {
        match self {
            ServicePolicies::Global(policy) => policy.clone(),
            ServicePolicies::Static(layers, classifier) => {
                let mut merged = ServiceLayer::default();
                for (prefix, layer) in layers {
                    if prefix.matches(path).is_some() {
                        merged.override_with(layer);
                    }
                }
                Arc::new(merged.finish(classifier))
            }
        }
    }
}

impl ServiceLayer {
    fn check(at: &str, params: &ServiceParams, h2: bool) -> Result<ServiceLayer, String> {
        let classifier = params
            .response_classifier
            .as_ref()
            .map(|c| Classifier::from_kind(&format!("{at}.responseClassifier"), c, h2))
            .transpose()?;
        let retries = params.retries.clone().unwrap_or_default();
        if let Some(budget) = &retries.budget {
            budget
                .validate()
                .map_err(|e| format!("{at}.retries: budget: {e}"))?;
        }
        if let Some(backoff) = &retries.backoff {
            backoff
                .validate()
                .map_err(|e| format!("{at}.retries: backoff: {e}"))?;
        }
        if params.total_timeout_ms == Some(0) {
            return Err(format!("{at}: totalTimeoutMs: must be more than 0"));
        }
        Ok(ServiceLayer {
            total_timeout: params.total_timeout_ms.map(Duration::from_millis),
            classifier,
            budget: retries.budget,
            backoff: retries.backoff,
            retry_buffer: params
                .retry_buffer_size
                .as_ref()
                .and_then(|b| b.request_bytes),
        })
    }

    fn override_with(&mut self, later: &ServiceLayer) {
        if later.total_timeout.is_some() {
            self.total_timeout = later.total_timeout;
        }
        if later.classifier.is_some() {
            self.classifier.clone_from(&later.classifier);
        }
        if later.budget.is_some() {
            self.budget.clone_from(&later.budget);
        }
        if later.backoff.is_some() {
            self.backoff.clone_from(&later.backoff);
        }
        if later.retry_buffer.is_some() {
            self.retry_buffer = later.retry_buffer;
        }
    }

    fn finish(self, default_classifier: &Classifier) -> ServicePolicy {
        ServicePolicy {
            total_timeout: self.total_timeout,
            classifier: self
                .classifier
                .unwrap_or_else(|| default_classifier.clone()),
            budget: self.budget.unwrap_or_default(),
            backoff: self.backoff.unwrap_or(BackoffConfig::Constant { ms: 0 }),
            retry_buffer: self.retry_buffer.unwrap_or(DEFAULT_RETRY_BUFFER_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(json: &str) -> Result<ServicePolicies, String> {
        let config: ServiceConfig = serde_json::from_str(json).unwrap();
        ServicePolicies::from_config("service", &config, false, Classifier::default_for(false))
    }

    fn path(text: &str) -> Path {
        Path::read(text).unwrap()
    }

    #[test]
    fn static_prefixes_match_destination_paths() {
        let p = policies(
            r#"{"kind": "io.l5d.static", "configs": [
                {"prefix": "/svc", "totalTimeoutMs": 1000,
                 "responseClassifier": {"kind": "io.l5d.http.retryableRead5XX"}},
                {"prefix": "/svc/foo", "totalTimeoutMs": 500},
                {"prefix": "/svc/bar", "retryBufferSize": {"requestBytes": 10}}
            ]}"#,
        )
        .unwrap();
        let foo = p.for_path(&path("/svc/foo/x"));
        assert_eq!(foo.total_timeout, Some(Duration::from_millis(500)));
        assert_eq!(foo.classifier, Classifier::RetryableRead5xx);
        let bar = p.for_path(&path("/svc/bar"));
        assert_eq!(bar.total_timeout, Some(Duration::from_millis(1000)));
        assert_eq!(bar.retry_buffer, 10);
        let other = p.for_path(&path("/other"));
        assert_eq!(other.total_timeout, None);
        assert_eq!(other.classifier, Classifier::NonRetryable5xx);
        assert_eq!(other.retry_buffer, DEFAULT_RETRY_BUFFER_BYTES);
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = policies(r#"{"retries": {"budget": {"percentCanRetry": -1}}}"#).unwrap_err();
        assert!(
            err.starts_with("service.retries: budget: percentCanRetry"),
            "{err}"
        );
        let err = policies(r#"{"totalTimeoutMs": 0}"#).unwrap_err();
        assert_eq!(err, "service: totalTimeoutMs: must be more than 0");
        let err =
            policies(r#"{"responseClassifier": {"kind": "io.l5d.h2.grpc.default"}}"#).unwrap_err();
        assert!(err.starts_with("service.responseClassifier"), "{err}");
    }
}
