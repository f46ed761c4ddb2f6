//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol,
//! for browser tests of the admin dashboards.
//!
//! A small driver, not a Puppeteer: one websocket to the browser, one tab
//! per [`Page`] on a flattened session, and only the calls the dashboard
//! tests need. What it leaves out: real mouse and keyboard input (`click`
//! calls `element.click()`, `type_into` sets the value and fires the events
//! a framework listens for), frames other than the main one, file
//! downloads, network interception. Every command gives up after
//! [`COMMAND_TIMEOUT`], so a wedged browser fails a test instead of hanging
//! it; dialogs are accepted as they open for the same reason.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Where the Debian package puts it (a shell script that execs the browser,
/// so the child's pid is the browser's).
const BINARY: &str = "/usr/bin/chromium";

/// How long any one DevTools command, or a navigation's load, may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the browser may take to start listening; a first start on a
/// loaded CI machine takes seconds.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `wait_for` evaluates its expression.
const POLL: Duration = Duration::from_millis(50);

/// How long a `wait_for` check started near the deadline may still take.
const CHECK_GRACE: Duration = Duration::from_secs(1);

/// The fixed viewport of every page, so screenshots compare across runs.
const VIEWPORT: (u32, u32) = (1280, 900);

/// Lines of chromium's stderr kept for failure messages.
const STDERR_LINES: usize = 20;

/// A headless Chromium with its DevTools connection. Dropping it kills the
/// browser and removes its temporary profile.
pub struct Browser {
    conn: Arc<Conn>,
    io: JoinHandle<()>,
    child: Child,
    profile: tempfile::TempDir,
}

/// One tab of a [`Browser`], closed when dropped.
pub struct Page {
    conn: Arc<Conn>,
    target: String,
    session: String,
    state: Arc<PageState>,
}

/// What the websocket task and the callers share.
struct Conn {
    /// Messages for the websocket task to send.
    out: mpsc::UnboundedSender<String>,
    next_id: AtomicU64,
    /// Commands waiting for their reply, by id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    /// Pages, by DevTools session id, for their events.
    sessions: Mutex<HashMap<String, Arc<PageState>>>,
    /// Why the connection ended, once it has.
    closed: Mutex<Option<String>>,
    /// The last lines chromium printed, without its dbus complaints.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// What a page's events have told us.
#[derive(Default)]
struct PageState {
    errors: Mutex<Vec<String>>,
    dialogs: Mutex<Vec<String>>,
    /// Loader ids (one per navigation) whose `load` lifecycle event fired.
    loaded: watch::Sender<HashSet<String>>,
}

impl Browser {
    /// Starts a headless Chromium on a fresh profile. `None` (after a
    /// `SKIPPED:` line) when chromium is not installed; panics instead under
    /// `CI=true`, and whenever an installed chromium fails to start.
    pub async fn launch() -> Option<Browser> {
        if !Path::new(BINARY).is_file() {
            crate::servers::missing(
                "chromium",
                "chromium",
                "the browser tests of the admin dashboards need it",
            );
            return None;
        }
        match Browser::start().await {
            Ok(browser) => Some(browser),
            Err(e) => panic!("{e}"),
        }
    }

