//! The admin API: the shape of `GET /backends`, idempotent registration,
//! JSON errors for bad requests, the bearer token, liveness and readiness,
//! the `/register?port=` compatibility path, and the state file.

use http::Method;
use serde_json::json;
use sluice::config::AdminConfig;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `config(backends)` with the admin API on `127.0.0.1:0`.
pub fn with_admin(backends: &[SocketAddr]) -> sluice::Config {
    let mut c = config(backends);
    c.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    c
}

async fn named(name: &str) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

#[tokio::test]
async fn get_backends_shows_state_reason_checks_and_counters() {
    let a = named("a").await;
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..3 {
        assert_eq!(client.get("/x").await.status, 200);
    }

    let r = admin.get("/backends").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let groups = r.json["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{}", r.text);
    assert_eq!(groups[0]["name"].as_str(), Some("default"));
    let backends = groups[0]["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 1, "{}", r.text);
    let b = &backends[0];
    assert_eq!(b["address"].as_str(), Some(a.addr().to_string().as_str()));
    assert_eq!(b["weight"].as_u64(), Some(1));
    assert_eq!(b["origin"].as_str(), Some("config"));
    assert_eq!(b["state"].as_str(), Some("healthy"));
    assert_eq!(b["reason"].as_str(), Some("configured"));
    assert!(
        b["since_unix_ms"].as_u64().is_some_and(|t| t > 0),
        "{}",
        r.text
    );
    assert!(b["checks"].is_array(), "{}", r.text);
    assert_eq!(b["in_flight"].as_u64(), Some(0));
    assert!(b["latency_ewma_micros"].as_u64().is_some(), "{}", r.text);
    assert_eq!(b["requests"].as_u64(), Some(3));
    assert_eq!(b["failures"].as_u64(), Some(0));
    assert_eq!(b["ejections"].as_u64(), Some(0));
}

#[tokio::test]
async fn post_backends_registers_once_and_traffic_reaches_it() {
    let (a, b) = (named("a").await, named("b").await);
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());

    let body =
        json!({"group": "default", "address": b.addr().to_string(), "weight": 2}).to_string();
    let first = admin.call(Method::POST, "/backends", Some(&body)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["added"], true);
    let again = admin.call(Method::POST, "/backends", Some(&body)).await;
    assert_eq!(
        again.status, 200,
        "registering twice is a no-op: {}",
        again.text
    );
    assert_eq!(again.json["added"], false);

    let all = admin.backends().await;
    assert_eq!(all.len(), 2, "{all:?}");
    let (group, m) = &all[&b.addr().to_string()];
    assert_eq!(group, "default");
    assert_eq!(m["origin"].as_str(), Some("registered"));
    assert_eq!(m["weight"].as_u64(), Some(2));
    assert_eq!(m["state"].as_str(), Some("healthy"));

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..6 {
        assert_eq!(client.get("/").await.status, 200);
    }
    assert!(
        b.request_count() > 0,
        "the registered backend got no traffic"
    );
    assert!(a.request_count() > 0);
}

