//! What readers of Consul's KV store share: the loop of blocking queries
//! that follows a key (or a folder), and the checks of the `pathPrefix`
//! and `datacenter` keys. namerd's `io.l5d.consul` store and the router's
//! `io.l5d.consul.interpreter` both follow dtabs with them.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::client::Blocking;
use crate::backoff::{Backoff, ExponentialBackoff};

/// The pacing of a loop of blocking queries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PollTiming {
    /// How long Consul may hold one query.
    pub wait: Duration,
    /// The pauses after failed queries.
    pub backoff: ExponentialBackoff,
    /// The shortest time between the starts of two queries, so that a key
    /// that changes all the time cannot make the loop spin.
    pub min_query_interval: Duration,
}

/// What one round of [`poll`] gives its caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Polled<T> {
    /// Consul answered, with `X-Consul-Index` `index`.
    Answer {
        /// The index Consul answered with.
        index: u64,
        /// What the query made of the answer.
        value: T,
    },
    /// Consul could not be asked (down, refusing, timing out, answering
    /// something unreadable); the loop retries after a pause.
    Failed {
        /// Where and why.
        why: String,
        /// Whether this is the first failure since the last answer.
        first: bool,
    },
}

/// Runs blocking queries for ever: `query` is asked without blocking
/// first, then with the last index Consul answered and `timing.wait`, so
/// it returns as soon as what it reads changes. An index that goes
/// backwards (a snapshot restore, a new cluster, a listing whose newest
/// key went) starts again without blocking, as Consul's documentation
/// says clients must. Each round is handed to `sink`. The first failure
/// of an outage and the end of an outage are logged, naming `what`.
pub async fn poll<T, Q, Fut>(
    what: &str,
    timing: PollTiming,
    mut query: Q,
    mut sink: impl FnMut(Polled<T>),
) where
    Q: FnMut(Blocking) -> Fut,
    Fut: Future<Output = Result<(u64, T), String>>,
{
    let mut index = 0;
    let mut backoff = Backoff::from(timing.backoff);
    let mut failing = false;
    loop {
        let started = Instant::now();
        let blocking = if index == 0 {
            Blocking::No
        } else {
            Blocking::Since {
                index,
                wait: timing.wait,
            }
        };
        let pause = match query(blocking).await {
            Ok((new_index, value)) => {
                if failing {
                    tracing::info!("consul: {what}: Consul answers again");
                    failing = false;
                }
                backoff.reset();
                if new_index < index {
                    tracing::info!(
                        "consul: {what}: the index went backwards ({index} -> {new_index}); reading afresh"
                    );
                    index = 0;
                    continue;
                }
                // Consul never answers 0 but by a bug, and blocking on 0
                // would not block at all.
                index = new_index.max(1);
                sink(Polled::Answer { index, value });
                timing.min_query_interval.saturating_sub(started.elapsed())
            }
            Err(why) => {
                let first = !failing;
                if first {
                    tracing::warn!(
                        "consul: {what}: {why}; keeping the last good value and retrying"
                    );
                    failing = true;
                } else {
                    tracing::debug!("consul: {what}: still failing: {why}");
                }
                sink(Polled::Failed { why, first });
                backoff.next_pause()
            }
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Checks a `pathPrefix` such as `/namerd/dtabs` and returns it as a key
/// prefix without slashes at either end (empty for `/`).
pub fn path_prefix(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("{text:?} must start with '/'"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(String::new());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("{text:?} has an empty, '.' or '..' segment"));
        }
        if !segment.chars().all(allowed) {
            return Err(format!(
                "{text:?}: segment {segment:?} may only hold letters, digits, '-', '_', '.' and '~'"
            ));
        }
    }
    Ok(rest.to_string())
}

/// Checks a `datacenter` name.
pub fn datacenter(dc: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if dc.is_empty() || !dc.chars().all(allowed) {
        return Err(format!(
            "{dc:?} is not a datacenter name (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn path_prefixes_lose_their_slashes_and_bad_ones_are_refused() {
        assert_eq!(path_prefix("/namerd/dtabs/").unwrap(), "namerd/dtabs");
        assert_eq!(path_prefix("/").unwrap(), "");
        for bad in ["namerd", "/a//b", "/a b", "/a/../b"] {
            assert!(path_prefix(bad).is_err(), "{bad}");
        }
        assert!(datacenter("east-1").is_ok());
        assert!(datacenter("dc 1").is_err());
        assert!(datacenter("").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_on_the_last_index_restarts_when_it_goes_back_and_backs_off() {
        // Scripted answers: index 5, a failure, two more failures, index
        // 7, index 3 (backwards), then index 3 again.
        let script: Arc<Mutex<Vec<Result<u64, &str>>>> = Arc::new(Mutex::new(vec![
            Ok(5),
            Err("down"),
            Err("down"),
            Ok(7),
            Ok(3),
            Ok(3),
        ]));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let timing = PollTiming {
            wait: Duration::from_secs(30),
            backoff: ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1))
                .without_jitter(),
            min_query_interval: Duration::ZERO,
        };
        let run = poll(
            "test",
            timing,
            |blocking| {
                asked.lock().unwrap().push(blocking);
                let next = {
                    let mut script = script.lock().unwrap();
                    (!script.is_empty()).then(|| script.remove(0))
                };
                async move {
                    match next {
                        Some(Ok(index)) => Ok((index, index)),
                        Some(Err(why)) => Err(why.to_string()),
                        None => std::future::pending().await,
                    }
                }
            },
            |polled| seen.lock().unwrap().push(polled),
        );
        let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
        let since = |index| Blocking::Since {
            index,
            wait: Duration::from_secs(30),
        };
        assert_eq!(
            *asked.lock().unwrap(),
            [
                Blocking::No,
                since(5),
                since(5),
                since(5),
                since(7),
                Blocking::No,
                since(3)
            ]
        );
        let failed = |first| Polled::Failed {
            why: "down".into(),
            first,
        };
        let answer = |index| Polled::Answer {
            index,
            value: index,
        };
        assert_eq!(
            *seen.lock().unwrap(),
            [answer(5), failed(true), failed(false), answer(7), answer(3)]
        );
    }
}
