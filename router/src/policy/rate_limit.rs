//! Rate limits, a router's `rateLimits:` list: token buckets on
//! destinations, optionally one per client. Linkerd 1.x has no such key;
//! this follows Istio's quotas.
//!
//! ```yaml
//! rateLimits:
//! - prefix: /svc/*            # destination prefix, required
//!   requestsPerSecond: 100    # required, 0.001 to 1000000, fractions allowed
//!   burst: 200                # default max(1, ceil(requestsPerSecond)), at most 1000000
//!   perClient: identity       # none (default) | identity | source
//! ```
//!
//! # Buckets
//! A bucket holds up to `burst` tokens and gains `requestsPerSecond` a
//! second; a request takes one or is refused. A new bucket starts full.
//!
//! Each rule keeps one bucket per *destination*: the part of the
//! request's destination path that its `prefix` covers, as many segments
//! as the prefix has. So `/svc/*` limits `/svc/web` and `/svc/books` each
//! on their own (and `/svc/web/api` counts as `/svc/web`), while
//! `/svc/web` or `/` is a single bucket for everything under it. With
//! `perClient`, each destination's bucket is further split per client:
//! - `identity`: per client certificate, keyed by its first name (URI
//!   SANs, then DNS SANs, then the common name; its hash when it has
//!   none); a client without a certificate is keyed by its address;
//! - `source`: per client address (IPv4-mapped IPv6 counts as IPv4).
//!
//! Every rule whose prefix matches is checked, in order, and all must
//! admit the request. When one refuses, the tokens the earlier rules took
//! are given back, so a refused request costs nobody's allowance.
//!
//! A rule keeps at most [`MAX_BUCKETS_PER_RULE`] buckets, so many distinct
//! destinations or clients cannot grow memory without bound. To make room
//! it first drops buckets that have refilled (a new one would be the
//! same), then, if none has, the eighth closest to full. A dropped bucket
//! comes back full: beyond that many busy keys a rule admits more than it
//! says, never less.
//!
//! # Use
//! Build [`RateLimits`] once per router with [`RateLimits::from_config`]
//! and share it: [`RateLimits::check`] takes `&self` and is called by many
//! tasks at once. Call it once per request after the request is named
//! (and after access control, so refused requests take no tokens), with
//! the time now (`tokio::time::Instant::now().into_std()` follows paused
//! test time). On `Err(limited)` answer 429 without forwarding, with
//! `Retry-After: {limited.retry_after_secs()}` and `l5d-err` set to
//! [`Limited::reason`]. [`RateLimits::stats`] reads, per rule, the
//! requests refused and the buckets held, for `rate_limits/<i>/limited`
//! and `rate_limits/<i>/buckets`.
//!
//! Each rule's buckets sit in a map split into shards, each behind its
//! own mutex held for one lookup. Checking a bucket that exists does not
//! allocate (a prefix with `{captures}` does, in [`PrefixPattern::matches`]).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dtab::{Label, Path};
use namers::tls::PeerIdentity;

use super::prefix::PrefixPattern;

/// The most buckets one rule keeps.
pub const MAX_BUCKETS_PER_RULE: usize = 10_000;

/// Shards of a rule's bucket map: enough that tasks on different cores
/// rarely wait on each other.
const SHARDS: usize = 16;

/// Bounds on `requestsPerSecond` and `burst`. With them a bucket's
/// arithmetic stays far inside what `Instant` and `Duration` hold: a
/// drained bucket refills within 10⁹ s.
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1_000_000.0;
const MAX_BURST: u32 = 1_000_000;

/// `rateLimits:` as written.
pub type RateLimitsConfig = Vec<RateLimitConfig>;

/// One entry of `rateLimits:`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Destination prefix ([`PrefixPattern`] syntax).
    pub prefix: String,
    /// Tokens a bucket gains per second.
    pub requests_per_second: f64,
    /// Tokens a bucket holds; `max(1, ceil(requestsPerSecond))` when
    /// absent.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Whether each client has its own bucket.
    #[serde(default)]
    pub per_client: PerClient,
}

/// `perClient`: how a destination's bucket is split between clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerClient {
    /// One bucket for all clients of a destination.
    #[default]
    None,
    /// One per client certificate; by address for clients without one.
    Identity,
    /// One per client address.
    Source,
}

