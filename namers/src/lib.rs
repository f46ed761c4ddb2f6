//! The naming model shared by the router and namerd, and the interpreter
//! that binds a logical name through a dtab and namers into a live tree of
//! bound names.

mod activity;
mod addr;
mod live;
mod name;
mod namer;

pub use activity::{Activity, NamingError};
pub use addr::{Addr, AddrSet, Endpoint, Metadata, WEIGHT_KEY};
pub use live::{Live, Publisher};
pub use name::{Bound, Name};
pub use namer::{Lookup, Namer};
