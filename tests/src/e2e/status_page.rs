//! The admin status page (`GET /status`): its headers over plain HTTP, and
//! the page itself in a headless Chromium ([`Browser`]): it shows the
//! backends of a running proxy, follows a drain and the traffic without a
//! reload, renders names from the JSON as text, asks for the bearer token
//! when one is set, and fits a phone's width.
//!
//! `SLUICE_TEST_STATUS_SCREENSHOT=dir/name.png` saves the live page's screenshot
//! there, and the phone layout's as `dir/name-phone.png` (the README's
//! `engine/docs/status-page.png` is made that way).

use super::admin::with_admin;
use http::{Method, Request};
use serde_json::{Value, json};
use sluice_e2e::harness::browser::{BROWSER_STEP, Browser};
use sluice_e2e::harness::client::{H1, Reply, collect};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every backend row on the page, as the page shows it.
const ROWS: &str = "return Array.from(document.querySelectorAll('tr[data-backend]')).map(r => {
  const v = (c) => { const d = r.querySelector('.c-' + c).getAttribute('data-value'); return d === null ? null : Number(d); };
  return {
    address: r.getAttribute('data-backend'),
    state: r.querySelector('.c-state').textContent,
    reason: r.querySelector('.c-reason').textContent,
    requests: v('requests'), rate: v('rate'), in_flight: v('in-flight'),
  };
});";

/// `method path` on the admin API, the answer as it came (not JSON).
async fn raw(admin: &Admin, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(reply::empty()).expect("request");
    collect(H1::connect(admin.addr).await.send(req).await).await
}

/// Where `SLUICE_TEST_STATUS_SCREENSHOT` asks for a screenshot, with `suffix`
/// before the extension (`status-page.png` → `status-page-phone.png`).
fn screenshot_path(suffix: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("SLUICE_TEST_STATUS_SCREENSHOT")?);
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    Some(path.with_file_name(format!("{stem}{suffix}.png")))
}

fn url(admin: &Admin, path: &str) -> String {
    format!("http://{}{path}", admin.addr)
}

/// The rows the page shows now, by address.
async fn rows(browser: &Browser) -> Vec<Value> {
    browser
        .eval(ROWS, json!([]))
        .await
        .as_array()
        .expect("rows")
        .clone()
}

