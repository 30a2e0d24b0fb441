//! `max_requests_per_backend`, `max_queue`, `queue_timeout`: a backend never
//! holds more than its limit, the rest wait in the group's queue in arrival
//! order, a full queue and a queue timeout answer 503 with their reasons,
//! and a client that leaves the queue strands nothing. Counted at the
//! backend, which holds each request until the test lets it go.

use http::Request;
use hyper::body::Incoming;
use sluice::Config;
use sluice::balance::Policy;
use sluice::config::{AdminConfig, LimitConfig, RetryPolicy};
use sluice::upstream::queue::QueueStats;
use sluice_e2e::harness::client::{H1, RawConn, Reply};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::eventually;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// A backend that holds every request until `gate` gives it a permit, and
/// counts how many it holds at once.
struct Holding {
    origin: Origin,
    gate: Arc<Semaphore>,
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Holding {
    async fn start(gate: Arc<Semaphore>) -> Holding {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (g, n, p) = (gate.clone(), now.clone(), peak.clone());
        let origin = Origin::http1()
            .route("/", move |req: Request<Incoming>| {
                let (gate, now, peak) = (g.clone(), n.clone(), p.clone());
                async move {
                    let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(held, Ordering::SeqCst);
                    gate.acquire().await.expect("gate").forget();
                    now.fetch_sub(1, Ordering::SeqCst);
                    http::Response::new(reply::full(req.uri().path().to_owned()))
                }
            })
            .start()
            .await;
        Holding {
            origin,
            gate,
            now,
            peak,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.origin.addr()
    }

    fn paths(&self) -> Vec<String> {
        self.origin
            .requests()
            .iter()
            .map(|s| s.uri.path().to_owned())
            .collect()
    }
}

fn limited(
    backends: &[SocketAddr],
    per_backend: u32,
    max_queue: usize,
    timeout: Duration,
) -> Config {
    let mut c = config(backends);
    c.upstreams[0].limit = Some(LimitConfig {
        per_backend,
        max_queue,
        queue_timeout: timeout,
    });
    c
}

/// Long enough never to pass during a test (each step is bounded far below).
const NEVER: Duration = Duration::from_secs(600);

fn stats(proxy: &Proxy) -> QueueStats {
    let state = proxy.server().shared().state.load();
    state.groups[0]
        .limit
        .as_ref()
        .expect("a limit")
        .queue
        .stats()
}

/// A backend of limit 1 holding `GET /1` (the handle answers once the gate
/// lets it go), behind a proxy (admin API on) whose group queues
/// `max_queue` requests for `timeout`.
async fn one_busy(max_queue: usize, timeout: Duration) -> (Holding, Proxy, JoinHandle<Reply>) {
    let b = Holding::start(Arc::new(Semaphore::new(0))).await;
    let mut cfg = limited(&[b.addr()], 1, max_queue, timeout);
    cfg.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    let proxy = Proxy::start(&cfg).await;
    let first = get(&proxy, "/1");
    eventually("the first request at the backend", || {
        b.origin.request_count() == 1
    })
    .await;
    (b, proxy, first)
}

/// `GET path` answered 503 by the proxy: its `x-sluice-error`.
async fn refused(proxy: &Proxy, path: &str) -> String {
    let r = H1::connect(proxy.addr()).await.get(path).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text());
    r.header("x-sluice-error").unwrap_or_default().to_owned()
}

/// Lets `b` answer the held `GET /1` and the waiting `GET /2`: both 200,
/// in that order at the backend.
async fn release_both_in_order(b: &Holding, first: JoinHandle<Reply>, second: JoinHandle<Reply>) {
    b.gate.add_permits(2);
    let r = first.await.expect("first");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/1"));
    let r = second.await.expect("second");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/2"));
    assert_eq!(b.paths(), ["/1", "/2"]);
}

fn get(proxy: &Proxy, path: &'static str) -> JoinHandle<Reply> {
    let addr = proxy.addr();
    tokio::spawn(async move { H1::connect(addr).await.get(path).await })
}

#[tokio::test]
async fn a_request_past_the_limit_waits_and_is_served_in_order_when_a_slot_frees() {
    let (b, proxy, first) = one_busy(8, NEVER).await;
    let second = get(&proxy, "/2");
    eventually("the second request queued", || stats(&proxy).queued == 1).await;
    let third = get(&proxy, "/3");
    eventually("the third request queued", || stats(&proxy).queued == 2).await;
    assert_eq!(
        b.origin.request_count(),
        1,
        "only one request at the backend"
    );

    b.gate.add_permits(1);
    let r = first.await.expect("first");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/1"));
    eventually("the second request at the backend", || {
        b.origin.request_count() == 2
    })
    .await;
    assert_eq!(stats(&proxy).queued, 1);
    b.gate.add_permits(1);
    let r = second.await.expect("second");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/2"));
    b.gate.add_permits(1);
    let r = third.await.expect("third");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/3"));

    assert_eq!(b.paths(), ["/1", "/2", "/3"]);
    assert_eq!(b.peak.load(Ordering::SeqCst), 1);
    assert_eq!(
        stats(&proxy),
        QueueStats {
            queued: 0,
            queue_timeouts: 0,
            queue_full: 0
        }
    );
}

#[tokio::test]
async fn a_request_past_a_full_queue_gets_503_at_once() {
    let (b, proxy, first) = one_busy(1, NEVER).await;
    let second = get(&proxy, "/2");
    eventually("the second request queued", || stats(&proxy).queued == 1).await;

    // The queue never times out here: only a refusal at once can answer.
    assert_eq!(refused(&proxy, "/3").await, "backend queue full");
    assert_eq!(stats(&proxy).queue_full, 1);

    b.gate.add_permits(2);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);
    assert_eq!(second.await.expect("second").status.as_u16(), 200);
    assert_eq!(b.paths(), ["/1", "/2"]);
}

