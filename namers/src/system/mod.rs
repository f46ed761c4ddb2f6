//! The `/$/` system namers: `inet` addresses, `fail`, `nil`, and Linkerd's
//! built-in `/$/io.buoyant.*` namers.

pub mod buoyant;
mod global;
pub mod inet;

pub use global::SystemNamers;
