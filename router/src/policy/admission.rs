//! What a router lets in before it binds a request: its `accessControl`
//! and its `rateLimits`, which can be replaced while it runs (on `SIGHUP`,
//! from the config file).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;
use dtab::Path;

use super::access::{AccessControlConfig, AccessPolicy};
use super::rate_limit::{RateLimitConfig, RateLimits};
use crate::errors::RouterError;
use crate::server::context::Downstream;

/// A router's access control and rate limits.
#[derive(Default)]
pub struct Admission {
    /// Whether there is anything to check: most routers have neither, and
    /// pay one load per request for it.
    active: AtomicBool,
    access: ArcSwapOption<AccessPolicy>,
    limits: ArcSwapOption<RateLimits>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The checked policies, before they are put in place.
pub struct AdmissionPolicies {
    access: Option<AccessPolicy>,
    limits: Option<RateLimits>,
}

impl AdmissionPolicies {
    /// Reads `accessControl` and `rateLimits` of the router at `at`.
    pub fn from_config(
        at: &str,
        access: Option<&AccessControlConfig>,
        limits: Option<&[RateLimitConfig]>,
    ) -> Result<AdmissionPolicies, String> {
        let access = access
            .map(|config| AccessPolicy::from_config(&format!("{at}.accessControl"), config))
            .transpose()?
            .filter(|policy| !policy.allows_everything());
        let limits = limits
            .map(|config| RateLimits::from_config(&format!("{at}.rateLimits"), config))
            .transpose()?
            .filter(|limits| !limits.is_empty());
        Ok(AdmissionPolicies { access, limits })
    }
}

impl Admission {
    /// Admission under `policies`.
    pub fn new(policies: AdmissionPolicies) -> Admission {
        let admission = Admission::default();
        admission.replace(policies);
        admission
    }

    /// Puts `policies` in place of the current ones (rate limits start
    /// with full buckets).
    pub fn replace(&self, policies: AdmissionPolicies) {
        let active = policies.access.is_some() || policies.limits.is_some();
        self.access.store(policies.access.map(Arc::new));
        self.limits.store(policies.limits.map(Arc::new));
        self.active.store(active, Ordering::Release);
    }

    /// Refuses a request for `dst` from `downstream` that access control
    /// denies (403) or that is over a rate limit (429).
    #[inline]
    pub(crate) fn check(&self, dst: &Path, downstream: &Downstream) -> Result<(), RouterError> {
        if !self.active.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check_active(dst, downstream)
    }

    fn check_active(&self, dst: &Path, downstream: &Downstream) -> Result<(), RouterError> {
        let source = downstream
            .remote
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |remote| remote.ip());
        let identity = downstream.identity.as_deref();
        if let Some(access) = self.access.load().as_deref() {
            access
                .check(dst, source, identity)
                .map_err(|denied| RouterError::Forbidden(denied.reason().to_string()))?;
        }
        if let Some(limits) = self.limits.load().as_deref() {
            let now = tokio::time::Instant::now().into_std();
            limits
                .check(dst, source, identity, now)
                .map_err(|limited| RouterError::RateLimited {
                    reason: limited.reason().to_string(),
                    retry_after_secs: limited.retry_after_secs(),
                })?;
        }
        Ok(())
    }

    /// Lists `access/...` and `rate_limits/...` under the router's scope.
    pub(crate) fn list(&self, router: &mut namers::telemetry::Scope<'_>) {
        if let Some(access) = self.access.load().as_deref() {
            let mut scope = router.scope("access");
            for stats in access.stats() {
                let mut rule = scope.scope(stats.label);
                rule.counter("allowed", stats.allowed);
                rule.counter("denied", stats.denied);
            }
        }
        if let Some(limits) = self.limits.load().as_deref() {
            let mut scope = router.scope("rate_limits");
            for stats in limits.stats() {
                let mut rule = scope.scope(&stats.index.to_string());
                rule.counter("limited", stats.limited);
                if !rule.is_rolling() {
                    #[allow(clippy::cast_precision_loss)]
                    rule.gauge("buckets", stats.buckets as f64);
                }
            }
        }
    }
}