#[tokio::test]
async fn without_a_queue_a_full_group_refuses_at_once() {
    let (b, proxy, first) = one_busy(0, NEVER).await;
    assert_eq!(refused(&proxy, "/2").await, "backend queue full");
    b.gate.add_permits(1);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);
}

#[tokio::test]
async fn a_request_queued_past_the_timeout_gets_503_and_leaves() {
    let (b, proxy, first) = one_busy(8, Duration::from_millis(200)).await;
    assert_eq!(refused(&proxy, "/2").await, "backend queue timeout");
    let s = stats(&proxy);
    assert_eq!((s.queued, s.queue_timeouts, s.queue_full), (0, 1, 0));

    b.gate.add_permits(2);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);
    let r = H1::connect(proxy.addr()).await.get("/3").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "/3"));
    assert_eq!(
        b.paths(),
        ["/1", "/3"],
        "the timed-out request never reached it"
    );
}

#[tokio::test]
async fn a_client_that_leaves_the_queue_strands_no_slot() {
    let (b, proxy, first) = one_busy(1, NEVER).await;
    let mut gone = RawConn::connect(proxy.addr()).await;
    gone.send(b"GET /gone HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    eventually("the request queued", || stats(&proxy).queued == 1).await;
    drop(gone);
    eventually("the queue emptied", || stats(&proxy).queued == 0).await;

    // Its place is free (max_queue = 1), and so is the backend's slot.
    let next = get(&proxy, "/2");
    eventually("the next request queued", || stats(&proxy).queued == 1).await;
    b.gate.add_permits(2);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);
    let r = next.await.expect("next");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/2"));
    assert_eq!(b.paths(), ["/1", "/2"]);
    assert_eq!(stats(&proxy).queue_full, 0);
}

/// 50 clients at once on two backends of limit 2, with every policy: the
/// backends never hold more than 2 each, 46 wait, and all are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_never_puts_more_than_the_limit_on_a_backend() {
    for policy in ["round-robin", "least-conn", "p2c", "hash:client"] {
        let gate = Arc::new(Semaphore::new(0));
        let a = Holding::start(gate.clone()).await;
        let b = Holding::start(gate.clone()).await;
        let mut cfg = limited(&[a.addr(), b.addr()], 2, 100, NEVER);
        cfg.workers = 2;
        cfg.upstreams[0].policy = Policy::parse(policy).expect("policy");
        let proxy = Proxy::start(&cfg).await;

        let clients: Vec<_> = (0..50).map(|_| get(&proxy, "/burst")).collect();
        eventually("both backends full and the rest queued", || {
            a.now.load(Ordering::SeqCst) == 2
                && b.now.load(Ordering::SeqCst) == 2
                && stats(&proxy).queued == 46
        })
        .await;
        gate.add_permits(50);
        for c in clients {
            let r = c.await.expect("client");
            assert_eq!(
                r.status.as_u16(),
                200,
                "{policy}: {:?}",
                r.header("x-sluice-error")
            );
        }
        assert_eq!(
            a.origin.request_count() + b.origin.request_count(),
            50,
            "{policy}"
        );
        assert_eq!(a.peak.load(Ordering::SeqCst), 2, "{policy}");
        assert_eq!(b.peak.load(Ordering::SeqCst), 2, "{policy}");
        assert_eq!(stats(&proxy).queued, 0, "{policy}");
    }
}

