//! Time limits on attempts (`requestAttemptTimeoutMs`, `totalTimeoutMs`,
//! `l5d-ctx-deadline`).
//!
//! A new timer per attempt is a timer-wheel insertion and removal, each
//! under the timer's lock. A client connection's requests instead reuse one
//! timer ([`SpareTimer`]): moving a still-registered timer to a later
//! instant is a single atomic update, and the wheel only looks at it again
//! when its old instant comes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

/// How late after its limit a kept timer may fire (the timer wheel counts
/// whole milliseconds anyway).
const SLACK: Duration = Duration::from_millis(1);

/// When an attempt must have its answer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptLimit {
    /// The instant it passes.
    pub(crate) at: Instant,
    /// How long that was from the attempt's start (for the error).
    pub(crate) after: Duration,
}

/// A timer kept between the requests of one client connection. Requests
/// of an h2 connection may overlap: one that finds the timer taken makes
/// its own. A clone starts without a timer.
#[derive(Default)]
pub(crate) struct SpareTimer(Mutex<Option<Armed>>);

/// A timer, and the waker its last poll left with it while that still
/// stands: a timer that has not fired wakes that task when it does, so
/// the task need not poll it again (polling costs about as much as the
/// rest of the timer's work per request).
struct Armed {
    sleep: Pin<Box<Sleep>>,
    waker: Option<Waker>,
}

impl SpareTimer {
    /// The kept timer, set for `at`, or a new one.
    fn take_for(&self, at: Instant) -> Armed {
        let kept = self.0.lock().take();
        match kept {
            Some(Armed { mut sleep, waker }) => {
                // A timer that fired has woken, and let go of, its waker.
                let waker = waker.filter(|_| !sleep.is_elapsed());
                // Requests a connection sends within a millisecond share
                // one setting: each new one would be a little later.
                let set = sleep.deadline();
                if set < at || set > at + SLACK {
                    sleep.as_mut().reset(at + SLACK);
                }
                Armed { sleep, waker }
            }
            None => Armed {
                sleep: Box::pin(tokio::time::sleep_until(at)),
                waker: None,
            },
        }
    }

    fn keep(&self, armed: Armed) {
        *self.0.lock() = Some(armed);
    }
}

impl Clone for SpareTimer {
    fn clone(&self) -> SpareTimer {
        SpareTimer::default()
    }
}

impl std::fmt::Debug for SpareTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpareTimer")
    }
}

/// Runs `work` until `limit` passes, with `spare`'s timer when it is free;
/// `Err(limit)` when the limit came first. (`work` is pinned by the caller,
/// and this is a plain future rather than an `async fn`: a request's
/// future and its answer are large, and every move of them is a copy.)
pub(crate) fn within<'a, F: Future>(
    limit: Option<AttemptLimit>,
    spare: &'a SpareTimer,
    work: Pin<&'a mut F>,
) -> Within<'a, F> {
    Within {
        work,
        limit,
        spare,
        timer: None,
    }
}

