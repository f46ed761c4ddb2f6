//! namerctl: the command-line client for namerd. Flags and wiring only;
//! the commands are in the `ctl` module beside this file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod ctl;

use clap::{ArgAction, Args, Parser, Subcommand};
use dtab::Path;
use namerd::Namespace;
use namerd::store::Version;

use ctl::format::DtabFormat;
use ctl::{CtlError, Exit};

/// namerctl is a command-line client for namerd.
///
/// namerctl looks for a configuration file named .namerctl.json,
/// .namerctl.toml, .namerctl.yaml or .namerctl.yml in the current directory
/// or any of its parents. Its one setting is "base-url". The base URL may
/// also be given by the NAMERCTL_BASE_URL environment variable; the
/// --base-url flag wins over both. Without any, http://localhost:4180.
///
/// An https:// base URL is reached over TLS: namerd's certificate must be
/// valid for the URL's host and signed by a CA of --ca-cert (the system's
/// CAs without it); --client-cert and --client-key give the certificate
/// to show a namerd that asks for one.
///
/// Exit codes: 0 ok, 1 `dtab diff` found differences, 64 usage error,
/// 65 invalid dtab, 66 not found, 67 conflict, 69 namerd unreachable,
/// 70 namerd failed, 74 local I/O error, 77 write refused (token).
#[derive(Debug, Parser)]
#[command(name = "namerctl", version)]
struct Cli {
    /// namerd's HTTP API, e.g. http://namerd.example.com:4180 (a path
    /// prefix is allowed).
    #[arg(long, global = true, value_name = "URL")]
    base_url: Option<String>,

    /// Read the base URL from this config file instead of searching.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// namerd's write token, sent with create, update, edit and delete
    /// (also read from NAMERCTL_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true, env = ctl::config::TOKEN_ENV)]
    token: Option<String>,

    /// For an https:// base URL: the CA certificates (PEM) namerd's
    /// certificate must be signed by; the system's CAs by default (also
    /// read from NAMERCTL_CA_CERT).
    #[arg(long, global = true, value_name = "FILE", env = ctl::tls::CA_CERT_ENV)]
    ca_cert: Option<PathBuf>,

    /// For an https:// base URL: the certificate (PEM) to show namerd,
    /// with --client-key (also read from NAMERCTL_CLIENT_CERT).
    #[arg(long, global = true, value_name = "FILE", env = ctl::tls::CLIENT_CERT_ENV)]
    client_cert: Option<PathBuf>,

    /// The private key (PEM) of --client-cert (also read from
    /// NAMERCTL_CLIENT_KEY).
    #[arg(long, global = true, value_name = "FILE", env = ctl::tls::CLIENT_KEY_ENV)]
    client_key: Option<PathBuf>,

    /// How long one request to namerd may take, in seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Control namerd's delegation tables.
    Dtab {
        /// Print JSON instead of text (`dtab list`, `dtab get`). Accepted
        /// before or after any dtab subcommand, and as --json=true or
        /// --json=false, as Linkerd's namerctl accepts it; input files are
        /// read as JSON or text by their first character either way.
        #[arg(
            long,
            global = true,
            action = ArgAction::Set,
            num_args = 0..=1,
            require_equals = true,
            default_value_t = false,
            default_missing_value = "true",
            value_name = "BOOL"
        )]
        json: bool,
        #[command(subcommand)]
        command: DtabCommand,
    },
    /// Explain how a name is delegated through a namespace's dtab.
    Delegate {
        #[command(flatten)]
        name: NameArgs,
    },
    /// Resolve a name to the addresses it is bound to.
    Resolve {
        #[command(flatten)]
        name: NameArgs,
        /// Keep printing the addresses whenever they change.
        #[arg(long)]
        watch: bool,
    },
}

