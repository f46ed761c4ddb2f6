//! The Containerfiles of `examples/deploy/containers/`, which cannot be
//! built here (no container engine): read as text, each must build a binary
//! the workspace really has, from a workspace copied whole, and run it as a
//! numeric non-root user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// One `FROM` stage: its image, its name, its instructions (continuation
/// lines joined).
pub(crate) struct Stage {
    /// The image after `FROM`.
    pub(crate) from: String,
    /// The name after `AS`.
    pub(crate) name: Option<String>,
    /// `(INSTRUCTION, rest of the line)`.
    pub(crate) lines: Vec<(String, String)>,
}

impl Stage {
    fn all<'a>(&'a self, instruction: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter(move |(i, _)| i == instruction)
            .map(|(_, rest)| rest.as_str())
    }
}

/// The stages of a Containerfile.
pub(crate) fn stages(text: &str) -> Vec<Stage> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in joined {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let rest = rest.trim().to_string();
        if instruction == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: words.first().unwrap_or(&"").to_string(),
                name,
                lines: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.lines.push((instruction, rest));
        }
    }
    stages
}

/// The workspace as cargo sees it: each package's binaries, and the
/// members' directories relative to the root.
pub(crate) struct Workspace {
    /// Package name to its binary targets.
    pub(crate) bins: BTreeMap<String, BTreeSet<String>>,
    /// Top-level directories holding members (`namerd` for `namerd/client`).
    pub(crate) member_dirs: BTreeSet<String>,
}

/// `cargo metadata` of the workspace this test is part of.
pub(crate) fn workspace() -> Workspace {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let root = metadata["workspace_root"].as_str().expect("workspace_root");
    let mut bins = BTreeMap::new();
    let mut member_dirs = BTreeSet::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"]
            .as_str()
            .expect("a package name")
            .to_string();
        let targets = package["targets"].as_array().expect("targets");
        let package_bins = targets
            .iter()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        bins.insert(name, package_bins);
        let manifest = package["manifest_path"].as_str().expect("manifest_path");
        let relative = manifest
            .strip_prefix(root)
            .expect("a member under the root")
            .trim_start_matches('/');
        let top = relative.split('/').next().expect("a path");
        member_dirs.insert(top.to_string());
    }
    Workspace { bins, member_dirs }
}

/// What a Containerfile's final stage runs.
pub(crate) struct Image {
    /// The binary copied in and run.
    pub(crate) bin: String,
    /// Its `USER` uid.
    pub(crate) uid: u32,
}

