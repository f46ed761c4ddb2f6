//! Configuration shared by the router and namerd: reading config files and
//! building namers from their `namers:` entries.

mod file;
mod namer;

pub use file::{ConfigError, load, parse};
pub use namer::{NamerConfig, NamerContext, build_namers, kind_params, namer_kinds};
