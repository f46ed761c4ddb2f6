//! Keeping one SRV name's address current: looked up again every refresh
//! interval (sooner when the records' TTL is shorter), with the last good
//! endpoints kept while the DNS server fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::lookup::{SrvAnswer, SrvResolve, SrvTarget};
use crate::{Addr, Endpoint, Publisher};

/// How long one lookup (the SRV query and its targets' addresses) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest wait between lookups of a name.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// The namer's counters, named as Linkerd's namer named them.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Answers with endpoints.
    pub(crate) successes: AtomicU64,
    /// NXDOMAIN, or a name without SRV records.
    pub(crate) failures: AtomicU64,
    /// SRV records none of whose targets has an address.
    pub(crate) zero_results: AtomicU64,
    /// Targets without an address, summed over lookups.
    pub(crate) unknown_hosts: AtomicU64,
    /// Lookups the DNS server did not answer (timeouts, SERVFAIL, REFUSED).
    pub(crate) unexpected: AtomicU64,
    /// The DNS server going from answering to failing, or back.
    pub(crate) state_changes: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// What the refresh task of one name needs.
pub(crate) struct Refresh {
    pub(crate) resolver: Arc<dyn SrvResolve>,
    pub(crate) interval: Duration,
    pub(crate) stats: Arc<Stats>,
}

/// Keeps `name`'s address current until nobody holds it.
pub(crate) async fn keep_refreshing(
    refresh: Arc<Refresh>,
    name: String,
    publisher: Arc<Publisher<Addr>>,
) {
    tokio::select! {
        () = refresh.run(&name, &publisher) => {}
        () = publisher.closed() => {}
    }
}

