//! How an update reaches the routers, timed from their side: each router
//! logs (at debug level, `router::interpreter::remote`; the filter the
//! harness starts them with) every tree and
//! address namerd sends it, with the time it arrived. Read after rounds in
//! which nobody asks the routers anything, these times give the fan-out
//! without the polling's load or its window.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A log line that says namerd sent the address of `id`.
pub(crate) fn address_sent(id: &str) -> impl Fn(&str) -> bool {
    let tail = format!(" id={id}");
    move |line| line.contains("namerd sent an address") && line.ends_with(&tail)
}

/// A log line that says namerd sent the tree of `name`.
pub(crate) fn tree_sent(name: &str) -> impl Fn(&str) -> bool {
    let tail = format!(" name={name}");
    move |line| line.contains("namerd sent a tree") && line.ends_with(&tail)
}

/// For each router's log and each update (made at the times in `updates`,
/// in order), how long after the update the router first logged a line
/// that `matches`, before the next update; and how many (router, update)
/// pairs had no such line.
pub(crate) fn delays(
    logs: &[PathBuf],
    updates: &[SystemTime],
    matches: impl Fn(&str) -> bool,
) -> (Vec<Duration>, usize) {
    let (mut delays, mut missing) = (Vec::new(), 0);
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let times: Vec<i64> = text
            .lines()
            .filter(|line| matches(line))
            .filter_map(line_micros)
            .collect();
        for (i, update) in updates.iter().enumerate() {
            let from = micros(*update);
            let until = updates.get(i + 1).map_or(i64::MAX, |next| micros(*next));
            match times.iter().find(|&&t| t >= from && t < until) {
                Some(&t) => delays.push(Duration::from_micros((t - from) as u64)),
                None => missing += 1,
            }
        }
    }
    (delays, missing)
}

fn micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The time a text log line starts with (`2026-12-07T08:35:22.679331Z`,
/// UTC), in microseconds since the Unix epoch.
fn line_micros(line: &str) -> Option<i64> {
    let stamp = line.split(' ').next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (parts.next()??, parts.next()??, parts.next()??);
    // The fraction to microseconds, whatever its number of digits.
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    let us = digits.parse::<i64>().ok()?;
    let seconds = days_since_epoch(y, m, d) * 86_400 + h * 3600 + min * 60 + s;
    Some(seconds * 1_000_000 + us)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Years counted from March, so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_read_as_unix_microseconds() {
        assert_eq!(line_micros("1970-01-01T00:00:00.000001Z DEBUG x"), Some(1));
        // 2026-12-07 08:35:22.679331 UTC, from `date -u -d ... +%s`.
        assert_eq!(
            line_micros("2026-12-07T08:35:22.679331Z DEBUG router: namerd sent a tree"),
            Some(1_796_632_522_679_331)
        );
        assert_eq!(
            line_micros("2024-02-29T00:00:00Z x"),
            Some(1_709_164_800_000_000)
        );
        assert_eq!(line_micros("not a time"), None);
    }

    #[test]
    fn each_update_takes_the_first_matching_line_before_the_next() {
        let dir = std::env::temp_dir().join(format!("delivered-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("router0.log");
        std::fs::write(
            &log,
            "1970-01-01T00:00:10.000000Z INFO router: started\n\
             1970-01-01T00:00:10.004000Z DEBUG router::interpreter::remote: namerd sent an address kind=\"io.l5d.namerd.http\" id=/#/io.l5d.fs/s0\n\
             1970-01-01T00:00:10.005000Z DEBUG router::interpreter::remote: namerd sent an address kind=\"io.l5d.namerd.http\" id=/#/io.l5d.fs/s0\n\
             1970-01-01T00:00:11.002000Z DEBUG router::interpreter::remote: namerd sent an address kind=\"io.l5d.namerd.http\" id=/#/io.l5d.fs/s01\n",
        )
        .unwrap();
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let (delays, missing) = delays(
            &[log],
            &[at(10_000), at(11_000)],
            address_sent("/#/io.l5d.fs/s0"),
        );
        assert_eq!(delays, vec![Duration::from_millis(4)]);
        assert_eq!(missing, 1, "s01 is another name");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
