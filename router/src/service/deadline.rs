//! `l5d-ctx-deadline`: the time by which the caller needs its answer, as
//! `<timestamp ns> <deadline ns>` (nanoseconds since the Unix epoch, the
//! first being when the deadline was set). A request's deadline is the
//! earliest of the ones it carries and its service's `totalTimeoutMs`; it
//! bounds every attempt and travels on to the next hop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

/// The deadline header.
pub const L5D_CTX_DEADLINE: HeaderName = HeaderName::from_static("l5d-ctx-deadline");

/// One `l5d-ctx-deadline` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When it was set, ns since the epoch.
    pub timestamp: i64,
    /// When it passes, ns since the epoch.
    pub deadline: i64,
}

impl Deadline {
    /// Reads `<timestamp> <deadline>`; anything else is ignored, as
    /// Linkerd ignores it.
    pub fn parse(value: &[u8]) -> Option<Deadline> {
        let text = std::str::from_utf8(value).ok()?;
        let (timestamp, deadline) = text.trim().split_once(' ')?;
        Some(Deadline {
            timestamp: timestamp.trim().parse().ok()?,
            deadline: deadline.trim().parse().ok()?,
        })
    }

    /// The strictest of two: the later timestamp, the earlier deadline.
    pub fn combined(self, other: Deadline) -> Deadline {
        Deadline {
            timestamp: self.timestamp.max(other.timestamp),
            deadline: self.deadline.min(other.deadline),
        }
    }

    /// `<timestamp> <deadline>`, written by hand: `format!` costs several
    /// times more, on every request of a service with a timeout.
    fn header_value(self) -> HeaderValue {
        let mut text = [0u8; 41];
        let mut at = 0;
        at += write_i64(self.timestamp, &mut text[at..]);
        text[at] = b' ';
        at += 1;
        at += write_i64(self.deadline, &mut text[at..]);
        // Digits, a space and a minus sign are always a valid value.
        HeaderValue::from_bytes(&text[..at]).unwrap_or_else(|_| HeaderValue::from_static("0 0"))
    }
}

