//! `l5d-ctx-deadline`: the time by which the caller needs its answer, as
//! `<timestamp ns> <deadline ns>` (nanoseconds since the Unix epoch, the
//! first being when the deadline was set). A request's deadline is the
//! earliest of the ones it carries and its service's `totalTimeoutMs`; it
//! bounds every attempt and travels on to the next hop.

use std::cell::Cell;
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

    /// `<timestamp> <deadline>` and its length. The last one written on
    /// this thread is kept: a service's own deadlines are set in whole
    /// milliseconds, so the requests of one millisecond share the text.
    pub(crate) fn text(self) -> ([u8; 41], usize) {
        LAST_TEXT.with(|last| match last.get() {
            Some((value, text, len)) if value == self => (text, len),
            _ => {
                let (text, len) = self.format();
                last.set(Some((self, text, len)));
                (text, len)
            }
        })
    }

    /// [`Deadline::text`], written by hand: `format!` costs several times
    /// more.
    fn format(self) -> ([u8; 41], usize) {
        let mut text = [0u8; 41];
        let mut at = 0;
        at += write_i64(self.timestamp, &mut text[at..]);
        text[at] = b' ';
        at += 1;
        at += write_i64(self.deadline, &mut text[at..]);
        (text, at)
    }

    /// [`Deadline::text`] as a header value, marked sensitive so that
    /// HTTP/2 does not add it to the connection's header table: its value
    /// changes every millisecond (as with `l5d-reqid`).
    pub(crate) fn header_value(self) -> HeaderValue {
        let (text, len) = self.text();
        // Digits, a space and a minus sign are always a valid value.
        let mut value = HeaderValue::from_bytes(&text[..len])
            .unwrap_or_else(|_| HeaderValue::from_static("0 0"));
        value.set_sensitive(true);
        value
    }
}

/// Writes `n` in decimal at the start of `out` (20 bytes are always
/// enough); gives how many bytes it took. This runs twice per request of a
/// service with a timeout, on 19-digit numbers.
fn write_i64(n: i64, out: &mut [u8]) -> usize {
    let mut at = 0;
    if n < 0 {
        out[0] = b'-';
        at = 1;
    }
    at + write_u64(n.unsigned_abs(), &mut out[at..])
}

/// [`write_i64`] of a magnitude, cut into 4-digit groups with a few
/// multiplications rather than divided down digit by digit.
fn write_u64(n: u64, out: &mut [u8]) -> usize {
    const E8: u64 = 100_000_000;
    const E16: u64 = E8 * E8;
    // All 20 digits, leading zeros too; the wanted ones are at the end.
    let mut digits = [0u8; 20];
    // (n / 10^16 is at most 1844: four digits.)
    write_4((n / E16) as u32, &mut digits[0..4]);
    let rest = n % E16;
    write_8((rest / E8) as u32, &mut digits[4..12]);
    write_8((rest % E8) as u32, &mut digits[12..20]);
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    out[..len].copy_from_slice(&digits[20 - len..]);
    len
}

/// Eight digits of `n` (below 10^8), leading zeros included.
fn write_8(n: u32, out: &mut [u8]) {
    write_4(n / 10_000, &mut out[0..4]);
    write_4(n % 10_000, &mut out[4..8]);
}

