//! A Zipkin scribe collector decoded by thriftpy2 (from PyPI), so that the
//! spans a router sends over scribe are read by a Thrift implementation
//! other than its own. The collector prints each span as a JSON line.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const COLLECTOR: &str = include_str!("scribe/collector.py");
const SCRIBE_IDL: &str = include_str!("scribe/scribe.thrift");
const ZIPKIN_IDL: &str = include_str!("scribe/zipkinCore.thrift");

/// A running collector; stopped when dropped.
pub struct ScribeCollector {
    child: Child,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
    _idl: tempfile::TempDir,
}

impl ScribeCollector {
    /// Starts the collector; `None`, after a loud message, when python3 or
    /// thriftpy2 is missing (a panic under `CI=true`).
    pub fn start() -> Option<ScribeCollector> {
        if !crate::python::has_modules(
            &["thriftpy2"],
            "python3 python3-pip, then pip install thriftpy2",
            "it decodes the spans sent to a scribe collector",
        ) {
            return None;
        }
        let idl = crate::python::scripts([
            ("collector.py", COLLECTOR),
            ("scribe.thrift", SCRIBE_IDL),
            ("zipkinCore.thrift", ZIPKIN_IDL),
        ]);
        let script = idl.path().join("collector.py");
        let (child, port, lines) = crate::python::start_listening(
            &[script.as_os_str(), idl.path().as_os_str()],
            "the scribe collector",
        );
        let spans = Arc::new(Mutex::new(Vec::new()));
        let keeping = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let span: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the collector printed {line:?}: {e}"));
                keeping
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(span);
            }
        });
        Some(ScribeCollector {
            child,
            port,
            spans,
            _idl: idl,
        })
    }

    /// The spans received so far, once at least `count` came (or after 10 s).
    pub fn spans(&self, count: usize) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self
                .spans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if spans.len() >= count || Instant::now() > until {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ScribeCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
