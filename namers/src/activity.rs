//! The state of a lookup that may still be in progress or may have failed.

use std::sync::Arc;

/// The state of a live lookup: Finagle's `Activity` state.
///
/// A failure here is an *error* (a namer could not answer), distinct from
/// the tree node `!`, which is a positive answer that says "fail".
#[derive(Clone, Debug, PartialEq)]
pub enum Activity<T> {
    /// No answer yet.
    Pending,
    /// An answer.
    Ok(T),
    /// The lookup failed.
    Failed(NamingError),
}

impl<T> Activity<T> {
    /// Whether this is [`Activity::Pending`].
    pub fn is_pending(&self) -> bool {
        matches!(self, Activity::Pending)
    }

    /// Maps an answer, keeping pending and failed states.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Activity<U> {
        match self {
            Activity::Pending => Activity::Pending,
            Activity::Ok(v) => Activity::Ok(f(v)),
            Activity::Failed(e) => Activity::Failed(e),
        }
    }

    /// The answer, if there is one.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Activity::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// Why a name could not be bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// A `/$/` path named a system namer that does not exist.
    #[error("Unknown namer: {name} for path: {path}")]
    UnknownNamer {
        /// The system namer's name, e.g. `inetx` in `/$/inetx/...`.
        name: String,
        /// The path being looked up.
        path: String,
    },
    /// A `/$/<name>` path named no system namer.
    #[error("no system namer named {name:?} (in /$/{name})")]
    UnknownSystemNamer {
        /// The name after `/$/`.
        name: String,
    },
    /// Binding needed more lookups than allowed (a loop in the dtab?).
    #[error("Max recursion level: {max} reached in Namer lookup")]
    MaxDepth {
        /// The configured limit.
        max: usize,
    },
    /// The delegator's depth limit (Linkerd's message).
    #[error("Max recursion level reached.")]
    DelegateMaxDepth,
    /// Binding went over one of its work limits
    /// ([`crate::bind::BindLimits`]): the dtab asks for too much work, and
    /// binding it again cannot help.
    #[error("binding {name} {exceeded}")]
    OverBudget {
        /// What was being bound (shortened when long).
        name: String,
        /// Which limit, with its value and config key.
        exceeded: crate::bind::Exceeded,
    },
    /// The service that binds for us (namerd) refused this binding as a
    /// bad request, e.g. its dtab is over namerd's limits: asking again
    /// cannot help.
    #[error("refused: {0}")]
    Refused(Arc<str>),
    /// A namer's backend failed; the message says which and why.
    #[error("{0}")]
    Namer(Arc<str>),
}

impl NamingError {
    /// A namer failure with the given message.
    pub fn namer(message: impl Into<String>) -> NamingError {
        NamingError::Namer(message.into().into())
    }
}
