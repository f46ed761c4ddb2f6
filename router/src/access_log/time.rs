//! UTC calendar fields from a Unix time, for log lines and rolled file
//! names. Hand-written (Howard Hinnant's `civil_from_days`) so that a line
//! costs a few integer operations and the crate no date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day.
pub(super) const DAY: u64 = 86_400;

/// A UTC date and time to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Civil {
    pub(super) year: u64,
    pub(super) month: u64,
    pub(super) day: u64,
    pub(super) hour: u64,
    pub(super) minute: u64,
    pub(super) second: u64,
}

impl Civil {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00Z.
    pub(super) fn from_unix(secs: u64) -> Civil {
        let days = secs / DAY;
        let of_day = secs % DAY;
        // Days are counted from 0000-03-01 so that the leap day ends a year.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: of_day / 3_600,
            minute: of_day % 3_600 / 60,
            second: of_day % 60,
        }
    }
}

/// Seconds since the Unix epoch; 0 for a clock set before it.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The day of the week of the day `days` after 1970-01-01, numbered as
/// Java's `Calendar.DAY_OF_WEEK` (which Linkerd's `weekly(n)` uses):
/// 1 = Sunday … 7 = Saturday. 1970-01-01 was a Thursday (5).
pub(super) fn weekday(days: u64) -> u8 {
    // The remainder is below 7, so the cast cannot truncate.
    ((days + 4) % 7) as u8 + 1
}

/// Appends `n` as decimal, zero-padded to `width` digits.
pub(super) fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        // A single decimal digit fits in a byte.
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = i.min(digits.len().saturating_sub(width));
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // Linkerd's AccessLoggerTest line: 06/01/2016:21:21:26.
        assert_eq!(
            Civil::from_unix(1_452_115_286),
            Civil {
                year: 2016,
                month: 1,
                day: 6,
                hour: 21,
                minute: 21,
                second: 26
            }
        );
        assert_eq!(Civil::from_unix(0).year, 1970);
        // A leap day and the day after.
        let leap = Civil::from_unix(1_709_164_800);
        assert_eq!((leap.year, leap.month, leap.day), (2024, 2, 29));
        let next = Civil::from_unix(1_709_164_800 + DAY);
        assert_eq!((next.year, next.month, next.day), (2024, 3, 1));
        let last = Civil::from_unix(1_735_689_599);
        assert_eq!(
            (
                last.year,
                last.month,
                last.day,
                last.hour,
                last.minute,
                last.second
            ),
            (2024, 12, 31, 23, 59, 59)
        );
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // 1970 to 2100, one day at a time: the day advances by one, or the
        // month (or year) turns over onto day 1.
        let mut before = Civil::from_unix(0);
        for days in 1..(131 * 366) {
            let now = Civil::from_unix(days * DAY);
            let next_day =
                (now.year, now.month, now.day) == (before.year, before.month, before.day + 1);
            let next_month = now.day == 1
                && ((now.year == before.year && now.month == before.month + 1)
                    || (now.year == before.year + 1 && now.month == 1 && before.month == 12));
            assert!(next_day || next_month, "{before:?} then {now:?}");
            before = now;
        }
    }

    #[test]
    fn weekdays_count_from_sunday() {
        assert_eq!(weekday(0), 5, "1970-01-01 was a Thursday");
        assert_eq!(weekday(3), 1, "1970-01-04 was a Sunday");
        assert_eq!(weekday(9), 7, "1970-01-10 was a Saturday");
    }

    #[test]
    fn padding() {
        let mut out = Vec::new();
        push_padded(&mut out, 7, 2);
        push_padded(&mut out, 2016, 4);
        push_padded(&mut out, 12345, 4);
        push_padded(&mut out, 0, 1);
        assert_eq!(out, b"072016123450");
    }
}