    async fn start() -> Result<Browser, String> {
        let profile = tempfile::Builder::new()
            .prefix("switchboard-chromium-")
            .tempdir()
            .map_err(|e| format!("cannot make a profile dir for chromium: {e}"))?;
        let mut child = Command::new(BINARY)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {BINARY}: {e}"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (url_tx, url_rx) = oneshot::channel();
        if let Some(pipe) = child.stderr.take() {
            let tail = stderr.clone();
            // A thread, not a task: it reads a blocking pipe for the
            // browser's whole life, so the pipe never fills.
            std::thread::spawn(move || read_stderr(pipe, url_tx, &tail));
        }
        let url = match tokio::time::timeout(LAUNCH_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => format!("exited ({status})"),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        "closed its stderr".to_string()
                    }
                };
                return Err(format!(
                    "chromium {status} before listening for DevTools:\n{}",
                    tail(&stderr)
                ));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "chromium printed no DevTools address in {LAUNCH_TIMEOUT:?}:\n{}",
                    tail(&stderr)
                ));
            }
        };
        let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot connect to chromium at {url}: {e}"));
            }
        };
        let (out, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            out,
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            sessions: Mutex::default(),
            closed: Mutex::default(),
            stderr,
        });
        let io = tokio::spawn(run_connection(ws, rx, conn.clone()));
        Ok(Browser {
            conn,
            io,
            child,
            profile,
        })
    }

    /// A new tab with a 1280x900 viewport, navigated to `url`, once its
    /// load event has fired.
    pub async fn open(&self, url: &str) -> Result<Page, String> {
        let created = self
            .conn
            .command(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target = str_field(&created, "targetId", "Target.createTarget")?;
        let attached = self
            .conn
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        let session = match attached.and_then(|a| str_field(&a, "sessionId", "attachToTarget")) {
            Ok(session) => session,
            Err(e) => {
                self.conn
                    .forget("Target.closeTarget", json!({"targetId": target}));
                return Err(e);
            }
        };
        let state = Arc::new(PageState::default());
        lock(&self.conn.sessions).insert(session.clone(), state.clone());
        // From here on the page's drop closes the tab, whatever fails next.
        let page = Page {
            conn: self.conn.clone(),
            target,
            session,
            state,
        };
        page.command("Page.enable", json!({})).await?;
        page.command("Page.setLifecycleEventsEnabled", json!({"enabled": true}))
            .await?;
        page.command("Runtime.enable", json!({})).await?;
        page.command(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": VIEWPORT.0,
                "height": VIEWPORT.1,
                "deviceScaleFactor": 1,
                "mobile": false,
            }),
        )
        .await?;
        page.goto(url).await?;
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Commands of pages that outlive the browser fail at once.
        self.conn.close("the browser was dropped".to_string());
        self.io.abort();
        let _ = self.child.kill();
        // SIGKILL is quick; waiting reaps the child, and its helper
        // processes exit as their pipes to it close.
        let _ = self.child.wait();
        // A helper may still write a file in the profile for a moment
        // after the browser is gone; the TempDir's own removal then fails
        // silently, so try a few times first.
        for _ in 0..5 {
            match std::fs::remove_dir_all(self.profile.path()) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Page {
    /// Navigates to `url` and waits for its load event. A URL that cannot
    /// be loaded at all (refused, bad name) is an `Err`; an HTTP error
    /// page is not.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        // Subscribed before navigating, so a load that comes before the
        // navigate reply is still seen.
        let mut loaded = self.state.loaded.subscribe();
        let reply = self.command("Page.navigate", json!({"url": url})).await?;
        if let Some(e) = reply.get("errorText").and_then(Value::as_str) {
            return Err(format!("navigating to {url}: {e}"));
        }
        // A same-document navigation (a new #fragment) has no loader and
        // fires no load event.
        let Some(loader) = reply.get("loaderId").and_then(Value::as_str) else {
            return Ok(());
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, loaded.wait_for(|l| l.contains(loader))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(format!("navigating to {url}: the page went away")),
            Err(_) => Err(format!(
                "navigating to {url}: no load event in {COMMAND_TIMEOUT:?}"
            )),
        }
    }

    /// Evaluates `js` in the page, awaiting it if it is a promise, and
    /// returns its value as JSON (`null` for `undefined`; `NaN`, infinities
    /// and bigints as their text). A thrown exception or rejected promise is
    /// an `Err` with its message and position.
    pub async fn eval(&self, js: &str) -> Result<Value, String> {
        self.eval_object(js).await.map(|object| value_of(&object))
    }

    /// Evaluates `js` every 50 ms until it is truthy, and returns that
    /// value. After `timeout` an `Err` naming `what` and the last value or
    /// error. Errors while polling (e.g. during a navigation) do not stop it.
    pub async fn wait_for(&self, what: &str, js: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A check that never answers (an unresolved promise, a busy
            // page) must not outlast the deadline by much; one started just
            // before it still gets a moment to answer.
            let bound = deadline.max(tokio::time::Instant::now() + CHECK_GRACE);
            let last = match tokio::time::timeout_at(bound, self.eval_object(js)).await {
                Ok(Ok(object)) if truthy(&object) => return Ok(value_of(&object)),
                Ok(Ok(object)) => format!("last value {}", value_of(&object)),
                Ok(Err(e)) => format!("last error: {e}"),
                Err(_) => "the last check did not answer in time".to_string(),
            };
            if let Some(reason) = self.conn.closed_reason() {
                return Err(format!("waiting for {what}: {reason}"));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what} (`{js}`): {last}"
                ));
            }
            tokio::time::sleep_until(deadline.min(now + POLL)).await;
        }
    }

    /// Sets the value of the input or textarea matching the CSS `selector`
    /// as typing would: focuses it, sets the value through the element's
    /// own setter (which frameworks watch), then fires `input` and `change`.
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<(), String> {
        let js = format!(
            "(() => {{
                const el = document.querySelector({quoted});
                if (!el) throw new Error('no element matches');
                const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype
                    : el instanceof HTMLInputElement ? HTMLInputElement.prototype : null;
                if (!proto) throw new Error('it is a ' + el.tagName + ', not an input or textarea');
                el.focus();
                Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, {text});
                el.dispatchEvent(new Event('input', {{bubbles: true}}));
                el.dispatchEvent(new Event('change', {{bubbles: true}}));
            }})()",
            quoted = js_string(selector),
            text = js_string(text),
        );
        self.run_helper(&format!("typing into {selector}"), &js)
            .await
    }

    /// Clicks the element matching the CSS `selector` (`element.click()`,
    /// after scrolling it into view). A dialog it opens is accepted.
    pub async fn click(&self, selector: &str) -> Result<(), String> {
        let js = format!(
            "(() => {{
                const el = document.querySelector({quoted});
                if (!el) throw new Error('no element matches');
                el.scrollIntoView({{block: 'center'}});
                el.click();
            }})()",
            quoted = js_string(selector),
        );
        self.run_helper(&format!("clicking {selector}"), &js).await
    }

    /// Writes a PNG of the viewport to `path`, making its directory.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let reply = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = str_field(&reply, "data", "Page.captureScreenshot")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("Page.captureScreenshot: the data is not base64: {e}"))?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, png)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Uncaught exceptions and `console.error`/failed `console.assert`
    /// messages seen so far, oldest first.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.state.errors).clone()
    }

    /// Every dialog (alert, confirm, prompt, beforeunload) opened so far, as
    /// `type: message`; each was accepted as it opened.
    pub fn dialogs(&self) -> Vec<String> {
        lock(&self.state.dialogs).clone()
    }

    async fn command(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn.command(Some(&self.session), method, params).await
    }

    /// Runs a helper script (click, type_into) whose own exceptions say
    /// what was wrong: `Err` with `doing` and the exception's first line.
    async fn run_helper(&self, doing: &str, js: &str) -> Result<(), String> {
        match self.evaluate(js).await {
            Ok(Evaluated::Value(_)) => Ok(()),
            Ok(Evaluated::Threw(details)) => {
                let thrown = thrown(&details);
                // The first line: the rest is the helper's own stack.
                let first = thrown.lines().next().unwrap_or_default();
                Err(format!("{doing}: {first}"))
            }
            Err(e) => Err(format!("{doing}: {e}")),
        }
    }

    /// `Runtime.evaluate` with exceptions as `Err` naming the expression.
    async fn eval_object(&self, js: &str) -> Result<Value, String> {
        match self.evaluate(js).await? {
            Evaluated::Value(object) => Ok(object),
            Evaluated::Threw(details) => Err(format!(
                "evaluating `{js}`: {}",
                describe_exception(&details)
            )),
        }
    }

    /// `Runtime.evaluate`: the result's remote object, or what it threw.
    async fn evaluate(&self, js: &str) -> Result<Evaluated, String> {
        let mut reply = self
            .command(
                "Runtime.evaluate",
                json!({
                    "expression": js,
                    "awaitPromise": true,
                    "returnByValue": true,
                    "userGesture": true,
                }),
            )
            .await?;
        if let Some(details) = reply.get_mut("exceptionDetails") {
            return Ok(Evaluated::Threw(details.take()));
        }
        let object = reply.get_mut("result").map(Value::take);
        Ok(Evaluated::Value(object.unwrap_or_default()))
    }
}

