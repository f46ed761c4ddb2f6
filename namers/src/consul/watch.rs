//! One watch: the blocking-query loop that follows one (datacenter, tag,
//! service), and the turning of Consul's instances into endpoints.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::{Instant, sleep_until};

use super::client::{Instance, QueryError, Reply, ServiceQuery, parse_catalog, parse_health};
use super::config::Settings;
use super::{Inner, LOCAL_DATACENTER, WatchKey};
use crate::backoff::Backoff;
use crate::namer_table::{Found, Running};
use crate::{Addr, AddrSet, Endpoint, Publisher};

/// How long resolving one host name of an answer may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// What a watch has published so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Published {
    Nothing,
    Absent,
    Present,
}

/// Follows `key` until nobody holds what it found.
pub(super) async fn run(inner: Arc<Inner>, key: WatchKey, found: Arc<Publisher<Found>>) {
    let stats = &inner.stats;
    let _running = Running::start(&stats.watches_started, &stats.watches_ended);
    let timing = inner.settings.timing;
    let mut index = 0;
    let mut backoff = Backoff::new(timing.backoff_min, timing.backoff_max);
    let mut failing: Option<u64> = None;
    // A watch started again (somebody came back as it ended) goes on from
    // what it published.
    let mut published = match *found.current() {
        Found::Present(_) => Published::Present,
        Found::Absent => Published::Absent,
        Found::Pending | Found::Failed(_) => Published::Nothing,
    };
    let mut warned_filtered = false;
    let mut last_start: Option<Instant> = None;
    loop {
        if let Some(start) = last_start {
            tokio::select! {
                () = sleep_until(start + timing.min_query_interval) => {}
                () = found.closed() => return,
            }
        }
        last_start = Some(Instant::now());
        inner.stats.queries.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::select! {
            outcome = poll(&inner, &key, index) => outcome,
            () = found.closed() => return,
        };
        let error = match outcome {
            Ok(Polled::Unchanged) => continue,
            Ok(Polled::Answer {
                reply_index,
                update,
                filtered,
            }) => {
                index = next_index(index, reply_index);
                if let Some(attempts) = failing.take() {
                    inner.stats.state_changes.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(namer = "io.l5d.consul", watch = %key, failed_attempts = attempts, "io.l5d.consul: watch recovered");
                }
                backoff.reset();
                if filtered && update == Found::Absent && !warned_filtered {
                    warned_filtered = true;
                    tracing::warn!(namer = "io.l5d.consul", watch = %key, "io.l5d.consul: Consul hid this service's instances (ACLs); check the namer's token");
                }
                let now = match update {
                    Found::Absent => Published::Absent,
                    _ => Published::Present,
                };
                if now != published {
                    tracing::debug!(watch = %key, present = now == Published::Present, "io.l5d.consul: service found or lost");
                }
                published = now;
                inner.publish(&found, update);
                continue;
            }
            Err(error) => error,
        };
        // Whatever failed, start over with a plain read: the index may mean
        // nothing after an outage.
        index = 0;
        inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        match error {
            // Consul does not know the datacenter (or cannot reach it). A
            // service never found there does not exist, as far as anyone
            // can tell; one found there before is having an outage.
            QueryError::NoDatacenter(why) if published != Published::Present => {
                if published == Published::Nothing {
                    tracing::info!(namer = "io.l5d.consul", watch = %key, error = %why, "io.l5d.consul: no such datacenter");
                }
                published = Published::Absent;
                inner.publish(&found, Found::Absent);
            }
            QueryError::NoDatacenter(why) | QueryError::Failed(why) => match &mut failing {
                Some(attempts) => {
                    *attempts += 1;
                    tracing::debug!(watch = %key, error = %why, "io.l5d.consul: still failing");
                }
                None => {
                    failing = Some(1);
                    inner.stats.state_changes.fetch_add(1, Ordering::Relaxed);
                    if published == Published::Nothing {
                        tracing::warn!(namer = "io.l5d.consul", watch = %key, error = %why, "io.l5d.consul: watch failing; retrying");
                        inner.publish(&found, Found::Failed(why.into()));
                    } else {
                        tracing::warn!(namer = "io.l5d.consul", watch = %key, error = %why, "io.l5d.consul: watch failing; keeping the last known endpoints and retrying");
                    }
                }
            },
        }
        let pause = backoff.next_pause();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = found.closed() => return,
        }
    }
}

