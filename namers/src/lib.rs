//! The naming model shared by the router and namerd, and the interpreter
//! that binds a logical name through a dtab and namers into a live tree of
//! bound names.

mod activity;
mod addr;
pub mod admin_routes;
pub mod backoff;
pub mod bind;
pub mod cli;
pub mod config;
pub mod consul;
pub mod curator;
mod delegate;
pub mod dnssrv;
pub mod fs;
pub mod handshake;
mod interpreter;
pub mod json;
pub mod k8s;
mod live;
pub mod live_cache;
pub mod logging;
pub mod marathon;
pub mod metrics;
mod name;
mod namer;
mod namer_table;
pub mod resolve;
pub mod rewrite;
pub mod serversets;
pub mod session;
pub mod system;
pub mod telemetry;
pub mod tls;
pub mod transform;
pub mod ui;
pub mod zk_leader;

pub use activity::{Activity, NamingError};
pub use addr::{Addr, AddrSet, Endpoint, Metadata, WEIGHT_KEY};
pub use delegate::Delegation;
pub use interpreter::{
    Binding, Interpreter, InterpreterStats, NameInterpreter, NamerList, UnknownSystemNamer,
};
pub use live::{Live, Publisher};
pub use live_cache::LiveCache;
pub use name::{Bound, Name};
pub use namer::{Lookup, Namer, NamerCounter};
