//! A router's access-log keys (`httpAccessLog*` or `h2AccessLog*`),
//! checked at config load into [`AccessLogSettings`].

use std::path::PathBuf;

use crate::identify::Protocol;

/// How many bytes of lines may wait for the writer before new lines are
/// dropped (about 5,000 typical lines).
pub const DEFAULT_QUEUE_BYTES: usize = 1 << 20;

/// When the log file is rolled: renamed aside, and a new one started.
/// Linkerd's `httpAccessLogRollPolicy` values (util-logging's `Policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollPolicy {
    /// Never (the default); `SIGHUP` reopens the file at its path.
    Never,
    /// At the first line after each hour starts (UTC).
    Hourly,
    /// At the first line after each midnight (UTC).
    Daily,
    /// At the first line after midnight (UTC) starting this day of the
    /// week, numbered as Linkerd does: 1 = Sunday … 7 = Saturday.
    Weekly(u8),
    /// On each `SIGHUP` ([`crate::access_log::reopen_all`]).
    SigHup,
    /// Before a line that would make the file larger than this many bytes.
    MaxSize(u64),
}

impl RollPolicy {
    /// Parses Linkerd's names, case-insensitively: `never`, `hourly`,
    /// `daily`, `weekly(n)`, `sighup`, or a size (`3.megabytes`,
    /// `100.kilobytes`, `1.gigabyte`, `512.bytes`; units of 1024).
    pub fn parse(text: &str) -> Result<RollPolicy, String> {
        let lower = text.trim().to_ascii_lowercase();
        let policy = match lower.as_str() {
            "never" => RollPolicy::Never,
            "hourly" => RollPolicy::Hourly,
            "daily" => RollPolicy::Daily,
            "sighup" => RollPolicy::SigHup,
            other => match other
                .strip_prefix("weekly(")
                .and_then(|rest| rest.strip_suffix(')'))
            {
                Some(day) => match day.parse::<u8>() {
                    Ok(day @ 1..=7) => RollPolicy::Weekly(day),
                    _ => {
                        return Err(format!(
                            "invalid roll policy {text:?}: the day of weekly(n) is 1 (Sunday) to 7 (Saturday)"
                        ));
                    }
                },
                None => RollPolicy::MaxSize(parse_size(other).ok_or_else(|| {
                    format!(
                        "invalid roll policy {text:?}: expected never, hourly, daily, weekly(n) \
                         with n 1-7, sighup, or a size such as 100.megabytes"
                    )
                })?),
            },
        };
        Ok(policy)
    }
}

/// util's `StorageUnit` strings: `<count>.<unit>`, the unit `byte`,
/// `kilobyte`, `megabyte`, `gigabyte`, `terabyte` (an `s` allowed);
/// powers of 1024. A size of zero is refused: it would roll every line.
fn parse_size(text: &str) -> Option<u64> {
    let (count, unit) = text.split_once('.')?;
    let count: u64 = count.parse().ok()?;
    let factor: u64 = match unit.strip_suffix('s').unwrap_or(unit) {
        "byte" => 1,
        "kilobyte" => 1 << 10,
        "megabyte" => 1 << 20,
        "gigabyte" => 1 << 30,
        "terabyte" => 1 << 40,
        _ => return None,
    };
    count.checked_mul(factor).filter(|bytes| *bytes > 0)
}

/// One router's checked access-log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// The key that set the path (`routers[0].httpAccessLog`), for errors.
    pub key: String,
    /// The router's label, for log events about the file.
    pub router: String,
    /// Which line format: `http` or `h2`.
    pub protocol: Protocol,
    /// The file lines are written to.
    pub path: PathBuf,
    /// When the file is rolled.
    pub roll: RollPolicy,
    /// Whether lines already in the file are kept at start (else it is
    /// truncated).
    pub append: bool,
    /// How many rolled files are kept, newest first; `None` keeps all.
    pub rotate_count: Option<usize>,
    /// Bytes of lines that may wait for the writer ([`DEFAULT_QUEUE_BYTES`]).
    pub queue_bytes: usize,
}