#[tokio::test]
async fn bad_admin_requests_get_4xx_with_a_json_error() {
    let a = named("a").await;
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let good = a.addr().to_string();

    let cases: Vec<(Method, String, Option<String>, u16, &str)> = vec![
        (
            Method::POST,
            "/backends".into(),
            Some("{not json".into()),
            400,
            "invalid JSON",
        ),
        (
            Method::POST,
            "/backends".into(),
            Some(json!({"address": good, "colour": "red"}).to_string()),
            400,
            "unknown field",
        ),
        (
            Method::POST,
            "/backends".into(),
            Some(json!({"address": "not an address"}).to_string()),
            400,
            "address",
        ),
        (
            Method::POST,
            "/backends".into(),
            Some(json!({"address": good, "weight": 0}).to_string()),
            400,
            "weight",
        ),
        (
            Method::POST,
            "/backends".into(),
            Some(json!({"group": "nope", "address": good}).to_string()),
            404,
            "nope",
        ),
        (
            Method::POST,
            "/backends".into(),
            Some(json!({}).to_string()),
            400,
            "address",
        ),
        (
            Method::GET,
            "/nothing-here".into(),
            None,
            404,
            "/nothing-here",
        ),
        (Method::PUT, "/backends".into(), None, 405, "PUT"),
        (Method::GET, "/reload".into(), None, 405, "GET"),
        (
            Method::DELETE,
            "/backends/127.0.0.1:1".into(),
            None,
            404,
            "127.0.0.1:1",
        ),
        (
            Method::POST,
            "/backends/127.0.0.1:1/drain".into(),
            None,
            404,
            "127.0.0.1:1",
        ),
        (
            Method::DELETE,
            "/backends/bogus".into(),
            None,
            400,
            "address",
        ),
        (Method::POST, "/register".into(), None, 400, "port"),
        (Method::POST, "/register?port=0".into(), None, 400, "port"),
        (
            Method::POST,
            "/register?port=70000".into(),
            None,
            400,
            "port",
        ),
        (
            Method::POST,
            "/unregister?port=1".into(),
            None,
            404,
            "127.0.0.1:1",
        ),
    ];
    for (method, path, body, status, mentions) in cases {
        let r = admin.call(method.clone(), &path, body.as_deref()).await;
        assert_eq!(r.status, status, "{method} {path} {body:?}: {}", r.text);
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/json"),
            "{method} {path}"
        );
        assert!(
            r.error().contains(mentions),
            "{method} {path}: error {:?} should mention {mentions:?}",
            r.error()
        );
    }
    // Nothing above changed the group.
    assert_eq!(admin.backends().await.len(), 1);
}

#[tokio::test]
async fn the_bearer_token_is_required_when_set() {
    let a = named("a").await;
    let mut c = with_admin(&[a.addr()]);
    if let Some(admin) = &mut c.admin {
        admin.token = Some("s3cret".into());
    }
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    // Probes stay open (orchestrators send no token); nothing else does.
    for path in ["/healthz", "/readyz"] {
        let probe = admin.call_with(Method::GET, path, None, None).await;
        assert_eq!(probe.status, 200, "{path} without a token: {}", probe.text);
    }
    let register = admin
        .call_with(Method::POST, "/register?port=1", None, None)
        .await;
    assert_eq!(
        register.status, 401,
        "/register without a token: {}",
        register.text
    );
    for path in ["/backends"] {
        let none = admin.call_with(Method::GET, path, None, None).await;
        assert_eq!(none.status, 401, "{path} without a token: {}", none.text);
        assert!(none.error().contains("token"), "{}", none.text);
        let wrong = admin
            .call_with(Method::GET, path, None, Some("s3cre"))
            .await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let right = admin
            .call_with(Method::GET, path, None, Some("s3cret"))
            .await;
        assert_eq!(right.status, 200, "{path} with the token: {}", right.text);
    }
    // A change without the token does nothing.
    let b = named("b").await;
    let body = json!({"address": b.addr().to_string()}).to_string();
    let r = admin
        .call_with(Method::POST, "/backends", Some(&body), None)
        .await;
    assert_eq!(r.status, 401);
    let admin = admin.with_token("s3cret");
    assert_eq!(admin.backends().await.len(), 1);
}

#[tokio::test]
async fn healthz_always_readyz_until_shutdown_begins() {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Arc::new(tokio::sync::Mutex::new(Some(released)));
    let slow = Origin::http1()
        .route("/slow", move |_| {
            let released = released.clone();
            async move {
                if let Some(rx) = released.lock().await.take() {
                    let _ = rx.await;
                }
                http::Response::new(reply::full("finally"))
            }
        })
        .start()
        .await;
    let proxy = Proxy::start(&with_admin(&[slow.addr()])).await;
    let admin = Admin::of(proxy.server());
    assert_eq!(admin.get("/healthz").await.status, 200);
    let ready = admin.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["ready"], true);

    // A request in flight keeps the drain going while we look at /readyz.
    let mut client = H1::connect(proxy.addr()).await;
    let in_flight = tokio::spawn(async move { client.get("/slow").await });
    sluice_e2e::harness::eventually("the slow request to reach the origin", || {
        slow.request_count() == 1
    })
    .await;
    let shutdown = tokio::spawn(proxy.shutdown());

    within("readyz to turn 503", async {
        loop {
            let r = admin.get("/readyz").await;
            if r.status == 503 {
                assert_eq!(r.json["ready"], false);
                return;
            }
            assert_eq!(r.status, 200, "{}", r.text);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        admin.get("/healthz").await.status,
        200,
        "still alive while draining"
    );

    let _ = release.send(());
    let reply = within("the in-flight request", in_flight)
        .await
        .expect("join");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "finally");
    within("shutdown", shutdown).await.expect("join shutdown");
}

