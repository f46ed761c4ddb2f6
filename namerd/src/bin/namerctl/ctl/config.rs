//! Where namerctl finds namerd: `--base-url`, then `NAMERCTL_BASE_URL`,
//! then a `.namerctl.<json|toml|yaml|yml>` file (named by `--config`, or
//! the first found from the working directory upwards), then
//! `http://localhost:4180`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{CtlError, Exit};
use namerd::client::BaseUrl;

/// The base URL when nothing else says.
pub(crate) const DEFAULT_BASE_URL: &str = "http://localhost:4180";

/// The environment variable read for the base URL.
pub(crate) const BASE_URL_ENV: &str = "NAMERCTL_BASE_URL";

/// The environment variable read for namerd's write token.
pub(crate) const TOKEN_ENV: &str = "NAMERCTL_TOKEN";

/// Config file names tried in each directory, in this order (Linkerd's
/// namerctl, through viper, tries JSON before TOML before YAML).
pub(crate) const CONFIG_FILE_NAMES: [&str; 4] = [
    ".namerctl.json",
    ".namerctl.toml",
    ".namerctl.yaml",
    ".namerctl.yml",
];

/// Where the base URL came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--base-url`.
    Flag,
    /// `NAMERCTL_BASE_URL`.
    Env,
    /// A config file.
    File(PathBuf),
    /// [`DEFAULT_BASE_URL`].
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("--base-url"),
            Source::Env => f.write_str(BASE_URL_ENV),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Default => f.write_str("the default"),
        }
    }
}

/// Picks the base URL: `flag`, else `env` (when not empty), else the
/// config file (`config`, or one found from `cwd` upwards), else the
/// default. A config file that exists but cannot be read is an error.
pub(crate) fn resolve_base_url(
    flag: Option<&str>,
    env: Option<&str>,
    config: Option<&Path>,
    cwd: &Path,
) -> Result<(BaseUrl, Source), CtlError> {
    let (text, source) = if let Some(url) = flag {
        (url.to_string(), Source::Flag)
    } else if let Some(url) = env.filter(|v| !v.trim().is_empty()) {
        (url.to_string(), Source::Env)
    } else {
        let file = match config {
            Some(path) => Some(path.to_path_buf()),
            None => find_config_file(cwd),
        };
        match file {
            Some(path) => match read_config_file(&path)? {
                Some(url) => (url, Source::File(path)),
                None => (DEFAULT_BASE_URL.to_string(), Source::Default),
            },
            None => (DEFAULT_BASE_URL.to_string(), Source::Default),
        }
    };
    let base = BaseUrl::parse(&text)
        .map_err(|e| CtlError::new(Exit::Usage, format!("{e} (from {source})")))?;
    Ok((base, source))
}

/// The first config file in `start` or one of its parents.
pub(crate) fn find_config_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        CONFIG_FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The base URL a config file sets, if it sets one. The key is `base-url`
/// (as Linkerd's namerctl reads it); `baseUrl` and `base_url` are accepted
/// too, in any case.
pub(crate) fn read_config_file(path: &Path) -> Result<Option<String>, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::NotFound {
            Exit::NotFound
        } else {
            Exit::Usage
        };
        CtlError::new(
            exit,
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    let bad = |why: String| {
        CtlError::new(
            Exit::Usage,
            format!("invalid config file {}: {why}", path.display()),
        )
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let entries: Vec<(String, Value)> = match ext {
        "toml" => read_toml(&text).map_err(bad)?,
        "yaml" | "yml" => {
            if text.trim().is_empty() {
                return Ok(None);
            }
            let value: Value = serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?;
            top_level(value).map_err(bad)?
        }
        _ => {
            let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            top_level(value).map_err(bad)?
        }
    };
    for (key, value) in entries {
        if is_base_url_key(&key) {
            return match value {
                Value::String(url) => Ok(Some(url)),
                other => Err(bad(format!("{key} must be a string, not {other}"))),
            };
        }
    }
    Ok(None)
}

fn is_base_url_key(key: &str) -> bool {
    let norm: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    norm == "baseurl"
}

fn top_level(value: Value) -> Result<Vec<(String, Value)>, String> {
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(format!("expected a map of settings, found {other}")),
    }
}

