//! `[route.retry]`: a failed try (a reset before any response byte, a
//! listed status, a per-try timeout) goes again on another backend, only
//! for the methods the route allows, only while the request body fits the
//! replay buffer, never once the response has begun, and no more often
//! than the group's retry budget allows. Tries are counted at the backends.

use bytes::Bytes;
use http::{Method, Request};
use parking_lot::Mutex;
use sluice::Config;
use sluice::config::{RetryMethods, RetryPolicy};
use sluice_e2e::harness::client::{H1, RawConn, Reply, collect};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a [`Raw`] backend does with a request, once it has read it whole.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Resets the connection (RST): no response byte.
    Reset,
    /// Answers `200 raw` and closes.
    Ok,
    /// Sends a head promising 100 bytes, then 10 of them, then closes (after
    /// a pause, so that the proxy has sent the start on).
    HalfBody,
}

/// A hand-written HTTP/1.1 backend: one request per connection, acting on
/// the n-th (1-based) as `act` says, recording every request body.
struct Raw {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Raw {
    async fn start(act: fn(usize) -> Act) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (requests.clone(), bodies.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let (count, seen) = (count.clone(), seen.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut s).await else {
                        return;
                    };
                    seen.lock().push(body);
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    match act(n) {
                        Act::Reset => {
                            let _ = s.set_zero_linger();
                        }
                        Act::Ok => {
                            let _ = s
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw",
                                )
                                .await;
                        }
                        Act::HalfBody => {
                            let _ = s
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
                                )
                                .await;
                            // The response has begun: the proxy sends it on.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                });
            }
        });
        Raw {
            addr,
            requests,
            bodies,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads a request head and its Content-Length body; `None` at EOF first.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("a length"));
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..].to_vec())
}

/// An origin named `name` answering every request `status` with `body`.
async fn answering(name: &str, status: u16, body: &'static str) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", reply::text(status, body))
        .start()
        .await
}

/// A proxy config over `backends` whose one route retries as `policy` says;
/// passive ejection off, so that every try reaches the backend picked.
fn retrying(backends: &[SocketAddr], policy: RetryPolicy) -> Config {
    let mut c = config(backends);
    c.routes[0].retry = Some(Arc::new(policy));
    c.upstreams[0].passive.consecutive_5xx = 0;
    c
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

async fn send(client: &mut H1, method: Method, body: &[u8]) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri("/")
        .header("host", "test.local")
        .body(reply::full(Bytes::copy_from_slice(body)))
        .expect("request");
    collect(client.send(req).await).await
}