#[tokio::test]
async fn register_and_unregister_by_port_use_the_callers_ip() {
    let a = named("a").await;
    let b = named("b").await;
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let port = b.addr().port();

    let r = admin
        .call(Method::POST, &format!("/register?port={port}"), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["group"].as_str(), Some("default"));
    assert_eq!(
        r.json["address"].as_str(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let again = admin
        .call(Method::POST, &format!("/register?port={port}"), None)
        .await;
    assert_eq!(again.status, 200, "{}", again.text);

    let all = admin.backends().await;
    let (group, m) = &all[&format!("127.0.0.1:{port}")];
    assert_eq!(group, "default");
    assert_eq!(m["origin"].as_str(), Some("registered"));

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status, 200);
    }
    assert!(
        b.request_count() > 0,
        "the registered backend got no traffic"
    );

    let r = admin
        .call(Method::POST, &format!("/unregister?port={port}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["removed"], true);
    assert!(admin.member(b.addr()).await.is_none());
    let before = b.request_count();
    for _ in 0..4 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-origin"), Some("a"));
    }
    assert_eq!(
        b.request_count(),
        before,
        "an unregistered backend got traffic"
    );
}

fn state_file_config(backends: &[SocketAddr], path: PathBuf) -> sluice::Config {
    let mut c = with_admin(backends);
    if let Some(admin) = &mut c.admin {
        admin.state_file = Some(path);
    }
    c
}

#[tokio::test]
async fn registered_backends_survive_a_restart_through_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backends.json");
    let (a, b, c) = (named("a").await, named("b").await, named("c").await);
    let config = state_file_config(&[a.addr()], path.clone());

    let first = Proxy::start(&config).await;
    let admin = Admin::of(first.server());
    admin.register("default", b.addr()).await;
    let r = admin
        .call(
            Method::POST,
            &format!("/register?port={}", c.addr().port()),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(path.exists(), "no state file written");
    first.shutdown().await;

    let second = Proxy::start(&config).await;
    let admin = Admin::of(second.server());
    let all = admin.backends().await;
    assert_eq!(all.len(), 3, "{all:?}");
    for o in [&b, &c] {
        let (group, m) = &all[&o.addr().to_string()];
        assert_eq!(group, "default");
        assert_eq!(m["origin"].as_str(), Some("registered"));
        assert_eq!(m["state"].as_str(), Some("healthy"));
    }
    assert_eq!(
        all[&a.addr().to_string()].1["origin"].as_str(),
        Some("config")
    );

    let mut client = H1::connect(second.addr()).await;
    for _ in 0..6 {
        assert_eq!(client.get("/").await.status, 200);
    }
    assert!(b.request_count() > 0 && c.request_count() > 0);

    // An unregistration is saved too.
    admin.unregister(b.addr()).await;
    second.shutdown().await;
    let third = Proxy::start(&config).await;
    let all = Admin::of(third.server()).backends().await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(!all.contains_key(&b.addr().to_string()));
}

#[tokio::test]
async fn a_corrupt_state_file_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backends.json");
    std::fs::write(&path, b"{\"backends\": [ {\"group\": ").expect("write");
    let a = named("a").await;
    let proxy = Proxy::start(&state_file_config(&[a.addr()], path)).await;
    let admin = Admin::of(proxy.server());
    let all = admin.backends().await;
    assert_eq!(all.len(), 1, "{all:?}");
    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-origin"), Some("a"));
}