/// The top-level `key = "string"` settings of a TOML file. namerctl has
/// one setting, so this reads only quoted strings before the first table.
fn read_toml(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            break;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected key = \"value\"", n + 1))?;
        let key = key.trim().trim_matches('"').to_string();
        let value = value.trim();
        let value = strip_toml_comment(value);
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .ok_or_else(|| format!("line {}: {key} must be a quoted string", n + 1))?;
        out.push((key, Value::String(unquoted.to_string())));
    }
    Ok(out)
}

/// `"value" # comment` without the comment (a `#` inside quotes stays).
fn strip_toml_comment(value: &str) -> &str {
    let mut quote = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return value[..i].trim_end(),
            _ => {}
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_flag_wins_then_the_env_then_a_file_then_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let (b, s) = resolve_base_url(None, None, None, tmp.path()).unwrap();
        assert_eq!(
            (b.to_string(), s),
            ("http://localhost:4180".into(), Source::Default)
        );

        let file = write(tmp.path(), ".namerctl.yaml", "base-url: http://file:1\n");
        let (b, s) = resolve_base_url(None, None, None, tmp.path()).unwrap();
        assert_eq!(
            (b.to_string(), s),
            ("http://file:1".into(), Source::File(file))
        );

        let (b, s) = resolve_base_url(None, Some("http://env:2"), None, tmp.path()).unwrap();
        assert_eq!((b.to_string(), s), ("http://env:2".into(), Source::Env));
        // An empty variable counts as unset.
        let (_, s) = resolve_base_url(None, Some(""), None, tmp.path()).unwrap();
        assert!(matches!(s, Source::File(_)));

        let (b, s) = resolve_base_url(
            Some("http://flag:3/pfx"),
            Some("http://env:2"),
            None,
            tmp.path(),
        )
        .unwrap();
        assert_eq!(
            (b.to_string(), s),
            ("http://flag:3/pfx".into(), Source::Flag)
        );
    }

    #[test]
    fn config_files_are_found_in_parent_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_config_file(&deep), None);

        let top = write(
            tmp.path(),
            ".namerctl.json",
            r#"{"base-url": "http://top:1"}"#,
        );
        assert_eq!(find_config_file(&deep), Some(top));

        // The nearest directory wins; within one, JSON before YAML.
        let mid_yaml = write(
            &tmp.path().join("a"),
            ".namerctl.yml",
            "baseUrl: http://mid:2",
        );
        assert_eq!(find_config_file(&deep), Some(mid_yaml.clone()));
        let mid_json = write(&tmp.path().join("a"), ".namerctl.json", "{}");
        assert_eq!(find_config_file(&deep), Some(mid_json.clone()));
        // A file without the key leaves the default.
        let (b, s) = resolve_base_url(None, None, None, &deep).unwrap();
        assert_eq!(
            (b.to_string(), s),
            ("http://localhost:4180".into(), Source::Default)
        );
    }

    #[test]
    fn key_spellings_and_formats() {
        let tmp = tempfile::tempdir().unwrap();
        let cases = [
            (".namerctl.yaml", "# namerd\nbase-url: \"http://a:1\"\n"),
            (".namerctl.yml", "BASEURL: http://a:1\nother: 3\n"),
            (".namerctl.json", r#"{"base_url":"http://a:1"}"#),
            (
                ".namerctl.toml",
                "# c\nbase-url = \"http://a:1\" # namerd\n[x]\nbase-url = 'no'\n",
            ),
        ];
        for (name, text) in cases {
            let p = write(tmp.path(), name, text);
            assert_eq!(
                read_config_file(&p).unwrap().as_deref(),
                Some("http://a:1"),
                "{name}"
            );
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn broken_config_files_are_usage_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), ".namerctl.json", "{\"base-url\": ");
        let e = resolve_base_url(None, None, None, tmp.path()).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(
            e.message.contains(&p.display().to_string()),
            "{}",
            e.message
        );

        let p = write(tmp.path(), "explicit.yaml", "base-url: [1]\n");
        let e = resolve_base_url(None, None, Some(&p), tmp.path()).unwrap_err();
        assert!(e.message.contains("must be a string"), "{}", e.message);

        let e = resolve_base_url(None, None, Some(&tmp.path().join("nope.yaml")), tmp.path())
            .unwrap_err();
        assert_eq!(e.exit, Exit::NotFound);

        let e = resolve_base_url(Some("ftp://x:1"), None, None, tmp.path()).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("(from --base-url)"), "{}", e.message);
    }
}
