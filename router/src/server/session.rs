//! The session limits of the router's servers served by hyper (the HTTP/1
//! fallback, h2, the admin server): the shared timers of
//! [`namers::session`], plus the router's own check of each request head
//! as it arrives ([`HeadObserver`]), whose refusals the router's service
//! answers. The router's own HTTP/1 server keeps the same limits with one
//! timer of its own ([`super::h1`]).

use std::sync::{Arc, OnceLock};

pub use namers::session::{
    Activity, DEFAULT_HEAD_TIMEOUT, DEFAULT_IDLE_TIMEOUT, ReadObserver, SessionLimits, Tracked,
    Watched, drive, track,
};

use super::head_watch::{Event, HeadWatch};
use super::limits::Refusal;

/// The first request head of a connection refused by its [`HeadWatch`]:
/// its number on the connection and why.
#[derive(Clone, Default)]
pub(crate) struct Refusals {
    first: Arc<OnceLock<(u64, Refusal)>>,
}

impl Refusals {
    /// Why request number `ordinal` is refused, if it is.
    pub(crate) fn of(&self, ordinal: u64) -> Option<Refusal> {
        self.first
            .get()
            .filter(|(at, _)| *at == ordinal)
            .map(|(_, refusal)| *refusal)
    }
}

/// Follows a connection's request heads as they are read, noting the
/// first it refuses in [`Refusals`].
pub(crate) struct HeadObserver {
    heads: HeadWatch,
    refusals: Refusals,
}

impl HeadObserver {
    pub(crate) fn new(heads: HeadWatch, refusals: Refusals) -> HeadObserver {
        HeadObserver { heads, refusals }
    }
}

impl ReadObserver for HeadObserver {
    fn observe(&mut self, bytes: &[u8], activity: &Activity) {
        let HeadObserver { heads, refusals } = self;
        heads.feed(bytes, &mut |event| match event {
            Event::Refused { ordinal, refusal } => {
                let _ = refusals.first.set((ordinal, refusal));
            }
            Event::Http2 => activity.multiplexed(),
        });
    }
}