/// A name to explain or resolve, as `delegate` and `resolve` take it.
#[derive(Debug, Args)]
struct NameArgs {
    /// The namespace.
    namespace: Namespace,
    /// The name, e.g. /svc/web.
    path: Path,
    /// Dentries to add after the stored dtab, e.g. "/svc/web=>/srv/web-v2".
    #[arg(long, value_name = "DTAB")]
    dtab: Option<String>,
    /// Print namerd's JSON instead of text (also as --json=true|false).
    #[arg(
        long,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum DtabCommand {
    /// List delegation table names.
    #[command(visible_alias = "ls")]
    List,
    /// Get a delegation table by name.
    #[command(visible_alias = "cat")]
    Get {
        /// The namespace.
        name: Namespace,
        /// Pretty-print (--pretty=false prints the one-line form).
        #[arg(
            long,
            action = ArgAction::Set,
            num_args = 0..=1,
            require_equals = true,
            default_value_t = true,
            default_missing_value = "true",
            value_name = "BOOL"
        )]
        pretty: bool,
        /// Keep printing the dtab whenever it changes.
        #[arg(long)]
        watch: bool,
    },
    /// Create a new delegation table from a file (- for stdin).
    #[command(visible_alias = "new")]
    Create {
        /// The namespace.
        name: Namespace,
        /// Dtab text, or JSON if it starts with { or [.
        file: String,
    },
    /// Update a delegation table from a file (- for stdin).
    #[command(visible_alias = "up")]
    Update {
        /// The namespace.
        name: Namespace,
        /// Dtab text, or JSON if it starts with { or [.
        file: String,
        /// Only update if the current version matches.
        #[arg(long)]
        version: Option<String>,
    },
    /// Delete a delegation table by name.
    #[command(visible_aliases = ["del", "rm"])]
    Delete {
        /// The namespace.
        name: Namespace,
    },
    /// Edit a delegation table in $EDITOR and update it safely.
    Edit {
        /// The namespace.
        name: Namespace,
    },
    /// Check a dtab file without contacting namerd.
    Check {
        /// Dtab text or JSON (- for stdin).
        file: String,
    },
    /// Compare a namespace's dtab with a file, dentry by dentry.
    Diff {
        /// The namespace.
        name: Namespace,
        /// Dtab text or JSON (- for stdin).
        file: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CtlError::new(Exit::LocalIo, format!("cannot start: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => fail(&e),
    }
}

fn fail(e: &CtlError) -> ExitCode {
    if !e.message.is_empty() {
        let _ = writeln!(io::stderr(), "namerctl: {}", e.message);
    }
    ExitCode::from(e.exit.code())
}

async fn run(cli: Cli) -> Result<Exit, CtlError> {
    let (out, err) = (&mut io::stdout(), &mut io::stderr());
    // `dtab check` needs no server.
    if let Command::Dtab {
        command: DtabCommand::Check { file },
        ..
    } = &cli.command
    {
        let (source, text) = ctl::input::read_source(file, &mut io::stdin().lock())?;
        return ctl::dtab::check(&source, &text, out);
    }

    let cwd = std::env::current_dir()
        .map_err(|e| CtlError::new(Exit::LocalIo, format!("no working directory: {e}")))?;
    let env = std::env::var(ctl::config::BASE_URL_ENV).ok();
    let (base, _source) = ctl::config::resolve_base_url(
        cli.base_url.as_deref(),
        env.as_deref(),
        cli.config.as_deref(),
        &cwd,
    )?;
    let files = ctl::tls::TlsFiles {
        ca_cert: cli.ca_cert.as_deref(),
        client_cert: cli.client_cert.as_deref(),
        client_key: cli.client_key.as_deref(),
    };
    let mut client = ctl::tls::client(base, files)?.with_timeout(Duration::from_secs(cli.timeout));
    if let Some(token) = cli.token.as_deref().filter(|t| !t.is_empty()) {
        client = client
            .with_bearer_token(token)
            .map_err(|e| CtlError::new(Exit::Usage, format!("invalid --token: {e}")))?;
    }

    match cli.command {
        Command::Dtab { json, command } => match command {
            DtabCommand::List => ctl::dtab::list(&client, json, out).await,
            DtabCommand::Get {
                name,
                pretty,
                watch,
            } => {
                let form = match (json, pretty) {
                    (true, _) => DtabFormat::Json,
                    (false, true) => DtabFormat::Pretty,
                    (false, false) => DtabFormat::Show,
                };
                if watch {
                    ctl::dtab::get_watch(&client, &name, form, out, err).await
                } else {
                    ctl::dtab::get(&client, &name, form, out).await
                }
            }
            DtabCommand::Create { name, file } => {
                let (source, text) = ctl::input::read_source(&file, &mut io::stdin().lock())?;
                ctl::dtab::create(&client, &name, &source, &text, out).await
            }
            DtabCommand::Update {
                name,
                file,
                version,
            } => {
                let version = match version.as_deref().filter(|v| !v.is_empty()) {
                    None => None,
                    Some(v) => Some(Version::from_etag(v).ok_or_else(|| {
                        CtlError::new(
                            Exit::Usage,
                            format!("--version {v:?} is not a namerd version"),
                        )
                    })?),
                };
                let (source, text) = ctl::input::read_source(&file, &mut io::stdin().lock())?;
                ctl::dtab::update(&client, &name, &source, &text, version.as_ref(), out).await
            }
            DtabCommand::Delete { name } => ctl::dtab::delete(&client, &name, out).await,
            DtabCommand::Edit { name } => {
                let mut term = ctl::edit::SystemTerminal::new(std::env::var("EDITOR").ok());
                ctl::edit::edit(&client, &name, &mut term, out, err).await
            }
            DtabCommand::Diff { name, file } => {
                let (source, text) = ctl::input::read_source(&file, &mut io::stdin().lock())?;
                ctl::dtab::diff(&client, &name, &source, &text, out).await
            }
            DtabCommand::Check { .. } => Ok(Exit::Ok),
        },
        Command::Delegate { name } => {
            let NameArgs {
                namespace,
                path,
                dtab,
                json,
            } = name;
            let extra = ctl::names::parse_extra_dtab(dtab.as_deref())?;
            ctl::names::delegate(&client, &namespace, &path, &extra, json, out).await
        }
        Command::Resolve { name, watch } => {
            let NameArgs {
                namespace,
                path,
                dtab,
                json,
            } = name;
            let extra = ctl::names::parse_extra_dtab(dtab.as_deref())?;
            if watch {
                ctl::names::resolve_watch(&client, &namespace, &path, &extra, json, out, err).await
            } else {
                ctl::names::resolve(&client, &namespace, &path, &extra, json, out).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("namerctl").chain(args.iter().copied()))
    }

    #[test]
    fn linkerd_namerctl_command_lines_parse() {
        for args in [
            &["dtab", "ls"][..],
            &["dtab", "list", "--json"],
            &["dtab", "cat", "default"],
            &["dtab", "get", "default", "--pretty=false"],
            &["--base-url", "http://n:4180", "dtab", "new", "ns", "-"],
            &["dtab", "up", "ns", "f.dtab", "--version", "AAAAAAAAAAE="],
            &["dtab", "rm", "ns", "--base-url=http://n:4180"],
            &["dtab", "del", "ns"],
            &["--config", "x.yaml", "dtab", "delete", "ns"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}: {:?}", parse(args).err());
        }
    }

    #[test]
    fn pretty_is_a_boolean_flag_with_an_optional_value() {
        let pretty = |args: &[&str]| match parse(args).unwrap().command {
            Command::Dtab {
                command: DtabCommand::Get { pretty, .. },
                ..
            } => pretty,
            other => panic!("{other:?}"),
        };
        assert!(pretty(&["dtab", "get", "ns"]));
        assert!(pretty(&["dtab", "get", "ns", "--pretty"]));
        assert!(pretty(&["dtab", "get", "ns", "--pretty=true"]));
        assert!(!pretty(&["dtab", "get", "ns", "--pretty=false"]));
    }

    /// Linkerd's namerctl takes `--json` on `dtab` itself, so scripts put
    /// it before or after any dtab subcommand, bare or with a value.
    #[test]
    fn json_goes_wherever_linkerd_namerctl_takes_it() {
        let json = |args: &[&str]| match parse(args) {
            Ok(Cli {
                command: Command::Dtab { json, .. },
                ..
            }) => json,
            other => panic!("{args:?}: {other:?}"),
        };
        for args in [
            &["dtab", "--json", "list"][..],
            &["dtab", "list", "--json"],
            &["dtab", "ls", "--json=true"],
            &["dtab", "--json=true", "get", "ns"],
            &["dtab", "get", "ns", "--json"],
            &["dtab", "cat", "ns", "--pretty=false", "--json"],
            &["dtab", "create", "ns", "f", "--json"],
            &[
                "dtab",
                "--json",
                "update",
                "ns",
                "f",
                "--version",
                "AAAAAAAAAAE=",
            ],
            &["dtab", "delete", "ns", "--json"],
            &["dtab", "--json", "edit", "ns"],
            &["dtab", "diff", "ns", "f", "--json"],
        ] {
            assert!(json(args), "{args:?}");
        }
        for args in [
            &["dtab", "list"][..],
            &["dtab", "--json=false", "list"],
            &["dtab", "get", "ns", "--json=false"],
        ] {
            assert!(!json(args), "{args:?}");
        }
        for args in [
            &["delegate", "ns", "/svc/a", "--json=true"][..],
            &["resolve", "ns", "/svc/a", "--json"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
        assert!(parse(&["dtab", "list", "--json=maybe"]).is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["dtab", "get"][..],
            &["dtab", "get", "a/b"],
            &["dtab", "list", "extra"],
            &["delegate", "ns", "not-a-path"],
            &["dtab", "frobnicate"],
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
        }
    }
}
