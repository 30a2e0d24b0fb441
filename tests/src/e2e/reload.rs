//! Live reload through `POST /reload`: a broken file is rejected with the
//! reason while the old config keeps serving; a good one adds a route without
//! dropping an open keep-alive connection, and backends that stay keep their
//! counters and pooled connections.

use http::Method;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use std::net::SocketAddr;
use std::path::Path;

pub(super) fn base(a: SocketAddr) -> String {
    format!(
        r#"workers = 1

[[listener]]
address = "127.0.0.1:0"

[timeouts]
shutdown_grace = "5s"

[admin]
address = "127.0.0.1:0"

[upstream.a]
backends = ["{a}"]

[[route]]
path = "/"
upstream = "a"
"#
    )
}

fn with_b(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"{}
[upstream.b]
backends = ["{b}"]

[[route]]
path = "/b"
upstream = "b"
"#,
        base(a)
    )
}

async fn named(name: &str) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", reply::text(200, name_body(name)))
        .start()
        .await
}

fn name_body(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

async fn start(path: &Path) -> Proxy {
    let config = sluice::Config::load(path).expect("valid config");
    Proxy::start(&config).await
}

#[tokio::test]
async fn a_broken_file_is_rejected_with_the_reason_and_the_old_config_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let a = named("a").await;
    std::fs::write(&path, base(a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    assert_eq!(client.get("/").await.header("x-origin"), Some("a"));

    // A route to a group that does not exist.
    let broken = base(a.addr()).replace(r#"upstream = "a""#, r#"upstream = "nowhere""#);
    let line = 1 + broken
        .lines()
        .position(|l| l.contains("nowhere"))
        .expect("the broken line");
    std::fs::write(&path, &broken).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let err = r.error();
    assert!(
        err.contains(&format!("{}:{line}:", path.display())) && err.contains("nowhere"),
        "the reason names the file, line and problem: {err}"
    );

    // And a syntax error.
    std::fs::write(&path, "[[listener]\naddress = ").expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error().contains(&path.display().to_string()),
        "{}",
        r.error()
    );

    // The old config still serves, on the same connection and on new ones.
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-origin"), Some("a"));
    let mut fresh = H1::connect(proxy.addr()).await;
    assert_eq!(fresh.get("/").await.header("x-origin"), Some("a"));
    assert_eq!(admin.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn a_reload_that_adds_a_route_keeps_connections_and_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let (a, b) = (named("a").await, named("b").await);
    std::fs::write(&path, base(a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..3 {
        assert_eq!(client.get("/x").await.header("x-origin"), Some("a"));
    }
    // Before the reload, /b goes to a as well.
    assert_eq!(client.get("/b/1").await.header("x-origin"), Some("a"));
    let requests = |m: &serde_json::Value| m["requests"].as_u64();
    let before = admin.member(a.addr()).await.expect("a");
    assert_eq!(requests(&before), Some(4));
    let a_conns = a.accepted();

    std::fs::write(&path, with_b(a.addr(), b.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The same keep-alive connection: the new route serves, the old one too.
    let reply = client.get("/b/1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-origin"), Some("b"));
    assert_eq!(client.get("/x").await.header("x-origin"), Some("a"));

    let all = admin.backends().await;
    let (group, m) = &all[&a.addr().to_string()];
    assert_eq!(group, "a");
    assert_eq!(
        requests(m),
        Some(5),
        "a's counters were reset by the reload: {m:?}"
    );
    assert!(before["since_unix_ms"].is_u64(), "{before:?}");
    assert_eq!(m["since_unix_ms"], before["since_unix_ms"]);
    assert_eq!(all[&b.addr().to_string()].0, "b");
    assert_eq!(
        a.accepted(),
        a_conns,
        "a's pooled connection was not reused after the reload"
    );
}

#[tokio::test]
async fn registered_backends_stay_across_a_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let (a, b, c) = (named("a").await, named("b").await, named("c").await);
    std::fs::write(&path, base(a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    admin.register("a", c.addr()).await;

    std::fs::write(&path, with_b(a.addr(), b.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let all = admin.backends().await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[&c.addr().to_string()].0, "a");
    assert_eq!(
        all[&c.addr().to_string()].1["origin"].as_str(),
        Some("registered")
    );
}
