//! The service file format of `io.l5d.fs`: one endpoint per line.
//!
//! ```text
//! # web, rack 1
//! 10.0.0.1 8080
//! 10.0.0.2 8080 * 0.5   # half the traffic
//! web-3.example.com 8080
//! ```
//!
//! A line is `host port` or `host port * weight`. `#` starts a comment that
//! runs to the end of the line; blank lines are ignored.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::Endpoint;

/// One endpoint line of a service file.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointLine {
    /// Where the line is in the file (1-based), for error messages.
    pub line: usize,
    /// The host: an IP address or a name to resolve.
    pub host: Host,
    /// The port, 1-65535.
    pub port: u16,
    /// The weight after `*`, if written.
    pub weight: Option<f64>,
}

impl EndpointLine {
    /// The endpoint at `addr` (one address of this line's host) with this
    /// line's weight.
    pub fn endpoint(&self, addr: SocketAddr) -> Endpoint {
        let endpoint = Endpoint::new(addr);
        match self.weight {
            Some(weight) => endpoint.with_weight(weight),
            None => endpoint,
        }
    }
}

/// The host part of an endpoint line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An IP address literal (IPv6 may be written in brackets).
    Ip(IpAddr),
    /// A host name, resolved through the system resolver.
    Name(String),
}

/// A malformed line in a service file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct FsParseError {
    /// The service file's name.
    pub file: String,
    /// The line (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub kind: LineError,
}

/// What is wrong with a line of a service file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A host with nothing after it.
    #[error("missing port after host {0:?}")]
    MissingPort(String),
    /// `host port *` with no weight.
    #[error("missing weight after '*'")]
    MissingWeight,
    /// The line does not have the shape `host port [* weight]`.
    #[error("expected 'host port' or 'host port * weight', found {0:?}")]
    Syntax(String),
    /// The host is neither an IP address nor a valid host name.
    #[error("invalid host {0:?}: expected an IP address or a host name")]
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {0:?}: expected a number from 1 to 65535")]
    BadPort(String),
    /// The weight is not a positive, finite number.
    #[error("invalid weight {0:?}: expected a positive number")]
    BadWeight(String),
    /// The file is not UTF-8 text from this line on.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// Parses the text of the service file `file_name` into its endpoint lines.
/// The first bad line is an error naming the file and the line.
pub fn parse_endpoints(file_name: &str, text: &str) -> Result<Vec<EndpointLine>, FsParseError> {
    let mut endpoints = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |kind| FsParseError {
            file: file_name.to_string(),
            line,
            kind,
        };
        let content = match raw.find('#') {
            Some(hash) => &raw[..hash],
            None => raw,
        };
        let tokens: Vec<&str> = content.split_whitespace().collect();
        let (host, port, weight) = match tokens.as_slice() {
            [] => continue,
            [host] => return Err(error(LineError::MissingPort(excerpt(host)))),
            [host, port] => (*host, *port, None),
            [_, _, "*"] => return Err(error(LineError::MissingWeight)),
            [host, port, "*", weight] => (*host, *port, Some(*weight)),
            _ => return Err(error(LineError::Syntax(excerpt(content.trim())))),
        };
        let host = parse_host(host).ok_or_else(|| error(LineError::BadHost(excerpt(host))))?;
        let port = parse_port(port).ok_or_else(|| error(LineError::BadPort(excerpt(port))))?;
        let weight = match weight {
            Some(w) => {
                Some(parse_weight(w).ok_or_else(|| error(LineError::BadWeight(excerpt(w))))?)
            }
            None => None,
        };
        endpoints.push(EndpointLine {
            line,
            host,
            port,
            weight,
        });
    }
    Ok(endpoints)
}

/// Decodes the bytes of a service file, blaming the line of the first byte
/// that is not UTF-8.
pub(super) fn decode(file_name: &str, bytes: Vec<u8>) -> Result<String, FsParseError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        FsParseError {
            file: file_name.to_string(),
            line,
            kind: LineError::NotUtf8,
        }
    })
}

/// At most 80 characters of user text, so errors stay readable.
fn excerpt(text: &str) -> String {
    text.chars().take(80).collect()
}

fn parse_host(text: &str) -> Option<Host> {
    if let Some(inner) = text.strip_prefix('[') {
        let ip: Ipv6Addr = inner.strip_suffix(']')?.parse().ok()?;
        return Some(Host::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    is_host_name(text).then(|| Host::Name(text.to_string()))
}

/// RFC 1123 host names (underscores tolerated, as resolvers do). A name
/// whose last label is all digits is a mistyped IP address, not a name.
fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()));
    name.split('.').all(label_ok) && !numeric_tld
}

fn parse_port(text: &str) -> Option<u16> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

