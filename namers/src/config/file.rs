//! Reading config files: JSON when the text starts with `{`, YAML
//! otherwise (as Linkerd does), strict about unknown and duplicate keys, with
//! errors that name the file, the key path and the line.

use std::path::Path as FsPath;

use serde::de::DeserializeOwned;

/// A config file that could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file (or `<input>` for text not read from a file).
    pub file: String,
    /// Where in the file and why.
    pub message: String,
}

impl ConfigError {
    /// An error about `file`.
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            message: message.into(),
        }
    }
}

/// Reads and parses the config file at `path`.
pub fn load<T: DeserializeOwned>(path: &FsPath) -> Result<T, ConfigError> {
    Source::read(path)?.parse()
}

/// An error about the config file at `path` found after it was parsed
/// (building what it describes): [`Source::error`] on the file as it is now.
pub fn error_in(path: &FsPath, message: &str) -> ConfigError {
    match Source::read(path) {
        Ok(source) => source.error(message),
        Err(_) => ConfigError::new(path.display().to_string(), message),
    }
}

/// A config file's name and text, kept so that errors found after parsing
/// (a kind's own keys, a bad value) can point at their line.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    text: String,
}

impl Source {
    /// Reads the file at `path`.
    pub fn read(path: &FsPath) -> Result<Source, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&name, format!("cannot read: {e}")))?;
        Ok(Source { name, text })
    }

    /// Text that was not read from a file; `name` is used in errors.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The file's name, as errors give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses the text.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        parse(&self.name, &self.text)
    }

    /// The config as JSON with its secrets replaced by `"********"`
    /// (see [`mask_secrets`]), for the admin's `/config.json`; `None` when
    /// the text does not read as YAML or JSON.
    pub fn masked_json(&self) -> Option<serde_json::Value> {
        let mut value = if self.text.trim_start().starts_with('{') {
            serde_json::from_str(&self.text).ok()?
        } else {
            serde_saphyr::from_str::<serde_json::Value>(&self.text).ok()?
        };
        mask_secrets(&mut value);
        Some(value)
    }

    /// An error found after parsing: `message` starts with the key path
    /// it is about (`routers[0].identifier[0] (io.l5d.header.token): headr:
    /// unknown field ...`); the line of that key is added after the path,
    /// and a Linkerd key this build does not have is said to be so.
    pub fn error(&self, message: &str) -> ConfigError {
        let parts: Vec<&str> = message.split(": ").collect();
        let path_parts = parts.iter().take_while(|p| is_path_part(p)).count();
        if path_parts == 0 || path_parts == parts.len() {
            return ConfigError::new(&self.name, message);
        }
        let path = parts[..path_parts]
            .iter()
            .map(|p| p.split_once(" (").map_or(*p, |(path, _)| path))
            .collect::<Vec<_>>()
            .join(".");
        let rest = linkerd_hint(&path, &parts[path_parts..].join(": "));
        let at = parts[..path_parts].join(": ");
        let message = match super::locate::line_of(&self.text, &path) {
            Some(line) => format!("{at}: line {line}: {rest}"),
            None => format!("{at}: {rest}"),
        };
        ConfigError::new(&self.name, message)
    }
}

/// Whether one `: `-separated part of a message is a key path, possibly
/// followed by the entry's kind: `routers[0].interpreter (io.l5d.fs)`.
/// Replaces the value of every key that names a secret (a password,
/// token, secret, credential, private key or authorization) with
/// `"********"`, at any depth. Paths to key files stay: they are not
/// secrets.
pub fn mask_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret_key(key) && !value.is_null() {
                    *value = serde_json::Value::from("********");
                } else {
                    mask_secrets(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let named = [
        "password",
        "secret",
        "token",
        "credential",
        "authorization",
        "apikey",
    ]
    .iter()
    .any(|word| key.contains(word));
    let is_path = key.ends_with("path") || key.ends_with("file");
    (named || key == "privatekey") && !is_path
}

fn is_path_part(part: &str) -> bool {
    let path = match part.split_once(" (") {
        Some((path, kind)) if kind.ends_with(')') && !kind.contains(' ') => path,
        Some(_) => return false,
        None => part,
    };
    path.starts_with(|c: char| c.is_ascii_alphabetic())
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
}

/// Says "not supported yet" instead of "unknown field" for a Linkerd key
/// this build does not have.
fn linkerd_hint(path: &str, message: &str) -> String {
    let Some(rest) = message.split_once("unknown field `") else {
        return message.to_string();
    };
    let Some((key, after)) = rest.1.split_once('`') else {
        return message.to_string();
    };
    // serde's path names the unknown key itself, a message's may not.
    let full = if path.ends_with(key) {
        path.to_string()
    } else {
        format!("{path}.{key}")
    };
    if !super::linkerd::is_linkerd_key(&full) {
        return message.to_string();
    }
    format!(
        "{}`{key}` is not supported yet (a Linkerd key this build does not have){after}",
        rest.0
    )
}

/// Parses config `text`; `name` is used in errors.
pub fn parse<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ConfigError> {
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        return serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = linkerd_hint(&path, &e.into_inner().to_string());
            ConfigError::new(name, format!("{}{inner}", key_prefix(&path)))
        });
    }
    match serde_saphyr::from_str::<T>(text) {
        Ok(value) => Ok(value),
        Err(yaml_error) => {
            // The YAML error knows the line; a second pass through a generic
            // value finds the key path (when the YAML itself is well formed).
            let first_line = yaml_error
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let located = first_line
                .strip_prefix("error: ")
                .unwrap_or(&first_line)
                .to_string();
            let path = serde_saphyr::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_path_to_error::deserialize::<_, T>(v).err())
                .map(|e| e.path().to_string());
            let message = match path {
                Some(path) if path != "." => {
                    format!("{}{}", key_prefix(&path), linkerd_hint(&path, &located))
                }
                _ => located,
            };
            Err(ConfigError::new(name, message))
        }
    }
}

