//! Helpers for the end-to-end tests in `tests/`.

pub mod browser;
pub mod chaos;
pub mod consul;
pub mod fuzz;
pub mod h2load;
pub mod k8s;
pub mod marathon;
pub mod mesh;
pub mod pki;
pub mod process;
pub mod promtool;
pub mod python;
pub mod scribe;
pub mod servers;
pub mod span_collector;
pub mod thrift_namer;
pub mod tls_clients;