/// The group's retry counters, as `GET /backends` shows them.
fn counters(proxy: &Proxy) -> (u64, u64) {
    let state = proxy.server().shared().state.load();
    let b = &state.groups[0].retry_budget;
    (b.retries(), b.exhausted())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_resetting_every_other_connection_costs_no_client_an_error() {
    let flaky = Raw::start(|n| if n % 2 == 1 { Act::Reset } else { Act::Ok }).await;
    let good = answering("good", 200, "good").await;
    let mut cfg = retrying(&[flaky.addr, good.addr()], policy(3));
    // A quarter of the requests fail once: more than the default 20 %.
    cfg.upstreams[0].retry_budget.ratio = 1.0;
    let proxy = Proxy::start(&cfg).await;
    let addr = proxy.addr();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..20 {
        clients.spawn(async move {
            let mut client = H1::connect(addr).await;
            let mut failed = Vec::new();
            for _ in 0..50 {
                let r = send(&mut client, Method::GET, b"").await;
                if r.status != 200 {
                    failed.push((r.status, r.header("x-sluice-error").map(str::to_owned)));
                }
            }
            failed
        });
    }
    let failed: Vec<_> = clients.join_all().await.into_iter().flatten().collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let resets = flaky.requests().div_ceil(2);
    assert!(resets >= 100, "the flaky backend reset only {resets} tries");
    let (retries, _) = counters(&proxy);
    assert!(
        retries >= resets as u64,
        "{retries} retries for {resets} resets"
    );
}

#[tokio::test]
async fn post_is_not_retried_unless_the_route_allows_it() {
    for (methods, retried) in [
        (RetryMethods::Idempotent, false),
        (RetryMethods::Listed(vec![Method::POST]), true),
    ] {
        let down = answering("down", 503, "down").await;
        let up = answering("up", 200, "up").await;
        let mut p = policy(2);
        p.methods = methods;
        let proxy = Proxy::start(&retrying(&[down.addr(), up.addr()], p)).await;
        let mut client = H1::connect(proxy.addr()).await;
        let mut ok = 0;
        for _ in 0..10 {
            ok += usize::from(send(&mut client, Method::POST, b"order=1").await.status == 200);
        }
        let (d, u) = (down.request_count(), up.request_count());
        assert!(d >= 1, "round robin reached both backends");
        if retried {
            assert_eq!(ok, 10);
            assert_eq!(d + u, 10 + d, "each 503 was tried once more");
        } else {
            assert_eq!(ok, u);
            assert_eq!(d + u, 10, "one try per POST");
        }
    }
}

#[tokio::test]
async fn a_small_post_body_is_replayed_byte_exact() {
    // The flaky backend reads the whole body, then resets.
    let flaky = Raw::start(|_| Act::Reset).await;
    let echo = Origin::http1().route("/", reply::echo_body).start().await;
    let mut p = policy(2);
    p.methods = RetryMethods::All;
    let proxy = Proxy::start(&retrying(&[flaky.addr, echo.addr()], p)).await;
    let mut client = H1::connect(proxy.addr()).await;
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for _ in 0..6 {
        let r = send(&mut client, Method::POST, &body).await;
        assert_eq!(r.status, 200, "{:?}", r.header("x-sluice-error"));
        assert!(r.body[..] == body[..], "the echo is the body sent");
    }
    assert!(flaky.requests() >= 1);
    for seen in flaky.bodies.lock().iter() {
        assert!(seen[..] == body[..], "the first try carried the whole body");
    }
}

#[tokio::test]
async fn a_body_over_the_replay_buffer_is_not_retried() {
    let flaky = Raw::start(|_| Act::Reset).await;
    let echo = Origin::http1().route("/", reply::echo_body).start().await;
    let mut p = policy(2);
    p.methods = RetryMethods::All;
    p.replay_buffer = 1024;
    let proxy = Proxy::start(&retrying(&[flaky.addr, echo.addr()], p)).await;
    let mut client = H1::connect(proxy.addr()).await;
    let big = vec![b'x'; 4096];
    let mut failed = 0;
    for _ in 0..6 {
        let r = send(&mut client, Method::POST, &big).await;
        if r.status == 200 {
            assert!(r.body[..] == big[..]);
        } else {
            assert_eq!(r.status, 502);
            failed += 1;
        }
    }
    assert!(failed >= 1, "round robin reached the flaky backend");
    assert_eq!(failed, flaky.requests(), "each reset reached the client");
    assert_eq!(flaky.requests() + echo.request_count(), 6, "one try each");
    // Within the buffer, the same requests are retried.
    let small = vec![b'y'; 512];
    for _ in 0..4 {
        assert_eq!(send(&mut client, Method::POST, &small).await.status, 200);
    }
}

#[tokio::test]
async fn a_listed_status_is_retried_on_another_backend_and_never_reaches_the_client() {
    let a = answering("a", 503, "down").await;
    let b = answering("b", 200, "up").await;
    let proxy = Proxy::start(&retrying(&[a.addr(), b.addr()], policy(2))).await;
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..10 {
        let r = send(&mut client, Method::GET, b"").await;
        assert_eq!(r.status, 200);
        assert_eq!((r.header("x-origin"), r.text()), (Some("b"), "up"));
    }
    assert!(a.request_count() >= 1);
    assert_eq!(b.request_count(), 10);
    assert_eq!(counters(&proxy), (a.request_count() as u64, 0));
}

#[tokio::test]
async fn the_budget_caps_retries_in_a_full_outage() {
    let a = answering("down", 503, "down").await;
    let b = answering("down", 503, "down").await;
    let mut cfg = retrying(&[a.addr(), b.addr()], policy(3));
    let budget = &mut cfg.upstreams[0].retry_budget;
    budget.ratio = 0.2;
    budget.min_per_second = 1;
    budget.ttl = Duration::from_secs(10);
    let floor = 10;
    let proxy = Proxy::start(&cfg).await;
    let mut client = H1::connect(proxy.addr()).await;
    let requests = 200;
    for _ in 0..requests {
        assert_eq!(send(&mut client, Method::GET, b"").await.status, 503);
    }
    let tries = a.request_count() + b.request_count();
    // Without the budget: 3 tries each, 600.
    assert!(tries <= requests * 12 / 10 + floor, "{tries} tries");
    assert!(tries > requests, "some were retried");
    let (retries, exhausted) = counters(&proxy);
    assert_eq!(retries as usize, tries - requests);
    assert!(exhausted > 0);
}

#[tokio::test]
async fn a_response_failing_mid_body_is_not_retried() {
    let a = Raw::start(|_| Act::HalfBody).await;
    let b = Raw::start(|_| Act::HalfBody).await;
    let proxy = Proxy::start(&retrying(&[a.addr, b.addr], policy(3))).await;
    let mut conn = RawConn::connect(proxy.addr()).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n")
        .await;
    // The client sees the connection end before the 100 bytes promised:
    // whatever of the response it got (the head and the first 10 bytes
    // once they were flushed), never a complete response from a retry.
    let got = String::from_utf8(conn.read_to_eof().await).expect("ascii");
    if !got.is_empty() {
        let (head, body) = got.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-length: 100"));
        assert_eq!(body, "0123456789");
    }
    assert_eq!(a.requests() + b.requests(), 1);
}

#[tokio::test]
async fn a_try_past_the_per_try_timeout_goes_to_another_backend() {
    let slow = Origin::http1()
        .name("slow")
        .route("/", reply::hang)
        .start()
        .await;
    let fast = answering("fast", 200, "fast").await;
    let mut p = policy(2);
    p.per_try_timeout = Some(Duration::from_millis(200));
    let proxy = Proxy::start(&retrying(&[slow.addr(), fast.addr()], p)).await;
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..4 {
        let r = send(&mut client, Method::GET, b"").await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-origin")),
            (200, Some("fast"))
        );
    }
    assert!(slow.request_count() >= 1);
}

#[tokio::test]
async fn a_body_is_replayed_to_an_http2_backend() {
    // hyper's HTTP/2 client reads the body on a task of its own: the first
    // try's reader is superseded, and the second gets the whole body.
    let down = Origin::h2c()
        .name("down")
        .route("/", reply::text(503, "down"))
        .start()
        .await;
    let echo = Origin::h2c()
        .name("echo")
        .route("/", reply::echo_body)
        .start()
        .await;
    let mut p = policy(2);
    p.methods = RetryMethods::All;
    let mut cfg = retrying(&[down.addr(), echo.addr()], p);
    cfg.upstreams[0].protocol = sluice::config::UpstreamProtocol::H2c;
    let proxy = Proxy::start(&cfg).await;
    let mut client = H1::connect(proxy.addr()).await;
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    for _ in 0..4 {
        let r = send(&mut client, Method::POST, &body).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-origin")),
            (200, Some("echo"))
        );
        assert!(r.body[..] == body[..], "the echo is the body sent");
    }
    assert!(down.request_count() >= 1);
}
