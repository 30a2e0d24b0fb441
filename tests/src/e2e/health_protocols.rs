//! Active checks in the group's protocol: fall and rise over HTTP/1.1, h2c
//! and h2 over TLS; a body that lacks `expect_body`; a detail that says
//! what failed; the default heartbeat of registered backends.

use super::admin::with_admin;
use super::health::checks as fast;
use http::{StatusCode, Version};
use sluice::config::{HealthCheck, UpstreamConfig, UpstreamProtocol, UpstreamTls, UpstreamVerify};
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, OriginBuilder, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

/// An origin whose `/ping` answers with a status the test flips.
struct Flip {
    origin: Origin,
    ping: Arc<AtomicU16>,
}

impl Flip {
    async fn start(builder: OriginBuilder, name: &'static str) -> Flip {
        let ping = Arc::new(AtomicU16::new(200));
        let p = ping.clone();
        let origin = builder
            .name(name)
            .route("/ping", move |_| {
                let status = p.load(Ordering::SeqCst);
                std::future::ready(reply::status(status.try_into().expect("status")))
            })
            .route("/", reply::text(200, name))
            .start()
            .await;
        Flip { origin, ping }
    }

    fn addr(&self) -> SocketAddr {
        self.origin.addr()
    }

    fn pings(&self) -> Vec<Version> {
        let seen = self.origin.requests();
        seen.iter()
            .filter(|r| r.uri.path() == "/ping")
            .map(|r| r.version)
            .collect()
    }

    fn not_pings(&self) -> usize {
        super::health::not_pings(&self.origin)
    }
}

/// Polls until `addr` has at least `n` recorded checks; returns them.
async fn checks(admin: &Admin, addr: SocketAddr, n: usize) -> Vec<serde_json::Value> {
    within(&format!("{n} checks of {addr}"), async {
        loop {
            if let Some(m) = admin.member(addr).await
                && let Some(c) = m["checks"].as_array()
                && c.len() >= n
            {
                return c.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Which origins answer `n` requests through the proxy.
async fn answers(proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut client = H1::connect(proxy).await;
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client.get("/").await;
        assert_eq!(r.status, 200);
        out.push(r.header("x-origin").unwrap_or_default().to_owned());
    }
    out
}

/// Both backends pass checks in `version`; b fails `fall` checks (500)
/// and leaves rotation; it passes `rise` and comes back.
async fn fall_and_rise(
    make: impl Fn() -> OriginBuilder,
    setup: impl FnOnce(&mut UpstreamConfig),
    version: Version,
) {
    let a = Flip::start(make(), "a").await;
    let b = Flip::start(make(), "b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].health = Some(fast(2, 2));
    c.upstreams[0].passive.consecutive_5xx = 0;
    setup(&mut c.upstreams[0]);
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    for addr in [a.addr(), b.addr()] {
        let seen = checks(&admin, addr, 3).await;
        assert!(seen.iter().all(|c| c["ok"] == true), "{addr}: {seen:?}");
    }
    assert!(b.pings().iter().all(|v| *v == version), "{:?}", b.pings());
    let who = answers(proxy.addr(), 4).await;
    assert!(
        who.contains(&"a".to_owned()) && who.contains(&"b".to_owned()),
        "{who:?}"
    );

    b.ping.store(500, Ordering::SeqCst);
    let m = admin.wait_state(b.addr(), "unhealthy").await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("failed 2 health checks") && reason.contains("status 500"),
        "{reason}"
    );
    let before = b.not_pings();
    assert!(answers(proxy.addr(), 10).await.iter().all(|o| o == "a"));
    assert_eq!(b.not_pings(), before, "an unhealthy backend got traffic");

    b.ping.store(200, Ordering::SeqCst);
    admin.wait_state(b.addr(), "healthy").await;
    assert!(answers(proxy.addr(), 4).await.contains(&"b".to_owned()));
    assert_eq!(admin.state(a.addr()).await.as_deref(), Some("healthy"));
}

#[tokio::test]
async fn checks_of_an_http1_group_fall_and_rise_over_http1() {
    fall_and_rise(Origin::http1, |_| {}, Version::HTTP_11).await;
}

#[tokio::test]
async fn checks_of_an_h2c_group_speak_h2c() {
    fall_and_rise(
        Origin::h2c,
        |u| u.protocol = UpstreamProtocol::H2c,
        Version::HTTP_2,
    )
    .await;
}

#[tokio::test]
async fn checks_of_an_h2_group_speak_h2_over_tls() {
    let certs = TestCerts::generate();
    let server = certs.server_config(&[b"h2"]);
    let ca = certs.ca_file.clone();
    fall_and_rise(
        || Origin::tls(server.clone()),
        |u| {
            u.protocol = UpstreamProtocol::H2;
            u.tls = Some(UpstreamTls {
                verify: UpstreamVerify::Roots { ca_file: Some(ca) },
                server_name: Some("localhost".into()),
                client_cert: None,
            });
        },
        Version::HTTP_2,
    )
    .await;
}

/// Without the test CA, the certificate is not trusted: the check says so.
#[tokio::test]
async fn a_tls_check_names_the_tls_failure() {
    let certs = TestCerts::generate();
    let a = Flip::start(Origin::tls(certs.server_config(&[b"h2"])), "a").await;
    let mut c = with_admin(&[a.addr()]);
    c.upstreams[0].health = Some(fast(1, 1));
    c.upstreams[0].protocol = UpstreamProtocol::H2;
    c.upstreams[0].tls = Some(UpstreamTls {
        verify: UpstreamVerify::Roots { ca_file: None },
        server_name: Some("localhost".into()),
        client_cert: None,
    });
    let proxy = Proxy::start(&c).await;
    let m = Admin::of(proxy.server())
        .wait_state(a.addr(), "unhealthy")
        .await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("backend certificate not trusted"),
        "{reason}"
    );
}

/// Refused, timed out, unexpected status: each detail names its failure.
#[tokio::test]
async fn a_failed_check_says_what_failed() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let hang = Origin::http1().route("/ping", reply::hang).start().await;
    let bad = Flip::start(Origin::http1(), "bad").await;
    bad.ping.store(503, Ordering::SeqCst);
    let mut c = with_admin(&[refused, hang.addr(), bad.addr()]);
    c.upstreams[0].health = Some(HealthCheck {
        expect: vec![200, 204],
        ..fast(1, 1)
    });
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    for (addr, want) in [
        (refused, "backend connection failed: Connection refused"),
        (
            hang.addr(),
            "timed out after 500ms awaiting the response head",
        ),
        (bad.addr(), "status 503, expected one of [200, 204]"),
    ] {
        let m = admin.wait_state(addr, "unhealthy").await;
        let reason = m["reason"].as_str().expect("reason");
        assert!(reason.contains(want), "{addr}: {reason}");
    }
}

/// `expect_body`: a 200 whose body lacks the text fails; an endless body is
/// read only so far (the check fails on the text, not on its timeout).
#[tokio::test]
async fn a_body_without_the_expected_text_fails_the_check() {
    let good = Arc::new(AtomicBool::new(true));
    let g = good.clone();
    let a = Origin::http1()
        .name("a")
        .route("/ping", move |_| {
            let body = if g.load(Ordering::SeqCst) {
                "status: ok"
            } else {
                "status: degraded"
            };
            std::future::ready(http::Response::new(reply::full(body)))
        })
        .route("/", reply::text(200, "a"))
        .start()
        .await;
    let endless = Origin::http1()
        .route("/ping", |_| {
            std::future::ready(http::Response::new(reply::pattern(1 << 30)))
        })
        .start()
        .await;
    let mut c = with_admin(&[a.addr(), endless.addr()]);
    c.upstreams[0].health = Some(HealthCheck {
        expect_body: Some("status: ok".into()),
        timeout: Duration::from_secs(5),
        ..fast(1, 2)
    });
    c.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    let seen = checks(&admin, a.addr(), 2).await;
    assert!(seen.iter().all(|c| c["ok"] == true), "{seen:?}");
    let m = admin.wait_state(endless.addr(), "unhealthy").await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("status 200, body did not contain \"status: ok\" (in its first 64 KiB)"),
        "{reason}"
    );

    good.store(false, Ordering::SeqCst);
    let m = admin.wait_state(a.addr(), "unhealthy").await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("body did not contain \"status: ok\""),
        "{reason}"
    );
    let mut client = H1::connect(proxy.addr()).await;
    assert_eq!(
        client.get("/").await.status,
        StatusCode::SERVICE_UNAVAILABLE.as_u16()
    );

    good.store(true, Ordering::SeqCst);
    admin.wait_state(a.addr(), "healthy").await;
    assert_eq!(client.get("/").await.header("x-origin"), Some("a"));
}

