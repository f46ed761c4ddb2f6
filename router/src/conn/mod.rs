//! What the routers of connections rather than HTTP requests (`protocol:
//! tcp` and `protocol: thrift`) share: the accept loop that stops
//! gracefully ([`accept`]), naming a destination and connecting to an
//! endpoint of its client with requeues ([`upstream`]), and refusing the
//! HTTP keys of their config by name ([`config`]).

pub(crate) mod accept;
pub(crate) mod config;
pub(crate) mod upstream;
