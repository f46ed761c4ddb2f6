//! Which CPU each process runs on, and what `/proc` says they spent.

use std::process::Command;

use crate::harness::{pinned_command, stat_fields, taskset_works};

/// Which CPUs the proxies and the load (upstream and load generator) run on.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// The proxies' CPU.
    pub proxy: Option<&'static str>,
    /// The CPU of the upstream and the load generator.
    pub load: Option<&'static str>,
    /// What was chosen and why, for the report.
    pub note: String,
}

impl Pinning {
    /// Proxies on CPU 1, load on CPU 0, unless `disabled`, `taskset` is
    /// missing or there is one CPU.
    pub fn detect(disabled: bool) -> Pinning {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = taskset_works();
        let none = |note: String| Pinning {
            proxy: None,
            load: None,
            note,
        };
        if disabled {
            none("not pinned (--no-pin)".into())
        } else if !taskset {
            none("not pinned: taskset is missing".into())
        } else if cpus < 2 {
            none(format!("not pinned: only {cpus} CPU available"))
        } else {
            Pinning {
                proxy: Some("1"),
                load: Some("0"),
                note: format!("proxies on CPU 1, upstream and load on CPU 0 ({cpus} CPUs)"),
            }
        }
    }

    /// `program` on `cpu` (through `taskset`), or unpinned.
    pub fn command(cpu: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
        pinned_command(cpu, program)
    }
}

/// The processes of the group `pgid`.
pub fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.get(2) == Some(&pgid.to_string())))
        .collect()
}

/// User plus system CPU time of the group, in clock ticks.
pub fn group_cpu_ticks(pgid: u32) -> u64 {
    group_pids(pgid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        })
        .sum()
}

/// Busy time of one CPU (`"0"`, `"1"`) in clock ticks, from `/proc/stat`:
/// user, nice, system, irq and softirq. Unlike a process's own CPU time
/// this includes the kernel's network work done on that CPU (softirq),
/// which is most of what a proxy on loopback costs. Steal is left out.
pub fn cpu_busy_ticks(cpu: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// A `/proc/<pid>/status` memory field (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident memory of the whole group, in KiB.
pub fn group_rss_kib(pgid: u32) -> u64 {
    group_status_kib(pgid, "VmRSS")
}

/// A `/proc/<pid>/status` memory field summed over the group (`VmHWM`:
/// each process's own peak, so the sum may exceed any moment's total).
pub fn group_status_kib(pgid: u32, key: &str) -> u64 {
    group_pids(pgid)
        .into_iter()
        .filter_map(|p| status_kib(p, key))
        .sum()
}

/// CPU readings taken before a measured run; [`UsageMeter::stop`] turns
/// them into what the run cost.
#[derive(Debug, Clone)]
pub struct UsageMeter {
    group: u32,
    group_ticks: u64,
    proxy_cpu: Option<(&'static str, u64)>,
    load_cpu: Option<(&'static str, u64)>,
}

/// What one measured run cost, in seconds of CPU.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system time of the proxy's process group.
    pub group_secs: f64,
    /// Busy time of the whole proxy CPU, kernel network work included
    /// (when pinned).
    pub proxy_cpu_secs: Option<f64>,
    /// Busy time of the whole load CPU (when pinned).
    pub load_cpu_secs: Option<f64>,
}

impl UsageMeter {
    /// Reads the counters of the group `group` and of the pinned CPUs.
    pub fn start(group: u32, pin: &Pinning) -> UsageMeter {
        let reading = |cpu: Option<&'static str>| cpu.and_then(|c| Some((c, cpu_busy_ticks(c)?)));
        UsageMeter {
            group,
            group_ticks: group_cpu_ticks(group),
            proxy_cpu: reading(pin.proxy),
            load_cpu: reading(pin.load),
        }
    }

    /// What was spent since [`UsageMeter::start`]; `ticks` is the length
    /// of a clock tick per second.
    pub fn stop(&self, ticks: f64) -> Usage {
        let spent = |before: Option<(&str, u64)>| -> Option<f64> {
            let (cpu, before) = before?;
            Some(cpu_busy_ticks(cpu)?.saturating_sub(before) as f64 / ticks)
        };
        Usage {
            group_secs: group_cpu_ticks(self.group).saturating_sub(self.group_ticks) as f64 / ticks,
            proxy_cpu_secs: spent(self.proxy_cpu),
            load_cpu_secs: spent(self.load_cpu),
        }
    }
}

impl Usage {
    /// The group's CPU µs per unit of work (request, handshake).
    pub fn group_us_per(&self, units: u64) -> Option<f64> {
        (units > 0).then(|| self.group_secs * 1e6 / units as f64)
    }

    /// The proxy CPU's busy µs per unit of work.
    pub fn proxy_cpu_us_per(&self, units: u64) -> Option<f64> {
        let secs = self.proxy_cpu_secs?;
        (units > 0).then(|| secs * 1e6 / units as f64)
    }

    /// The load CPU's busy µs per unit of work.
    pub fn load_cpu_us_per(&self, units: u64) -> Option<f64> {
        let secs = self.load_cpu_secs?;
        (units > 0).then(|| secs * 1e6 / units as f64)
    }
}
