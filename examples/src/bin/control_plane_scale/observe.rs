//! How the harness sees that a router routes by a change without looking
//! inside it: it asks the router for the name every `poll` until the
//! answer comes from the new backend. The router had the change somewhere
//! between the start of the last request that got the old answer and the
//! end of the first that got the new one; both ends are kept.

use std::time::{Duration, Instant};

use anyhow::Result;
use examples::load::keepalive::KeepAlive;
use examples::load::report::quantile;

/// When one router was seen routing by a change, from the change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    /// The end of the first request answered by the new backend.
    pub(crate) by: Duration,
    /// The start of the last request answered by the old one (or the
    /// change itself): the router did not route by it yet then.
    pub(crate) not_before: Duration,
}

/// What every router did after one change.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// The routers that were seen routing by it.
    pub(crate) seen: Vec<Seen>,
    /// Routers still answering from the old backend at the limit.
    pub(crate) never: usize,
    /// Requests that failed (a status other than 200, or no answer).
    pub(crate) errors: usize,
}

/// Asks each client for `host` until it answers `want`, up to `limit`
/// after `since`. The clients are staggered across `poll` so that the
/// routers are not all asked at once.
pub(crate) async fn until_answer(
    clients: &mut Vec<KeepAlive>,
    host: &str,
    want: &str,
    since: Instant,
    poll: Duration,
    limit: Duration,
) -> Round {
    let count = clients.len().max(1) as u32;
    let tasks: Vec<_> = std::mem::take(clients)
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let (host, want) = (host.to_string(), want.to_string());
            let offset = poll * i as u32 / count;
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let outcome = poll_one(&mut client, &host, &want, since, poll, limit).await;
                (client, outcome)
            })
        })
        .collect();
    let mut round = Round::default();
    for task in tasks {
        // A task only ends early if it panicked, which the poll cannot do.
        let Ok((client, (seen, errors))) = task.await else {
            round.never += 1;
            continue;
        };
        clients.push(client);
        round.errors += errors;
        match seen {
            Some(seen) => round.seen.push(seen),
            None => round.never += 1,
        }
    }
    round
}

async fn poll_one(
    client: &mut KeepAlive,
    host: &str,
    want: &str,
    since: Instant,
    poll: Duration,
    limit: Duration,
) -> (Option<Seen>, usize) {
    let mut errors = 0;
    let mut not_before = Duration::ZERO;
    while since.elapsed() < limit {
        let asked = since.elapsed();
        match client.get(host).await {
            Ok((200, body)) if body == want => {
                let seen = Seen {
                    by: since.elapsed(),
                    not_before,
                };
                return (Some(seen), errors);
            }
            Ok((200, _)) => not_before = asked,
            Ok(_) | Err(_) => errors += 1,
        }
        tokio::time::sleep(poll).await;
    }
    (None, errors)
}

/// Asks `client` for each of `hosts` until each answers 200 with `want`
/// (up to `limit` in all): how many needed more than one request, and how
/// many never did.
pub(crate) async fn warm(
    client: &mut KeepAlive,
    hosts: impl Iterator<Item = String>,
    want: &str,
    limit: Duration,
) -> Result<(usize, usize)> {
    let deadline = Instant::now() + limit;
    let (mut retried, mut failed) = (0, 0);
    for host in hosts {
        let mut first = true;
        loop {
            match client.get(&host).await {
                Ok((200, body)) if body == want => break,
                _ if Instant::now() >= deadline => {
                    failed += 1;
                    break;
                }
                _ => {
                    if first {
                        retried += 1;
                        first = false;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    Ok((retried, failed))
}

/// p50 / p90 / p99 / max of a set of durations, in ms.
pub(crate) fn summary(values: &[Duration]) -> [f64; 4] {
    let ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    [
        quantile(&ms, 0.5),
        quantile(&ms, 0.9),
        quantile(&ms, 0.99),
        quantile(&ms, 1.0),
    ]
}

/// `a / b / c / d ms`.
pub(crate) fn show(q: [f64; 4]) -> String {
    format!("{:.1} / {:.1} / {:.1} / {:.1} ms", q[0], q[1], q[2], q[3])
}

/// The four figures as JSON.
pub(crate) fn json(q: [f64; 4]) -> serde_json::Value {
    serde_json::json!({"p50_ms": q[0], "p90_ms": q[1], "p99_ms": q[2], "max_ms": q[3]})
}

/// Every round's sightings, merged: the times they were seen by, the
/// widths of their windows, how many never were and the failed requests.
pub(crate) fn merge(rounds: &[Round]) -> (Vec<Duration>, Vec<Duration>, usize, usize) {
    let by = rounds
        .iter()
        .flat_map(|r| r.seen.iter().map(|s| s.by))
        .collect();
    let windows = rounds
        .iter()
        .flat_map(|r| r.seen.iter().map(|s| s.by.saturating_sub(s.not_before)))
        .collect();
    let never = rounds.iter().map(|r| r.never).sum();
    let errors = rounds.iter().map(|r| r.errors).sum();
    (by, windows, never, errors)
}
