//! Log output shared by every binary: plain text (coloured only when stderr
//! is a terminal) or one JSON object a line, and a level filter that can be
//! changed while the process runs (the admin servers' `/logging.json` and
//! `/admin/logging`).
//!
//! JSON lines carry `time`, `level`, `target` and `message`, then the
//! event's own fields under their names. Events about a state change name
//! what changed with the same fields everywhere: `router`, `dst`, `id`
//! (a bound id), `endpoint`, `namer` (its kind), `namespace`.

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The environment variable that chooses the format when no
/// `--log-format` is given.
pub const FORMAT_ENV: &str = "SWITCHBOARD_LOG_FORMAT";

/// The environment variable with the initial filter (`info`,
/// `warn,router=debug`, ...).
pub const FILTER_ENV: &str = "RUST_LOG";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colour only on a terminal.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// `text` or `json` (for clap's `value_parser`).
    pub fn parse(text: &str) -> Result<LogFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// The running process's filter, changeable at run time.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter's text as last set (what `EnvFilter` cannot give back in
    /// its own words).
    text: Mutex<String>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs the process's logger writing to stderr in `format`, filtered by
/// `RUST_LOG` or else `default_filter`. Call once, first thing in `main`.
pub fn init(format: LogFormat, default_filter: &str) {
    let text = std::env::var(FILTER_ENV)
        .ok()
        .filter(|t| EnvFilter::try_new(t).is_ok())
        .unwrap_or_else(|| default_filter.to_string());
    let filter = EnvFilter::try_new(&text).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Text => output.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => output.event_format(JsonLines).boxed(),
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = CONTROL.set(LogControl {
            handle,
            text: Mutex::new(text),
        });
    }
}

/// The filter control, once [`init`] has run.
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

impl LogControl {
    /// The filter now, as `RUST_LOG` would spell it.
    pub fn filter(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the whole filter; a filter that does not parse is refused
    /// and the old one stays.
    pub fn set_filter(&self, text: &str) -> Result<(), String> {
        let text = text.trim();
        let filter = EnvFilter::try_new(text).map_err(|e| format!("bad filter {text:?}: {e}"))?;
        let mut current = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        self.handle
            .reload(filter)
            .map_err(|e| format!("cannot change the filter: {e}"))?;
        *current = text.to_string();
        Ok(())
    }

    /// The loggers with a level of their own, Linkerd's way: `root` for
    /// the default level, else a target (`router::client`).
    pub fn loggers(&self) -> Vec<(String, String)> {
        loggers_of(&self.filter())
    }

    /// Sets one logger's level (`root` or a target), keeping the others;
    /// levels as Linkerd named them are understood (`WARNING`, `FATAL`,
    /// `ALL`, ...).
    pub fn set_level(&self, logger: &str, level: &str) -> Result<(), String> {
        self.set_filter(&with_level(&self.filter(), logger, level)?)
    }
}

/// Answers the admin servers' log endpoints, as `(status, content type,
/// body)`:
/// - `GET /logging.json`: `[{"logger": "root", "level": "INFO"}, ...]`;
/// - `POST /logging.json?logger=<root|target>&level=<level>` (Linkerd's);
/// - `GET /admin/logging`: the whole filter, as `RUST_LOG` spells it;
/// - `PUT /admin/logging` with a whole filter as the body.
pub fn admin(
    method: &http::Method,
    path: &str,
    params: &std::collections::HashMap<String, String>,
    body: &str,
) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    const TEXT: &str = "text/plain; charset=utf-8";
    let Some(control) = control() else {
        return (503, TEXT, "logging is not set up in this process\n".into());
    };
    let answer = match (method.as_str(), path) {
        ("GET", "/logging.json") => {
            let list: Vec<Value> = control
                .loggers()
                .into_iter()
                .map(|(logger, level)| serde_json::json!({"logger": logger, "level": level}))
                .collect();
            return (200, JSON, Value::Array(list).to_string());
        }
        ("POST", "/logging.json") => match (params.get("logger"), params.get("level")) {
            (Some(logger), Some(level)) => control.set_level(logger, level),
            _ => Err("both `logger` and `level` parameters are needed".into()),
        },
        ("GET", "/admin/logging") => return (200, TEXT, format!("{}\n", control.filter())),
        ("PUT" | "POST", "/admin/logging") => control.set_filter(body),
        _ => return (405, TEXT, "method not allowed\n".into()),
    };
    match answer {
        Ok(()) => {
            tracing::info!(filter = %control.filter(), "log filter changed");
            (200, TEXT, "ok\n".into())
        }
        Err(e) => (400, TEXT, format!("{e}\n")),
    }
}

