//! Access control, a router's `accessControl:` block: which clients may
//! reach which destinations. Linkerd 1.x has no such key; this follows
//! Istio's allow/deny lists.
//!
//! ```yaml
//! accessControl:
//!   default: allow            # allow | deny: when no rule matches (default allow)
//!   rules:                    # the first rule that matches decides
//!   - prefix: /svc/payments   # of the destination (default `/`: every one)
//!     action: deny            # allow | deny
//!     identities: ["spiffe://mesh/books", "*.default.svc"]
//!     sources: ["10.0.0.0/8", "::1"]
//!     unauthenticated: true   # only clients without a certificate
//! ```
//!
//! A rule matches a request when all of these hold:
//! - its `prefix` ([`PrefixPattern`] syntax: literals, `*`, `{capture}`)
//!   matches the start of the destination, the logical name the identifier
//!   gave the request;
//! - it has no `identities`, or one of them matches one of the names in the
//!   client's certificate (so a client without one never matches);
//! - it has no `sources`, or the client's address is in one of them;
//! - it does not say `unauthenticated: true`, or the client sent no
//!   certificate.
//!
//! Identity patterns are one of three kinds:
//! - exact (`spiffe://mesh/books`, `web.default.svc`);
//! - a leading `*.` (`*.default.svc`): one or more whole DNS labels, then
//!   the rest. It matches DNS names and the common name, never a URI;
//! - a trailing `*` (`spiffe://mesh/*`): any name that starts with what
//!   comes before it; `*` alone matches any name.
//!
//! No other `*` is allowed. DNS names are compared ignoring ASCII case (as
//! DNS does); URIs and the common name byte for byte.
//!
//! Sources are address ranges, `10.0.0.0/8` or `2001:db8::/32`; a bare
//! address is a range of one. A client connecting over IPv6 from an
//! IPv4-mapped address (`::ffff:10.1.2.3`) counts as the IPv4 address.
//!
//! # Use
//! Build an [`AccessPolicy`] once per router with
//! [`AccessPolicy::from_config`] and share it (it is `Sync`; counters are
//! atomic). Call [`AccessPolicy::check`] once per request, after the
//! identifier has named the request and before it is bound. On
//! `Err(denied)` answer 403 without forwarding, with `l5d-err` set to
//! [`Denied::reason`]. [`AccessPolicy::stats`] reads how often each rule
//! decided, for `access/rules/<i>/allowed`, `access/rules/<i>/denied`,
//! `access/default/allowed` and `access/default/denied`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use dtab::Path;
use namers::tls::PeerIdentity;

use super::prefix::PrefixPattern;

/// What a rule, or the default, does with a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessAction {
    /// Let it through.
    #[default]
    Allow,
    /// Refuse it.
    Deny,
}

/// `accessControl:` as written.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessControlConfig {
    /// What happens when no rule matches (default allow).
    #[serde(default)]
    pub default: AccessAction,
    /// The rules, tried in order.
    #[serde(default)]
    pub rules: Vec<AccessRuleConfig>,
}

/// One entry of `accessControl.rules`, as written.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRuleConfig {
    /// Destination prefix; `/` (every destination) when absent.
    #[serde(default)]
    pub prefix: Option<String>,
    /// What the rule does with the requests it matches.
    pub action: AccessAction,
    /// Certificate name patterns; absent means any client, with or without
    /// a certificate.
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    /// Source address ranges; absent means any address.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// When true, the rule matches only clients without a certificate.
    #[serde(default)]
    pub unauthenticated: bool,
}

/// A checked `accessControl:` block: decides each request and counts the
/// decisions.
#[derive(Debug)]
pub struct AccessPolicy {
    rules: Vec<Rule>,
    default: AccessAction,
    default_counts: Counts,
}

#[derive(Debug)]
struct Rule {
    /// `rules/<i>`, for metrics.
    label: String,
    prefix: PrefixPattern,
    action: AccessAction,
    identities: Option<Vec<IdentityPattern>>,
    sources: Option<Vec<IpRange>>,
    unauthenticated: bool,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    allowed: AtomicU64,
    denied: AtomicU64,
}