impl AccessLogSettings {
    /// Linkerd's defaults for a log at `path`: roll never, append, keep
    /// every rolled file.
    pub fn new(router: &str, protocol: Protocol, path: impl Into<PathBuf>) -> AccessLogSettings {
        AccessLogSettings {
            key: format!("{}AccessLog", protocol.as_str()),
            router: router.to_string(),
            protocol,
            path: path.into(),
            roll: RollPolicy::Never,
            append: true,
            rotate_count: None,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

/// The four access-log keys of one protocol as the config has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogKeys<'a> {
    /// `…AccessLog`.
    pub path: Option<&'a str>,
    /// `…AccessLogRollPolicy`.
    pub roll_policy: Option<&'a str>,
    /// `…AccessLogAppend`.
    pub append: Option<bool>,
    /// `…AccessLogRotateCount`.
    pub rotate_count: Option<i64>,
}

impl AccessLogKeys<'_> {
    /// The name (after its prefix) of the first key that is set.
    fn first_set(&self) -> Option<&'static str> {
        [
            (self.path.is_some(), ""),
            (self.roll_policy.is_some(), "RollPolicy"),
            (self.append.is_some(), "Append"),
            (self.rotate_count.is_some(), "RotateCount"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }
}

/// Checks a router's access-log keys: `http` keys on `http` routers and
/// `h2` keys on `h2` ones. `at` is the router's key path (`routers[0]`).
/// `None` when no path is set (or it is `""`): no log.
pub fn from_keys(
    at: &str,
    router: &str,
    protocol: Protocol,
    http: AccessLogKeys<'_>,
    h2: AccessLogKeys<'_>,
) -> Result<Option<AccessLogSettings>, String> {
    let (keys, other, other_prefix) = match protocol {
        Protocol::Http => (http, h2, "h2"),
        Protocol::H2 => (h2, http, "http"),
    };
    let prefix = protocol.as_str();
    if let Some(name) = other.first_set() {
        return Err(format!(
            "{at}.{other_prefix}AccessLog{name}: only {other_prefix} routers take \
             {other_prefix}AccessLog keys; this router's protocol is {prefix}, use {prefix}AccessLog{name}"
        ));
    }
    let roll = match keys.roll_policy {
        Some(text) => {
            RollPolicy::parse(text).map_err(|e| format!("{at}.{prefix}AccessLogRollPolicy: {e}"))?
        }
        None => RollPolicy::Never,
    };
    let rotate_count = match keys.rotate_count {
        None | Some(-1) => None,
        Some(n) => Some(usize::try_from(n).map_err(|_| {
            format!(
                "{at}.{prefix}AccessLogRotateCount: {n} is not a count; -1 keeps every rolled \
                 file, n >= 0 the n newest"
            )
        })?),
    };
    let Some(path) = keys.path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(AccessLogSettings {
        key: format!("{at}.{prefix}AccessLog"),
        router: router.to_string(),
        protocol,
        path: PathBuf::from(path),
        roll,
        append: keys.append.unwrap_or(true),
        rotate_count,
        queue_bytes: DEFAULT_QUEUE_BYTES,
    }))
}

/// Refuses two routers writing one file: their writers would roll it
/// under each other. Paths are compared as written.
pub fn check_distinct_paths<'a>(
    logs: impl IntoIterator<Item = &'a AccessLogSettings>,
) -> Result<(), String> {
    let mut seen: Vec<&AccessLogSettings> = Vec::new();
    for log in logs {
        if let Some(first) = seen.iter().find(|s| s.path == log.path) {
            return Err(format!(
                "{}: {} is the access log of {} already; give each router its own file",
                log.key,
                log.path.display(),
                first.key
            ));
        }
        seen.push(log);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn roll_policies_parse_as_linkerd_s() {
        let cases = [
            ("never", RollPolicy::Never),
            ("Never", RollPolicy::Never),
            ("HOURLY", RollPolicy::Hourly),
            ("daily", RollPolicy::Daily),
            ("SigHup", RollPolicy::SigHup),
            ("weekly(1)", RollPolicy::Weekly(1)),
            ("Weekly(7)", RollPolicy::Weekly(7)),
            ("3.megabytes", RollPolicy::MaxSize(3 << 20)),
            ("100.kilobytes", RollPolicy::MaxSize(100 << 10)),
            ("1.gigabyte", RollPolicy::MaxSize(1 << 30)),
            ("512.bytes", RollPolicy::MaxSize(512)),
            ("1.byte", RollPolicy::MaxSize(1)),
            ("2.Terabytes", RollPolicy::MaxSize(2 << 40)),
        ];
        for (text, want) in cases {
            assert_eq!(RollPolicy::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_roll_policies_say_what_is_expected() {
        for text in [
            "fortnightly",
            "weekly(0)",
            "weekly(8)",
            "weekly(12)",
            "weekly()",
            "0.bytes",
            "3.megabites",
            "3 megabytes",
            "-1.bytes",
            "1.5.megabytes",
            "99999999999.terabytes",
            "",
        ] {
            let err = RollPolicy::parse(text).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid roll policy {text:?}")),
                "{err}"
            );
        }
    }

    fn keys(path: &str) -> AccessLogKeys<'_> {
        AccessLogKeys {
            path: Some(path),
            ..AccessLogKeys::default()
        }
    }

    #[test]
    fn defaults_are_linkerd_s() {
        let settings = from_keys(
            "routers[0]",
            "web",
            Protocol::Http,
            keys("a.log"),
            AccessLogKeys::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.key, "routers[0].httpAccessLog");
        assert_eq!(settings.roll, RollPolicy::Never);
        assert!(settings.append);
        assert_eq!(settings.rotate_count, None);
        assert_eq!(
            settings,
            AccessLogSettings {
                key: settings.key.clone(),
                ..AccessLogSettings::new("web", Protocol::Http, "a.log")
            }
        );
    }

    #[test]
    fn an_empty_or_missing_path_means_no_log_but_the_other_keys_are_still_checked() {
        let off = |path| {
            from_keys(
                "routers[0]",
                "web",
                Protocol::Http,
                path,
                AccessLogKeys::default(),
            )
        };
        assert_eq!(off(AccessLogKeys::default()), Ok(None));
        assert_eq!(off(keys("")), Ok(None));
        let bad = AccessLogKeys {
            roll_policy: Some("often"),
            ..AccessLogKeys::default()
        };
        let err = off(bad).unwrap_err();
        assert!(
            err.starts_with("routers[0].httpAccessLogRollPolicy: invalid roll policy \"often\""),
            "{err}"
        );
    }

    #[test]
    fn rotate_count_is_minus_one_or_a_count() {
        let with = |n| {
            from_keys(
                "routers[1]",
                "web",
                Protocol::H2,
                AccessLogKeys::default(),
                AccessLogKeys {
                    rotate_count: Some(n),
                    ..keys("a.log")
                },
            )
        };
        assert_eq!(with(-1).unwrap().unwrap().rotate_count, None);
        assert_eq!(with(0).unwrap().unwrap().rotate_count, Some(0));
        assert_eq!(with(5).unwrap().unwrap().rotate_count, Some(5));
        let err = with(-2).unwrap_err();
        assert!(
            err.starts_with("routers[1].h2AccessLogRotateCount: -2 is not a count"),
            "{err}"
        );
    }

    #[test]
    fn keys_of_the_other_protocol_are_refused_by_name() {
        let append = AccessLogKeys {
            append: Some(false),
            ..AccessLogKeys::default()
        };
        let err = from_keys(
            "routers[0]",
            "web",
            Protocol::Http,
            AccessLogKeys::default(),
            append,
        )
        .unwrap_err();
        assert!(
            err.starts_with("routers[0].h2AccessLogAppend: only h2 routers take h2AccessLog keys"),
            "{err}"
        );
        assert!(err.ends_with("use httpAccessLogAppend"), "{err}");
        let err = from_keys(
            "routers[2]",
            "grpc",
            Protocol::H2,
            keys("a.log"),
            AccessLogKeys::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("routers[2].httpAccessLog: only http routers take httpAccessLog keys"),
            "{err}"
        );
    }
}
