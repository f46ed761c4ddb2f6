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
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, format!("cannot read: {e}")))?;
    parse(&name, &text)
}

/// Parses config `text`; `name` is used in errors.
pub fn parse<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ConfigError> {
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        return serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
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
                Some(path) if path != "." => format!("{}{located}", key_prefix(&path)),
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