impl Counts {
    fn count(&self, action: AccessAction) {
        let counter = match action {
            AccessAction::Allow => &self.allowed,
            AccessAction::Deny => &self.denied,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    /// The index of the rule that refused it; `None` for the default.
    pub rule: Option<usize>,
    /// For `l5d-err`: the destination, the rule and the client, e.g.
    /// `access denied to /svc/payments by accessControl.rules[0] (client
    /// spiffe://mesh/books from 10.1.2.3)`.
    pub reason: String,
}

impl Denied {
    /// The text for `l5d-err`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// How often one rule (or the default) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessStats<'a> {
    /// `rules/<i>` for a rule, `default` for the default; a metric scope
    /// under `access/`.
    pub label: &'a str,
    /// Requests it let through.
    pub allowed: u64,
    /// Requests it refused.
    pub denied: u64,
}

impl AccessPolicy {
    /// Checks `config`, found at key path `at` (e.g.
    /// `routers[0].accessControl`); errors name the key path below it,
    /// e.g. `routers[0].accessControl.rules[2].sources[0]: `10.0.0/8` is
    /// not an address range`.
    pub fn from_config(at: &str, config: &AccessControlConfig) -> Result<AccessPolicy, String> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::from_config(&format!("{at}.rules[{i}]"), i, rule))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccessPolicy {
            rules,
            default: config.default,
            default_counts: Counts::default(),
        })
    }

    /// True when every request is allowed (no rules, default allow), so a
    /// caller may skip [`AccessPolicy::check`].
    pub fn allows_everything(&self) -> bool {
        self.rules.is_empty() && self.default == AccessAction::Allow
    }

    /// Decides a request for destination `dst` from a client at `source`
    /// that presented `identity` (`None`: no client certificate, or no
    /// TLS). Counts the decision against the rule that made it. Allocates
    /// only to build a [`Denied`] (and when a prefix has `{captures}`).
    pub fn check(
        &self,
        dst: &Path,
        source: IpAddr,
        identity: Option<&PeerIdentity>,
    ) -> Result<(), Denied> {
        let source = source.to_canonical();
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(client) = rule.matches(dst, source, identity) {
                rule.counts.count(rule.action);
                return match rule.action {
                    AccessAction::Allow => Ok(()),
                    AccessAction::Deny => Err(denied(
                        Some(i),
                        dst,
                        source,
                        client.or_else(|| identity.map(Client::Certificate)),
                    )),
                };
            }
        }
        self.default_counts.count(self.default);
        match self.default {
            AccessAction::Allow => Ok(()),
            AccessAction::Deny => Err(denied(None, dst, source, identity.map(Client::Certificate))),
        }
    }

    /// How often each rule, then the default, decided.
    pub fn stats(&self) -> impl Iterator<Item = AccessStats<'_>> {
        let rules = self
            .rules
            .iter()
            .map(|rule| stats(&rule.label, &rule.counts));
        rules.chain(std::iter::once(stats("default", &self.default_counts)))
    }
}

fn stats<'a>(label: &'a str, counts: &Counts) -> AccessStats<'a> {
    AccessStats {
        label,
        allowed: counts.allowed.load(Ordering::Relaxed),
        denied: counts.denied.load(Ordering::Relaxed),
    }
}