/// Four digits of `n` (below 10^4), leading zeros included.
fn write_4(n: u32, out: &mut [u8]) {
    // "00" to "99", each pair at twice its value.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let high = (n / 100) as usize * 2;
    let low = (n % 100) as usize * 2;
    out[0..2].copy_from_slice(&PAIRS[high..high + 2]);
    out[2..4].copy_from_slice(&PAIRS[low..low + 2]);
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

/// How long a thread trusts its last reading of the wall clock against the
/// monotonic one: a step of the wall clock shows in deadlines within this.
const WALL_REREAD: Duration = Duration::from_secs(1);

thread_local! {
    /// A monotonic instant and the wall-clock time at it (ns since the
    /// epoch), read together.
    static WALL: Cell<Option<(Instant, i64)>> = const { Cell::new(None) };
    /// The last deadline [`Deadline::text`] wrote, and its text.
    static LAST_TEXT: Cell<Option<(Deadline, [u8; 41], usize)>> = const { Cell::new(None) };
}

/// Nanoseconds in the unit deadlines are set in.
const MILLISECOND: i64 = 1_000_000;

/// The wall-clock time at `at`, in ns since the epoch, from a reading of
/// both clocks kept per thread: deadlines are wall-clock times, and
/// reading that clock on every request costs more than the arithmetic.
fn wall_ns(at: Instant) -> i64 {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    // The wall-clock time at `at`, from a reading at `base` and how long
    // after it `at` came (`None`: before it).
    let from = |base: Instant, base_ns: i64, after: Option<Duration>| match after {
        Some(after) => base_ns.saturating_add(nanos(after)),
        None => base_ns.saturating_sub(nanos(base - at)),
    };
    WALL.with(|wall| {
        if let Some((base, base_ns)) = wall.get() {
            let after = at.checked_duration_since(base);
            // A reading after `at` serves however old `at` is.
            if after.is_none_or(|after| after < WALL_REREAD) {
                return from(base, base_ns, after);
            }
        }
        let base = Instant::now();
        let base_ns = now_ns();
        wall.set(Some((base, base_ns)));
        from(base, base_ns, at.checked_duration_since(base))
    })
}

/// The request's deadline, from what it carries and `total` counted from
/// `started`, and the instant it passes. Any `l5d-ctx-deadline` fields
/// are taken out of `headers`: the deadline goes to the next hop with the
/// request's other `l5d-*` headers (see `DstHeaders`). `None` when neither
/// says anything; a carried value that does not parse is dropped.
pub fn apply(
    headers: &mut HeaderMap,
    started: Instant,
    total: Option<Duration>,
) -> Option<(Deadline, Instant)> {
    // A pass over the names costs less than a hashed lookup, and most
    // requests carry no deadline.
    let carries = headers.keys().any(|name| *name == L5D_CTX_DEADLINE);
    let carried = if carries {
        let carried = read(headers);
        headers.remove(L5D_CTX_DEADLINE);
        carried
    } else {
        None
    };
    if carried.is_none() && total.is_none() {
        return None;
    }
    let exact = wall_ns(started);
    // In whole milliseconds, as timers count (the deadline is at most that
    // much stricter than the exact one).
    let set = exact.div_euclid(MILLISECOND) * MILLISECOND;
    let own = total.map(|total| Deadline {
        timestamp: set,
        deadline: set.saturating_add(i64::try_from(total.as_nanos()).unwrap_or(i64::MAX)),
    });
    let effective = match (carried, own) {
        (Some(a), Some(b)) => a.combined(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    // Saturating: a hostile value must neither overflow nor outlive the
    // service's own timeout (`combined` keeps the earlier deadline).
    let left =
        Duration::from_nanos(u64::try_from(effective.deadline.saturating_sub(exact)).unwrap_or(0));
    Some((effective, started + left))
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
        let (sent, at) = apply(&mut headers, started, Some(Duration::from_secs(60))).unwrap();
        let left = at - Instant::now();
        assert!(
            left <= Duration::from_secs(1) && left > Duration::from_millis(500),
            "{left:?}"
        );
        assert_eq!(sent.deadline, in_one_second);
        // The value travels with the other `l5d-*` headers, not in the map.
        assert!(headers.get(L5D_CTX_DEADLINE).is_none());

        let mut headers = HeaderMap::new();
        let (sent, at) = apply(&mut headers, started, Some(Duration::from_millis(200))).unwrap();
        assert!(at - Instant::now() <= Duration::from_millis(200));
        let span = sent.deadline - sent.timestamp;
        assert_eq!(span, 200_000_000);
        assert_eq!(sent.timestamp % MILLISECOND, 0, "{sent:?}");
    }

    #[test]
    fn the_last_text_is_reused_only_for_the_same_deadline() {
        let a = Deadline {
            timestamp: 1_765_000_000_123_000_000,
            deadline: 1_765_000_002_123_000_000,
        };
        let b = Deadline {
            timestamp: a.timestamp + MILLISECOND,
            ..a
        };
        for value in [a, a, b, a, b, b] {
            let (text, len) = value.text();
            let expected = format!("{} {}", value.timestamp, value.deadline);
            assert_eq!(&text[..len], expected.as_bytes());
            // Not for HTTP/2's header table: it changes every millisecond.
            let header = value.header_value();
            assert_eq!(header.as_bytes(), expected.as_bytes());
            assert!(header.is_sensitive());
        }
    }

    #[test]
    fn wall_clock_times_follow_the_monotonic_clock() {
        let before = now_ns();
        let at = Instant::now();
        let read = wall_ns(at);
        let after = now_ns();
        assert!(before <= read && read <= after, "{before} {read} {after}");
        // Earlier and later instants than the thread's reading.
        let earlier = at - Duration::from_millis(300);
        assert_eq!(wall_ns(earlier), read - 300_000_000);
        let later = at + Duration::from_millis(700);
        assert_eq!(wall_ns(later), read + 700_000_000);
        // Past the time a reading is trusted, the clock is read again.
        let much_later = Instant::now() + Duration::from_secs(5);
        let again = wall_ns(much_later);
        let expected = now_ns() + 5_000_000_000;
        assert!((again - expected).abs() < 100_000_000, "{again} {expected}");
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
        // Every group of eight digits, through a sample of its range.
        for n in (0..100_000_000u32)
            .step_by(9_973)
            .chain([99_999_999, 10_000, 9_999])
        {
            let mut out = [0u8; 8];
            write_8(n, &mut out);
            assert_eq!(out, *format!("{n:08}").as_bytes(), "{n}");
        }
        // Unsigned magnitudes up to the largest (a 20th digit).
        let mut magnitudes = vec![u64::MAX, u64::MAX - 1, 1 << 63];
        for power in 0..20 {
            let p = 10u64.pow(power);
            magnitudes.extend([p - 1, p, p + 1, p.saturating_mul(3).saturating_add(7)]);
        }
        for n in magnitudes {
            let mut out = [0u8; 20];
            let len = write_u64(n, &mut out);
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
            let (_, at) = apply(&mut headers, started, Some(Duration::from_millis(100))).unwrap();
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