/// Checks one Containerfile; gives what its image runs, or what is wrong.
pub(crate) fn check(file: &str, text: &str, workspace: &Workspace) -> Result<Image, Vec<String>> {
    let mut problems = Vec::new();
    let stages = stages(text);
    let Some((last, builders)) = stages.split_last() else {
        return Err(vec![format!("{file}: no FROM")]);
    };
    if builders.is_empty() {
        problems.push(format!(
            "{file}: one stage; the binary is to be built in another"
        ));
    }
    if !(last.from.contains("distroless") || last.from.contains("-slim")) {
        problems.push(format!(
            "{file}: the final stage is {}, not a distroless or slim image",
            last.from
        ));
    }
    // COPY --from=<stage> <workdir>/target/dist/<bin> <dst>
    let copies: Vec<Vec<&str>> = last
        .all("COPY")
        .map(|rest| rest.split_whitespace().collect())
        .filter(|words: &Vec<&str>| words.first().is_some_and(|w| w.starts_with("--from=")))
        .collect();
    let [copy] = copies.as_slice() else {
        return Err(vec![format!(
            "{file}: the final stage must copy exactly one file from a build stage"
        )]);
    };
    let [from, src, dst] = copy.as_slice() else {
        return Err(vec![format!(
            "{file}: COPY {} is not --from=<stage> <binary> <path>",
            copy.join(" ")
        )]);
    };
    let from = from.trim_start_matches("--from=");
    let bin = src.rsplit('/').next().unwrap_or("").to_string();
    let Some(builder) = builders.iter().find(|s| s.name.as_deref() == Some(from)) else {
        return Err(vec![format!(
            "{file}: COPY --from={from}: no earlier stage of that name"
        )]);
    };
    if file != format!("{bin}.Containerfile") {
        problems.push(format!(
            "{file}: copies {bin}; the file is to be named {bin}.Containerfile"
        ));
    }
    let workdir = builder.all("WORKDIR").last().unwrap_or("/");
    let built_at = format!("{}/target/dist/{bin}", workdir.trim_end_matches('/'));
    if *src != built_at {
        problems.push(format!(
            "{file}: copies {src}, but cargo --profile dist puts {bin} at {built_at}"
        ));
    }
    problems.extend(check_cargo_build(file, builder, &bin, workspace));
    let copied: BTreeSet<String> = builder
        .all("COPY")
        .flat_map(|rest| {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let sources = words
                .split_last()
                .map(|(_, s)| s.to_vec())
                .unwrap_or_default();
            sources
                .into_iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock"]
        .into_iter()
        .map(str::to_string)
        .chain(workspace.member_dirs.iter().cloned())
    {
        if !copied.contains(&needed) && !copied.contains(".") {
            problems.push(format!(
                "{file}: the build stage does not copy {needed} (cargo needs every member)"
            ));
        }
    }
    let entrypoint: Option<Vec<String>> = last
        .all("ENTRYPOINT")
        .last()
        .and_then(|rest| serde_json::from_str(rest).ok());
    if entrypoint.as_ref().and_then(|e| e.first()) != Some(&dst.to_string()) {
        problems.push(format!(
            "{file}: ENTRYPOINT must be the exec form [\"{dst}\", …]"
        ));
    }
    let user = last.all("USER").last().unwrap_or("");
    let ids: Vec<Option<u32>> = user.split(':').map(|id| id.parse().ok()).collect();
    let uid = match ids.as_slice() {
        [Some(uid)] | [Some(uid), Some(_)] if ids.iter().all(|id| *id != Some(0)) => Some(*uid),
        _ => None,
    };
    let Some(uid) = uid else {
        problems.push(format!(
            "{file}: the final stage must run as a numeric non-root USER (uid or uid:gid), not {user:?}"
        ));
        return Err(problems);
    };
    if problems.is_empty() {
        Ok(Image { bin, uid })
    } else {
        Err(problems)
    }
}

/// The build stage runs `cargo build --locked --profile dist -p <package>`
/// for a package that has `bin`.
fn check_cargo_build(file: &str, builder: &Stage, bin: &str, workspace: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let builds: Vec<Vec<&str>> = builder
        .all("RUN")
        .flat_map(|rest| rest.split("&&"))
        .map(|command| command.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.starts_with(&["cargo", "build"]))
        .collect();
    let [words] = builds.as_slice() else {
        return vec![format!(
            "{file}: the build stage must run `cargo build` once"
        )];
    };
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    if after("--profile") != Some("dist") {
        problems.push(format!("{file}: cargo build without --profile dist"));
    }
    if !words.contains(&"--locked") {
        problems.push(format!("{file}: cargo build without --locked"));
    }
    match after("-p").or_else(|| after("--package")) {
        None => problems.push(format!("{file}: cargo build names no package (-p)")),
        Some(package) => match workspace.bins.get(package) {
            None => problems.push(format!(
                "{file}: -p {package}: the workspace has no such package"
            )),
            Some(bins) if !bins.contains(bin) => problems.push(format!(
                "{file}: package {package} has no binary {bin} (it has {bins:?})"
            )),
            Some(_) => {}
        },
    }
    if let Some(only) = after("--bin")
        && only != bin
    {
        problems.push(format!("{file}: builds --bin {only} but copies {bin}"));
    }
    problems
}