/// Writes `n` in decimal at the start of `out` (20 bytes are always
/// enough); gives how many bytes it took. Two digits per division: a
/// nanosecond timestamp has 19, and this runs twice per request of a
/// service with a timeout.
fn write_i64(n: i64, out: &mut [u8]) -> usize {
    // "00" to "99", each pair at twice its value.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut left = n.unsigned_abs();
    // Filled from the end.
    let mut start = digits.len();
    while left >= 100 {
        let pair = (left % 100) as usize * 2;
        left /= 100;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if left >= 10 {
        let pair = left as usize * 2;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        start -= 1;
        digits[start] = b'0' + left as u8;
    }
    let mut at = 0;
    if n < 0 {
        out[0] = b'-';
        at = 1;
    }
    let written = &digits[start..];
    out[at..at + written.len()].copy_from_slice(written);
    at + written.len()
}

/// The strictest deadline among a request's `l5d-ctx-deadline` fields.
pub fn read(headers: &HeaderMap) -> Option<Deadline> {
    headers
        .get_all(L5D_CTX_DEADLINE)
        .iter()
        .filter_map(|v| Deadline::parse(v.as_bytes()))
        .reduce(Deadline::combined)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The request's deadline, from what it carries and `total` counted from
/// `started`, and the header set to it for the next hop. `None` when
/// neither says anything (the header is then left alone: there is none).
pub fn apply(
    headers: &mut HeaderMap,
    started: Instant,
    total: Option<Duration>,
) -> Option<Instant> {
    // A pass over the names costs less than a hashed lookup, and most
    // requests carry no deadline.
    let carries = headers.keys().any(|name| *name == L5D_CTX_DEADLINE);
    let carried = if carries { read(headers) } else { None };
    if carried.is_none() && total.is_none() {
        if carries {
            // A value that did not parse is dropped rather than passed on.
            headers.remove(L5D_CTX_DEADLINE);
        }
        return None;
    }
    let now = now_ns();
    let instant = Instant::now();
    let elapsed = i64::try_from(instant.saturating_duration_since(started).as_nanos()).unwrap_or(0);
    let own = total.map(|total| Deadline {
        timestamp: now - elapsed,
        deadline: (now - elapsed)
            .saturating_add(i64::try_from(total.as_nanos()).unwrap_or(i64::MAX)),
    });
    let effective = match (carried, own) {
        (Some(a), Some(b)) => a.combined(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    headers.insert(L5D_CTX_DEADLINE, effective.header_value());
    // Saturating: a hostile value must neither overflow nor outlive the
    // service's own timeout (`combined` keeps the earlier deadline).
    let left =
        Duration::from_nanos(u64::try_from(effective.deadline.saturating_sub(now)).unwrap_or(0));
    Some(instant + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_combine_strictest() {
        let a = Deadline::parse(b"100 500").unwrap();
        let b = Deadline::parse(b" 200 400 ").unwrap();
        assert_eq!(
            a.combined(b),
            Deadline {
                timestamp: 200,
                deadline: 400
            }
        );
        assert_eq!(Deadline::parse(b"100"), None);
        assert_eq!(Deadline::parse(b"x y"), None);

        let mut headers = HeaderMap::new();
        headers.append(L5D_CTX_DEADLINE, HeaderValue::from_static("100 500"));
        headers.append(L5D_CTX_DEADLINE, HeaderValue::from_static("junk"));
        headers.append(L5D_CTX_DEADLINE, HeaderValue::from_static("200 400"));
        assert_eq!(read(&headers).unwrap().deadline, 400);
    }

    #[tokio::test]
    async fn the_earlier_of_the_carried_deadline_and_the_total_timeout_wins() {
        let started = Instant::now();
        let in_one_second = now_ns() + 1_000_000_000;
        let mut headers = HeaderMap::new();
        headers.insert(
            L5D_CTX_DEADLINE,
            HeaderValue::try_from(format!("0 {in_one_second}")).unwrap(),
        );
        let at = apply(&mut headers, started, Some(Duration::from_secs(60))).unwrap();
        let left = at - Instant::now();
        assert!(
            left <= Duration::from_secs(1) && left > Duration::from_millis(500),
            "{left:?}"
        );
        assert_eq!(read(&headers).unwrap().deadline, in_one_second);

        let mut headers = HeaderMap::new();
        let at = apply(&mut headers, started, Some(Duration::from_millis(200))).unwrap();
        assert!(at - Instant::now() <= Duration::from_millis(200));
        let sent = read(&headers).unwrap();
        let span = sent.deadline - sent.timestamp;
        assert_eq!(span, 200_000_000);
    }

    #[test]
    fn values_are_written_as_linkerd_reads_them() {
        for (timestamp, deadline) in [
            (0, 1),
            (9, 10),
            (99, 100),
            (-10, -99),
            (1_765_000_000_123_456_789, i64::MAX),
            (1_000_000_000_000_000_000, 999_999_999_999_999_999),
            (-5, i64::MIN),
        ] {
            let value = Deadline {
                timestamp,
                deadline,
            }
            .header_value();
            assert_eq!(value, format!("{timestamp} {deadline}").as_str());
        }
    }

    #[test]
    fn every_length_of_number_is_written_in_full() {
        let mut numbers = vec![i64::MIN, i64::MAX, i64::MIN + 1];
        for power in 0..19 {
            let p = 10i64.pow(power);
            numbers.extend([p - 1, p, p + 1, p + 37, -p, -(p - 1), -(p + 1)]);
        }
        for n in numbers {
            let mut out = [0u8; 20];
            let len = write_i64(n, &mut out);
            assert_eq!(&out[..len], n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn extreme_values_neither_overflow_nor_lift_the_timeout() {
        for value in [
            "0 -9223372036854775808",
            "-9223372036854775808 9223372036854775807",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(L5D_CTX_DEADLINE, HeaderValue::from_static(value));
            let started = Instant::now();
            let at = apply(&mut headers, started, Some(Duration::from_millis(100))).unwrap();
            assert!(at <= Instant::now() + Duration::from_millis(100), "{value}");
        }
    }

    #[test]
    fn no_deadline_and_no_timeout_leaves_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(L5D_CTX_DEADLINE, HeaderValue::from_static("garbage"));
        assert_eq!(apply(&mut headers, Instant::now(), None), None);
        assert!(headers.get(L5D_CTX_DEADLINE).is_none());
    }
}
