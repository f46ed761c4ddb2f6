//! How a TLS server's certificates are doing, as metrics: `<scope>/tls/`
//! `reloads`, `reload_failures` and `expires_in_s`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::ServerTls;
use super::reload::ReloadStats;
use crate::telemetry::{Scope, Source};

/// The figures of one TLS server (an admin server, namerd's API), listed
/// under `scope` (`admin`, `interface/io.l5d.httpController`).
pub struct TlsFigures {
    scope: String,
    tls: Arc<ServerTls>,
}

impl TlsFigures {
    /// The figures of `tls`, under `scope` (segments split at `/`).
    pub fn new(scope: &str, tls: Arc<ServerTls>) -> TlsFigures {
        TlsFigures {
            scope: scope.to_string(),
            tls,
        }
    }
}

impl Source for TlsFigures {
    fn list(&self, root: &mut Scope<'_>) {
        let mut segments = self.scope.split('/').filter(|s| !s.is_empty());
        let Some(first) = segments.next() else {
            return;
        };
        let mut scope = root.scope(first);
        list_in(&mut scope, segments, self.tls.stats());
    }
}

fn list_in<'a>(
    scope: &mut Scope<'_>,
    mut segments: impl Iterator<Item = &'a str>,
    stats: &ReloadStats,
) {
    match segments.next() {
        Some(segment) => list_in(&mut scope.scope(segment), segments, stats),
        None => stats.list(&mut scope.scope("tls")),
    }
}

impl ReloadStats {
    /// Lists `reloads`, `reload_failures` and `expires_in_s` (seconds
    /// until the certificate in use expires; none without one) in `scope`.
    pub fn list(&self, scope: &mut Scope<'_>) {
        scope.counter("reloads", self.reloads.load(Relaxed));
        scope.counter("reload_failures", self.failures.load(Relaxed));
        let expires = self.expires_at.load(Relaxed);
        if scope.is_rolling() || expires == 0 {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        #[allow(clippy::cast_precision_loss)]
        scope.gauge("expires_in_s", expires as f64 - now as f64);
    }
}
