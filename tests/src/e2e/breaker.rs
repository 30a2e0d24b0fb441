//! The per-backend state machine through real sockets: a backend answering
//! 500s is ejected after `consecutive_5xx`, takes only its bounded trials
//! while half-open (a failed one re-opens it), and closes after
//! `half_open_successes` good ones; error-rate ejection waits for its
//! minimum volume; a backend added at run time ramps up under slow start;
//! `X-Sluice-Backend` appears only when asked for.

use super::admin::with_admin;
use sluice::config::Passive;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// An origin answering `/` with a status (and after a delay) the test sets.
struct Flaky {
    origin: Origin,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Flaky {
    async fn start(name: &'static str) -> Flaky {
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (s, d) = (status.clone(), delay_ms.clone());
        let origin = Origin::http1()
            .name(name)
            .route("/", move |req| {
                let (code, wait) = (s.load(Ordering::SeqCst), d.load(Ordering::SeqCst));
                async move {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    reply::text(code, name)(req).await
                }
            })
            .start()
            .await;
        Flaky {
            origin,
            status,
            delay_ms,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.origin.addr()
    }

    fn count(&self) -> usize {
        self.origin.request_count()
    }
}

fn breaker() -> Passive {
    Passive {
        consecutive_5xx: 3,
        ejection: Duration::from_millis(300),
        max_ejection: Duration::from_secs(60),
        max_ejected_percent: 50,
        half_open_trials: 1,
        half_open_successes: 3,
        ..Passive::default()
    }
}

#[tokio::test]
async fn a_5xx_backend_is_ejected_gets_bounded_trials_and_closes_after_n_successes() {
    let a = Flaky::start("a").await;
    let b = Flaky::start("b").await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].passive = breaker();
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;

    // Closed → open: three 500s in a row.
    b.status.store(500, Ordering::SeqCst);
    within("b to be ejected", async {
        while admin.state(b.addr()).await.as_deref() != Some("ejected") {
            client.get("/").await;
        }
    })
    .await;
    assert_eq!(b.count(), 3, "ejected after exactly consecutive_5xx");
    let m = admin.member(b.addr()).await.expect("member");
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("3 consecutive failures")),
        "{m}"
    );

    // Open → half-open after the cool-down; a burst of ten concurrent
    // requests while b answers slowly: one trial only, the rest go to a.
    admin.wait_state(b.addr(), "half-open").await;
    b.delay_ms.store(300, Ordering::SeqCst);
    let before = b.count();
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let addr = proxy.addr();
            tokio::spawn(async move { H1::connect(addr).await.get("/").await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in burst {
        statuses.push(t.await.expect("request task"));
    }
    assert_eq!(b.count(), before + 1, "one trial at a time: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 9);
    // The failed trial re-opened the breaker with a longer cool-down.
    let m = admin.member(b.addr()).await.expect("member");
    assert_eq!(m["breaker"]["trial_failures"].as_u64(), Some(1), "{m}");
    assert_eq!(m["breaker"]["open_count"].as_u64(), Some(2), "{m}");
    assert_eq!(m["breaker"]["cooldown_ms"].as_u64(), Some(600), "{m}");
    let reopened = m["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .any(|t| t["from"] == "half-open" && t["to"] == "ejected");
    assert!(reopened, "{m}");

    // Half-open → closed after three successful trials.
    b.delay_ms.store(0, Ordering::SeqCst);
    b.status.store(200, Ordering::SeqCst);
    admin.wait_state(b.addr(), "half-open").await;
    within("b to close", async {
        while admin.state(b.addr()).await.as_deref() != Some("healthy") {
            assert_eq!(client.get("/").await.status, 200);
        }
    })
    .await;
    let m = admin.member(b.addr()).await.expect("member");
    assert_eq!(m["reason"], "3 trial requests succeeded", "{m}");
    assert!(m["breaker"]["trial_successes"].as_u64() >= Some(3), "{m}");
    assert!(m["since_unix_ms"].as_u64() > Some(0), "{m}");
}

#[tokio::test]
async fn the_error_rate_ejects_only_past_its_minimum_volume() {
    let a = Flaky::start("a").await;
    // b fails every other request: never three in a row, 50% overall.
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let b = Origin::http1()
        .name("b")
        .route("/", move |req| {
            let code = if n2.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                500
            } else {
                200
            };
            reply::text(code, "b")(req)
        })
        .start()
        .await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.upstreams[0].passive = Passive {
        consecutive_5xx: 0,
        error_rate_percent: 40,
        error_rate_window: Duration::from_secs(5),
        error_rate_min_requests: 20,
        ..breaker()
    };
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;

    // Ten requests to b: a 50% rate, but below the volume of 20.
    for _ in 0..20 {
        client.get("/").await;
    }
    assert_eq!(n.load(Ordering::SeqCst), 10);
    let m = within("the window to see b's requests", async {
        loop {
            let m = admin.member(b.addr()).await.expect("member");
            if m["error_rate"]["requests"].as_u64() == Some(10) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(m["error_rate"]["percent"].as_f64(), Some(50.0), "{m}");
    assert_eq!(m["state"], "healthy", "below the minimum volume: {m}");

    within("b to be ejected by its error rate", async {
        while admin.state(b.addr()).await.as_deref() != Some("ejected") {
            client.get("/").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let m = admin.member(b.addr()).await.expect("member");
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("error rate ")),
        "{m}"
    );
    assert!(n.load(Ordering::SeqCst) >= 20, "the volume was reached");
}

#[tokio::test]
async fn a_backend_added_at_run_time_ramps_up_under_slow_start() {
    let a = Flaky::start("a").await;
    let b = Flaky::start("b").await;
    let mut c = with_admin(&[a.addr()]);
    // Long enough that the whole test runs in the ramp's first steps.
    c.upstreams[0].slow_start = Duration::from_secs(60);
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    admin.register("default", b.addr()).await;
    let m = admin.member(b.addr()).await.expect("member");
    let w = m["effective_weight"].as_f64().expect("effective_weight");
    assert!(w > 0.0 && w < 1.0, "{m}");
    let m = admin.member(a.addr()).await.expect("member");
    assert_eq!(
        m["effective_weight"].as_f64(),
        Some(1.0),
        "startup: no ramp"
    );

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..200 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let (na, nb) = (a.count(), b.count());
    // Equal weights would be 100 each; a tenth to a fifth of a's share here.
    assert!(nb > 0, "a ramping backend still takes some: {na}/{nb}");
    assert!(nb * 3 < na, "b took more than its ramped share: {na}/{nb}");
}

#[tokio::test]
async fn x_sluice_backend_names_the_backend_only_when_enabled() {
    let a = Flaky::start("a").await;
    let proxy = Proxy::start(&config(&[a.addr()])).await;
    let r = H1::connect(proxy.addr()).await.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-sluice-backend"), None, "off by default");

    let mut c = config(&[a.addr()]);
    c.upstreams[0].backend_header = true;
    let proxy = Proxy::start(&c).await;
    let r = H1::connect(proxy.addr()).await.get("/").await;
    let want = a.addr().to_string();
    assert_eq!(r.header("x-sluice-backend"), Some(want.as_str()));
}