/// Waits until the page's row for `addr` satisfies `cond` (a JS expression
/// over `row`, one of [`ROWS`]); returns that row.
async fn wait_row(browser: &Browser, addr: SocketAddr, what: &str, cond: &str) -> Value {
    let script = format!(
        "const rows = (() => {{ {ROWS} }})();
         const row = rows.find(r => r.address === arguments[0]);
         return row && ({cond}) ? row : null;"
    );
    browser
        .wait_for(
            &format!("{addr}: {what}"),
            &script,
            json!([addr.to_string()]),
        )
        .await
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_without_the_token() {
    let a = Origin::named("a").await;
    let mut config = with_admin(&[a.addr()]);
    config.admin.as_mut().expect("admin").token = Some("s3cret".into());
    let proxy = Proxy::start(&config).await;
    let admin = Admin::of(proxy.server());

    let page = raw(&admin, Method::GET, "/status", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<title>Sluice status</title>"));
    let header = |name: &str| {
        page.header(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_owned()
    };
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");

    // The data stays behind the token; the page is a constant.
    let data = admin.send(Method::GET, "/backends", None, None, &[]).await;
    assert_eq!(data.status, 401, "{}", data.text);
    let root = raw(&admin, Method::GET, "/", &[]).await;
    assert_eq!(root.status, 302);
    assert_eq!(root.header("location"), Some("status"));
    let post = admin
        .send(
            Method::POST,
            "/status",
            None,
            Some("s3cret"),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(post.status, 405, "{}", post.text);
    // Another site may link to it (a top-level navigation), but not frame
    // or fetch it (the guard's Fetch Metadata check).
    let from_elsewhere = |dest: &'static str| {
        [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", dest),
        ]
    };
    let link = raw(&admin, Method::GET, "/status", &from_elsewhere("document")).await;
    assert_eq!(link.status, 200);
    let frame = raw(&admin, Method::GET, "/status", &from_elsewhere("iframe")).await;
    assert_eq!(frame.status, 403, "{}", frame.text());
    let fetch = raw(
        &admin,
        Method::GET,
        "/status",
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(fetch.status, 403);
}

#[tokio::test]
async fn the_page_shows_the_backends_and_follows_a_drain_and_traffic_live() {
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let proxy = Proxy::start(&with_admin(&[a.addr(), b.addr()])).await;
    let admin = Admin::of(proxy.server());
    let Some(browser) = Browser::start(1280, 480).await else {
        return;
    };
    browser.goto(&url(&admin, "/status")).await;
    // A mark that a reload would wipe: the page must update in place.
    browser
        .eval("window.__sluiceTest = 'same page'; return null;", json!([]))
        .await;

    for addr in [a.addr(), b.addr()] {
        wait_row(&browser, addr, "in rotation", "row.state === 'healthy'").await;
    }
    assert_eq!(rows(&browser).await.len(), 2);

    admin.drain(b.addr()).await;
    let drained = wait_row(&browser, b.addr(), "draining", "row.state === 'draining'").await;
    let reason = admin.member(b.addr()).await.expect("b")["reason"].clone();
    assert_eq!(drained["reason"], reason, "the reason from the JSON");
    wait_row(
        &browser,
        a.addr(),
        "still in rotation",
        "row.state === 'healthy'",
    )
    .await;

    // Traffic while the page watches: its count and rate move.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (stop, addr) = (stop.clone(), proxy.addr());
        async move {
            let mut client = H1::connect(addr).await;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(client.get("/").await.status, 200);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    });
    wait_row(
        &browser,
        a.addr(),
        "requests counted and a request rate",
        "row.requests >= 5 && row.rate > 0",
    )
    .await;
    match screenshot_path("") {
        Some(path) => browser.save_screenshot(&path).await,
        None => drop(browser.screenshot().await),
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");

    // Once traffic stops, the page shows exactly the API's total (read
    // again each time: the last request may be counted a moment after its
    // response reached the client), and the drained backend got none of it.
    let deadline = tokio::time::Instant::now() + BROWSER_STEP;
    loop {
        let total = admin.member(a.addr()).await.expect("a")["requests"].as_u64();
        let shown = rows(&browser)
            .await
            .into_iter()
            .find(|r| r["address"] == a.addr().to_string())
            .and_then(|r| r["requests"].as_u64());
        if total.is_some_and(|t| t >= 5) && shown == total {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page shows {shown:?} requests, the API {total:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let b_row = wait_row(&browser, b.addr(), "no traffic", "row.requests === 0").await;
    assert_eq!(b_row["state"], "draining");
    assert_eq!(
        browser
            .eval("return window.__sluiceTest || null;", json!([]))
            .await,
        "same page",
        "the page reloaded instead of updating"
    );

    // A phone: cards instead of a table, nothing wider than the screen.
    browser.resize(390, 844).await;
    let fits = browser
        .wait_for(
            "the phone layout",
            "const w = window.innerWidth;
             const head = document.querySelector('thead');
             return w <= 400 && head && getComputedStyle(head).display === 'none'
               && document.documentElement.scrollWidth <= w ? w : null;",
            json!([]),
        )
        .await;
    assert!(fits.as_u64().is_some_and(|w| w <= 400), "{fits}");
    if let Some(path) = screenshot_path("-phone") {
        browser.save_screenshot(&path).await;
    }
}

#[tokio::test]
async fn names_from_the_json_are_rendered_as_text() {
    let a = Origin::named("a").await;
    let mut config = with_admin(&[a.addr()]);
    let name = "<img src=x onerror=\"window.__pwned=1\">";
    config.upstreams[0].name = name.to_owned();
    let proxy = Proxy::start(&config).await;
    let admin = Admin::of(proxy.server());
    let Some(browser) = Browser::start(1024, 600).await else {
        return;
    };
    browser.goto(&url(&admin, "/status")).await;

    wait_row(&browser, a.addr(), "shown", "row.state === 'healthy'").await;
    let shown = browser
        .eval(
            "return Array.from(document.querySelectorAll('.group-name')).map(h => h.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!([name]), "the name, verbatim, as text");
    let markup = browser
        .eval(
            "return {imgs: document.querySelectorAll('img').length, pwned: window.__pwned === undefined ? null : window.__pwned};",
            json!([]),
        )
        .await;
    assert_eq!(markup, json!({"imgs": 0, "pwned": null}));
}

#[tokio::test]
async fn the_page_asks_for_the_bearer_token_and_keeps_it_for_the_tab() {
    let a = Origin::named("a").await;
    let mut config = with_admin(&[a.addr()]);
    config.admin.as_mut().expect("admin").token = Some("s3cret-token".into());
    let proxy = Proxy::start(&config).await;
    let admin = Admin::of(proxy.server());
    let Some(browser) = Browser::start(1024, 600).await else {
        return;
    };
    browser.goto(&url(&admin, "/")).await;

    let form_shown = "return !document.getElementById('auth').hidden
        && document.getElementById('status-text').textContent === 'token needed'
        ? document.getElementById('auth-msg').textContent : null;";
    let asked = browser
        .wait_for("the token form", form_shown, json!([]))
        .await;
    assert!(
        asked.as_str().is_some_and(|m| m.contains("needs")),
        "{asked}"
    );
    assert!(rows(&browser).await.is_empty());

    browser.type_into("#token", "wrong").await;
    browser.click("#use-token").await;
    let refused = browser
        .wait_for(
            "the wrong token refused",
            "const m = document.getElementById('auth-msg').textContent;
             return m.includes('refused') ? m : null;",
            json!([]),
        )
        .await;
    assert!(refused.is_string());
    assert!(rows(&browser).await.is_empty());

    browser.type_into("#token", "s3cret-token").await;
    browser.click("#use-token").await;
    wait_row(
        &browser,
        a.addr(),
        "shown with the token",
        "row.state === 'healthy'",
    )
    .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('auth').hidden;", json!([]))
            .await,
        true
    );

    // A reload in the same tab keeps the token (sessionStorage).
    browser.goto(&url(&admin, "/status")).await;
    wait_row(
        &browser,
        a.addr(),
        "shown after a reload",
        "row.state === 'healthy'",
    )
    .await;
}
