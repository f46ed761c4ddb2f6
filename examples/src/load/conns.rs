//! What holding many connections needs and shows: the open-file limit,
//! raised for the harness and every child it starts, and the count of
//! established sockets on a port, read from `/proc/net/tcp`.

use std::collections::HashSet;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};

/// The soft and hard `RLIMIT_NOFILE` of process `pid` (`"self"` for this
/// one), from `/proc/<pid>/limits`.
pub fn nofile_limits(pid: &str) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/limits");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_nofile(&text).ok_or_else(|| anyhow!("no `Max open files` line in {path}"))
}

fn parse_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let mut next = || -> Option<u64> {
        match numbers.next()? {
            "unlimited" => Some(u64::MAX),
            n => n.parse().ok(),
        }
    };
    Some((next()?, next()?))
}

/// Makes this process's soft open-file limit at least `need`, so that the
/// children started afterwards inherit it. The soft limit is raised
/// towards the hard one with `prlimit --pid` (the workspace forbids the
/// unsafe call to `setrlimit`); above the hard limit only a process
/// allowed to raise it (`CAP_SYS_RESOURCE`) succeeds. Returns the soft
/// limit now in force.
pub fn raise_nofile(need: u64) -> Result<u64> {
    let (soft, hard) = nofile_limits("self")?;
    if soft >= need {
        return Ok(soft);
    }
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            &format!("--nofile={need}:{}", hard.max(need)),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let (soft, hard) = nofile_limits("self")?;
    if soft < need {
        bail!(
            "the open-file limit is {soft} (hard {hard}) and could not be raised to {need} \
             ({}); run under `ulimit -n {need}` as a user allowed to",
            match status {
                Ok(s) => format!("prlimit: {s}"),
                Err(e) => format!("prlimit: {e}"),
            }
        );
    }
    Ok(soft)
}

/// How many TCP sockets in state ESTABLISHED have local port `port` on
/// IPv4 (`/proc/net/tcp`): on loopback, the proxy's side of each client
/// connection.
pub fn established_on_port(port: u16) -> Result<usize> {
    let text = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    Ok(count_established(&text, port))
}

fn count_established(table: &str, port: u16) -> usize {
    // `  sl  local_address rem_address   st …`, addresses as `0100007F:1F90`;
    // state 01 is ESTABLISHED. The kernel writes the table in pieces, and
    // sockets opened or closed meanwhile shift the rest, so a socket can
    // be listed twice: count each pair of addresses once.
    let port = format!(":{port:04X}");
    let sockets: HashSet<(&str, &str)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (local, remote, state) = (fields.next()?, fields.next()?, fields.next()?);
            (state == "01" && local.ends_with(&port)).then_some((local, remote))
        })
        .collect();
    sockets.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(limits), Some((1024, 524288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(unlimited), Some((u64::MAX, u64::MAX)));
        assert!(nofile_limits("self").is_ok());
    }

    #[test]
    fn counts_established_sockets_on_a_local_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000\n\
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000\n\
   3: 0100007F:1F90 0100007F:C351 06 00000000:00000000\n\
   4: 0100007F:1F90 0100007F:C352 01 00000000:00000000\n\
   5: 0100007F:1F90 0100007F:C352 01 00000000:00000000\n";
        // Port 8080 (1F90): two established (one listed twice), one
        // listening, one in TIME_WAIT; the client's side (local C350) is
        // not counted.
        assert_eq!(count_established(table, 8080), 2);
        assert_eq!(count_established(table, 0xC350), 1);
    }

    #[test]
    fn sees_a_real_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        assert_eq!(established_on_port(port).unwrap(), 1);
    }
}
