//! Runnable examples and the quickstart.

pub mod harness;