/// A router's checked rate limits and their buckets.
#[derive(Debug)]
pub struct RateLimits {
    rules: Vec<Limit>,
}

#[derive(Debug)]
struct Limit {
    prefix: PrefixPattern,
    /// The segments of a destination that name its bucket: as many as the
    /// prefix has.
    depth: usize,
    rate: f64,
    burst: u32,
    /// The time one token takes to come back: `1 / rate`.
    interval: Duration,
    /// How far past now a bucket's [`Tat`] may be and still admit:
    /// `burst - 1` intervals.
    tolerance: Duration,
    per_client: PerClient,
    buckets: Buckets,
    limited: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Limited {
    /// The index of the rule that refused it.
    pub rule: usize,
    /// How long until that rule would admit it, exactly.
    pub retry_after: Duration,
    /// For `l5d-err`: the rule, its rate, the destination and the client,
    /// e.g. `rate limited by rateLimits[0] (100/s, burst 200) on /svc/web
    /// for client spiffe://mesh/books`.
    pub reason: String,
}

impl Limited {
    /// `retry_after` in whole seconds for a `Retry-After` header: rounded
    /// up, and at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        secs.max(1)
    }

    /// The text for `l5d-err`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What one rule has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStats<'a> {
    /// The rule's index in `rateLimits`; a metric scope under
    /// `rate_limits/`.
    pub index: usize,
    /// The rule's prefix as written.
    pub prefix: &'a str,
    /// Requests it refused.
    pub limited: u64,
    /// Buckets it holds now (at most [`MAX_BUCKETS_PER_RULE`]).
    pub buckets: usize,
}

impl RateLimits {
    /// Checks `config`, found at key path `at` (e.g.
    /// `routers[0].rateLimits`); errors name the key path below it, e.g.
    /// `routers[0].rateLimits[1].burst: must be between 1 and 1000000`.
    pub fn from_config(at: &str, config: &[RateLimitConfig]) -> Result<RateLimits, String> {
        RateLimits::with_capacity(at, config, MAX_BUCKETS_PER_RULE)
    }

    fn with_capacity(
        at: &str,
        config: &[RateLimitConfig],
        capacity: usize,
    ) -> Result<RateLimits, String> {
        let rules = config
            .iter()
            .enumerate()
            .map(|(i, rule)| Limit::from_config(&format!("{at}[{i}]"), rule, capacity))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RateLimits { rules })
    }

    /// True when there are no rules, so a caller may skip
    /// [`RateLimits::check`].
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Takes a token for a request to destination `dst` from a client at
    /// `source` that presented `identity` (`None`: no client certificate),
    /// at time `now`, from every rule whose prefix matches; or refuses it,
    /// taking none, naming the first rule that had no token.
    pub fn check(
        &self,
        dst: &Path,
        source: IpAddr,
        identity: Option<&PeerIdentity>,
        now: Instant,
    ) -> Result<(), Limited> {
        let source = source.to_canonical();
        for (i, limit) in self.rules.iter().enumerate() {
            if limit.prefix.matches(dst).is_none() {
                continue;
            }
            let key = limit.key(dst, source, identity);
            if let Err(retry_after) = limit.take(key, now) {
                limit.limited.fetch_add(1, Ordering::Relaxed);
                for earlier in &self.rules[..i] {
                    if earlier.prefix.matches(dst).is_some() {
                        earlier.give_back(earlier.key(dst, source, identity));
                    }
                }
                return Err(limit.refusal(i, key, retry_after));
            }
        }
        Ok(())
    }

    /// What each rule has done, in order.
    pub fn stats(&self) -> impl Iterator<Item = RateLimitStats<'_>> {
        self.rules
            .iter()
            .enumerate()
            .map(|(index, limit)| RateLimitStats {
                index,
                prefix: limit.prefix.as_str(),
                limited: limit.limited.load(Ordering::Relaxed),
                buckets: limit.buckets.len(),
            })
    }
}

