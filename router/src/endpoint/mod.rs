//! The endpoint stage: one request to one chosen endpoint, over the direct
//! HTTP/1 path, hyper's HTTP/1 client or the h2 pool, with connections
//! pooled per endpoint.

pub mod h1_direct;
pub mod h1_pool;
pub mod h2_pool;
