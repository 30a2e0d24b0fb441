//! Health: active checks take a backend out of rotation after `fall` failures
//! and back after `rise` successes; draining backends are not probed; passive
//! ejection and its cap; 503 at once when a whole group is down.

use super::admin::with_admin;
use sluice::config::{HealthCheck, Passive};
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::within;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// An origin whose `/ping` and `/` answer with statuses the test flips.
struct Switchable {
    origin: Origin,
    ping: Arc<AtomicU16>,
    main: Arc<AtomicU16>,
}

impl Switchable {
    async fn start(name: &str) -> Switchable {
        let ping = Arc::new(AtomicU16::new(200));
        let main = Arc::new(AtomicU16::new(200));
        let (p, m) = (ping.clone(), main.clone());
        let body: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let origin = Origin::http1()
            .name(name)
            .route("/ping", move |_| {
                let status = p.load(Ordering::SeqCst);
                std::future::ready(reply::status(status.try_into().expect("status")))
            })
            .route("/", move |req| {
                reply::text(m.load(Ordering::SeqCst), body)(req)
            })
            .start()
            .await;
        Switchable { origin, ping, main }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.origin.addr()
    }

    /// Requests seen on `path` so far.
    fn seen(&self, path: &str) -> usize {
        self.origin
            .requests()
            .iter()
            .filter(|r| r.uri.path() == path)
            .count()
    }

    fn not_pings(&self) -> usize {
        not_pings(&self.origin)
    }
}

/// Requests `origin` saw other than the proxy's checks (`/ping`).
pub(super) fn not_pings(origin: &Origin) -> usize {
    origin
        .requests()
        .iter()
        .filter(|r| r.uri.path() != "/ping")
        .count()
}

/// Fast checks: every 20 ms, 500 ms to answer.
pub(super) fn checks(rise: u32, fall: u32) -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        rise,
        fall,
        ..HealthCheck::default()
    }
}

#[tokio::test]
async fn failing_health_checks_take_a_backend_out_and_passing_ones_bring_it_back() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].health = Some(checks(2, 3));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    // Both are probed and stay in rotation.
    sluice_e2e::harness::eventually("both backends probed", || {
        a.seen("/ping") >= 2 && b.seen("/ping") >= 2
    })
    .await;
    assert_eq!(admin.state(b.addr()).await.as_deref(), Some("healthy"));

    b.ping.store(500, Ordering::SeqCst);
    let m = admin.wait_state(b.addr(), "unhealthy").await;
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("failed 3 health checks") && reason.contains("500"),
        "reason: {reason}"
    );
    let last = m["checks"]
        .as_array()
        .and_then(|checks| checks.last())
        .cloned()
        .expect("checks");
    assert_eq!(last["ok"], false);

    // Out of rotation: every request goes to a.
    let before = b.not_pings();
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..20 {
        let r = client.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("a"));
    }
    assert_eq!(b.not_pings(), before, "an unhealthy backend got traffic");

    b.ping.store(200, Ordering::SeqCst);
    let m = admin.wait_state(b.addr(), "healthy").await;
    assert!(
        m["reason"].as_str().is_some_and(|r| r.contains("passed 2")),
        "{m:?}"
    );
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status, 200);
    }
    assert!(b.not_pings() > before, "a recovered backend got no traffic");
}

#[tokio::test]
async fn a_backend_that_stops_listening_leaves_rotation() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let b_addr = b.addr();
    let mut c = with_admin(&[a.addr(), b_addr]);
    c.upstreams[0].health = Some(checks(2, 2));
    c.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    drop(b);
    let m = admin.wait_state(b_addr, "unhealthy").await;
    assert!(
        m["reason"].as_str().is_some_and(|r| r.contains("failed 2")),
        "{m:?}"
    );
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..10 {
        let r = client.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("a"));
    }
    // No request was even tried on b: passive checks are off, so a failed
    // attempt would show as a failure on its counters.
    let m = admin.member(b_addr).await.expect("still a member");
    assert_eq!(m["failures"].as_u64(), Some(0), "{m:?}");
}

#[tokio::test]
async fn draining_backends_are_not_probed() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].health = Some(checks(2, 3));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    sluice_e2e::harness::eventually("b probed", || b.seen("/ping") >= 1).await;

    admin.drain(b.addr()).await;
    assert_eq!(admin.state(b.addr()).await.as_deref(), Some("draining"));
    // Probe rounds run one after another; once a has seen two more probes,
    // the round that may have started before the drain is over.
    let a0 = a.seen("/ping");
    sluice_e2e::harness::eventually("two probe rounds", || a.seen("/ping") >= a0 + 2).await;
    let b_pings = b.seen("/ping");
    let a1 = a.seen("/ping");
    sluice_e2e::harness::eventually("five more probe rounds", || a.seen("/ping") >= a1 + 5).await;
    assert_eq!(b.seen("/ping"), b_pings, "a draining backend was probed");
    assert_eq!(admin.state(b.addr()).await.as_deref(), Some("draining"));

    // Removed backends are not probed either.
    admin.unregister(b.addr()).await;
    let a2 = a.seen("/ping");
    sluice_e2e::harness::eventually("five more probe rounds", || a.seen("/ping") >= a2 + 5).await;
    assert_eq!(b.seen("/ping"), b_pings, "a removed backend was probed");
}

