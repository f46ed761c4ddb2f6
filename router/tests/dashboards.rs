//! The admin web pages in a real browser (Debian's headless `chromium`,
//! driven over the DevTools protocol): the router's dashboard follows
//! traffic, the playground explains a resolution dentry by dentry and opens
//! from an `l5d-err` link, markup in a dtab or path stays text, and
//! namerd's page edits dtabs that the router then routes by, refusing a
//! conflicting save. Screenshots go to `target/screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use integration::browser::{Browser, Page, screenshot_path};
use serde_json::Value;
use support::{Backend, FsDir, client, config, get, start_router};

/// How long a page may take to show what it is waiting for (it polls once
/// a second; a loaded CI machine is slow to start a browser tab).
const SHOWN: Duration = Duration::from_secs(10);

async fn wait(page: &Page, what: &str, js: &str) -> Value {
    page.wait_for(what, js, SHOWN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn eval(page: &Page, js: &str) -> Value {
    page.eval(js).await.unwrap_or_else(|e| panic!("{e}"))
}

fn no_script_errors(page: &Page) {
    assert!(page.errors().is_empty(), "{:?}", page.errors());
    assert!(page.dialogs().is_empty(), "{:?}", page.dialogs());
}

/// The text of a dashboard cell.
fn cell(kind: &str, name: &str, col: &str) -> String {
    format!(
        "document.querySelector('tr[data-kind=\"{kind}\"][data-name=\"{name}\"] td[data-col=\"{col}\"]')?.textContent"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_pages() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let web = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&web]);
    // Latency summaries every 300 ms (a minute by default), and every
    // request kept for the recent-requests table.
    let yaml = config(
        &fs,
        "- protocol: http\n  label: edge\n  dtab: |\n    /svc => /#/io.l5d.fs;\n    /svc/api => /#/io.l5d.fs/api;\n  servers:\n  - port: 0\ntelemetry:\n- kind: io.l5d.recentRequests\n  sampleRate: 1.0\n",
    )
    .replace("admin:\n", "admin:\n  histogramSnapshotIntervalMs: 300\n");
    let router = start_router(&yaml).await;
    let admin = format!("http://{}", router.admin);
    let http = client();

    // The dashboard: its counters follow traffic.
    let page = browser.open(&format!("{admin}/")).await.unwrap();
    let server = wait(
        &page,
        "a server",
        "document.querySelector('tr[data-kind=\"server\"]')?.dataset.name",
    )
    .await;
    let server = server.as_str().unwrap();
    wait(
        &page,
        "the server's row",
        &format!("{} === '0'", cell("server", server, "requests")),
    )
    .await;
    for _ in 0..7 {
        let reply = get(&http, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.backend(), "web");
    }
    wait(
        &page,
        "the server's count to reach 7",
        &format!("{} === '7'", cell("server", server, "requests")),
    )
    .await;
    wait(
        &page,
        "the service's count",
        &format!("{} === '7'", cell("service", "svc/web", "requests")),
    )
    .await;
    let client_row = "tr[data-kind=\"client\"][data-name=\"#/io.l5d.fs/web\"]";
    let endpoint = wait(
        &page,
        "the client's endpoint with its state",
        &format!("document.querySelector('{client_row} tr[data-endpoint] .badge')?.textContent"),
    )
    .await;
    assert_eq!(endpoint, "live");
    assert_eq!(
        eval(&page, &cell("client", "#/io.l5d.fs/web", "success")).await,
        "100%"
    );
    wait(
        &page,
        "the service's p99",
        &format!("/^\\d+ ms$/.test({})", cell("service", "svc/web", "p99")),
    )
    .await;
    let recent = wait(
        &page,
        "the recent requests",
        "document.querySelector('#recent tbody tr')?.textContent",
    )
    .await;
    assert!(recent.as_str().unwrap().contains("/svc/web"), "{recent}");
    page.screenshot(&screenshot_path("router-dashboard"))
        .await
        .unwrap();
    no_script_errors(&page);

    // The playground: every dentry tried at /svc/web, and the one that
    // matched, and the address at the leaf.
    let page = browser
        .open(&format!("{admin}/delegator?namespace=edge&path=/svc/web"))
        .await
        .unwrap();
    wait(&page, "the tree", "document.querySelector('#tree .addr')").await;
    let tried = eval(
        &page,
        "[...document.querySelector('li.node[data-path=\"/svc/web\"] ol.tried').children]\
         .map(li => [li.className, li.dataset.dentry, li.textContent])",
    )
    .await;
    let tried = tried.as_array().unwrap();
    assert_eq!(tried.len(), 2, "{tried:?}");
    assert_eq!(tried[0][0], "missed");
    assert_eq!(tried[0][1], "/svc/api=>/#/io.l5d.fs/api");
    assert!(
        tried[0][2]
            .as_str()
            .unwrap()
            .contains("label 2 is web, the prefix wants api"),
        "{tried:?}"
    );
    assert_eq!(tried[1][0], "matched");
    assert_eq!(tried[1][1], "/svc=>/#/io.l5d.fs");
    let leaf = eval(&page, "document.querySelector('#tree .addr').textContent").await;
    assert_eq!(leaf, format!("127.0.0.1:{}", web.port()));
    let used = eval(
        &page,
        "document.querySelector('li.node.leaf .dentry.used').textContent",
    )
    .await;
    assert_eq!(used, "/svc=>/#/io.l5d.fs");
    page.screenshot(&screenshot_path("playground"))
        .await
        .unwrap();
    no_script_errors(&page);

    // An l5d-err's link opens the playground filled in with the name and
    // the request's own dtab, and resolves it.
    let reply = get(
        &http,
        router.addr(),
        "nope",
        "/",
        &[("l5d-dtab", "/svc/nope => /#/io.l5d.fs/gone")],
    )
    .await;
    let err = reply.l5d_err();
    let link = &err[err.find("http://").expect("a link in l5d-err")..];
    let link = link.split_whitespace().next().unwrap();
    let page = browser.open(link).await.unwrap();
    wait(
        &page,
        "the tree of the failed name",
        "document.querySelector('#tree li.node[data-path=\"/svc/nope\"]')",
    )
    .await;
    assert_eq!(
        eval(&page, "document.querySelector('#path').value").await,
        "/svc/nope"
    );
    assert_eq!(
        eval(&page, "document.querySelector('#dtab').value").await,
        "/svc/nope=>/#/io.l5d.fs/gone"
    );
    assert_eq!(
        eval(&page, "document.querySelector('#namespace').value").await,
        "edge"
    );
    no_script_errors(&page);

    // Markup typed into the playground is shown as text and never runs.
    let page = browser
        .open(&format!("{admin}/delegator?namespace=edge"))
        .await
        .unwrap();
    let hostile =
        "/svc/web => <img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script>";
    page.type_into("#dtab", hostile).await.unwrap();
    let verdict = wait(
        &page,
        "the parser's verdict",
        "document.querySelector('#dtab-verdict')?.textContent",
    )
    .await;
    assert!(
        verdict.as_str().unwrap().contains("line 1, column 13"),
        "{verdict}"
    );
    assert!(
        verdict.as_str().unwrap().contains("<img src=x"),
        "{verdict}"
    );
    page.type_into("#path", "/svc/<script>window.pwned=1</script>")
        .await
        .unwrap();
    page.type_into("#dtab", "").await.unwrap();
    page.click("#resolve").await.unwrap();
    let refused = wait(
        &page,
        "the path's error",
        "document.querySelector('#resolve-error')?.textContent",
    )
    .await;
    assert!(refused.as_str().unwrap().contains("<script>"), "{refused}");
    assert_eq!(
        eval(
            &page,
            "[typeof window.pwned, document.querySelectorAll('main img, main script').length]"
        )
        .await,
        serde_json::json!(["undefined", 0])
    );
    no_script_errors(&page);

    // The JSON pages.
    let bound = admin_get(router.admin, "/bound-names.json").await;
    assert!(bound.contains("/#/io.l5d.fs/web"), "{bound}");
    router.stop().await;
}

/// The body of `GET path` on the admin server at `admin`.
async fn admin_get(admin: std::net::SocketAddr, path: &str) -> String {
    let request = support::request(admin, "admin", path)
        .body(support::empty())
        .unwrap();
    support::send(&client(), request).await.text()
}

/// namerd (in-memory store, an `io.l5d.fs` namer over `fs`, the HTTP
/// controller with `writeToken: s3cret`) and a router that asks it.
async fn namerd_and_router(
    fs: &FsDir,
    dtab: &str,
) -> (namerd::server::Running, support::RunningRouter) {
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab:?}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n  writeToken: s3cret\n",
        fs.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    let namerd = namerd::server::start(&config).await.unwrap();
    let router = start_router(&format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{}\n    namespace: default\n  servers:\n  - port: 0\n",
        namerd.api_addrs[0].port()
    ))
    .await;
    (namerd, router)
}

