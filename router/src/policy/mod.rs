//! Policies the service and client stages share: backoff schedules, retry
//! budgets and response classifiers.

pub mod backoff;
pub mod budget;
pub mod classifier;
pub mod prefix;
