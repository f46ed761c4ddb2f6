//! Load balancing over a bound name's live endpoint set, honouring each
//! endpoint's failure accrual.
//!
//! A [`Balancer`] follows the name's live address: the request path reads
//! the endpoint set lock-free from an `ArcSwap`, rebuilt only when the
//! address changes, keeping the in-flight count, health and latency of the
//! endpoints that stay. A pick skips removed endpoints, trying up to
//! `maxEffort` times; when every try lands on a removed endpoint the last
//! one is used anyway (as in Finagle, a balancer whose endpoints are all
//! removed still sends). The kinds are in their own modules: `p2c`
//! (also behind `ewma` and `aperture`), `ewma`, `aperture`, `heap`
//! and `round_robin`.

mod aperture;
mod balancer;
mod config;
mod ewma;
mod heap;
mod node;
mod p2c;
mod round_robin;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use crate::client::accrual::HealthState;
pub use balancer::{Balancer, Picked};
pub use config::{BalanceConfig, BalancerKind, KINDS};
pub use node::Owner;

/// How a request to a picked endpoint ended, for its failure accrual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response was classified a success.
    Success,
    /// The response was classified a failure, or the request failed after
    /// it was sent.
    Failure,
    /// No connection could be made: a failure, and with `failFast` the
    /// endpoint is removed at once.
    ConnectFailed,
}

/// One endpoint as the admin page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointState {
    /// Where it is.
    pub addr: SocketAddr,
    /// Its weight in the address.
    pub weight: f64,
    /// Requests in flight to it.
    pub in_flight: usize,
    /// Its failure-accrual state.
    pub state: HealthState,
    /// The balancer's own load figure: requests in flight per unit of
    /// weight, or for `ewma` the cost (smoothed latency in ms times in
    /// flight plus one) per unit of weight.
    pub load: f64,
}
