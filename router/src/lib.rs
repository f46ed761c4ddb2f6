//! The Switchboard router: names each request, binds the name through a
//! dtab, picks an endpoint and forwards the request, streaming both ways.
//!
//! A request goes through the stages in order, each its own module:
//! [`server`] (accept, limits, context headers) → [`identify`] (request →
//! name) → [`service`] (the destination and its local dtab) → [`bind`] (the
//! bound tree) → [`client`] (per bound id: the balancer) → [`endpoint`]
//! (the connection). [`stack`] holds one configured router's stages and
//! runs a request through them. [`access_log`] writes Linkerd's access
//! logs off the request path. [`tcp`] routes and splices whole
//! connections for `protocol: tcp` routers.

pub mod access_log;
pub mod admin;
pub mod bind;
pub mod body;
pub mod client;
pub mod config;
pub(crate) mod conn;
pub mod endpoint;
pub mod errors;
pub mod http2;
pub mod identify;
pub mod interpreter;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod service;
pub mod socket_read;
pub mod stack;
pub mod stats;
pub mod tcp;
pub mod thrift;
pub mod trace;
