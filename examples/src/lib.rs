//! Runnable examples and the quickstart.

pub mod harness;
pub mod load;
