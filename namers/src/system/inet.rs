//! `inet!host:port` addresses: a host and a port turned into a live set of
//! endpoints, re-resolved through DNS when the answer's TTL runs out.
//!
//! IP literals, the empty host and `localhost` need no DNS and give a
//! constant address (Finagle maps the empty host and `localhost` to the
//! loopback address). Any other host gets one [`Publisher`] and one refresh
//! task per (host, port), shared by every lookup; the task ends, and the
//! entry is forgotten, when the last [`Live`] handle is dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::Name as DnsName;
use tokio::time::Instant;

use crate::{Addr, Endpoint, Live, LiveCache, Publisher};

/// The shortest time an answer is kept before asking again.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The longest time an answer is kept before asking again.
pub const MAX_REFRESH: Duration = Duration::from_secs(300);
/// The longest wait between retries of a failing lookup (the first retry
/// comes after [`MIN_REFRESH`], then the wait doubles).
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);
/// How long one lookup may take before it counts as failed.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long "no such name" is believed when the server gave no negative TTL.
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// The answer to one DNS lookup.
///
/// An answer with no addresses means the name does not exist (NXDOMAIN, or
/// no A/AAAA records); `valid_until` is then how long to believe that.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsAnswer {
    /// The host's addresses.
    pub ips: Vec<IpAddr>,
    /// When the answer expires and the host should be looked up again.
    pub valid_until: Instant,
}

/// Looks host names up; pluggable so tests can script the answers.
pub trait DnsResolve: Send + Sync + 'static {
    /// Looks `host` up. `Err` is a failure to get an answer (timeout,
    /// SERVFAIL, no reachable server), not a name that does not exist.
    fn resolve(&self, host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>>;
}

/// The system's DNS (`/etc/resolv.conf` and `/etc/hosts`) through hickory.
#[derive(Clone)]
pub struct HickoryDns {
    resolver: TokioResolver,
}

/// Why the system DNS configuration could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot use the system DNS configuration: {0}")]
pub struct DnsConfigError(String);

impl HickoryDns {
    /// A resolver configured like the system's: name servers, search
    /// domains and options from `/etc/resolv.conf`, plus `/etc/hosts`.
    pub fn from_system_conf() -> Result<HickoryDns, DnsConfigError> {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|builder| builder.build())
            .map_err(|e| DnsConfigError(e.to_string()))?;
        Ok(HickoryDns { resolver })
    }
}

impl std::fmt::Debug for HickoryDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryDns")
    }
}

impl DnsResolve for HickoryDns {
    fn resolve(&self, host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>> {
        let resolver = self.resolver.clone();
        let host = host.to_owned();
        Box::pin(async move {
            // A string that is not a domain name names nothing.
            let Ok(name) = DnsName::from_utf8(&host) else {
                return Ok(DnsAnswer {
                    ips: Vec::new(),
                    valid_until: Instant::now() + MAX_REFRESH,
                });
            };
            match resolver.lookup_ip(name).await {
                Ok(lookup) => Ok(DnsAnswer {
                    ips: lookup.iter().collect(),
                    valid_until: to_tokio_instant(lookup.valid_until()),
                }),
                Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                    let ttl = none
                        .negative_ttl
                        .map_or(DEFAULT_NEGATIVE_TTL, |s| Duration::from_secs(u64::from(s)));
                    Ok(DnsAnswer {
                        ips: Vec::new(),
                        valid_until: Instant::now() + ttl,
                    })
                }
                Err(e) => Err(format!("DNS lookup of {host} failed: {e}")),
            }
        })
    }
}

fn to_tokio_instant(deadline: std::time::Instant) -> Instant {
    Instant::now() + deadline.saturating_duration_since(std::time::Instant::now())
}

/// How long an entry keeps refreshing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Refresh {
    /// `inet`: again whenever the TTL runs out.
    Ttl,
    /// `fixedinet`: until the first answer with addresses, then never.
    UntilFound,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    host: String,
    port: u16,
    refresh: Refresh,
}