impl Refresh {
    /// Looks `name` up again and again; never ends by itself.
    async fn run(&self, name: &str, publisher: &Publisher<Addr>) {
        let mut failing = false;
        let mut retry = MIN_WAIT;
        loop {
            let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.lookup(name));
            let outcome = lookup.await.unwrap_or_else(|_| {
                Err(format!(
                    "SRV lookup of {name}: no answer in {LOOKUP_TIMEOUT:?}"
                ))
            });
            let wait = match outcome {
                Ok(answer) => {
                    if failing {
                        failing = false;
                        bump(&self.stats.state_changes, 1);
                        tracing::info!(namer = super::KIND, %name, "the DNS server answers again");
                    }
                    retry = MIN_WAIT;
                    let (addr, ttl) = self.addr_of(name, answer);
                    publisher.publish_if_changed(addr);
                    ttl.map_or(self.interval, |ttl| self.interval.min(ttl.max(MIN_WAIT)))
                }
                Err(error) => {
                    bump(&self.stats.unexpected, 1);
                    if !failing {
                        failing = true;
                        bump(&self.stats.state_changes, 1);
                        tracing::warn!(namer = super::KIND, %name, %error, "SRV lookup failed; keeping the last answer");
                    }
                    // Only a name that never had an answer fails.
                    let current = publisher.current();
                    if matches!(*current, Addr::Pending | Addr::Failed(_)) {
                        publisher.publish_if_changed(Addr::Failed(error.into()));
                    }
                    let wait = retry.min(self.interval);
                    retry = (retry * 2).min(self.interval);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The address an answer gives, and the TTL of its records.
    fn addr_of(&self, name: &str, answer: SrvAnswer) -> (Addr, Option<Duration>) {
        match answer {
            SrvAnswer::NoSuchName | SrvAnswer::NoRecords => {
                bump(&self.stats.failures, 1);
                tracing::debug!(namer = super::KIND, %name, ?answer, "no SRV records");
                (Addr::Neg, None)
            }
            SrvAnswer::Records {
                targets,
                unknown_targets,
                ttl,
            } => {
                bump(&self.stats.unknown_hosts, unknown_targets as u64);
                if unknown_targets > 0 {
                    tracing::warn!(namer = super::KIND, %name, unknown_targets, "SRV targets without an address are left out");
                }
                if targets.is_empty() {
                    bump(&self.stats.zero_results, 1);
                    (Addr::Neg, Some(ttl))
                } else {
                    bump(&self.stats.successes, 1);
                    (Addr::bound(endpoints(&targets)), Some(ttl))
                }
            }
        }
    }
}

/// The endpoints of the targets, weighted by their records. A weight of 0
/// means "a very small chance" (RFC 2782), unless every record has it:
/// then the endpoints share the traffic equally.
pub(crate) fn endpoints(targets: &[SrvTarget]) -> Vec<Endpoint> {
    let weighted = targets.iter().any(|t| t.weight > 0);
    targets
        .iter()
        .flat_map(|target| {
            let weight = match (weighted, target.weight) {
                (false, _) => 1.0,
                (true, 0) => ZERO_WEIGHT,
                (true, w) => f64::from(w),
            };
            target
                .sockets()
                .map(move |addr| Endpoint::new(addr).with_weight(weight))
        })
        .collect()
}

/// The weight of an SRV record of weight 0 among records of positive
/// weight.
pub(crate) const ZERO_WEIGHT: f64 = 0.01;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::Live;

    /// Answers from a script, then the last one forever.
    struct Scripted(Mutex<VecDeque<Result<SrvAnswer, String>>>);

    impl SrvResolve for Scripted {
        fn lookup(&self, _: &str) -> BoxFuture<'static, Result<SrvAnswer, String>> {
            let mut script = self.0.lock().unwrap();
            let next = if script.len() > 1 {
                script.pop_front().unwrap()
            } else {
                script.front().cloned().unwrap()
            };
            Box::pin(async move { next })
        }
    }

    fn target(ip: [u8; 4], port: u16, weight: u16) -> SrvTarget {
        SrvTarget {
            host: "h.test".into(),
            ips: vec![ip.into()],
            port,
            weight,
            priority: 0,
        }
    }

    fn records(targets: Vec<SrvTarget>, ttl: u64) -> Result<SrvAnswer, String> {
        Ok(SrvAnswer::Records {
            targets,
            unknown_targets: 0,
            ttl: Duration::from_secs(ttl),
        })
    }

    fn start(script: Vec<Result<SrvAnswer, String>>) -> (Live<Addr>, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let refresh = Arc::new(Refresh {
            resolver: Arc::new(Scripted(Mutex::new(script.into()))),
            interval: Duration::from_secs(5),
            stats: stats.clone(),
        });
        let publisher = Arc::new(Publisher::new(Addr::Pending));
        let live = publisher.subscribe();
        tokio::spawn(keep_refreshing(refresh, "_x._tcp.test".into(), publisher));
        (live, stats)
    }

    fn ports(addr: &Addr) -> Vec<u16> {
        match addr {
            Addr::Bound(set) => set.endpoints().iter().map(|e| e.addr.port()).collect(),
            _ => Vec::new(),
        }
    }

    /// Sleeps `secs`; the first call of a test sleeps half a second, so
    /// that the checks fall between the lookups.
    async fn after(secs: u64) {
        let secs = if secs == 0 { 0.5 } else { secs as f64 };
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn failures_keep_the_last_answer_and_nxdomain_is_negative() {
        let (live, stats) = start(vec![
            records(vec![target([10, 0, 0, 1], 80, 0)], 60),
            Err("SERVFAIL".into()),
            Err("timeout".into()),
            records(vec![target([10, 0, 0, 2], 81, 0)], 60),
            Ok(SrvAnswer::NoSuchName),
        ]);
        after(0).await;
        assert_eq!(ports(&live.load()), [80]);
        // Refreshed after the interval (the TTL is longer): a failure keeps it.
        after(5).await;
        assert_eq!(ports(&live.load()), [80]);
        // Retried after 1 s, then 2 s.
        after(1).await;
        assert_eq!(ports(&live.load()), [80]);
        after(2).await;
        assert_eq!(ports(&live.load()), [81]);
        after(5).await;
        assert_eq!(*live.load(), Addr::Neg);
        assert_eq!(stats.unexpected.load(Ordering::Relaxed), 2);
        assert_eq!(stats.state_changes.load(Ordering::Relaxed), 2);
        assert_eq!(stats.successes.load(Ordering::Relaxed), 2);
        assert!(stats.failures.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_failure_fails_and_a_short_ttl_refreshes_sooner() {
        let (live, _) = start(vec![
            Err("REFUSED".into()),
            records(vec![target([10, 0, 0, 1], 80, 0)], 2),
            records(vec![target([10, 0, 0, 1], 90, 0)], 2),
        ]);
        after(0).await;
        assert!(matches!(&*live.load(), Addr::Failed(why) if why.contains("REFUSED")));
        after(1).await;
        assert_eq!(ports(&live.load()), [80]);
        // The TTL (2 s) is shorter than the interval (5 s).
        after(2).await;
        assert_eq!(ports(&live.load()), [90]);
    }

    #[test]
    fn weights_follow_the_records() {
        let weighted = endpoints(&[
            target([10, 0, 0, 1], 80, 10),
            target([10, 0, 0, 2], 80, 30),
            target([10, 0, 0, 3], 80, 0),
        ]);
        let weights: Vec<f64> = weighted.iter().map(|e| e.weight).collect();
        assert_eq!(weights, [10.0, 30.0, ZERO_WEIGHT]);
        assert_eq!(
            weighted[1].meta.get(crate::WEIGHT_KEY),
            Some(&serde_json::Value::from(30.0))
        );
        let equal = endpoints(&[target([10, 0, 0, 1], 80, 0), target([10, 0, 0, 2], 80, 0)]);
        assert!(equal.iter().all(|e| e.weight == 1.0));
    }
}
