//! The backend is blamed for its own time and its own failures only, and
//! every failure it causes reaches its state machine (issue 15 review
//! findings 3-5): a route's `per_try_timeout` and `timeouts.upstream_body`
//! never run while the backend waits on a slow client's upload; a response
//! body that the backend breaks off (reset or stall) counts like any other
//! failure: a streak of them ejects, and a half-open trial that fails
//! mid-body re-opens the breaker.

use super::admin::with_admin;
use super::slow_client::{body_length, ejectable_after};
use bytes::Bytes;
use http::Response;
use http_body::Frame;
use http_body_util::BodyExt;
use sluice::config::{Passive, RetryMethods, RetryPolicy};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Longer than the backend-side timeouts of these tests: each pause of
/// the client's upload.
const PAUSE: Duration = Duration::from_millis(600);
const BACKEND_LIMIT: Duration = Duration::from_millis(250);

/// A response body announcing 100 bytes that sends 10 and breaks off
/// (once they are flushed: hyper drops what it has not written yet).
struct Broken {
    sent: bool,
    flushed: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = sluice::error::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !std::mem::replace(&mut self.sent, true) {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))));
        }
        std::task::ready!(self.flushed.as_mut().poll(cx));
        Poll::Ready(Some(Err("broken off".into())))
    }
}

fn broken() -> Response<reply::Body> {
    let body = Broken {
        sent: false,
        flushed: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
    };
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, "100".parse().expect("value"));
    r
}

/// A GET whose response the backend breaks off: the head, then the 10
/// bytes before the connection ends.
async fn get_broken(proxy: &Proxy, path: &str) {
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
        .await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(raw.read_to_eof().await, b"0123456789", "a truncated body");
}

/// The data of a chunked body (whole, up to its last chunk), or `None`
/// when it was cut before its end.
fn unchunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..line]).ok()?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        b = &b[line + 2..];
        if n == 0 {
            return (b == b"\r\n").then_some(out);
        }
        out.extend_from_slice(b.get(..n)?);
        b = b.get(n + 2..)?;
    }
}

/// A member's failures; it is still healthy and was never ejected.
async fn unblamed(admin: &Admin, backend: std::net::SocketAddr) -> u64 {
    let m = admin.member(backend).await.expect("a member");
    assert_eq!(m["state"].as_str(), Some("healthy"), "{m}");
    assert_eq!(m["ejections"].as_u64(), Some(0), "{m}");
    m["failures"].as_u64().expect("failures")
}

/// Finding 3: a try's clock stops while the client's body is awaited.
#[tokio::test]
async fn a_slow_upload_never_runs_out_the_per_try_timeout() {
    let a = Origin::http1()
        .name("a")
        .route("/", body_length)
        .start()
        .await;
    let b = Origin::http1()
        .name("b")
        .route("/", body_length)
        .start()
        .await;
    let mut c = with_admin(&[a.addr(), b.addr()]);
    c.routes[0].retry = Some(Arc::new(RetryPolicy {
        attempts: 2,
        per_try_timeout: Some(BACKEND_LIMIT),
        methods: RetryMethods::All,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..RetryPolicy::default()
    }));
    c.limits.min_body_rate = 0;
    c.timeouts.client_body = Duration::from_secs(5);
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    // Four bytes, a pause longer than the per-try timeout before each.
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\n")
        .await;
    for _ in 0..4 {
        tokio::time::sleep(PAUSE).await;
        raw.send(b"x").await;
    }
    let r = raw.read_response().await;
    assert_eq!((r.status, r.body_str()), (200, "4"));
    assert_eq!(
        a.request_count() + b.request_count(),
        1,
        "one try, never timed out and retried"
    );
    assert_eq!(unblamed(&admin, a.addr()).await, 0);
    assert_eq!(unblamed(&admin, b.addr()).await, 0);
}

