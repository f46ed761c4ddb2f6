//! The client stage: per bound id, the balancer over the live endpoint set
//! and what is sent to every endpoint of that id (`l5d-dst-*`). Failure
//! accrual, requeues and `requestAttemptTimeoutMs` belong here.

pub mod balance;