/// What `Runtime.evaluate` gave back.
enum Evaluated {
    /// The result, a `Runtime.RemoteObject`.
    Value(Value),
    /// The `Runtime.ExceptionDetails` of what it threw or rejected with.
    Threw(Value),
}

impl Drop for Page {
    fn drop(&mut self) {
        lock(&self.conn.sessions).remove(&self.session);
        self.conn
            .forget("Target.closeTarget", json!({"targetId": self.target}));
    }
}

/// Where a test writes the screenshot `name`: `target/screenshots/<name>.png`
/// in `CARGO_TARGET_DIR` if set, else in the workspace's target dir.
pub fn screenshot_path(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        // Relative to where cargo was run: the workspace, in the usual case.
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("screenshots").join(format!("{name}.png"))
}

impl Conn {
    /// Sends a command and waits for its reply, at most [`COMMAND_TIMEOUT`].
    async fn command(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        if let Some(reason) = self.closed_reason() {
            return Err(format!("{method}: {reason}"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if self
            .out
            .send(command_text(id, session, method, params))
            .is_err()
        {
            lock(&self.pending).remove(&id);
            let reason = self
                .closed_reason()
                .unwrap_or_else(|| "the browser is gone".into());
            return Err(format!("{method}: {reason}"));
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(e))) => Err(format!("{method}: {e}")),
            Ok(Err(_)) => {
                let reason = self
                    .closed_reason()
                    .unwrap_or_else(|| "the browser is gone".into());
                Err(format!("{method}: {reason}"))
            }
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(format!(
                    "{method}: no answer from chromium in {COMMAND_TIMEOUT:?}\n{}",
                    tail(&self.stderr)
                ))
            }
        }
    }

