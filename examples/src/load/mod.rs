//! The load harness's pieces: proxies started side by side in front of
//! one upstream, pinned to one core, loaded in turn, and what `/proc`
//! says each run cost. `loadtest` (plain HTTP/1.1) and `tls_loadtest`
//! (TLS termination) are built from them; `control_plane_scale` uses
//! `namerd` (namerd and routers bound through it) and `keepalive`.

pub mod conns;
pub mod handshakes;
pub mod keepalive;
pub mod namerd;
pub mod probe;
pub mod procs;
pub mod report;
pub mod rounds;
pub mod scenario;
pub mod scenario_report;
pub mod servers;
pub mod sys;
pub mod tls;
pub mod wrk;
