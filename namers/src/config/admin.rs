//! The `admin:` block, the same in `linkerd.yaml` and `namerd.yaml`
//! (Linkerd's routers and namerd share one admin config too); each program
//! brings its own default port and grace period.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::tls::{ALPN_HTTP11, ServerTls, ServerTlsConfig};

/// `admin: {ip, port, shutdownGraceMs, histogramSnapshotIntervalMs, tls}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    /// Address to listen on (loopback when absent).
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Port (the program's default when absent).
    #[serde(default)]
    pub port: Option<u16>,
    /// How long requests in flight get to finish when the program stops.
    #[serde(default)]
    pub shutdown_grace_ms: Option<u64>,
    /// How often stats (latency histograms) are summarised for the metrics
    /// endpoints, in ms (default 60000). Linkerd set it with the
    /// `histogramSnapshotInterval` flag; a key of our own here.
    #[serde(default)]
    pub histogram_snapshot_interval_ms: Option<std::num::NonZeroU64>,
    /// Serve the admin port over TLS (Linkerd's server `tls:` block).
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

impl AdminConfig {
    /// Where the admin server listens, `default_port` unless set.
    pub fn addr(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(
            self.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            self.port.unwrap_or(default_port),
        )
    }

    /// How often stats are summarised.
    pub fn histogram_snapshot_interval(&self) -> Duration {
        self.histogram_snapshot_interval_ms
            .map_or(crate::telemetry::DEFAULT_SNAPSHOT_INTERVAL, |ms| {
                Duration::from_millis(ms.get())
            })
    }

    /// The admin server's TLS, read from its files now (`None` without a
    /// `tls:` block or with `enabled: false`). Errors start with the key,
    /// `admin.tls: `, then name the file and what is wrong with it. Call
    /// [`ServerTls::watch`] on it, within a runtime, to take new
    /// certificates when the files change.
    pub fn server_tls(&self) -> Result<Option<Arc<ServerTls>>, String> {
        let Some(tls) = self.tls.as_ref().filter(|tls| tls.is_enabled()) else {
            return Ok(None);
        };
        // The admin servers speak HTTP/1.1 only.
        let built = tls
            .build(&[ALPN_HTTP11])
            .map_err(|e| format!("admin.tls: {e}"))?;
        Ok(Some(Arc::new(built)))
    }

    /// The shutdown grace period, `default` unless set.
    pub fn shutdown_grace(&self, default: Duration) -> Duration {
        self.shutdown_grace_ms
            .map_or(default, Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_programs() {
        let admin: AdminConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(admin.addr(9990).to_string(), "127.0.0.1:9990");
        assert_eq!(
            admin.shutdown_grace(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        let admin: AdminConfig =
            serde_json::from_str(r#"{"ip": "0.0.0.0", "port": 1, "shutdownGraceMs": 250}"#)
                .unwrap();
        assert_eq!(admin.addr(9990).to_string(), "0.0.0.0:1");
        assert_eq!(
            admin.shutdown_grace(Duration::from_secs(5)),
            Duration::from_millis(250)
        );
        assert!(serde_json::from_str::<AdminConfig>(r#"{"prot": 1}"#).is_err());
    }

    #[test]
    fn tls_is_built_from_its_files_and_errors_name_the_key_and_the_file() {
        let pki = integration::pki::Pki::new("admin");
        let good = pki.leaf("admin", &["localhost"]);
        let expired = pki.expired("old", &["localhost"]);
        let admin = |cert: &std::path::Path, key: &std::path::Path, extra: &str| {
            let json = format!(r#"{{"tls": {{"certPath": {cert:?}, "keyPath": {key:?}{extra}}}}}"#);
            serde_json::from_str::<AdminConfig>(&json).unwrap()
        };
        assert!(AdminConfig::default().server_tls().unwrap().is_none());
        assert!(
            admin(&good.cert, &good.key, "")
                .server_tls()
                .unwrap()
                .is_some()
        );
        let off = admin(&expired.cert, &expired.key, r#", "enabled": false"#);
        assert!(off.server_tls().unwrap().is_none());
        let e = admin(&expired.cert, &expired.key, "")
            .server_tls()
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "admin.tls: {}: the certificate expired on ",
                expired.cert.display()
            )),
            "{e}"
        );
        let e = admin(&good.cert, &good.key, r#", "requireClientAuth": true"#)
            .server_tls()
            .unwrap_err();
        assert!(
            e.starts_with("admin.tls: requireClientAuth: needs caCertPath"),
            "{e}"
        );
    }
}