/// What one query of a watch found.
enum Polled {
    /// The wait ran out with nothing new.
    Unchanged,
    /// An answer to publish.
    Answer {
        reply_index: u64,
        update: Found,
        /// Whether Consul said ACLs hid entries.
        filtered: bool,
    },
}

/// Asks Consul about `key` once (blocking when `index` is not 0).
async fn poll(inner: &Inner, key: &WatchKey, index: u64) -> Result<Polled, QueryError> {
    let settings = &inner.settings;
    let agent = if key.dc == LOCAL_DATACENTER || settings.set_host {
        Some(inner.agent().await?)
    } else {
        None
    };
    let dc = match agent {
        Some(agent) if key.dc == LOCAL_DATACENTER => agent.datacenter.clone(),
        _ => key.dc.clone(),
    };
    let query = ServiceQuery {
        dc,
        service: key.service.clone(),
        tag: key.tag.clone(),
    };
    let Reply {
        index: reply_index,
        body,
        filtered,
    } = inner.client.service(settings, &query, index).await?;
    if index != 0 && reply_index == index {
        return Ok(Polled::Unchanged);
    }
    let parsed = if settings.health.is_some() {
        parse_health(&body)
    } else {
        parse_catalog(&body)
    };
    let instances = parsed.map_err(|why| {
        QueryError::Failed(format!(
            "io.l5d.consul at {}: {key}: {why}",
            settings.agent.authority()
        ))
    })?;
    let endpoints = endpoints(&instances, settings, key).await;
    let update = if endpoints.is_empty() {
        Found::Absent
    } else {
        let mut set = AddrSet::new(endpoints);
        if let Some(agent) = agent.filter(|_| settings.set_host) {
            let authority = authority(key, &query.dc, &agent.domain);
            set.meta.insert("authority".to_string(), authority.into());
        }
        Found::Present(Addr::Bound(set))
    };
    Ok(Polled::Answer {
        reply_index,
        update,
        filtered,
    })
}

/// The index to send next, after an answer with `reply` when `previous`
/// was sent. As Consul's documentation asks of clients: an index that went
/// backwards starts over from 0, and an index of 0 is taken as 1 so that a
/// buggy answer does not make every query return at once.
fn next_index(previous: u64, reply: u64) -> u64 {
    if reply < previous { 0 } else { reply.max(1) }
}

/// `[<tag>.]<service>.service.<dc>.<domain>`, the name Consul's DNS
/// interface serves the service under.
fn authority(key: &WatchKey, dc: &str, domain: &str) -> String {
    match &key.tag {
        Some(tag) => format!("{tag}.{}.service.{dc}.{domain}", key.service),
        None => format!("{}.service.{dc}.{domain}", key.service),
    }
}

/// The weight of an instance: the highest weight of its tags that are
/// listed, else 1.
fn weight(tags: &[String], weights: &std::collections::HashMap<String, f64>) -> f64 {
    tags.iter()
        .filter_map(|t| weights.get(t).copied())
        .reduce(f64::max)
        .unwrap_or(1.0)
}