/// The future of [`within`].
pub(crate) struct Within<'a, F> {
    work: Pin<&'a mut F>,
    limit: Option<AttemptLimit>,
    spare: &'a SpareTimer,
    /// Taken on the first poll that finds the work unfinished.
    timer: Option<Armed>,
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, AttemptLimit>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(output) = this.work.as_mut().poll(cx) {
            if let Some(timer) = this.timer.take() {
                this.spare.keep(timer);
            }
            return Poll::Ready(Ok(output));
        }
        let Some(limit) = this.limit else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| this.spare.take_for(limit.at));
        let fired = if timer
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // This task is the one the timer wakes.
            timer.sleep.is_elapsed()
        } else {
            let fired = timer.sleep.as_mut().poll(cx).is_ready();
            timer.waker = Some(cx.waker().clone());
            fired
        };
        if !fired {
            return Poll::Pending;
        }
        if let Some(mut timer) = this.timer.take() {
            timer.waker = None;
            this.spare.keep(timer);
        }
        Poll::Ready(Err(limit))
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    fn limit(after: Duration) -> AttemptLimit {
        AttemptLimit {
            at: Instant::now() + after,
            after,
        }
    }

    /// Work that waits once before giving `value`.
    async fn after_a_wait<T>(value: T) -> T {
        tokio::task::yield_now().await;
        value
    }

    /// [`after_a_wait`] under a limit of `after`.
    async fn quick_work<T>(
        spare: &SpareTimer,
        after: Duration,
        value: T,
    ) -> Result<T, AttemptLimit> {
        within(Some(limit(after)), spare, pin!(after_a_wait(value))).await
    }

    /// Work that never ends, under a limit of `after`.
    async fn never_done(spare: &SpareTimer, after: Duration) -> Result<(), AttemptLimit> {
        within(
            Some(limit(after)),
            spare,
            pin!(std::future::pending::<()>()),
        )
        .await
    }

    /// Ends at once if `started` has been a little under `span` ago.
    fn assert_fired(started: Instant, span: Duration) {
        let elapsed = started.elapsed();
        // (A kept timer may be a millisecond late, the wheel's ticks add
        // up to one more.)
        assert!(
            elapsed >= span && elapsed <= span + SLACK + Duration::from_millis(1),
            "{elapsed:?} for {span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_fires_at_each_new_limit() {
        let spare = SpareTimer::default();
        // Work done on the first poll needs no timer.
        let at_once = within(
            Some(limit(Duration::from_secs(1))),
            &spare,
            pin!(async { 6 }),
        )
        .await;
        assert_eq!(at_once, Ok(6));
        assert!(spare.0.lock().is_none());
        // Work that waits takes one, and gives it back with its output.
        let quick = quick_work(&spare, Duration::from_secs(1), 7).await;
        assert_eq!(quick, Ok(7));
        assert!(spare.0.lock().is_some());
        // Moved later, the kept timer still ends slow work at the new limit.
        let started = Instant::now();
        let slow = never_done(&spare, Duration::from_secs(3)).await;
        assert_eq!(slow.unwrap_err().after, Duration::from_secs(3));
        assert_fired(started, Duration::from_secs(3));
        // Kept while registered for a later instant, it still fires at an
        // earlier limit.
        let quick = quick_work(&spare, Duration::from_secs(5), 8).await;
        assert_eq!(quick, Ok(8));
        let started = Instant::now();
        let slow = never_done(&spare, Duration::from_secs(1)).await;
        assert!(slow.is_err());
        assert_fired(started, Duration::from_secs(1));
        // A timer that fired is set again, here to a shorter span.
        let started = Instant::now();
        let slow = never_done(&spare, Duration::from_millis(200)).await;
        assert!(slow.is_err());
        assert_fired(started, Duration::from_millis(200));
        // Work that ends just before its limit is not cut.
        let work = within(
            Some(limit(Duration::from_secs(2))),
            &spare,
            pin!(async {
                tokio::time::sleep(Duration::from_millis(1_999)).await;
                "done"
            }),
        )
        .await;
        assert_eq!(work, Ok("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_requests_each_get_a_timer() {
        let spare = SpareTimer::default();
        let (mut one, mut two) = (std::future::pending::<()>(), std::future::pending::<()>());
        let first = within(
            Some(limit(Duration::from_secs(1))),
            &spare,
            Pin::new(&mut one),
        );
        let second = within(
            Some(limit(Duration::from_secs(2))),
            &spare,
            Pin::new(&mut two),
        );
        let started = Instant::now();
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first.unwrap_err().after, Duration::from_secs(1));
        assert_eq!(second.unwrap_err().after, Duration::from_secs(2));
        assert_fired(started, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_kept_by_one_task_wakes_another() {
        let spare = std::sync::Arc::new(SpareTimer::default());
        // This task leaves the timer registered to wake itself ...
        let quick = quick_work(&spare, Duration::from_secs(1), 1).await;
        assert_eq!(quick, Ok(1));
        // ... and a request in another task must still be woken by it.
        let other = spare.clone();
        let started = Instant::now();
        let slow = tokio::spawn(async move { never_done(&other, Duration::from_secs(2)).await });
        let slow = tokio::time::timeout(Duration::from_secs(10), slow)
            .await
            .expect("the other task was never woken")
            .unwrap();
        assert!(slow.is_err());
        assert_fired(started, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_that_fired_while_kept_wakes_its_next_request() {
        let spare = SpareTimer::default();
        let quick = quick_work(&spare, Duration::from_secs(1), 1).await;
        assert_eq!(quick, Ok(1));
        // The kept timer fires between requests, which spends its waker.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let slow = tokio::time::timeout(
            Duration::from_secs(10),
            within(
                Some(limit(Duration::from_secs(1))),
                &spare,
                pin!(std::future::pending::<()>()),
            ),
        )
        .await
        .expect("the request was never woken");
        assert!(slow.is_err());
        assert_fired(started, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn no_limit_is_no_timer() {
        let spare = SpareTimer::default();
        assert_eq!(within(None, &spare, pin!(async { 1 })).await, Ok(1));
        assert!(spare.0.lock().is_none());
    }
}