/// Finding 4: an echo streams its answer while the upload still arrives;
/// its silences while it waits on the client are not stalls. A backend that
/// stalls on its own is still cut, and ejected (finding 5).
#[tokio::test]
async fn an_echo_of_a_slow_upload_is_not_cut_a_real_stall_is() {
    let origin = Origin::http1()
        .name("echo")
        .route("/echo", reply::echo_body)
        .route("/broken", |_| async { broken() })
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.upstreams[0].passive = ejectable_after(1);
    c.timeouts.upstream_body = BACKEND_LIMIT;
    c.timeouts.client_body = Duration::from_secs(5);
    c.limits.min_body_rate = 0;
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await;
    for part in ["ab", "cd", "ef", "gh"] {
        raw.send(format!("2\r\n{part}\r\n").as_bytes()).await;
        tokio::time::sleep(PAUSE).await;
    }
    raw.send(b"0\r\n\r\n").await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 200);
    let body = raw.read_to_eof().await;
    assert_eq!(
        unchunk(&body).as_deref(),
        Some(&b"abcdefgh"[..]),
        "the whole echo: {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(unblamed(&admin, origin.addr()).await, 0);

    // The backend breaks a body off on its own: its fault, at once.
    get_broken(&proxy, "/broken").await;
    let m = admin.wait_state(origin.addr(), "ejected").await;
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("1 consecutive failures")),
        "{m}"
    );
}

/// Finding 5: failures after the head eject at the streak's threshold,
/// with the reason `GET /backends` shows.
#[tokio::test]
async fn consecutive_mid_body_failures_eject() {
    let origin = Origin::http1()
        .name("broken")
        .route("/", |_| async { broken() })
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.upstreams[0].passive = ejectable_after(3);
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    for _ in 0..2 {
        get_broken(&proxy, "/").await;
    }
    assert_eq!(unblamed(&admin, origin.addr()).await, 2, "below the streak");
    get_broken(&proxy, "/").await;
    let m = admin.member(origin.addr()).await.expect("a member");
    assert_eq!(m["state"], "ejected", "{m}");
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("3 consecutive failures")),
        "{m}"
    );
    assert_eq!(m["failures"].as_u64(), Some(3), "{m}");
}

/// Finding 5: a half-open trial whose head is a 200 but whose body breaks
/// off failed: the breaker opens again (before, it counted as a success).
#[tokio::test]
async fn a_half_open_trial_failing_mid_body_reopens_the_breaker() {
    let breaking = Arc::new(AtomicBool::new(false));
    let brk = breaking.clone();
    let origin = Origin::http1()
        .name("flaky")
        .route("/", move |req| {
            let breaks = brk.load(Ordering::SeqCst);
            async move {
                if breaks {
                    broken()
                } else {
                    reply::text(500, "down")(req).await
                }
            }
        })
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.upstreams[0].passive = Passive {
        consecutive_5xx: 1,
        ejection: Duration::from_millis(500),
        max_ejection: Duration::from_secs(60),
        max_ejected_percent: 100,
        half_open_trials: 1,
        half_open_successes: 3,
        ..Passive::default()
    };
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let r = sluice_e2e::harness::client::H1::connect(proxy.addr())
        .await
        .get("/")
        .await;
    assert_eq!(r.status, 500);
    admin.wait_state(origin.addr(), "half-open").await;
    breaking.store(true, Ordering::SeqCst);
    get_broken(&proxy, "/").await;
    let m = admin.member(origin.addr()).await.expect("a member");
    let reopened = m["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .any(|t| {
            t["from"] == "half-open"
                && t["to"] == "ejected"
                && t["reason"] == "a trial request failed; ejected for 1s"
        });
    assert!(reopened, "{m}");
    assert_eq!(m["breaker"]["open_count"].as_u64(), Some(2), "{m}");
    assert_eq!(m["breaker"]["trial_failures"].as_u64(), Some(1), "{m}");
    assert_eq!(m["breaker"]["trial_successes"].as_u64(), Some(0), "{m}");
}
