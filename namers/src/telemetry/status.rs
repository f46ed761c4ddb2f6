//! HTTP answers counted by status, as Linkerd's `StatusCodeStatsFilter`
//! named them: `status/<code>` for each code seen, `status/1XX` …
//! `status/5XX` always (zero until seen), and `status/error` for an
//! attempt that got no answer at all.
//!
//! Recording takes no lock for the first eight codes a scope sees; a
//! scope that sees more (rare: most see 200 and a few errors) counts the
//! rest under a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Counter, Scope};

/// `status/<code>`, `status/<N>XX` and `status/error` of one scope.
// The classes and the first code seen (most answers' code) share one cache
// line.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct StatusCounts {
    classes: [Counter; 5],
    /// The first few codes seen, each with its count; others go to
    /// `overflow`.
    codes: [(AtomicU16, Counter); 8],
    overflow: Mutex<HashMap<u16, u64>>,
    errors: Counter,
}

impl StatusCounts {
    /// Counts an answer with `code`.
    pub fn record(&self, code: u16) {
        if let Some(class) = (code / 100).checked_sub(1).filter(|c| *c < 5) {
            self.classes[usize::from(class)].incr();
        }
        for (slot, count) in &self.codes {
            let held = slot.load(Ordering::Relaxed);
            if held == code {
                count.incr();
                return;
            }
            if held == 0 {
                match slot.compare_exchange(0, code, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        count.incr();
                        return;
                    }
                    Err(winner) if winner == code => {
                        count.incr();
                        return;
                    }
                    Err(_) => {}
                }
            }
        }
        *self
            .overflow
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
    }

    /// Counts an attempt that ended with no answer.
    pub fn error(&self) {
        self.errors.incr();
    }

    /// Lists the counts into `scope`: the classes, then each code seen in
    /// order, then `status/error` once there was one.
    pub fn list(&self, scope: &mut Scope<'_>) {
        if scope.is_rolling() {
            return;
        }
        for (i, count) in self.classes.iter().enumerate() {
            scope.counter(&format!("status/{}XX", i + 1), count.get());
        }
        self.list_codes(scope);
    }

    /// Lists only `status/<code>` for each code seen, and `status/error`
    /// once there was one: for scopes where the classes would repeat
    /// their parent's.
    pub fn list_codes(&self, scope: &mut Scope<'_>) {
        if scope.is_rolling() {
            return;
        }
        let mut codes: Vec<(u16, u64)> = self
            .codes
            .iter()
            .map(|(slot, count)| (slot.load(Ordering::Relaxed), count.get()))
            .filter(|(code, _)| *code != 0)
            .collect();
        codes.extend(
            self.overflow
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(code, count)| (*code, *count)),
        );
        codes.sort_unstable();
        for (code, count) in codes {
            scope.counter(&format!("status/{code}"), count);
        }
        let errors = self.errors.get();
        if errors > 0 {
            scope.counter("status/error", errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Entry, Value};

    #[test]
    fn statuses_count_by_code_and_class_past_the_slots() {
        let counts = StatusCounts::default();
        for code in [200, 200, 503, 404, 201, 202, 203, 204, 205, 206, 207] {
            counts.record(code);
        }
        counts.error();
        let mut entries: Vec<Entry> = Vec::new();
        counts.list(&mut Scope::root(&mut entries));
        let get = |key: &str| {
            entries
                .iter()
                .find(|e| e.path.join("/") == key)
                .map(|e| &e.value)
                .unwrap_or_else(|| panic!("no {key} in {entries:?}"))
        };
        assert_eq!(get("status/200"), &Value::Counter(2));
        assert_eq!(
            get("status/207"),
            &Value::Counter(1),
            "past the eight slots"
        );
        assert_eq!(get("status/2XX"), &Value::Counter(9));
        assert_eq!(get("status/5XX"), &Value::Counter(1));
        assert_eq!(get("status/1XX"), &Value::Counter(0));
        assert_eq!(get("status/error"), &Value::Counter(1));
        let keys: Vec<String> = entries.iter().map(|e| e.path.join("/")).collect();
        assert_eq!(
            keys[..6],
            [
                "status/1XX",
                "status/2XX",
                "status/3XX",
                "status/4XX",
                "status/5XX",
                "status/200"
            ]
        );
    }

    #[test]
    fn codes_alone_leave_out_the_classes() {
        let counts = StatusCounts::default();
        counts.record(412);
        let mut entries: Vec<Entry> = Vec::new();
        counts.list_codes(&mut Scope::root(&mut entries));
        let keys: Vec<String> = entries.iter().map(|e| e.path.join("/")).collect();
        assert_eq!(keys, ["status/412"]);
    }
}
