//! Whether namerd answers, as one state for the whole interpreter: every
//! watch reports to it, and an outage is logged once when it starts and
//! once when it ends, however many watches notice it.

use std::sync::Mutex;
use std::sync::PoisonError;

/// The interpreter's view of namerd.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// namerd has answered at least once (readiness).
    heard: bool,
    /// The latest attempt failed to reach namerd: since when it is down.
    down: bool,
    /// Why namerd could not be reached last.
    last_error: Option<String>,
}

impl Reach {
    /// namerd answered (a watch delivered a value, or the readiness probe
    /// read the namespace).
    pub(crate) fn answered(&self, namespace: &str, namerd: &str) {
        let mut state = self.lock();
        state.heard = true;
        if std::mem::take(&mut state.down) {
            tracing::info!(namespace, namerd, "namerd answers again");
        }
    }

    /// An attempt to reach namerd failed.
    pub(crate) fn failed(&self, namespace: &str, namerd: &str, error: &str) {
        let mut state = self.lock();
        if !state.down {
            state.down = true;
            if state.heard {
                tracing::warn!(
                    namespace,
                    namerd,
                    error,
                    "namerd unreachable; routing on its last answers while reconnecting"
                );
            } else {
                tracing::warn!(
                    namespace,
                    namerd,
                    error,
                    "namerd unreachable; no routes yet"
                );
            }
        }
        state.last_error = Some(error.to_string());
    }

    /// Whether the latest attempt to reach namerd failed.
    pub(crate) fn is_down(&self) -> bool {
        self.lock().down
    }

    /// `Ok` once namerd has answered; else the latest reason it did not.
    pub(crate) fn heard(&self) -> Result<(), Option<String>> {
        let state = self.lock();
        if state.heard {
            Ok(())
        } else {
            Err(state.last_error.clone())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
