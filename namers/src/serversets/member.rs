//! The data of a serverset member: the JSON form of the commons
//! `ServiceInstance` that Finagle's and the commons announcers write, e.g.
//!
//! ```json
//! {"serviceEndpoint": {"host": "10.0.0.1", "port": 8080},
//!  "additionalEndpoints": {"admin": {"host": "10.0.0.1", "port": 9990}},
//!  "status": "ALIVE", "shard": 3}
//! ```
//!
//! Read as leniently as Finagle reads it: unknown keys are ignored, and so
//! is a key of the wrong type (an endpoint without a string `host` and an
//! integer `port` is left out; a missing or unknown `status` is
//! [`Status::Unknown`]). Only data that is not a JSON object is refused.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A member's announced endpoints and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInstance {
    /// The default endpoint (`serviceEndpoint`).
    pub service_endpoint: Option<HostPort>,
    /// Named endpoints (`additionalEndpoints`), selected with
    /// `<path>:<name>`.
    pub additional_endpoints: BTreeMap<String, HostPort>,
    /// Whether the member serves; only [`Status::Alive`] members are used.
    pub status: Status,
    /// The member's shard id, if it has one.
    pub shard: Option<i32>,
}

/// A host (name or IP address) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host name or IP address, as announced.
    pub host: String,
    /// The port (1-65535).
    pub port: u16,
}

/// A member's announced state (the commons `Status` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `DEAD`.
    Dead,
    /// `STARTING`.
    Starting,
    /// `ALIVE`: the only state in which a member receives traffic.
    Alive,
    /// `STOPPING`.
    Stopping,
    /// `STOPPED`.
    Stopped,
    /// `WARNING`.
    Warning,
    /// `UNKNOWN`, missing, or a value not listed here.
    Unknown,
}

impl Status {
    fn parse(text: &str) -> Status {
        match text {
            "DEAD" => Status::Dead,
            "STARTING" => Status::Starting,
            "ALIVE" => Status::Alive,
            "STOPPING" => Status::Stopping,
            "STOPPED" => Status::Stopped,
            "WARNING" => Status::Warning,
            _ => Status::Unknown,
        }
    }
}

/// Why a member's data could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// Not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
}

/// Reads a member's data.
pub fn parse_member(data: &[u8]) -> Result<ServiceInstance, MemberError> {
    let text = std::str::from_utf8(data).map_err(|_| MemberError::NotText)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| MemberError::NotJson(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(MemberError::NotObject);
    };
    let service_endpoint = object.get("serviceEndpoint").and_then(host_port);
    let additional_endpoints = match object.get("additionalEndpoints") {
        Some(Value::Object(named)) => named
            .iter()
            .filter_map(|(name, endpoint)| Some((name.clone(), host_port(endpoint)?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let status = match object.get("status") {
        Some(Value::String(status)) => Status::parse(status),
        _ => Status::Unknown,
    };
    let shard = object
        .get("shard")
        .and_then(Value::as_i64)
        .and_then(|s| i32::try_from(s).ok());
    Ok(ServiceInstance {
        service_endpoint,
        additional_endpoints,
        status,
        shard,
    })
}

fn host_port(value: &Value) -> Option<HostPort> {
    let object: &Map<String, Value> = value.as_object()?;
    let host = object.get("host")?.as_str()?;
    let port = object.get("port")?.as_u64()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    Some(HostPort {
        host: host.to_string(),
        port,
    })
}

impl ServiceInstance {
    /// The endpoint named `name`, or the default endpoint for `None`.
    pub fn endpoint(&self, name: Option<&str>) -> Option<&HostPort> {
        match name {
            None => self.service_endpoint.as_ref(),
            Some(name) => self.additional_endpoints.get(name),
        }
    }

    /// This instance as JSON, in the form announcers write.
    pub fn to_json(&self) -> String {
        let endpoint = |hp: &HostPort| serde_json::json!({"host": hp.host, "port": hp.port});
        let mut object = Map::new();
        if let Some(hp) = &self.service_endpoint {
            object.insert("serviceEndpoint".into(), endpoint(hp));
        }
        let named: Map<String, Value> = self
            .additional_endpoints
            .iter()
            .map(|(name, hp)| (name.clone(), endpoint(hp)))
            .collect();
        object.insert("additionalEndpoints".into(), Value::Object(named));
        let status = match self.status {
            Status::Dead => "DEAD",
            Status::Starting => "STARTING",
            Status::Alive => "ALIVE",
            Status::Stopping => "STOPPING",
            Status::Stopped => "STOPPED",
            Status::Warning => "WARNING",
            Status::Unknown => "UNKNOWN",
        };
        object.insert("status".into(), status.into());
        if let Some(shard) = self.shard {
            object.insert("shard".into(), shard.into());
        }
        Value::Object(object).to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn reads_what_announcers_write() {
        let json = br#"{"serviceEndpoint":{"host":"10.0.0.1","port":8080},
            "additionalEndpoints":{"http":{"host":"10.0.0.1","port":8081},
                                   "admin":{"host":"web-1.example","port":9990}},
            "status":"ALIVE","shard":3,"memberId":"ignored"}"#;
        let member = parse_member(json).unwrap();
        assert_eq!(member.service_endpoint, Some(hp("10.0.0.1", 8080)));
        assert_eq!(member.endpoint(Some("http")), Some(&hp("10.0.0.1", 8081)));
        assert_eq!(
            member.endpoint(Some("admin")),
            Some(&hp("web-1.example", 9990))
        );
        assert_eq!(member.endpoint(Some("thrift")), None);
        assert_eq!(member.status, Status::Alive);
        assert_eq!(member.shard, Some(3));
        assert_eq!(parse_member(member.to_json().as_bytes()).unwrap(), member);
    }

    #[test]
    fn is_lenient_like_finagle() {
        let member = parse_member(
            br#"{"serviceEndpoint":{"host":"h","port":"80"},
                "additionalEndpoints":{"a":{"host":1,"port":1},"b":{"host":"b","port":70000},
                                       "c":{"host":"c","port":0},"d":{"host":"d","port":7}},
                "status":"SLEEPING","shard":"x"}"#,
        )
        .unwrap();
        assert_eq!(member.service_endpoint, None);
        assert_eq!(
            member.additional_endpoints.keys().collect::<Vec<_>>(),
            ["d"]
        );
        assert_eq!(member.status, Status::Unknown);
        assert_eq!(member.shard, None);
        let bare = parse_member(b"{}").unwrap();
        assert_eq!(bare.status, Status::Unknown);
        assert!(bare.additional_endpoints.is_empty());
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert_eq!(parse_member(b"[1]"), Err(MemberError::NotObject));
        assert_eq!(parse_member(b"\xff"), Err(MemberError::NotText));
        assert!(matches!(parse_member(b"{"), Err(MemberError::NotJson(_))));
        assert!(matches!(parse_member(b""), Err(MemberError::NotJson(_))));
    }
}
