//! The service stage: what a request is for, per destination path. It
//! reads the request's own dtab (`l5d-ctx-dtab`, `l5d-dtab`, bounded) and
//! names the destination, [`DstTarget`], that binding, clients and metrics
//! are keyed by. Per-service policy (`totalTimeoutMs`, retries, response
//! classifiers) belongs here.

pub mod dtab_headers;
