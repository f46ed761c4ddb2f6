//! `client.loadBalancer`, and what a balancer is made with.

use std::sync::Arc;
use std::time::Duration;

use namers::config::{KindConfig, kind_params};

use crate::client::accrual::AccrualConfig;

/// The `loadBalancer` kinds this build has.
pub const KINDS: &[&str] = &["p2c", "ewma", "aperture", "heap", "roundRobin"];

/// Finagle's `Balancers.MaxEffort`.
const DEFAULT_MAX_EFFORT: u32 = 5;

/// What a balancer is made with: its kind, the failure accrual of each of
/// its endpoints and whether a connection failure removes an endpoint at
/// once (`failFast`).
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    /// How endpoints are chosen.
    pub kind: BalancerKind,
    /// When an endpoint is removed, and for how long.
    pub accrual: Arc<AccrualConfig>,
    /// A connection failure removes the endpoint at once.
    pub fail_fast: bool,
}

impl Default for BalanceConfig {
    /// p2c with `maxEffort` 5, Linkerd's default accrual, no `failFast`.
    fn default() -> BalanceConfig {
        BalanceConfig {
            kind: BalancerKind::P2c {
                max_effort: DEFAULT_MAX_EFFORT,
            },
            accrual: Arc::default(),
            fail_fast: false,
        }
    }
}

/// `loadBalancer: {kind, ...}`. `max_effort` is how many picks a request
/// may make when they land on removed endpoints (0 is taken as 1).
#[derive(Debug, Clone, PartialEq)]
pub enum BalancerKind {
    /// `p2c`: power of two choices, least loaded.
    P2c {
        /// Picks per request.
        max_effort: u32,
    },
    /// `ewma`: power of two choices, peak EWMA of latency.
    Ewma {
        /// Picks per request.
        max_effort: u32,
        /// How fast old latencies fade (`decayTimeMs`).
        decay: Duration,
    },
    /// `aperture`: power of two choices within a window of endpoints that
    /// grows and shrinks with load.
    Aperture {
        /// Picks per request.
        max_effort: u32,
        /// How fast the load average moves (`smoothWindowMs`).
        smooth_window: Duration,
        /// Below this load per endpoint in the window, it narrows.
        low_load: f64,
        /// Above this load per endpoint in the window, it widens.
        high_load: f64,
        /// The narrowest window.
        min_aperture: usize,
    },
    /// `heap`: always the least loaded.
    Heap,
    /// `roundRobin`: each endpoint in turn.
    RoundRobin {
        /// Picks per request.
        max_effort: u32,
    },
}

impl Default for BalancerKind {
    fn default() -> BalancerKind {
        BalanceConfig::default().kind
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    #[serde(default)]
    enable_probation: bool,
    max_effort: Option<u32>,
    decay_time_ms: Option<u64>,
    smooth_window_ms: Option<u64>,
    low_load: Option<f64>,
    high_load: Option<f64>,
    min_aperture: Option<usize>,
}

/// Which keys each kind takes besides `enableProbation`.
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "p2c" | "roundRobin" => &["maxEffort"],
        "ewma" => &["maxEffort", "decayTimeMs"],
        "aperture" => &[
            "maxEffort",
            "smoothWindowMs",
            "lowLoad",
            "highLoad",
            "minAperture",
        ],
        _ => &[],
    }
}

impl BalancerKind {
    /// From a `loadBalancer:` block at key path `at`, with Linkerd's keys
    /// and defaults. Errors read `"{at}: key: why"`.
    pub fn from_kind(at: &str, config: &KindConfig) -> Result<BalancerKind, String> {
        let kind = config.kind.as_str();
        if !KINDS.contains(&kind) {
            return Err(namers::config::linkerd::unknown_kind(
                at,
                "loadBalancer",
                kind,
                KINDS,
            ));
        }
        let allowed = kind_keys(kind);
        if let Some(key) = config
            .params
            .keys()
            .find(|k| *k != "enableProbation" && !allowed.contains(&k.as_str()))
        {
            return Err(format!(
                "{at}: unknown field `{key}` for kind {kind}; expected {}",
                if allowed.is_empty() {
                    "only enableProbation".to_string()
                } else {
                    format!("enableProbation, {}", allowed.join(", "))
                }
            ));
        }
        let p: Params = kind_params(&config.params).map_err(|e| format!("{at}: {e}"))?;
        if p.enable_probation {
            return Err(format!("{at}: enableProbation: not supported yet"));
        }
        let max_effort = p.max_effort.unwrap_or(DEFAULT_MAX_EFFORT);
        let positive_ms = |key: &str, value: Option<u64>, default: u64| {
            let ms = value.unwrap_or(default);
            if ms == 0 {
                Err(format!("{at}: {key}: must be at least 1"))
            } else {
                Ok(Duration::from_millis(ms))
            }
        };
        Ok(match kind {
            "p2c" => BalancerKind::P2c { max_effort },
            "ewma" => BalancerKind::Ewma {
                max_effort,
                decay: positive_ms("decayTimeMs", p.decay_time_ms, 10_000)?,
            },
            "aperture" => {
                let low_load = p.low_load.unwrap_or(0.5);
                let high_load = p.high_load.unwrap_or(2.0);
                if !(low_load >= 0.0 && low_load.is_finite()) {
                    return Err(format!("{at}: lowLoad: must be 0 or more"));
                }
                if !(high_load > low_load && high_load.is_finite()) {
                    return Err(format!(
                        "{at}: highLoad: must be above lowLoad ({high_load} <= {low_load})"
                    ));
                }
                let min_aperture = p.min_aperture.unwrap_or(1);
                if min_aperture == 0 {
                    return Err(format!("{at}: minAperture: must be at least 1"));
                }
                BalancerKind::Aperture {
                    max_effort,
                    smooth_window: positive_ms("smoothWindowMs", p.smooth_window_ms, 5_000)?,
                    low_load,
                    high_load,
                    min_aperture,
                }
            }
            "heap" => BalancerKind::Heap,
            _ => BalancerKind::RoundRobin { max_effort },
        })
    }