    /// Sends a browser-level command whose reply nobody waits for.
    fn forget(&self, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.out.send(command_text(id, None, method, params));
    }

    fn closed_reason(&self) -> Option<String> {
        lock(&self.closed).clone()
    }

    /// Records why the connection ended and fails every waiting command.
    fn close(&self, reason: String) {
        *lock(&self.closed) = Some(reason.clone());
        for (_, tx) in lock(&self.pending).drain() {
            let _ = tx.send(Err(reason.clone()));
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The one task on the websocket: sends what `rx` brings, hands replies to
/// their waiting command and events to their page.
async fn run_connection(mut ws: Socket, mut rx: mpsc::UnboundedReceiver<String>, conn: Arc<Conn>) {
    let reason = loop {
        tokio::select! {
            outgoing = rx.recv() => {
                let Some(text) = outgoing else { break "the browser was dropped".to_string() };
                if let Err(e) = ws.send(Message::text(text)).await {
                    break format!("sending to chromium failed: {e}");
                }
            }
            incoming = ws.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => {
                        break "chromium closed the DevTools connection".to_string();
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("reading from chromium failed: {e}"),
                };
                let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(reply) = dispatch(&conn, message)
                    && let Err(e) = ws.send(Message::text(reply)).await
                {
                    break format!("sending to chromium failed: {e}");
                }
            }
        }
    };
    // Closed first, so a command sent from now on fails at once rather
    // than waiting for a reply that cannot come.
    rx.close();
    conn.close(format!("{reason}\n{}", tail(&conn.stderr)));
}

/// Handles one message from chromium; returns a command to send at once
/// (accepting a dialog, which blocks the page until answered).
fn dispatch(conn: &Conn, mut message: Value) -> Option<String> {
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let waiter = lock(&conn.pending).remove(&id);
        if let Some(tx) = waiter {
            let reply = match message.get("error") {
                Some(error) => Err(format!("chromium refused it: {error}")),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or_default()),
            };
            let _ = tx.send(reply);
        }
        return None;
    }
    let session = message.get("sessionId")?.as_str()?;
    let state = lock(&conn.sessions).get(session)?.clone();
    let params = message.get("params").unwrap_or(&Value::Null);
    match message.get("method")?.as_str()? {
        "Page.lifecycleEvent" if params["name"] == "load" => {
            if let Some(loader) = params["loaderId"].as_str() {
                state.loaded.send_modify(|l| {
                    l.insert(loader.to_string());
                });
            }
        }
        "Runtime.exceptionThrown" => {
            let error = describe_exception(&params["exceptionDetails"]);
            lock(&state.errors).push(error);
        }
        // A failed console.assert is reported as type "assert": an error too.
        "Runtime.consoleAPICalled"
            if matches!(params["type"].as_str(), Some("error" | "assert")) =>
        {
            lock(&state.errors).push(describe_console(params));
        }
        "Inspector.targetCrashed" => {
            lock(&state.errors).push("the page crashed".to_string());
        }
        "Page.javascriptDialogOpening" => {
            let kind = params["type"].as_str().unwrap_or("dialog");
            let text = params["message"].as_str().unwrap_or_default();
            lock(&state.dialogs).push(format!("{kind}: {text}"));
            let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
            return Some(command_text(
                id,
                Some(session),
                "Page.handleJavaScriptDialog",
                json!({"accept": true}),
            ));
        }
        _ => {}
    }
    None
}

