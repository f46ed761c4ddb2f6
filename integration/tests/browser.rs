//! The headless Chromium driver (`integration::browser`) against a fixed
//! page served from 127.0.0.1: each method does what the dashboard tests
//! will rely on, and its failures say what failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use integration::browser::{Browser, Page, screenshot_path};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// An input echoed on `input` and `change`, buttons that change text, log
/// an error, throw, and open dialogs.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Switchboard fixture</title></head>
<body style="font: 20px sans-serif">
<h1>Switchboard fixture: routers, namers, dtabs</h1>
<input id="name">
<p id="echo">nothing typed</p>
<p id="changed"></p>
<p id="status">waiting</p>
<button id="go">Go</button>
<button id="later">Later</button>
<button id="fail">Fail</button>
<button id="throw">Throw</button>
<button id="alert">Alert</button>
<button id="confirm">Confirm</button>
<script>
const $ = id => document.getElementById(id);
const status = text => { $('status').textContent = text; };
$('name').addEventListener('input', e => { $('echo').textContent = 'typed ' + e.target.value; });
$('name').addEventListener('change', e => { $('changed').textContent = 'changed ' + e.target.value; });
$('go').onclick = () => status('hello ' + $('name').value);
$('later').onclick = () => setTimeout(() => status('done later'), 200);
$('fail').onclick = () => console.error('asked to fail', 42);
$('throw').onclick = () => { throw new Error('thrown on purpose'); };
$('alert').onclick = () => { alert('hello from the page'); status('alerted'); };
$('confirm').onclick = () => status('confirmed ' + confirm('sure?'));
</script>
</body></html>
"#;

/// A second page, for navigation.
const OTHER: &str = "<!doctype html><title>Other</title><p id=other>other page</p>";

/// Serves `/` and `/other`, 404 elsewhere, one request per connection.
async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split(' ').nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/" => ("200 OK", PAGE),
                    "/other" => ("200 OK", OTHER),
                    _ => ("404 Not Found", "not found"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// A browser on the fixture page, or `None` when chromium is missing.
async fn fixture() -> Option<(Browser, Page, String)> {
    let base = serve().await;
    let browser = Browser::launch().await?;
    let page = browser.open(&format!("{base}/")).await.unwrap();
    Some((browser, page, base))
}

#[tokio::test]
async fn eval_returns_values_and_exceptions() {
    let Some((_browser, page, base)) = fixture().await else {
        return;
    };
    assert_eq!(
        page.eval("document.title").await.unwrap(),
        "Switchboard fixture"
    );
    assert_eq!(
        page.eval("({a: [1, 'two'], b: null})").await.unwrap(),
        json!({"a": [1, "two"], "b": null})
    );
    // Promises are awaited; undefined is null.
    assert_eq!(
        page.eval("new Promise(r => setTimeout(() => r(7), 20))")
            .await
            .unwrap(),
        7
    );
    assert_eq!(page.eval("undefined").await.unwrap(), json!(null));

    let thrown = page
        .eval("1 + 1;\nthrow new Error('boom')")
        .await
        .unwrap_err();
    assert!(thrown.contains("Error: boom"), "{thrown}");
    assert!(thrown.contains("line 2"), "{thrown}");
    let rejected = page
        .eval("Promise.reject(new Error('refused'))")
        .await
        .unwrap_err();
    assert!(rejected.contains("Error: refused"), "{rejected}");
    // Exceptions of eval itself are not the page's errors.
    assert_eq!(page.errors(), Vec::<String>::new());

    page.goto(&format!("{base}/other")).await.unwrap();
    assert_eq!(
        page.eval("document.querySelector('#other').textContent")
            .await
            .unwrap(),
        "other page"
    );
    page.goto(&format!("{base}/#again")).await.unwrap();
    assert_eq!(page.eval("location.hash").await.unwrap(), "#again");
}

#[tokio::test]
async fn goto_fails_on_an_unreachable_url() {
    let Some((_browser, page, _)) = fixture().await else {
        return;
    };
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let err = page.goto(&url).await.unwrap_err();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("ERR_CONNECTION_REFUSED"), "{err}");
}

