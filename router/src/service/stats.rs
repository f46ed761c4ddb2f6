//! The service stage's figures: `rt/<router>/service/<path>`.

use std::sync::Arc;

use namers::telemetry::{Counter, Scope, Stat};

use crate::stats::RequestStats;

/// A destination path: `rt/<router>/service/<path>`.
#[derive(Debug)]
pub(crate) struct ServiceStats {
    segment: Arc<str>,
    pub(crate) requests: RequestStats,
    /// Requests made without a retry, added to `retries_per_request` as
    /// zeros when its interval ends: most requests are, and a counter costs
    /// less than a histogram.
    unretried: Counter,
    retries_per_request: Stat,
    retries_total: Counter,
    /// Retryable failures not retried: the budget (or the request's 25
    /// retries) was spent.
    pub(crate) budget_exhausted: Counter,
    /// Not retried: the request's body could not be sent again.
    pub(crate) body_not_replayable: Counter,
    /// Not retried: the pause would have ended past the deadline.
    pub(crate) past_deadline: Counter,
}

impl ServiceStats {
    pub(crate) fn new(segment: Arc<str>) -> ServiceStats {
        ServiceStats {
            segment,
            requests: RequestStats::default(),
            unretried: Counter::default(),
            retries_per_request: Stat::default(),
            retries_total: Counter::default(),
            budget_exhausted: Counter::default(),
            body_not_replayable: Counter::default(),
            past_deadline: Counter::default(),
        }
    }

    /// The scope's name (`svc/web`).
    pub(crate) fn segment(&self) -> &Arc<str> {
        &self.segment
    }

    /// Counts a request that made `retries` retries.
    pub(crate) fn retried(&self, retries: u32) {
        if !crate::stats::COUNTING {
            return;
        }
        if retries == 0 {
            self.unretried.incr();
            return;
        }
        self.retries_per_request.add(u64::from(retries));
        self.retries_total.add(u64::from(retries));
    }

    /// Lists under `rt/<router>/service`.
    pub(crate) fn list(&self, services: &mut Scope<'_>) {
        let mut scope = services.scope(&self.segment);
        self.requests.list(&mut scope);
        if scope.is_rolling() {
            let zeros = self.unretried.take();
            self.retries_per_request.add_many(0, zeros);
        }
        scope.stat("retries/per_request", &self.retries_per_request);
        scope.counter("retries/total", self.retries_total.get());
        scope.counter("retries/budget_exhausted", self.budget_exhausted.get());
        scope.counter(
            "retries/body_not_replayable",
            self.body_not_replayable.get(),
        );
        scope.counter("retries/past_deadline", self.past_deadline.get());
    }
}