/// Turns (host, port) into a live address, sharing one DNS refresh per
/// (host, port) between all its users.
pub struct InetResolver {
    dns: Arc<dyn DnsResolve>,
    entries: LiveCache<Key, Addr>,
}

impl std::fmt::Debug for InetResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InetResolver")
            .field("active", &self.active_count())
            .finish()
    }
}

impl InetResolver {
    /// A resolver that looks host names up through `dns`.
    pub fn new(dns: Arc<dyn DnsResolve>) -> InetResolver {
        InetResolver {
            dns,
            entries: LiveCache::default(),
        }
    }

    /// A resolver using the system's DNS configuration ([`HickoryDns`]).
    pub fn system() -> Result<InetResolver, DnsConfigError> {
        Ok(InetResolver::new(Arc::new(HickoryDns::from_system_conf()?)))
    }

    /// The live address of `host:port` (`inet!host:port`), re-resolved when
    /// the DNS answer expires.
    ///
    /// Until the first answer the address is [`Addr::Pending`]. A name that
    /// does not exist is [`Addr::Neg`]; a lookup that fails before any
    /// answer is [`Addr::Failed`]. Once there have been addresses, failures
    /// and "no such name" keep them (last known good) and are logged.
    pub fn resolve(&self, host: &str, port: u16) -> Live<Addr> {
        self.lookup(host, port, Refresh::Ttl)
    }

    /// Like [`InetResolver::resolve`], but the first addresses found are
    /// kept for good (`fixedinet!host:port`).
    pub fn resolve_fixed(&self, host: &str, port: u16) -> Live<Addr> {
        self.lookup(host, port, Refresh::UntilFound)
    }

    /// How many (host, port) entries have a refresh task, for tests and
    /// metrics.
    pub fn active_count(&self) -> usize {
        self.entries.len()
    }

    fn lookup(&self, host: &str, port: u16, refresh: Refresh) -> Live<Addr> {
        if let Some(ip) = fixed_host_ip(host) {
            return Live::constant(bound(&[ip], port));
        }
        if let Some(why) = unusable_host(host) {
            return Live::constant(Addr::Failed(why.into()));
        }
        let key = Key {
            host: host.to_owned(),
            port,
            refresh,
        };
        let run = {
            let (dns, key) = (self.dns.clone(), key.clone());
            move |publisher| refresh_loop(dns.clone(), key.clone(), publisher)
        };
        let live = self.entries.try_subscribe(key, || Addr::Pending, run);
        live.unwrap_or_else(|_| {
            Live::constant(Addr::Failed(
                format!("cannot resolve {host}: no async runtime").into(),
            ))
        })
    }
}

/// The address of a host that needs no DNS: an IP literal (IPv6 with or
/// without brackets; IPv4 also in Java's short forms such as `127.1`), or the
/// loopback address for `localhost` and the empty host, as Finagle does.
pub fn fixed_host_ip(host: &str) -> Option<IpAddr> {
    if host.is_empty() || host == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Some(ip) = ipv4_literal(host) {
        return Some(IpAddr::V4(ip));
    }
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Java's IPv4 literal forms: `a.b.c.d`, `a.b.c`, `a.b` and `a`, decimal
/// only, the last part filling the remaining bytes (`127.1` is 127.0.0.1).
/// Leading zeros are refused, as modern JDKs do, since they are ambiguous.
fn ipv4_literal(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut value: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let well_formed = !part.is_empty()
            && part.len() <= 10
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !well_formed {
            return None;
        }
        let n: u64 = part.parse().ok()?;
        let last = i + 1 == parts.len();
        let limit: u64 = if last {
            1 << (8 * (5 - parts.len()))
        } else {
            256
        };
        if n >= limit {
            return None;
        }
        value = if last {
            (value << (8 * (5 - parts.len()))) | n
        } else {
            (value << 8) | n
        };
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// Why Finagle would refuse `inet!host:port` for this host: it splits the
/// argument on spaces and commas into `host:port` pairs of exactly two
/// `:`-separated parts (IPv6 literals are handled before this).
fn unusable_host(host: &str) -> Option<String> {
    if host.contains([':', ' ', ',']) || host.chars().any(char::is_whitespace) {
        Some(format!("not a host name: {host:?}"))
    } else {
        None
    }
}

/// Java's `Integer.parseInt`: an optional sign and decimal digits, within
/// `i32`. Finagle's `/$/inet/<host>/<port>` pattern uses it to tell a port
/// from a host.
pub fn parse_java_int(text: &str) -> Option<i32> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A parsed port as a socket port, or Java's message for one out of range.
pub fn port_from_int(port: i32) -> Result<u16, String> {
    u16::try_from(port).map_err(|_| format!("port out of range:{port}"))
}

/// A port label as Finagle reads it: Java's `parseInt`, then the range
/// check of `InetSocketAddress`. The error is the JVM exception message.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match parse_java_int(text) {
        Some(port) => port_from_int(port),
        None => Err(format!("For input string: \"{text}\"")),
    }
}