/// A backend registered through the admin API, in a group without
/// `[health]`, gets the default heartbeat (`GET /ping`, fall 3, rise 2);
/// the config backend beside it is not checked.
#[tokio::test]
async fn a_registered_backend_is_heartbeaten_by_default() {
    let a = Flip::start(Origin::http1(), "a").await;
    let b = Flip::start(Origin::http1(), "b").await;
    let mut c = with_admin(&[a.addr()]);
    c.upstreams[0].passive.consecutive_5xx = 0;
    assert!(c.upstreams[0].health.is_none());
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    admin.register("default", b.addr()).await;

    let seen = checks(&admin, b.addr(), 1).await;
    assert_eq!(seen[0]["ok"], true, "{seen:?}");
    let who = answers(proxy.addr(), 4).await;
    assert!(who.contains(&"b".to_owned()), "{who:?}");

    b.ping.store(503, Ordering::SeqCst);
    let m = admin.wait_state(b.addr(), "unhealthy").await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("failed 3 health checks: status 503"),
        "{reason}"
    );
    assert!(answers(proxy.addr(), 6).await.iter().all(|o| o == "a"));

    b.ping.store(200, Ordering::SeqCst);
    let m = admin.wait_state(b.addr(), "healthy").await;
    assert!(
        m["reason"].as_str().is_some_and(|r| r.contains("passed 2")),
        "{m:?}"
    );
    assert!(answers(proxy.addr(), 4).await.contains(&"b".to_owned()));
    assert!(a.pings().is_empty(), "a config backend was checked");
    assert!(admin.member(a.addr()).await.expect("a")["checks"] == serde_json::json!([]));
}