impl Limit {
    fn from_config(at: &str, config: &RateLimitConfig, capacity: usize) -> Result<Limit, String> {
        let prefix =
            PrefixPattern::parse(&config.prefix).map_err(|e| format!("{at}.prefix: {e}"))?;
        // As `PrefixPattern::parse` counts segments.
        let depth = config.prefix.split('/').filter(|s| !s.is_empty()).count();
        let rate = config.requests_per_second;
        // Written so that NaN is refused too.
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(format!(
                "{at}.requestsPerSecond: must be between {MIN_RATE} and {MAX_RATE}, not {rate}"
            ));
        }
        // In range, so the cast is exact.
        let burst = config.burst.unwrap_or((rate.ceil() as u32).max(1));
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(format!(
                "{at}.burst: must be between 1 and {MAX_BURST}, not {burst}"
            ));
        }
        let interval = Duration::try_from_secs_f64(1.0 / rate)
            .map_err(|e| format!("{at}.requestsPerSecond: {rate}: {e}"))?;
        let tolerance = interval
            .checked_mul(burst - 1)
            .ok_or_else(|| format!("{at}.burst: {burst} is too large for {rate} per second"))?;
        Ok(Limit {
            prefix,
            depth,
            rate,
            burst,
            interval,
            tolerance,
            per_client: config.per_client,
            buckets: Buckets::new(capacity),
            limited: AtomicU64::new(0),
        })
    }

    /// The bucket of a request. `source` is canonical.
    fn key<'a>(
        &self,
        dst: &'a Path,
        source: IpAddr,
        identity: Option<&'a PeerIdentity>,
    ) -> KeyRef<'a> {
        let elems = dst.elems();
        let client = match (self.per_client, identity) {
            (PerClient::None, _) => ClientRef::Any,
            (PerClient::Source, _) | (PerClient::Identity, None) => ClientRef::Addr(source),
            (PerClient::Identity, Some(identity)) => match identity.names().next() {
                Some(name) => ClientRef::Name(name),
                None => ClientRef::Certificate(&identity.hash),
            },
        };
        KeyRef {
            dst: elems.get(..self.depth).unwrap_or(elems),
            client,
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until there is
    /// one. This is GCRA, the token bucket kept as one time: `tat`, when
    /// the bucket will be full again if nothing more is taken.
    fn take(&self, key: KeyRef<'_>, now: Instant) -> Result<(), Duration> {
        self.buckets.with(key, now, |tat| {
            // `now` may be a little behind a time another task already
            // stored; `max` keeps a bucket from running backwards.
            let start = (*tat).max(now);
            let ahead = start.saturating_duration_since(now);
            if ahead > self.tolerance {
                return Err(ahead - self.tolerance);
            }
            // Cannot overflow within the configured bounds; if it did,
            // refusing is the safe answer.
            *tat = start.checked_add(self.interval).ok_or(self.interval)?;
            Ok(())
        })
    }

    /// Puts back a token taken from `key`'s bucket, if it is still kept.
    fn give_back(&self, key: KeyRef<'_>) {
        self.buckets.update(key, |tat| {
            if let Some(earlier) = tat.checked_sub(self.interval) {
                *tat = earlier;
            }
        });
    }

    fn refusal(&self, index: usize, key: KeyRef<'_>, retry_after: Duration) -> Limited {
        let dst = Path::from_labels(key.dst.to_vec());
        let client = match key.client {
            ClientRef::Any => String::new(),
            ClientRef::Name(name) => format!(" for client {name}"),
            ClientRef::Certificate(hash) => {
                let short = hash.get(..16).unwrap_or(hash);
                format!(" for client with certificate {short}…")
            }
            ClientRef::Addr(addr) => format!(" for {addr}"),
        };
        Limited {
            rule: index,
            retry_after,
            reason: format!(
                "rate limited by rateLimits[{index}] ({}/s, burst {}) on {dst}{client}",
                self.rate, self.burst
            ),
        }
    }
}

/// One rule's buckets: each a [`Tat`] under a [`BucketKey`], in shards.
#[derive(Debug)]
struct Buckets {
    /// Picks a key's shard. Keyed at random, as each shard's map is, so
    /// chosen keys cannot pile into one shard or one hash chain.
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<BucketKey, Tat>>]>,
    shard_capacity: usize,
}

/// A bucket: the time it is full again if nothing more is taken. Before
/// `now` (or at it) the bucket is full.
type Tat = Instant;

impl Buckets {
    fn new(capacity: usize) -> Buckets {
        Buckets {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_capacity: (capacity / SHARDS).max(1),
        }
    }