fn bound(ips: &[IpAddr], port: u16) -> Addr {
    Addr::bound(
        ips.iter()
            .map(|&ip| Endpoint::new(SocketAddr::new(ip, port)))
            .collect(),
    )
}

/// What the entry has learnt so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Nothing,
    NoSuchName,
    Addresses,
}

/// Keeps one (host, port) address current until nobody holds it.
async fn refresh_loop(dns: Arc<dyn DnsResolve>, key: Key, publisher: Arc<Publisher<Addr>>) {
    tokio::select! {
        () = keep_resolving(dns.as_ref(), key, &publisher) => {}
        () = publisher.closed() => {}
    }
}

/// Looks the host up again and again, publishing what it learns; never
/// ends by itself.
async fn keep_resolving(dns: &dyn DnsResolve, key: Key, publisher: &Publisher<Addr>) {
    let Key {
        host,
        port,
        refresh,
    } = key;
    let mut known = Known::Nothing;
    // Whether the last outcome was a problem that has been logged.
    let mut troubled = false;
    let mut backoff = MIN_REFRESH;
    loop {
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, dns.resolve(&host));
        let outcome = lookup.await.unwrap_or_else(|_| {
            Err(format!(
                "DNS lookup of {host} timed out after {LOOKUP_TIMEOUT:?}"
            ))
        });
        let next = match outcome {
            Ok(answer) if !answer.ips.is_empty() => {
                publisher.publish_if_changed(bound(&answer.ips, port));
                if troubled {
                    tracing::info!(namer = "inet", %host, port, "DNS lookup recovered");
                }
                known = Known::Addresses;
                troubled = false;
                backoff = MIN_REFRESH;
                match refresh {
                    Refresh::Ttl => Some(until(answer.valid_until)),
                    Refresh::UntilFound => None,
                }
            }
            Ok(answer) => {
                if known == Known::Addresses {
                    if !troubled {
                        tracing::warn!(namer = "inet", %host, port, "DNS says the host no longer exists; keeping its last known addresses");
                        troubled = true;
                    }
                } else {
                    tracing::debug!(%host, port, "DNS says the host does not exist");
                    publisher.publish_if_changed(Addr::Neg);
                    known = Known::NoSuchName;
                    troubled = false;
                }
                backoff = MIN_REFRESH;
                Some(until(answer.valid_until))
            }
            Err(error) => {
                if !troubled {
                    match known {
                        Known::Addresses => {
                            tracing::warn!(namer = "inet", %host, port, %error, "DNS lookup failed; keeping the last known addresses")
                        }
                        _ => {
                            tracing::warn!(namer = "inet", %host, port, %error, "DNS lookup failed")
                        }
                    }
                    troubled = true;
                }
                if known == Known::Nothing {
                    publisher.publish_if_changed(Addr::Failed(error.into()));
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                Some(wait)
            }
        };
        match next {
            Some(wait) => tokio::time::sleep(wait).await,
            None => std::future::pending::<()>().await,
        }
    }
}

/// How long to keep an answer that expires at `valid_until`.
fn until(valid_until: Instant) -> Duration {
    valid_until
        .saturating_duration_since(Instant::now())
        .clamp(MIN_REFRESH, MAX_REFRESH)
}

#[cfg(test)]
mod tests;
