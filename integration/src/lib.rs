//! Helpers for the end-to-end tests in `tests/`.

pub mod consul;
pub mod process;
pub mod servers;
