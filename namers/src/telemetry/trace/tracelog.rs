//! `io.l5d.tracelog`: each recorded span as one log line, at a level of
//! the config's choosing, under the target `io.l5d.tracelog` (so
//! `-log.level` style filters can pick it out). Linkerd logged each of a
//! span's annotations as it came; a line per finished span says the same
//! in one place.
//!
//! Like Linkerd's, this telemeter records what the trace's decision says
//! and samples at its own rate only traces nobody decided on; it never
//! decides for a trace that goes downstream.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::Level;

use super::sampling::SampleRate;
use super::span::{Span, SpanKind};

/// The telemeter's kind.
pub(super) const KIND: &str = "io.l5d.tracelog";

/// `{kind: io.l5d.tracelog, sampleRate, level}` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    #[serde(default = "default_sample_rate")]
    sample_rate: f64,
    #[serde(default = "default_level")]
    level: String,
}

fn default_sample_rate() -> f64 {
    1.0
}

fn default_level() -> String {
    "INFO".into()
}

/// A checked `io.l5d.tracelog` telemeter.
#[derive(Clone, Debug, PartialEq)]
pub struct TracelogConfig {
    /// The share of undecided traces logged (default 1.0).
    pub sample_rate: SampleRate,
    /// The level of each line (default INFO); `None` for Linkerd's `OFF`.
    pub level: Option<Level>,
}

impl TracelogConfig {
    /// Reads and checks the telemeter's keys; `at` names the entry.
    pub(super) fn from_params(params: &Map<String, Value>, at: &str) -> Result<Self, String> {
        let p: Params = serde_path_to_error::deserialize(Value::Object(params.clone()))
            .map_err(|e| format!("{at} ({KIND}): {e}"))?;
        let sample_rate = SampleRate::new(p.sample_rate)
            .map_err(|why| format!("{at} ({KIND}): sampleRate: {why}"))?;
        let level = level_of(&p.level).map_err(|why| format!("{at} ({KIND}): level: {why}"))?;
        Ok(TracelogConfig { sample_rate, level })
    }
}

/// A level by Linkerd's names (TwitterServer's), any case, or `WARN` as
/// the router's own log levels are spelt.
fn level_of(name: &str) -> Result<Option<Level>, String> {
    Ok(Some(match name.trim().to_ascii_uppercase().as_str() {
        "ALL" | "TRACE" => Level::TRACE,
        "DEBUG" => Level::DEBUG,
        "INFO" => Level::INFO,
        "WARNING" | "WARN" => Level::WARN,
        "ERROR" | "CRITICAL" | "FATAL" => Level::ERROR,
        "OFF" => return Ok(None),
        _ => {
            return Err(format!(
                "{name:?} is not one of ALL, CRITICAL, DEBUG, ERROR, FATAL, INFO, OFF, TRACE, WARNING"
            ));
        }
    }))
}

/// Writes spans as log lines.
pub(super) struct TracelogExporter {
    level: Level,
}

impl TracelogExporter {
    /// `None` when the level is `OFF`: nothing to log.
    pub(super) fn new(config: &TracelogConfig) -> Option<TracelogExporter> {
        config.level.map(|level| TracelogExporter { level })
    }

    pub(super) fn target(&self) -> String {
        format!("the log at {}", self.level)
    }

    pub(super) fn export(&mut self, spans: &[Arc<Span>]) {
        for span in spans {
            log(self.level, span);
        }
    }
}

/// One span as fields of one event.
fn log(level: Level, span: &Span) {
    let context = &span.context;
    let parent = context.parent_id.map(|p| p.to_string()).unwrap_or_default();
    let kind = match span.kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
    };
    let remote = span
        .remote_endpoint
        .map(|a| a.to_string())
        .unwrap_or_default();
    let tags = tags_text(span);
    // `tracing` needs a level known when compiled: one call per level.
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                target: "io.l5d.tracelog",
                $level,
                trace_id = %context.trace_id,
                span_id = %context.span_id,
                parent_id = %parent,
                kind,
                name = %span.name,
                service = %span.local_service,
                remote = %remote,
                start_us = span.start_micros(),
                duration_us = span.duration_micros(),
                tags = %tags,
                "span"
            )
        };
    }
    match level {
        Level::TRACE => line!(Level::TRACE),
        Level::DEBUG => line!(Level::DEBUG),
        Level::INFO => line!(Level::INFO),
        Level::WARN => line!(Level::WARN),
        _ => line!(Level::ERROR),
    }
}

/// `key=value` pairs, space-separated, values quoted when they need it.
fn tags_text(span: &Span) -> String {
    let mut text = String::new();
    for (key, value) in &span.tags {
        if !text.is_empty() {
            text.push(' ');
        }
        if value.is_empty() || value.contains([' ', '"', '=']) {
            let _ = write!(text, "{key}={value:?}");
        } else {
            let _ = write!(text, "{key}={value}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::span::tests::client_span;

    #[test]
    fn levels_go_by_linkerds_names() {
        assert_eq!(level_of("trace"), Ok(Some(Level::TRACE)));
        assert_eq!(level_of("ALL"), Ok(Some(Level::TRACE)));
        assert_eq!(level_of("Warning"), Ok(Some(Level::WARN)));
        assert_eq!(level_of("FATAL"), Ok(Some(Level::ERROR)));
        assert_eq!(level_of("off"), Ok(None));
        assert!(level_of("supergood").unwrap_err().contains("is not one of"));
        assert_eq!(level_of("warn"), Ok(Some(Level::WARN)));
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a span logged at `level` writes under the filter `filter`.
    fn logged_with(filter: &str, level: Level) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let span = Arc::new(client_span());
        tracing::subscriber::with_default(subscriber, || {
            TracelogExporter { level }.export(&[span]);
        });
        let text = captured.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    fn logged(level: Level) -> String {
        logged_with("info", level)
    }

    #[test]
    fn a_span_is_one_line_at_the_configured_level() {
        let line = logged(Level::WARN);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains(" WARN io.l5d.tracelog: span "), "{line}");
        for field in [
            "trace_id=0000000000000102000000000000abcd",
            "span_id=0000000000000022",
            "parent_id=0000000000000011",
            "kind=\"client\"",
            "service=#/io.l5d.fs/web",
            "remote=[2001:db8::1]:8080",
            "duration_us=1500",
            "http.status_code=503",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert_eq!(logged(Level::DEBUG), "", "below the subscriber's level");
        // The target can be let through on its own.
        let line = logged_with("warn,io.l5d.tracelog=debug", Level::DEBUG);
        assert!(line.contains(" DEBUG io.l5d.tracelog: span "), "{line}");
    }

    #[test]
    fn tags_are_one_readable_field() {
        assert_eq!(
            tags_text(&client_span()),
            r#"http.method=GET http.status_code=503 error="upstream said 503""#
        );
    }
}