    /// How many picks a request may make.
    pub(super) fn max_effort(&self) -> u32 {
        let effort = match *self {
            BalancerKind::P2c { max_effort }
            | BalancerKind::Ewma { max_effort, .. }
            | BalancerKind::Aperture { max_effort, .. }
            | BalancerKind::RoundRobin { max_effort } => max_effort,
            BalancerKind::Heap => DEFAULT_MAX_EFFORT,
        };
        effort.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AT: &str = "routers[0].client.loadBalancer";

    fn read(value: serde_json::Value) -> Result<BalancerKind, String> {
        let config: KindConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        BalancerKind::from_kind(AT, &config)
    }

    #[test]
    fn reads_every_kind_with_linkerd_defaults() {
        assert_eq!(
            read(json!({"kind": "p2c"})),
            Ok(BalancerKind::P2c { max_effort: 5 })
        );
        assert_eq!(
            read(json!({"kind": "ewma", "maxEffort": 10, "decayTimeMs": 15000})),
            Ok(BalancerKind::Ewma {
                max_effort: 10,
                decay: Duration::from_secs(15)
            })
        );
        assert_eq!(
            read(json!({"kind": "ewma"})),
            Ok(BalancerKind::Ewma {
                max_effort: 5,
                decay: Duration::from_secs(10)
            })
        );
        assert_eq!(
            read(json!({"kind": "aperture"})),
            Ok(BalancerKind::Aperture {
                max_effort: 5,
                smooth_window: Duration::from_secs(5),
                low_load: 0.5,
                high_load: 2.0,
                min_aperture: 1,
            })
        );
        assert_eq!(
            read(json!({"kind": "aperture", "lowLoad": 1, "highLoad": 4.5, "minAperture": 3})),
            Ok(BalancerKind::Aperture {
                max_effort: 5,
                smooth_window: Duration::from_secs(5),
                low_load: 1.0,
                high_load: 4.5,
                min_aperture: 3,
            })
        );
        assert_eq!(read(json!({"kind": "heap"})), Ok(BalancerKind::Heap));
        assert_eq!(
            read(json!({"kind": "roundRobin", "maxEffort": 2, "enableProbation": false})),
            Ok(BalancerKind::RoundRobin { max_effort: 2 })
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                json!({"kind": "p2c", "enableProbation": true}),
                "enableProbation: not supported yet",
            ),
            (
                json!({"kind": "ewma", "decayTimeMs": 0}),
                "decayTimeMs: must be at least 1",
            ),
            (
                json!({"kind": "aperture", "lowLoad": 3, "highLoad": 2}),
                "highLoad: must be above lowLoad (2 <= 3)",
            ),
            (
                json!({"kind": "aperture", "minAperture": 0}),
                "minAperture: must be at least 1",
            ),
            (
                json!({"kind": "heap", "maxEffort": 3}),
                "unknown field `maxEffort` for kind heap; expected only enableProbation",
            ),
            (
                json!({"kind": "p2c", "decayTimeMs": 3}),
                "unknown field `decayTimeMs` for kind p2c; expected enableProbation, maxEffort",
            ),
        ];
        for (value, why) in cases {
            assert_eq!(read(value), Err(format!("{AT}: {why}")));
        }
        let wrong_type = read(json!({"kind": "p2c", "maxEffort": "five"})).unwrap_err();
        assert!(
            wrong_type.starts_with(&format!("{AT}: maxEffort: invalid type")),
            "{wrong_type}"
        );
        assert_eq!(
            read(json!({"kind": "leastConn"})),
            Err(namers::config::linkerd::unknown_kind(
                AT,
                "loadBalancer",
                "leastConn",
                KINDS
            ))
        );
    }

    #[test]
    fn default_is_p2c_with_linkerd_accrual() {
        let config = BalanceConfig::default();
        assert_eq!(config.kind, BalancerKind::P2c { max_effort: 5 });
        assert_eq!(*config.accrual, AccrualConfig::default());
        assert!(!config.fail_fast);
        assert_eq!(BalancerKind::Heap.max_effort(), 5);
        assert_eq!(BalancerKind::P2c { max_effort: 0 }.max_effort(), 1);
    }
}
