//! The Switchboard router: names each request, binds the name through a
//! dtab, picks an endpoint and forwards the request, streaming both ways.

pub mod admin;
pub mod balance;
pub mod body;
pub mod cache;
pub mod config;
pub mod dtab_headers;
pub mod errors;
pub mod h1_direct;
pub mod h1_pool;
pub mod h1_server;
pub mod h2_pool;
pub mod identify;
pub mod interpreter;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod socket_read;
