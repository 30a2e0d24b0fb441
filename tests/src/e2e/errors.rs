//! Upstream failures become explicit, fast errors: a dead backend gives 502,
//! a slow one 504, an empty group 503, each with `x-sluice-error` and a body.

use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;

/// An address on which nothing listens (bound, then released).
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

#[tokio::test]
async fn dead_backend_gives_502_with_a_reason() {
    let proxy = Proxy::start(&config(&[closed_port()])).await;
    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.header("x-sluice-error"),
        Some("backend connection failed")
    );
    assert!(!reply.body.is_empty());
    // The connection to the client stays usable.
    assert_eq!(client.get("/").await.status, 502);
}

#[tokio::test]
async fn a_dead_backend_is_skipped_for_a_live_one() {
    let live = Origin::http1()
        .route("/", reply::text(200, "alive"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[closed_port(), live.addr()])).await;
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..4 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200, "{:?}", reply.header("x-sluice-error"));
        assert_eq!(reply.text(), "alive");
    }
}

#[tokio::test]
async fn slow_backend_gives_504() {
    let origin = Origin::http1().route("/", reply::hang).start().await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.upstream_response = Duration::from_millis(300);
    let proxy = Proxy::start(&cfg).await;
    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/slow").await;
    assert_eq!(reply.status, 504);
    assert_eq!(
        reply.header("x-sluice-error"),
        Some("backend response timed out")
    );
    assert_eq!(origin.request_count(), 1);
}

#[tokio::test]
async fn a_group_without_backends_gives_503_saying_so() {
    let proxy = Proxy::start(&config(&[])).await;
    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-sluice-error"), Some("no backend available"));
    assert!(reply.text().contains("no backend"), "{:?}", reply.text());
}

/// Picking again after a refused connection: the failed attempt still
/// counts against its backend while the next pick is made, so a policy that
/// weighs load or latency (p2c, where a refusal also looks fast) turns to
/// the live backend instead of choosing the dead one again and giving up.
#[tokio::test]
async fn a_dead_backend_is_skipped_for_a_live_one_under_p2c() {
    let live = Origin::http1()
        .route("/", reply::text(200, "alive"))
        .start()
        .await;
    let mut cfg = config(&[closed_port(), live.addr()]);
    cfg.upstreams[0].policy = sluice::balance::Policy::P2c;
    // Passive ejection off: every request meets the dead backend in rotation.
    cfg.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&cfg).await;
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..16 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200, "{:?}", reply.header("x-sluice-error"));
        assert_eq!(reply.text(), "alive");
    }
}

/// A request body that breaks its own chunked framing is the client's
/// fault and says so: 400 with the real cause in `x-sluice-error` (it read
/// "client aborted"), and the backend is not blamed.
#[tokio::test]
async fn a_malformed_chunked_body_gets_400_naming_the_cause() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let bodies: [&[u8]; 3] = [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5;\r\nhello\r\n0\r\nbad trailer line\r\n\r\n",
    ];
    for body in bodies {
        let mut raw = sluice_e2e::harness::client::RawConn::connect(proxy.addr()).await;
        let mut req =
            b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        raw.send(&req).await;
        let resp = raw.read_response().await;
        assert_eq!(
            resp.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            resp.head
        );
        assert_eq!(
            resp.header("x-sluice-error"),
            Some("malformed request body"),
            "{:?}: {}",
            String::from_utf8_lossy(body),
            resp.head
        );
    }
    // Not the backend's fault: it stays in rotation and answers.
    let mut client = H1::connect(proxy.addr()).await;
    assert_eq!(client.get("/").await.status, 200);
}