#[tokio::test]
async fn type_into_and_click_work_as_a_user_would() {
    let Some((_browser, page, _)) = fixture().await else {
        return;
    };
    page.type_into("#name", "namerd \"one\"").await.unwrap();
    assert_eq!(
        page.eval("[document.activeElement.id, $('echo').textContent, $('changed').textContent]")
            .await
            .unwrap(),
        json!(["name", "typed namerd \"one\"", "changed namerd \"one\""])
    );
    page.click("#go").await.unwrap();
    assert_eq!(
        page.eval("$('status').textContent").await.unwrap(),
        "hello namerd \"one\""
    );

    let missing = page.click("#nothing").await.unwrap_err();
    assert!(
        missing.contains("clicking #nothing: Error: no element matches"),
        "{missing}"
    );
    let not_input = page.type_into("#go", "x").await.unwrap_err();
    assert!(
        not_input.contains("typing into #go: Error: it is a BUTTON, not an input"),
        "{not_input}"
    );
}

#[tokio::test]
async fn wait_for_polls_until_true_or_says_what_it_waited_for() {
    let Some((_browser, page, _)) = fixture().await else {
        return;
    };
    page.click("#later").await.unwrap();
    let seen = page
        .wait_for(
            "the late status",
            "$('status').textContent === 'done later' && $('status').textContent",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(seen, "done later");

    let start = Instant::now();
    let err = page
        .wait_for(
            "a status that never comes",
            "$('status').textContent === 'never'",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(err.contains("timed out after 300ms"), "{err}");
    assert!(err.contains("a status that never comes"), "{err}");
    assert!(err.contains("last value false"), "{err}");

    let err = page
        .wait_for("a broken check", "nosuchname.x", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.contains("last error"), "{err}");
    assert!(err.contains("nosuchname is not defined"), "{err}");
}

#[tokio::test]
async fn errors_and_dialogs_are_recorded_per_page() {
    let Some((browser, page, base)) = fixture().await else {
        return;
    };
    let quiet = browser.open(&format!("{base}/")).await.unwrap();
    assert_eq!(page.errors(), Vec::<String>::new());

    page.click("#fail").await.unwrap();
    page.click("#throw").await.unwrap();
    // Events may trail the reply to the click by a moment.
    let start = Instant::now();
    while page.errors().len() < 2 && start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors = page.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("console.error: asked to fail 42"),
        "{errors:?}"
    );
    assert!(errors[1].contains("Error: thrown on purpose"), "{errors:?}");
    assert!(errors[1].contains(&base), "{errors:?}");

    // The alert would block the page until answered: it is accepted.
    page.click("#alert").await.unwrap();
    page.click("#confirm").await.unwrap();
    assert_eq!(
        page.eval("$('status').textContent").await.unwrap(),
        "confirmed true"
    );
    assert_eq!(
        page.dialogs(),
        ["alert: hello from the page", "confirm: sure?"]
    );

    assert_eq!(quiet.errors(), Vec::<String>::new());
    assert_eq!(quiet.dialogs(), Vec::<String>::new());
    assert_eq!(
        quiet.eval("$('status').textContent").await.unwrap(),
        "waiting"
    );
}

#[tokio::test]
async fn a_screenshot_is_a_png_of_the_viewport() {
    let Some((_browser, page, _)) = fixture().await else {
        return;
    };
    let path = screenshot_path("browser-fixture");
    let _ = std::fs::remove_file(&path);
    page.screenshot(&path).await.unwrap();
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path:?}");
    // IHDR: width and height, big-endian, right after the chunk header.
    let size = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    assert_eq!((size(16), size(20)), (1280, 900));
}