/// namerd's current dtab for `default`, as text.
async fn stored_dtab(namerd: &namerd::server::Running) -> String {
    admin_get(namerd.api_addrs[0], "/api/1/dtabs/default").await
}

/// Writes `dtab` to namespace `ns` through namerd's API, as another
/// operator would.
async fn put_dtab(namerd: &namerd::server::Running, ns: &str, dtab: &str) {
    let path = format!("/api/1/dtabs/{ns}");
    let request = support::request(namerd.api_addrs[0], "namerd", &path)
        .method("PUT")
        .header("content-type", "application/dtab")
        .header("authorization", "Bearer s3cret")
        .body(support::full(dtab.to_string()))
        .unwrap();
    let written = support::send(&client(), request).await;
    assert!(written.status.is_success(), "{}", written.text());
}

/// Sends requests for `web` through the router until `backend` answers.
async fn routed_to(router: &support::RunningRouter, backend: &str) {
    let http = client();
    let deadline = tokio::time::Instant::now() + SHOWN;
    loop {
        let reply = get(&http, router.addr(), "web", "/", &[]).await;
        if reply.backend() == backend {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still routed to {} ({})",
            reply.backend(),
            reply.l5d_err()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const EDITOR: &str = "textarea[data-namespace=\"default\"]";
const CARD: &str = "section[data-namespace=\"default\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namerd_pages() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let (one, two) = (Backend::start("one").await, Backend::start("two").await);
    let fs = FsDir::new();
    fs.point("one", &[&one]);
    fs.point("two", &[&two]);
    let (namerd, router) = namerd_and_router(&fs, "/svc/web => /#/io.l5d.fs/one").await;
    routed_to(&router, "one").await;

    let page = browser
        .open(&format!("http://{}/", namerd.admin_addr))
        .await
        .unwrap();
    wait(
        &page,
        "the namespace's dtab in its editor",
        &format!("document.querySelector('{EDITOR}')?.value === '/svc/web => /#/io.l5d.fs/one;'"),
    )
    .await;

    // A dtab that does not read is marked where it fails, and cannot be saved.
    page.type_into(EDITOR, "/svc/web => /#/io.l5d.fs/two;\n/svc/x =>")
        .await
        .unwrap();
    let verdict = wait(
        &page,
        "the parser's verdict",
        &format!("document.querySelector('{CARD} .verdict')?.textContent"),
    )
    .await;
    assert!(
        verdict.as_str().unwrap().starts_with("line 2, column 10"),
        "{verdict}"
    );
    assert_eq!(
        eval(
            &page,
            &format!("document.querySelector('{CARD} .save').disabled")
        )
        .await,
        true
    );

    // Without the write token the save is refused, and says why.
    page.type_into(EDITOR, "/svc/web => /#/io.l5d.fs/two;")
        .await
        .unwrap();
    wait(
        &page,
        "save to be enabled",
        &format!("!document.querySelector('{CARD} .save').disabled"),
    )
    .await;
    page.click(&format!("{CARD} .save")).await.unwrap();
    wait(
        &page,
        "the refusal",
        &format!("document.querySelector('{CARD} .note')?.textContent.includes('write token')"),
    )
    .await;
    assert!(stored_dtab(&namerd).await.contains("/#/io.l5d.fs/one"));

    // With it, the save lands and the router follows.
    page.type_into("#write-token", "s3cret").await.unwrap();
    page.click(&format!("{CARD} .save")).await.unwrap();
    wait(
        &page,
        "the save",
        &format!("document.querySelector('{CARD} .note')?.textContent === 'saved'"),
    )
    .await;
    routed_to(&router, "two").await;
    page.screenshot(&screenshot_path("namerd-namespaces"))
        .await
        .unwrap();

    // Someone else's write while this page is editing: the page's save is
    // refused and shows namerd's version; namerd keeps the other write.
    page.type_into(EDITOR, "/svc/web => /#/io.l5d.fs/one;")
        .await
        .unwrap();
    put_dtab(
        &namerd,
        "default",
        "/svc/web => /#/io.l5d.fs/two;/svc/other => /#/io.l5d.fs/one",
    )
    .await;
    wait(
        &page,
        "the watch to point out the change",
        &format!("document.querySelector('{CARD} .note')?.textContent.includes('changed while you were editing')"),
    )
    .await;
    page.click(&format!("{CARD} .save")).await.unwrap();
    let conflict = wait(
        &page,
        "the conflict",
        &format!("document.querySelector('{CARD} .note pre.conflict')?.textContent"),
    )
    .await;
    assert!(
        conflict.as_str().unwrap().contains("/svc/other"),
        "{conflict}"
    );
    page.screenshot(&screenshot_path("namerd-conflict"))
        .await
        .unwrap();
    assert!(stored_dtab(&namerd).await.contains("/svc/other"));
    routed_to(&router, "two").await;
    // The edit is still in the editor; revert takes namerd's.
    assert_eq!(
        eval(&page, &format!("document.querySelector('{EDITOR}').value")).await,
        "/svc/web => /#/io.l5d.fs/one;"
    );
    page.click(&format!("{CARD} .revert")).await.unwrap();
    wait(
        &page,
        "namerd's version in the editor",
        &format!("document.querySelector('{EDITOR}').value.includes('/svc/other')"),
    )
    .await;

    // An untouched editor follows namerd's watch, and so does the list.
    put_dtab(
        &namerd,
        "default",
        "/svc/web => /#/io.l5d.fs/two;/svc/third => /#/io.l5d.fs/one",
    )
    .await;
    wait(
        &page,
        "the editor to follow namerd",
        &format!("document.querySelector('{EDITOR}').value.includes('/svc/third')"),
    )
    .await;
    put_dtab(&namerd, "staging", "/svc => /#/io.l5d.fs").await;
    wait(
        &page,
        "the new namespace to appear",
        "document.querySelector('textarea[data-namespace=\"staging\"]')?.value === '/svc => /#/io.l5d.fs;'",
    )
    .await;

    // With more namespaces than a browser opens connections to one server
    // (six), the page still follows them all and still saves.
    for i in 0..8 {
        put_dtab(&namerd, &format!("team-{i}"), "/svc => /#/io.l5d.fs").await;
    }
    let last = "section[data-namespace=\"team-7\"]";
    wait(
        &page,
        "the eighth new namespace",
        &format!("document.querySelector('{last} textarea')?.value === '/svc => /#/io.l5d.fs;'"),
    )
    .await;
    page.type_into(&format!("{last} textarea"), "/svc => /#/io.l5d.fs/two;")
        .await
        .unwrap();
    wait(
        &page,
        "save to be enabled",
        &format!("!document.querySelector('{last} .save').disabled"),
    )
    .await;
    page.click(&format!("{last} .save")).await.unwrap();
    wait(
        &page,
        "the save",
        &format!("document.querySelector('{last} .note')?.textContent === 'saved'"),
    )
    .await;
    put_dtab(&namerd, "team-0", "/svc => /#/io.l5d.fs/one").await;
    wait(
        &page,
        "the first of them to follow namerd",
        "document.querySelector('textarea[data-namespace=\"team-0\"]').value === '/svc => /#/io.l5d.fs/one;'",
    )
    .await;
    no_script_errors(&page);

    // namerd's playground resolves in the namespace.
    let page = browser
        .open(&format!(
            "http://{}/delegator?namespace=default&path=/svc/web",
            namerd.admin_addr
        ))
        .await
        .unwrap();
    let leaf = wait(
        &page,
        "the tree",
        "document.querySelector('#tree .addr')?.textContent",
    )
    .await;
    assert_eq!(leaf, format!("127.0.0.1:{}", two.port()));
    let matched = eval(
        &page,
        "document.querySelector('li.node[data-path=\"/svc/web\"] ol.tried li.matched')?.dataset.dentry",
    )
    .await;
    assert_eq!(matched, "/svc/web=>/#/io.l5d.fs/two");
    no_script_errors(&page);

    router.stop().await;
    namerd.stop().await;
}

/// `/config.json` shows the file the routers were loaded from, with its
/// secrets masked and everything else as written.
#[tokio::test]
async fn the_config_is_shown_with_its_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("linkerd.yaml");
    std::fs::write(
        &file,
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: edge\n  interpreter:\n    kind: io.l5d.consul.interpreter\n    host: 127.0.0.1\n    port: 1\n    token: s3cret-token\n    namespace: edge\n  servers:\n  - port: 0\n",
    )
    .unwrap();
    let (config, specs) = router::config::load(&file).unwrap();
    let running = router::server::start(&config, specs).await.unwrap();
    let shown = admin_get(running.admin_addr, "/config.json").await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let interpreter = &shown["routers"][0]["interpreter"];
    assert_eq!(interpreter["token"], "********");
    assert_eq!(interpreter["kind"], "io.l5d.consul.interpreter");
    assert_eq!(shown["routers"][0]["label"], "edge");
    running.stop().await;
}
