//! Configuration shared by the router and namerd: reading config files and
//! building namers from their `namers:` entries.

mod admin;
mod file;
mod limits;
pub mod linkerd;
mod locate;
mod namer;

pub use admin::AdminConfig;
pub use file::{ConfigError, Source, error_in, load, mask_secrets, parse};
pub use limits::{
    BindingLimitsConfig, DEFAULT_LOCAL_DTAB_MAX_BYTES, DEFAULT_LOCAL_DTAB_MAX_DENTRIES,
    LocalDtabLimits, LocalDtabLimitsConfig,
};
pub use locate::line_of;
pub use namer::{KindConfig, NamerConfig, NamerContext, build_namers, kind_params, namer_kinds};