/// The endpoints of the usable instances: in `healthStatuses` (with
/// `useHealthCheck`), with an address and a port. Host names are resolved.
async fn endpoints(instances: &[Instance], settings: &Settings, key: &WatchKey) -> Vec<Endpoint> {
    let mut endpoints = Vec::with_capacity(instances.len());
    let mut names = Vec::new();
    for instance in instances {
        if let Some(statuses) = &settings.health
            && !statuses.contains(&instance.status)
        {
            continue;
        }
        let host = if settings.prefer_service_address && !instance.service_address.is_empty() {
            &instance.service_address
        } else {
            &instance.node_address
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || instance.port == 0 {
            continue;
        }
        let weight = weight(&instance.tags, &settings.weights);
        match host.parse::<IpAddr>() {
            Ok(ip) => endpoints
                .push(Endpoint::new(SocketAddr::new(ip, instance.port)).with_weight(weight)),
            Err(_) => names.push((host.to_string(), instance.port, weight)),
        }
    }
    let resolved = join_all(names.into_iter().map(|(host, port, weight)| async move {
        match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
            .await
        {
            Ok(Ok(addrs)) => addrs
                .map(|addr| Endpoint::new(addr).with_weight(weight))
                .collect(),
            Ok(Err(error)) => {
                tracing::warn!(namer = "io.l5d.consul", watch = %key, %host, %error, "io.l5d.consul: cannot resolve an instance's address; skipping it");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(namer = "io.l5d.consul", watch = %key, %host, "io.l5d.consul: no DNS answer for an instance's address in {DNS_TIMEOUT:?}; skipping it");
                Vec::new()
            }
        }
    }))
    .await;
    endpoints.extend(resolved.into_iter().flatten());
    endpoints
}

impl std::fmt::Display for WatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "/{}/{tag}/{}", self.dc, self.service),
            None => write!(f, "/{}/{}", self.dc, self.service),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeSet, HashMap};

    use super::super::config::{ConsulConfig, HealthStatus, Timing};
    use super::*;

    fn instance(node: &str, service: &str, port: u16, tags: &[&str]) -> Instance {
        Instance {
            node_address: node.to_string(),
            service_address: service.to_string(),
            port,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status: HealthStatus::Passing,
        }
    }

    fn key() -> WatchKey {
        WatchKey {
            dc: "dc1".into(),
            tag: None,
            service: "web".into(),
        }
    }

    #[test]
    fn indexes_reset_when_they_go_backwards() {
        assert_eq!(next_index(0, 7), 7);
        assert_eq!(next_index(7, 9), 9);
        assert_eq!(next_index(9, 9), 9);
        assert_eq!(next_index(9, 3), 0);
        assert_eq!(next_index(0, 0), 1);
    }

    #[test]
    fn weights_take_the_heaviest_listed_tag() {
        let weights = HashMap::from([("a".to_string(), 3.0), ("b".to_string(), 0.5)]);
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(weight(&tags(&["a", "b", "c"]), &weights), 3.0);
        assert_eq!(weight(&tags(&["b"]), &weights), 0.5);
        assert_eq!(weight(&tags(&["c"]), &weights), 1.0);
        assert_eq!(weight(&[], &weights), 1.0);
    }

    #[tokio::test]
    async fn instances_become_weighted_endpoints() {
        let mut settings = ConsulConfig::default().validate(Timing::default()).unwrap();
        settings.weights.insert("primary".into(), 10.0);
        let instances = [
            instance("10.0.0.1", "", 80, &["primary"]),
            instance("10.0.0.2", "192.168.0.2", 81, &[]),
            instance("", "", 82, &[]),
            instance("10.0.0.4", "", 0, &[]),
            instance("10.0.0.5", "::1", 85, &[]),
        ];
        let found = endpoints(&instances, &settings, &key()).await;
        let addrs: Vec<String> = found.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:80", "192.168.0.2:81", "[::1]:85"]);
        assert_eq!(found[0].weight, 10.0);
        assert_eq!(found[1].weight, 1.0);
        assert_eq!(found[1].meta["endpoint_addr_weight"], 1.0);

        settings.prefer_service_address = false;
        let found = endpoints(&instances, &settings, &key()).await;
        assert_eq!(found[1].addr.to_string(), "10.0.0.2:81");

        settings.health = Some(BTreeSet::from([HealthStatus::Warning]));
        let mut warning = instance("10.0.0.9", "", 90, &[]);
        warning.status = HealthStatus::Warning;
        let found = endpoints(&[instances[0].clone(), warning], &settings, &key()).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].addr.to_string(), "10.0.0.9:90");
    }

    #[test]
    fn authorities_follow_consuls_dns_names() {
        let mut key = key();
        assert_eq!(authority(&key, "dc1", "consul"), "web.service.dc1.consul");
        key.tag = Some("v2".into());
        assert_eq!(authority(&key, "east", "corp"), "v2.web.service.east.corp");
    }
}