fn passive(failures: u32, ejection: Duration) -> Passive {
    Passive {
        consecutive_5xx: failures,
        ejection,
        max_ejection: ejection * 4,
        max_ejected_percent: 50,
        ..Passive::default()
    }
}

#[tokio::test]
async fn passive_ejection_after_consecutive_5xx_honours_the_cap() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    // Long enough that b stays ejected for the whole test.
    c.upstreams[0].passive = passive(3, Duration::from_secs(3600));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;

    b.main.store(502, Ordering::SeqCst);
    within("b to be ejected", async {
        loop {
            let r = client.get("/").await;
            assert!(r.status == 200 || r.status == 502, "{r:?}");
            if admin.state(b.addr()).await.as_deref() == Some("ejected") {
                return;
            }
        }
    })
    .await;
    let m = admin.member(b.addr()).await.expect("b");
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.contains("3 consecutive failures"),
        "reason: {reason}"
    );
    assert_eq!(m["ejections"].as_u64(), Some(1));
    assert_eq!(b.not_pings(), 3, "ejected after exactly `failures` 5xx");

    for _ in 0..10 {
        let r = client.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("a"));
    }

    // a fails too, but ejecting it would eject more than 50% of the group.
    a.main.store(502, Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(client.get("/").await.status, 502);
    }
    let m = admin.member(a.addr()).await.expect("a");
    assert_eq!(m["state"].as_str(), Some("healthy"), "{m:?}");
    assert_eq!(m["ejections"].as_u64(), Some(0));
    assert!(m["failures"].as_u64().is_some_and(|f| f >= 10), "{m:?}");
    assert_eq!(admin.state(b.addr()).await.as_deref(), Some("ejected"));
}

#[tokio::test]
async fn an_ejected_backend_returns_after_its_period() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].passive = passive(2, Duration::from_millis(300));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;

    b.main.store(503, Ordering::SeqCst);
    within("b to be ejected", async {
        while admin.state(b.addr()).await.as_deref() != Some("ejected") {
            client.get("/").await;
        }
    })
    .await;
    b.main.store(200, Ordering::SeqCst);
    // Half-open after its cool-down, closed by successful trial requests.
    admin.wait_state(b.addr(), "half-open").await;
    within("b to close", async {
        while admin.state(b.addr()).await.as_deref() != Some("healthy") {
            assert_eq!(client.get("/").await.status, 200);
        }
    })
    .await;
    let m = admin.member(b.addr()).await.expect("listed");
    assert_eq!(m["ejections"].as_u64(), Some(1));
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.contains("trial requests succeeded")),
        "{m:?}"
    );
    let before = b.not_pings();
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status, 200);
    }
    assert!(
        b.not_pings() > before,
        "a readmitted backend got no traffic"
    );
}

#[tokio::test]
async fn a_backend_refusing_connections_is_ejected_without_failing_requests() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let b_addr = b.addr();
    let mut c = with_admin(&[a.addr(), b_addr]);
    c.upstreams[0].passive = passive(3, Duration::from_secs(3600));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    drop(b);

    // Each request that picks b fails to connect and goes to a instead.
    let mut client = H1::connect(proxy.addr()).await;
    within("b to be ejected", async {
        while admin.state(b_addr).await.as_deref() != Some("ejected") {
            let r = client.get("/").await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.header("x-origin"), Some("a"));
        }
    })
    .await;
    let m = admin.member(b_addr).await.expect("b");
    assert_eq!(m["failures"].as_u64(), Some(3), "{m:?}");
}

#[tokio::test]
async fn a_group_with_every_backend_down_answers_503_at_once() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].health = Some(checks(1, 1));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    // One unhealthy, one drained: nothing is left in rotation.
    a.ping.store(500, Ordering::SeqCst);
    admin.wait_state(a.addr(), "unhealthy").await;
    admin.drain(b.addr()).await;
    let (a0, b0) = (a.not_pings(), b.not_pings());

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..3 {
        let r = client.get("/").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "no backend available\n");
        assert_eq!(r.header("x-sluice-error"), Some("no backend available"));
    }
    assert_eq!(
        (a.not_pings(), b.not_pings()),
        (a0, b0),
        "no backend was tried"
    );

    // Back in rotation, back to 200.
    a.ping.store(200, Ordering::SeqCst);
    admin.wait_state(a.addr(), "healthy").await;
    assert_eq!(client.get("/").await.status, 200);
}