fn parse_weight(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|w| w.is_finite() && *w > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Host {
        Host::Ip(text.parse().unwrap())
    }

    fn kind_at(text: &str) -> (usize, LineError) {
        let err = parse_endpoints("web", text).unwrap_err();
        assert_eq!(err.file, "web");
        (err.line, err.kind)
    }

    #[test]
    fn parses_hosts_ports_weights_and_comments() {
        let text = "# the web service\n\
                    \n\
                    10.0.0.1 8080\n\
                    \t10.0.0.2   8081 * 0.5   # half\n\
                    [::1] 80 # v6\n\
                    fe80::1 443\n\
                    web-3.example.com. 9000 * 2\n\
                    \x20\x20 # indented comment\r\n";
        let lines = parse_endpoints("web", text).unwrap();
        assert_eq!(
            lines,
            vec![
                EndpointLine {
                    line: 3,
                    host: ip("10.0.0.1"),
                    port: 8080,
                    weight: None
                },
                EndpointLine {
                    line: 4,
                    host: ip("10.0.0.2"),
                    port: 8081,
                    weight: Some(0.5)
                },
                EndpointLine {
                    line: 5,
                    host: ip("::1"),
                    port: 80,
                    weight: None
                },
                EndpointLine {
                    line: 6,
                    host: ip("fe80::1"),
                    port: 443,
                    weight: None
                },
                EndpointLine {
                    line: 7,
                    host: Host::Name("web-3.example.com.".into()),
                    port: 9000,
                    weight: Some(2.0),
                },
            ]
        );
        assert_eq!(parse_endpoints("web", "").unwrap(), vec![]);
        assert_eq!(
            parse_endpoints("web", "# nothing\n\n   \n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn endpoints_carry_the_weight() {
        let lines = parse_endpoints("web", "127.0.0.1 80 * 3\n127.0.0.1 81").unwrap();
        let weighted = lines[0].endpoint("127.0.0.1:80".parse().unwrap());
        assert_eq!(weighted.weight, 3.0);
        assert_eq!(
            weighted.meta.get(crate::WEIGHT_KEY),
            Some(&serde_json::json!(3.0))
        );
        let plain = lines[1].endpoint("127.0.0.1:81".parse().unwrap());
        assert_eq!(plain, Endpoint::new("127.0.0.1:81".parse().unwrap()));
    }

    #[test]
    fn bad_ports_are_blamed_on_their_line() {
        assert_eq!(
            kind_at("10.0.0.1 80\n10.0.0.1 0"),
            (2, LineError::BadPort("0".into()))
        );
        assert_eq!(
            kind_at("# c\n\n10.0.0.1 65536"),
            (3, LineError::BadPort("65536".into()))
        );
        assert_eq!(
            kind_at("10.0.0.1 http"),
            (1, LineError::BadPort("http".into()))
        );
        assert_eq!(
            kind_at("10.0.0.1 +80"),
            (1, LineError::BadPort("+80".into()))
        );
        assert_eq!(kind_at("10.0.0.1 -1"), (1, LineError::BadPort("-1".into())));
        assert!(parse_endpoints("web", "10.0.0.1 65535\n10.0.0.1 1").is_ok());
    }

    #[test]
    fn bad_weights_are_rejected() {
        for weight in ["abc", "0", "-1", "inf", "NaN", "1e999"] {
            let text = format!("10.0.0.1 80\n10.0.0.1 81 * {weight}");
            assert_eq!(
                kind_at(&text),
                (2, LineError::BadWeight(weight.into())),
                "{weight}"
            );
        }
        assert_eq!(kind_at("10.0.0.1 80 *"), (1, LineError::MissingWeight));
        assert_eq!(
            kind_at("10.0.0.1 80 x 2"),
            (1, LineError::Syntax("10.0.0.1 80 x 2".into()))
        );
        assert_eq!(
            kind_at("10.0.0.1 80 2"),
            (1, LineError::Syntax("10.0.0.1 80 2".into()))
        );
        assert_eq!(
            kind_at("10.0.0.1 80 * 2 3"),
            (1, LineError::Syntax("10.0.0.1 80 * 2 3".into()))
        );
    }

    #[test]
    fn missing_ports_and_bad_hosts_are_rejected() {
        assert_eq!(
            kind_at("\n10.0.0.1   # no port"),
            (2, LineError::MissingPort("10.0.0.1".into()))
        );
        assert_eq!(
            kind_at("10.0.0.1:80"),
            (1, LineError::MissingPort("10.0.0.1:80".into()))
        );
        for host in [
            "10.0.0.256",
            "1.2.3",
            "-web",
            "we b.x",
            "a..b",
            "[::1",
            "[10.0.0.1]",
            "ho$t",
            "::1]",
        ] {
            let text = format!("{host} 80");
            let (line, kind) = kind_at(&text);
            assert_eq!(line, 1);
            if host.contains(' ') {
                assert!(matches!(kind, LineError::Syntax(_)), "{host}: {kind:?}");
            } else {
                assert_eq!(kind, LineError::BadHost(host.into()), "{host}");
            }
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err =
            parse_endpoints("users", "10.0.0.1 80\n\n# x\n10.0.0.1 99999 # bad\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"users:4: invalid port "99999": expected a number from 1 to 65535"#
        );
        let long = format!("{} 80", "a".repeat(300));
        let err = parse_endpoints("web", &long).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn invalid_utf8_is_blamed_on_its_line() {
        let err = decode("web", b"10.0.0.1 80\n10.0.0.2 80\n\xff\xfe 80\n".to_vec()).unwrap_err();
        assert_eq!((err.line, err.kind), (3, LineError::NotUtf8));
        assert_eq!(
            decode("web", b"10.0.0.1 80\n".to_vec()).unwrap(),
            "10.0.0.1 80\n"
        );
    }
}