    fn shard(&self, key: &dyn KeyView) -> &Mutex<HashMap<BucketKey, Tat>> {
        let hash = self.hasher.hash_one(key);
        // The remainder is below `SHARDS`, so it fits and indexes.
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    /// Runs `f` on `key`'s bucket, made full at `now` if there is none.
    fn with<T>(&self, key: KeyRef<'_>, now: Instant, f: impl FnOnce(&mut Tat) -> T) -> T {
        let mut map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = map.get_mut(&key as &dyn KeyView) {
            return f(tat);
        }
        if map.len() >= self.shard_capacity {
            make_room(&mut map, now, self.shard_capacity);
        }
        let mut tat = now;
        let out = f(&mut tat);
        map.insert(key.to_owned(), tat);
        out
    }

    /// Runs `f` on `key`'s bucket if there is one.
    fn update(&self, key: KeyRef<'_>, f: impl FnOnce(&mut Tat)) {
        let mut map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = map.get_mut(&key as &dyn KeyView) {
            f(tat);
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// Frees at least one slot in a full shard.
fn make_room(map: &mut HashMap<BucketKey, Tat>, now: Instant, capacity: usize) {
    // A full bucket is what a new one would be: dropping it forgets
    // nothing.
    map.retain(|_, tat| *tat > now);
    if map.len() < capacity || map.is_empty() {
        return;
    }
    // Every bucket is in use. Drop an eighth, those closest to full: they
    // lose least by coming back full, and one pass makes room for many
    // inserts.
    let count = (capacity / 8).clamp(1, map.len());
    let mut tats: Vec<Tat> = map.values().copied().collect();
    let (_, threshold, _) = tats.select_nth_unstable(count - 1);
    let threshold = *threshold;
    let below = tats.iter().filter(|tat| **tat < threshold).count();
    let mut ties = count - below;
    map.retain(|_, tat| {
        if *tat < threshold {
            false
        } else if *tat == threshold && ties > 0 {
            ties -= 1;
            false
        } else {
            true
        }
    });
}

/// Who a bucket is for, within a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientRef<'a> {
    /// Every client (`perClient: none`).
    Any,
    /// A certificate, by its first name.
    Name(&'a str),
    /// A certificate without names, by its hash.
    Certificate(&'a str),
    /// A client address.
    Addr(IpAddr),
}

/// A bucket's key as a request sees it, borrowed from the request: what
/// lookups use, so finding a bucket allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KeyRef<'a> {
    dst: &'a [Label],
    client: ClientRef<'a>,
}

/// A bucket's key as the map keeps it.
#[derive(Debug)]
struct BucketKey {
    dst: Box<[Label]>,
    client: ClientKey,
}

#[derive(Debug)]
enum ClientKey {
    Any,
    Name(Box<str>),
    Certificate(Box<str>),
    Addr(IpAddr),
}

impl KeyRef<'_> {
    fn to_owned(self) -> BucketKey {
        BucketKey {
            dst: self.dst.into(),
            client: match self.client {
                ClientRef::Any => ClientKey::Any,
                ClientRef::Name(name) => ClientKey::Name(name.into()),
                ClientRef::Certificate(hash) => ClientKey::Certificate(hash.into()),
                ClientRef::Addr(addr) => ClientKey::Addr(addr),
            },
        }
    }
}

/// Lets a `HashMap<BucketKey, _>` be searched with a [`KeyRef`]: both
/// keys hash and compare as the `KeyRef` they show, and `BucketKey`
/// borrows as `dyn KeyView`.
trait KeyView {
    fn view(&self) -> KeyRef<'_>;
}

impl KeyView for KeyRef<'_> {
    fn view(&self) -> KeyRef<'_> {
        *self
    }
}

impl KeyView for BucketKey {
    fn view(&self) -> KeyRef<'_> {
        KeyRef {
            dst: &self.dst,
            client: match &self.client {
                ClientKey::Any => ClientRef::Any,
                ClientKey::Name(name) => ClientRef::Name(name),
                ClientKey::Certificate(hash) => ClientRef::Certificate(hash),
                ClientKey::Addr(addr) => ClientRef::Addr(*addr),
            },
        }
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.view().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.view().hash(state);
    }
}

impl PartialEq for BucketKey {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for BucketKey {}

impl<'a> Borrow<dyn KeyView + 'a> for BucketKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

#[cfg(test)]
mod tests;
