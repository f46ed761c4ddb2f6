//! namerctl, the command-line client for namerd: its commands as library
//! code, which the `namerctl` binary wires to flags.
//!
//! Every command writes its result to `out` (stdout), its notes to `err`
//! (stderr), and returns the [`Exit`] status to end with, or a [`CtlError`]
//! that carries the message and the status.

#[cfg(test)]
mod api_tests;
pub(crate) mod config;
pub(crate) mod diff;
pub(crate) mod dtab;
pub(crate) mod edit;
pub(crate) mod follow;
pub(crate) mod format;
pub(crate) mod input;
pub(crate) mod names;
pub(crate) mod tls;

use std::fmt;
use std::io;

use namerd::client::ClientError;

/// namerctl's exit statuses (the `sysexits.h` values where one fits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done.
    Ok,
    /// 1: `dtab diff` found differences (as `diff(1)` does).
    Differ,
    /// 64: bad flags or arguments, an invalid base URL or config file.
    Usage,
    /// 65: a dtab (file, stdin or `--dtab`) does not parse, or namerd
    /// refused it (400); a TLS file is not a usable certificate or key.
    BadInput,
    /// 66: the namespace (or an input file, a TLS file) does not exist; a
    /// name that resolves to nothing (`neg`).
    NotFound,
    /// 67: the namespace already exists (create) or changed since the
    /// version given (update, edit).
    Conflict,
    /// 69: namerd is unreachable, did not answer in time, or TLS with it
    /// failed; an address is still pending.
    Unavailable,
    /// 70: namerd failed (5xx), answered something unreadable, or the name
    /// resolved to a failure.
    ServerError,
    /// 74: a local I/O failure: the editor could not run, a temporary file
    /// could not be written.
    LocalIo,
    /// 77: namerd refused a write without the right token (401/403).
    Unauthorized,
}

impl Exit {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Differ => 1,
            Exit::Usage => 64,
            Exit::BadInput => 65,
            Exit::NotFound => 66,
            Exit::Conflict => 67,
            Exit::Unavailable => 69,
            Exit::ServerError => 70,
            Exit::LocalIo => 74,
            Exit::Unauthorized => 77,
        }
    }
}

/// Why a command failed: the message for stderr and the exit status.
#[derive(Debug)]
pub(crate) struct CtlError {
    /// How namerctl exits.
    pub(crate) exit: Exit,
    /// What to tell the user (may span lines).
    pub(crate) message: String,
}

impl CtlError {
    /// An error with this status and message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> CtlError {
        CtlError {
            exit,
            message: message.into(),
        }
    }

    /// A failure to write output or a local file. A closed stdout (as in
    /// `namerctl dtab list | head -1`) is not an error worth a message.
    pub(crate) fn io(context: &str, e: &io::Error) -> CtlError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return CtlError::new(Exit::Ok, "");
        }
        CtlError::new(Exit::LocalIo, format!("{context}: {e}"))
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

/// Linkerd's namerctl says this for a 404; scripts grep for it.
pub(crate) const NOT_FOUND_MESSAGE: &str = "resource was not found by ID or name";

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> CtlError {
        let exit = match &e {
            ClientError::NotFound { .. } => {
                return CtlError::new(Exit::NotFound, format!("{NOT_FOUND_MESSAGE}: {e}"));
            }
            ClientError::Conflict { .. } => Exit::Conflict,
            ClientError::BadRequest { .. } => Exit::BadInput,
            ClientError::Unauthorized { .. } => Exit::Unauthorized,
            ClientError::Tls { .. }
            | ClientError::Unreachable { .. }
            | ClientError::Timeout { .. } => Exit::Unavailable,
            ClientError::Server { .. }
            | ClientError::Unexpected { .. }
            | ClientError::WatchFailed { .. }
            | ClientError::Protocol { .. } => Exit::ServerError,
        };
        match tls::hint(&e) {
            Some(hint) => CtlError::new(exit, format!("{e}\nhint: {hint}")),
            None => CtlError::new(exit, e.to_string()),
        }
    }
}

/// Writes `text` to `out` and flushes, mapping failures.
pub(crate) fn emit(out: &mut dyn io::Write, text: &str) -> Result<(), CtlError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CtlError::io("cannot write output", &e))
}