#[tokio::test]
async fn get_backends_shows_the_queue_counters_of_limited_groups_only() {
    let (b, proxy, first) = one_busy(0, NEVER).await;
    assert_eq!(
        H1::connect(proxy.addr())
            .await
            .get("/2")
            .await
            .status
            .as_u16(),
        503
    );

    let r = Admin::of(proxy.server()).get("/backends").await;
    let g = &r.json["groups"][0];
    assert_eq!(g["queued"].as_u64(), Some(0), "{}", r.text);
    assert_eq!(g["queue_timeouts"].as_u64(), Some(0), "{}", r.text);
    assert_eq!(g["queue_full"].as_u64(), Some(1), "{}", r.text);
    b.gate.add_permits(1);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);

    let mut plain = config(&[b.addr()]);
    plain.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    let proxy = Proxy::start(&plain).await;
    let r = Admin::of(proxy.server()).get("/backends").await;
    assert!(r.json["groups"][0].get("queued").is_none(), "{}", r.text);
}

/// A retry goes through the same admission: a route retrying 503s on a
/// group where one backend answers 503 and the other is at its limit
/// waits for the full one instead of passing its limit.
#[tokio::test]
async fn a_retry_waits_for_a_slot_like_a_first_try() {
    let b = Holding::start(Arc::new(Semaphore::new(0))).await;
    let failing = Origin::http1()
        .route("/", reply::text(503, "busy"))
        .start()
        .await;
    let mut cfg = limited(&[b.addr(), failing.addr()], 1, 8, NEVER);
    cfg.routes[0].retry = Some(Arc::new(RetryPolicy {
        attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
        ..RetryPolicy::default()
    }));
    cfg.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&cfg).await;

    // Wherever it goes first, the first request ends up held at `b`.
    let first = get(&proxy, "/1");
    eventually("the first request held", || {
        b.now.load(Ordering::SeqCst) == 1
    })
    .await;
    // The second finds `b` full, gets a 503 from the other, and its retry
    // must wait for `b`.
    let second = get(&proxy, "/2");
    eventually("the retry queued", || stats(&proxy).queued == 1).await;
    assert_eq!(b.origin.request_count(), 1);

    release_both_in_order(&b, first, second).await;
    assert_eq!(b.peak.load(Ordering::SeqCst), 1);
}

/// A backend that joins the group while requests wait serves them at
/// once: a new snapshot wakes the queue as a freed slot does.
#[tokio::test]
async fn a_backend_added_while_requests_wait_serves_them() {
    let (b, proxy, first) = one_busy(8, NEVER).await;
    let second = get(&proxy, "/2");
    eventually("the second request queued", || stats(&proxy).queued == 1).await;

    let c = Holding::start(Arc::new(Semaphore::new(100))).await;
    let r = Admin::of(proxy.server())
        .register("default", c.addr())
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    let r = second.await.expect("second");
    assert_eq!((r.status.as_u16(), r.text()), (200, "/2"));
    assert_eq!(c.paths(), ["/2"]);
    assert_eq!(b.paths(), ["/1"], "the held backend never took more");

    b.gate.add_permits(1);
    assert_eq!(first.await.expect("first").status.as_u16(), 200);
}

/// A wait in the group's queue is not the backend's time: a request that
/// waits longer than its route's per-try timeout is served when the slot
/// frees, not failed with a 504 (nor its backend blamed) while it waits.
#[tokio::test]
async fn a_wait_in_the_queue_does_not_run_out_the_per_try_timeout() {
    let b = Holding::start(Arc::new(Semaphore::new(0))).await;
    let mut cfg = limited(&[b.addr()], 1, 8, NEVER);
    cfg.routes[0].retry = Some(Arc::new(RetryPolicy {
        attempts: 2,
        per_try_timeout: Some(Duration::from_millis(100)),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
        ..RetryPolicy::default()
    }));
    let proxy = Proxy::start(&cfg).await;
    // A POST is not retried, so no per-try timeout: it holds the slot.
    let addr = proxy.addr();
    let first = tokio::spawn(async move {
        let req = Request::post("/1")
            .header("host", "test.local")
            .body(sluice_e2e::harness::origin::reply::empty())
            .expect("request");
        sluice_e2e::harness::client::collect(H1::connect(addr).await.send(req).await).await
    });
    eventually("the first request held", || {
        b.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = get(&proxy, "/2");
    eventually("the second request queued", || stats(&proxy).queued == 1).await;
    // Several per-try timeouts long.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats(&proxy).queued, 1, "still waiting, not failed");
    release_both_in_order(&b, first, second).await;
    let state = proxy.server().shared().state.load();
    let backend = &state.groups[0].load().backends[0];
    assert_eq!(backend.failures(), 0, "the backend is not blamed");
}