fn key_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_the_shown_config() {
        let source = Source::new(
            "namerd.yaml",
            "interfaces:\n- kind: io.l5d.httpController\n  writeToken: s3cret\nstorage:\n  kind: io.l5d.consul\n  token: t0k\n  tls:\n    caCertPath: /ca.pem\n",
        );
        let shown = source.masked_json().unwrap();
        assert_eq!(shown["interfaces"][0]["writeToken"], "********");
        assert_eq!(shown["storage"]["token"], "********");
        assert_eq!(shown["storage"]["tls"]["caCertPath"], "/ca.pem");
        assert!(!shown.to_string().contains("s3cret"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        admin: Option<Admin>,
        routers: Vec<Admin>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Admin {
        port: u16,
    }

    #[test]
    fn yaml_errors_name_the_key_path_and_line() {
        let err = parse::<Config>("linkerd.yaml", "routers:\n- port: 1\n- prot: 2\n").unwrap_err();
        assert_eq!(err.file, "linkerd.yaml");
        assert!(err.message.starts_with("routers[1].prot: "), "{err}");
        assert!(err.message.contains("line 3"), "{err}");
        assert!(err.message.contains("unknown field `prot`"), "{err}");
    }

    #[test]
    fn linkerd_keys_this_build_lacks_are_not_supported_yet() {
        let err = parse::<Config>("linkerd.yaml", "routers:\n- port: 1\n  tls: {}\n").unwrap_err();
        assert!(err.message.starts_with("routers[0].tls: "), "{err}");
        assert!(err.message.contains("line 3"), "{err}");
        // Not a key in `Admin`, and not one of Linkerd's either.
        let err = parse::<Config>("linkerd.yaml", "routers:\n- port: 1\n  tsl: {}\n").unwrap_err();
        assert!(err.message.contains("unknown field `tsl`"), "{err}");
        assert!(!err.message.contains("not supported yet"), "{err}");
    }

    #[test]
    fn errors_after_parsing_get_the_line_of_their_key() {
        let source = Source::new(
            "linkerd.yaml",
            "routers:\n- protocol: http\n  identifier:\n    kind: io.l5d.header.token\n    headr: x\n",
        );
        let err = source.error(
            "routers[0].identifier (io.l5d.header.token): headr: unknown field `headr`, expected `header`",
        );
        assert_eq!(err.file, "linkerd.yaml");
        assert_eq!(
            err.message,
            "routers[0].identifier (io.l5d.header.token): headr: line 5: unknown field `headr`, expected `header`"
        );
        let err = source.error("routers[0].client: clientSession: unknown field `clientSession`");
        assert!(
            err.message.contains("`clientSession` is not supported yet"),
            "{err}"
        );
        // A message that starts with no key path is left as it is.
        let err = source.error("DNS resolver failed: no such file");
        assert_eq!(err.message, "DNS resolver failed: no such file");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse::<Config>("x.yaml", "routers: []\nrouters: []\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
        let err = parse::<Config>("x.json", r#"{"routers": [], "routers": []}"#).unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn json_is_chosen_by_its_first_character() {
        let config: Config =
            parse("x.json", r#"{"admin": {"port": 9990}, "routers": []}"#).unwrap();
        assert_eq!(config.admin.unwrap().port, 9990);
        let err = parse::<Config>("x.json", r#"{"routers": [{"port": "x"}]}"#).unwrap_err();
        assert!(err.message.starts_with("routers[0].port: "), "{err}");
    }
}