/// Who a client is, for a [`Denied`] reason.
enum Client<'a> {
    /// The certificate name a rule matched.
    Name(&'a str),
    /// The client's certificate, when no name was matched.
    Certificate(&'a PeerIdentity),
}

fn denied(rule: Option<usize>, dst: &Path, source: IpAddr, client: Option<Client<'_>>) -> Denied {
    // Rules are named from `accessControl` whatever the router: the text
    // goes to clients, who know which router they called.
    let by = match rule {
        Some(i) => format!("accessControl.rules[{i}]"),
        None => "accessControl.default".to_string(),
    };
    let client = match client {
        Some(Client::Name(name)) => format!("client {name}"),
        Some(Client::Certificate(identity)) => match identity.names().next() {
            Some(name) => format!("client {name}"),
            None => {
                let short = identity.hash.get(..16).unwrap_or(&identity.hash);
                format!("client with certificate {short}…")
            }
        },
        None => "unauthenticated client".to_string(),
    };
    let reason = format!("access denied to {dst} by {by} ({client} from {source})");
    Denied { rule, reason }
}

impl Rule {
    fn from_config(at: &str, index: usize, config: &AccessRuleConfig) -> Result<Rule, String> {
        let prefix = PrefixPattern::parse(config.prefix.as_deref().unwrap_or("/"))
            .map_err(|e| format!("{at}.prefix: {e}"))?;
        let identities = config
            .identities
            .as_ref()
            .map(|list| {
                non_empty(at, "identities", list)?;
                list.iter()
                    .enumerate()
                    .map(|(j, text)| {
                        IdentityPattern::parse(text)
                            .map_err(|e| format!("{at}.identities[{j}]: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let sources = config
            .sources
            .as_ref()
            .map(|list| {
                non_empty(at, "sources", list)?;
                list.iter()
                    .enumerate()
                    .map(|(j, text)| {
                        IpRange::parse(text).map_err(|e| format!("{at}.sources[{j}]: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if config.unauthenticated && identities.is_some() {
            return Err(format!(
                "{at}.unauthenticated: a rule with `identities` matches only clients with a certificate, so it would never match; drop one of the two"
            ));
        }
        Ok(Rule {
            label: format!("rules/{index}"),
            prefix,
            action: config.action,
            identities,
            sources,
            unauthenticated: config.unauthenticated,
            counts: Counts::default(),
        })
    }

    /// `Some` when the rule matches, with the certificate name it matched
    /// on, if it looked at names. `source` is canonical.
    fn matches<'a>(
        &self,
        dst: &Path,
        source: IpAddr,
        identity: Option<&'a PeerIdentity>,
    ) -> Option<Option<Client<'a>>> {
        self.prefix.matches(dst)?;
        if self.unauthenticated && identity.is_some() {
            return None;
        }
        if let Some(sources) = &self.sources
            && !sources.iter().any(|range| range.contains(source))
        {
            return None;
        }
        match &self.identities {
            None => Some(None),
            Some(patterns) => {
                matched_name(patterns, identity?).map(|name| Some(Client::Name(name)))
            }
        }
    }
}

fn non_empty(at: &str, key: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!(
            "{at}.{key}: an empty list would match no client; leave the key out to match any"
        ));
    }
    Ok(())
}

/// The first of the certificate's names that a pattern matches.
fn matched_name<'a>(patterns: &[IdentityPattern], identity: &'a PeerIdentity) -> Option<&'a str> {
    let uris = identity.uris.iter().map(|n| (n, NameKind::Uri));
    let dns = identity.dns.iter().map(|n| (n, NameKind::Dns));
    let cn = identity
        .common_name
        .iter()
        .map(|n| (n, NameKind::CommonName));
    uris.chain(dns)
        .chain(cn)
        .find(|(name, kind)| patterns.iter().any(|p| p.matches(name, *kind)))
        .map(|(name, _)| name.as_str())
}

/// Where a certificate name came from, which decides how it is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Uri,
    Dns,
    CommonName,
}

/// One entry of `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdentityPattern {
    /// The whole name.
    Exact(String),
    /// `*.rest`: one or more labels, then this (`.rest`, dot included).
    Labels(String),
    /// `head*`: any name starting with this.
    Prefix(String),
}

impl IdentityPattern {
    fn parse(text: &str) -> Result<IdentityPattern, String> {
        if text.is_empty() {
            return Err("an empty name matches no client".to_string());
        }
        if !text.contains('*') {
            return Ok(IdentityPattern::Exact(text.to_string()));
        }
        let bad = || {
            format!(
                "`{text}`: `*` may only begin a pattern as `*.` (`*.default.svc`) or end one (`spiffe://mesh/*`), once"
            )
        };
        if let Some(rest) = text.strip_prefix("*.") {
            if rest.is_empty() || rest.starts_with('.') || rest.contains('*') {
                return Err(bad());
            }
            return Ok(IdentityPattern::Labels(format!(".{rest}")));
        }
        match text.strip_suffix('*') {
            Some(head) if !head.contains('*') => Ok(IdentityPattern::Prefix(head.to_string())),
            _ => Err(bad()),
        }
    }

    fn matches(&self, name: &str, kind: NameKind) -> bool {
        let same = |a: &[u8], b: &[u8]| match kind {
            NameKind::Dns => a.eq_ignore_ascii_case(b),
            NameKind::Uri | NameKind::CommonName => a == b,
        };
        let name = name.as_bytes();
        match self {
            IdentityPattern::Exact(exact) => same(name, exact.as_bytes()),
            IdentityPattern::Prefix(head) => {
                name.len() >= head.len() && same(&name[..head.len()], head.as_bytes())
            }
            IdentityPattern::Labels(tail) => {
                if kind == NameKind::Uri || name.len() <= tail.len() {
                    return false;
                }
                let (labels, end) = name.split_at(name.len() - tail.len());
                same(end, tail.as_bytes()) && labels.split(|&b| b == b'.').all(|l| !l.is_empty())
            }
        }
    }
}

/// An address range (`10.0.0.0/8`). IPv4-mapped IPv6 ranges of /96 or
/// longer are kept as the IPv4 range they map, as sources are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpRange {
    network: IpAddr,
    bits: u8,
}

impl IpRange {
    fn parse(text: &str) -> Result<IpRange, String> {
        let not_a_range =
            || format!("`{text}` is not an address range (`10.0.0.0/8`, `fd00::/8` or an address)");
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| not_a_range())?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let bits = match bits {
            None => max,
            Some(bits) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()) => {
                match bits.parse::<u8>() {
                    Ok(bits) if bits <= max => bits,
                    _ => {
                        return Err(format!("`{text}`: the prefix length must be at most {max}"));
                    }
                }
            }
            Some(_) => return Err(not_a_range()),
        };
        let range = IpRange {
            network: addr,
            bits,
        };
        let masked = range.masked(addr);
        if masked != addr {
            return Err(format!(
                "`{text}` has bits set past the /{bits} prefix; did you mean `{masked}/{bits}`?"
            ));
        }
        Ok(range.canonical())
    }

    /// `addr` with the bits past the prefix cleared.
    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn canonical(self) -> IpRange {
        match self.network {
            IpAddr::V6(v6) if self.bits >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpRange {
                    network: IpAddr::V4(v4),
                    bits: self.bits - 96,
                },
                None => self,
            },
            _ => self,
        }
    }

    /// Whether canonical `addr` is in the range.
    fn contains(&self, addr: IpAddr) -> bool {
        let same_family = matches!(
            (self.network, addr),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && self.masked(addr) == self.network
    }
}

#[cfg(test)]
mod tests;
