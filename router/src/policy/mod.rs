//! Policies the service and client stages share: backoff schedules, retry
//! budgets and response classifiers; and a router's access control and rate
//! limits.

pub mod access;
pub mod admission;
pub mod backoff;
pub mod budget;
pub mod classifier;
pub mod prefix;
pub mod rate_limit;
