//! Load balancing over a bound name's live endpoint set.

mod p2c;

pub use p2c::{Balancer, Picked};
