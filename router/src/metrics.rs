//! What the admin server shows of the routers' and namers' figures: the
//! telemeters and endpoints are namerd's too ([`namers::telemetry::telemeters`]);
//! the router adds the paths its admin server already answers, which a
//! telemeter's `path` may not take.

pub use namers::telemetry::telemeters::{
    DEFAULT_PROMETHEUS_PATH, INFLUXDB_PATH, METRICS_JSON_PATH, Metrics, TELEMETERS, Telemeters,
};

/// The router admin server's own paths.
pub const ADMIN_PATHS: &[&str] = &[
    "/admin/ping",
    "/admin/ready",
    "/admin/shutdown",
    "/logging.json",
    "/admin/logging",
    "/delegator.json",
    "/client_state.json",
];

/// Checks the `telemetry:` list of a router config.
pub fn telemeters(list: &[namers::config::KindConfig]) -> Result<Telemeters, String> {
    Telemeters::from_config(list, ADMIN_PATHS)
}