/// A DevTools command as the text sent on the websocket.
fn command_text(id: u64, session: Option<&str>, method: &str, params: Value) -> String {
    let mut message = json!({"id": id, "method": method, "params": params});
    if let Some(session) = session {
        message["sessionId"] = json!(session);
    }
    message.to_string()
}

/// Reads chromium's stderr: sends the DevTools address once it appears and
/// keeps the last lines (not the dbus noise) for failure messages.
fn read_stderr(
    pipe: std::process::ChildStderr,
    url: oneshot::Sender<String>,
    tail: &Mutex<VecDeque<String>>,
) {
    let mut url = Some(url);
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if let Some(address) = line.strip_prefix("DevTools listening on ") {
            if let Some(url) = url.take() {
                let _ = url.send(address.trim().to_string());
            }
            continue;
        }
        if line.contains("dbus") || line.trim().is_empty() {
            continue;
        }
        let mut tail = lock(tail);
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn tail(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines = lock(stderr);
    if lines.is_empty() {
        return "(chromium printed nothing else on stderr)".to_string();
    }
    let mut text = "chromium's stderr ends:".to_string();
    for line in lines.iter() {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// `Runtime.ExceptionDetails` as one message: what was thrown and where.
fn describe_exception(details: &Value) -> String {
    let what = thrown(details);
    let text = details["text"].as_str().unwrap_or("Uncaught");
    // DevTools counts lines and columns from 0.
    let line = details["lineNumber"].as_u64().unwrap_or(0) + 1;
    let column = details["columnNumber"].as_u64().unwrap_or(0) + 1;
    let at = match details["url"].as_str() {
        Some(url) if !url.is_empty() => format!("{url}:{line}:{column}"),
        _ => format!("line {line}, column {column}"),
    };
    format!("{text}: {what} (at {at})")
}

/// What an exception threw: an error's description (with its stack) or a
/// thrown value as JSON.
fn thrown(details: &Value) -> String {
    let exception = &details["exception"];
    exception["description"]
        .as_str()
        .map(str::to_string)
        .or_else(|| exception.get("value").map(|v| format!("{v}")))
        .unwrap_or_else(|| details["text"].as_str().unwrap_or("exception").to_string())
}

/// A `Runtime.consoleAPICalled` event as one line, like the console shows.
fn describe_console(params: &Value) -> String {
    let args: Vec<String> = params["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .map(|arg| match (&arg["value"], arg["description"].as_str()) {
                    (Value::String(s), _) => s.clone(),
                    (Value::Null, Some(description)) => description.to_string(),
                    (value, _) => value.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let kind = params["type"].as_str().unwrap_or("error");
    let frame = &params["stackTrace"]["callFrames"][0];
    let at = match (frame["url"].as_str(), frame["lineNumber"].as_u64()) {
        (Some(url), Some(line)) if !url.is_empty() => format!(" (at {url}:{})", line + 1),
        _ => String::new(),
    };
    format!("console.{kind}: {}{at}", args.join(" "))
}

/// A `Runtime.RemoteObject`'s value as JSON.
fn value_of(object: &Value) -> Value {
    if let Some(value) = object.get("value") {
        return value.clone();
    }
    match object["unserializableValue"].as_str() {
        Some(text) => Value::String(text.to_string()),
        None => Value::Null,
    }
}

/// Whether JavaScript would take a `Runtime.RemoteObject` as true.
fn truthy(object: &Value) -> bool {
    let value = &object["value"];
    let unserializable = object["unserializableValue"].as_str();
    match object["type"].as_str() {
        Some("undefined") => false,
        Some("boolean") => value.as_bool() == Some(true),
        Some("number") => match value.as_f64() {
            Some(n) => n != 0.0,
            // NaN and -0 are false; the infinities true.
            None => matches!(unserializable, Some("Infinity" | "-Infinity")),
        },
        Some("string") => value.as_str().is_some_and(|s| !s.is_empty()),
        Some("bigint") => unserializable != Some("0n"),
        Some("object") => object["subtype"] != "null" && !value.is_null(),
        _ => true,
    }
}

/// `s` as a JavaScript string literal.
fn js_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn str_field(reply: &Value, field: &str, method: &str) -> Result<String, String> {
    reply[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{method}: no {field} in the reply {reply}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_javascript() {
        let cases = [
            (json!({"type": "undefined"}), false),
            (
                json!({"type": "object", "subtype": "null", "value": null}),
                false,
            ),
            (json!({"type": "boolean", "value": false}), false),
            (json!({"type": "number", "value": 0}), false),
            (
                json!({"type": "number", "unserializableValue": "NaN"}),
                false,
            ),
            (
                json!({"type": "number", "unserializableValue": "-0"}),
                false,
            ),
            (json!({"type": "string", "value": ""}), false),
            (
                json!({"type": "bigint", "unserializableValue": "0n"}),
                false,
            ),
            (json!({"type": "boolean", "value": true}), true),
            (json!({"type": "number", "value": 0.5}), true),
            (
                json!({"type": "number", "unserializableValue": "-Infinity"}),
                true,
            ),
            (json!({"type": "string", "value": "0"}), true),
            (json!({"type": "object", "value": []}), true),
            (json!({"type": "object", "value": {}}), true),
            (json!({"type": "bigint", "unserializableValue": "2n"}), true),
        ];
        for (object, want) in cases {
            assert_eq!(truthy(&object), want, "{object}");
        }
    }

    #[test]
    fn an_exception_names_what_was_thrown_and_where() {
        let details = json!({
            "text": "Uncaught",
            "lineNumber": 2,
            "columnNumber": 6,
            "exception": {"type": "object", "description": "Error: boom\n    at <anonymous>:3:7"},
        });
        assert_eq!(
            describe_exception(&details),
            "Uncaught: Error: boom\n    at <anonymous>:3:7 (at line 3, column 7)"
        );
        let thrown_string = json!({
            "text": "Uncaught",
            "lineNumber": 0,
            "columnNumber": 0,
            "url": "http://127.0.0.1:1/",
            "exception": {"type": "string", "value": "nope"},
        });
        assert_eq!(
            describe_exception(&thrown_string),
            "Uncaught: \"nope\" (at http://127.0.0.1:1/:1:1)"
        );
    }

    #[test]
    fn a_screenshot_goes_under_target() {
        let path = screenshot_path("dashboard");
        assert!(path.ends_with("screenshots/dashboard.png"), "{path:?}");
    }
}