/// The filter `text` with `logger` set to `level`.
fn with_level(text: &str, logger: &str, level: &str) -> Result<String, String> {
    let level = level_name(level)?;
    let logger = logger.trim();
    if logger.is_empty() || logger.contains([',', '=', '[', ' ']) {
        return Err(format!("bad logger name {logger:?}"));
    }
    let mut directives: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && directive_logger(d) != logger)
        .collect();
    let new = if logger == "root" {
        level.to_string()
    } else {
        format!("{logger}={level}")
    };
    directives.push(&new);
    Ok(directives.join(","))
}

fn loggers_of(text: &str) -> Vec<(String, String)> {
    let mut loggers: Vec<(String, String)> = text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let level = d.rsplit_once('=').map_or(d, |(_, level)| level);
            (directive_logger(d).to_string(), level.to_ascii_uppercase())
        })
        .collect();
    if !loggers.iter().any(|(name, _)| name == "root") {
        // No default level: EnvFilter's default is `error`.
        loggers.push(("root".to_string(), "ERROR".to_string()));
    }
    loggers.sort();
    loggers
}

/// The logger a directive sets: `root` for a bare level.
fn directive_logger(directive: &str) -> &str {
    match directive.split_once('=') {
        Some((target, _)) => target.split('[').next().unwrap_or(target),
        None if directive.contains('[') => directive.split('[').next().unwrap_or(directive),
        None => "root",
    }
}

/// A level in `EnvFilter`'s words, from tracing's or Linkerd's names.
fn level_name(level: &str) -> Result<&'static str, String> {
    Ok(match level.trim().to_ascii_uppercase().as_str() {
        "ALL" | "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "FATAL" | "CRITICAL" => "error",
        "OFF" => "off",
        other => return Err(format!("unknown level {other:?}")),
    })
}

/// Formats each event as one JSON object.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("time".into(), Value::String(time));
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("target".into(), Value::String(meta.target().to_string()));
        line.insert("message".into(), Value::String(String::new()));
        event.record(&mut JsonFields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields into a JSON object; a field that repeats one
/// of the line's own keys gets a `field.` prefix rather than replacing it.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl JsonFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let key = match name {
            "message" => "message".to_string(),
            "time" | "level" | "target" => format!("field.{name}"),
            // `r#type` and the like.
            _ => name.trim_start_matches("r#").to_string(),
        };
        self.0.insert(key, value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_named_text_and_json() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert!(
            LogFormat::parse("xml")
                .unwrap_err()
                .contains("text or json")
        );
    }

    #[test]
    fn setting_a_level_replaces_only_that_logger() {
        let text = with_level("info,router::client=debug", "router::client", "WARNING").unwrap();
        assert_eq!(text, "info,router::client=warn");
        let text = with_level(&text, "root", "debug").unwrap();
        assert_eq!(text, "router::client=warn,debug");
        assert_eq!(
            loggers_of(&text),
            vec![
                ("root".to_string(), "DEBUG".to_string()),
                ("router::client".to_string(), "WARN".to_string()),
            ]
        );
    }

    #[test]
    fn bad_levels_and_logger_names_are_refused() {
        assert!(
            with_level("info", "root", "LOUD")
                .unwrap_err()
                .contains("LOUD")
        );
        assert!(with_level("info", "a=b", "info").is_err());
        assert!(with_level("info", "", "info").is_err());
    }

    #[test]
    fn a_filter_without_a_default_shows_the_root_at_error() {
        assert_eq!(
            loggers_of("namerd=debug"),
            vec![
                ("namerd".to_string(), "DEBUG".to_string()),
                ("root".to_string(), "ERROR".to_string()),
            ]
        );
    }
}
