//! An HTTP/2 backend is dialed once: concurrent first requests to an h2c
//! backend wait for the one dial under way and share its connection (the
//! pool's "connecting" guard), under both runtime shapes. When the backend
//! cannot be reached, every one of them still gets a clean 502.

use sluice::config::{RuntimeShape, UpstreamProtocol};
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;

/// Concurrent first requests, each on its own client connection.
const REQUESTS: usize = 16;

/// `REQUESTS` GETs at once to `/c/{i}`, each on a client connection opened
/// beforehand so that the requests reach the proxy together.
async fn concurrent_gets(proxy: SocketAddr) -> Vec<sluice_e2e::harness::client::Reply> {
    let mut clients = Vec::new();
    for _ in 0..REQUESTS {
        clients.push(H1::connect(proxy).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| tokio::spawn(async move { c.get(&format!("/c/{i}")).await }))
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("client task"));
    }
    replies
}

#[tokio::test]
async fn concurrent_first_requests_open_one_h2c_connection() {
    // Work stealing: one pool shared by several threads, the racy shape.
    for (runtime, workers) in [
        (RuntimeShape::ThreadPerCore, 1),
        (RuntimeShape::WorkStealing, 4),
    ] {
        let origin = Origin::h2c().route("/", reply::echo_path).start().await;
        let mut cfg = config(&[origin.addr()]);
        cfg.upstreams[0].protocol = UpstreamProtocol::H2c;
        cfg.runtime = runtime;
        cfg.workers = workers;
        let proxy = Proxy::start(&cfg).await;

        for (i, reply) in concurrent_gets(proxy.addr()).await.into_iter().enumerate() {
            assert_eq!(
                reply.status,
                200,
                "{runtime:?}: {:?}",
                reply.header("x-sluice-error")
            );
            assert_eq!(reply.text(), format!("/c/{i}"));
        }
        assert_eq!(origin.request_count(), REQUESTS);
        assert_eq!(
            origin.accepted(),
            1,
            "{runtime:?}: concurrent first requests each dialed the backend"
        );
        proxy.shutdown().await;
    }
}

#[tokio::test]
async fn concurrent_first_requests_to_an_unreachable_h2c_backend_all_get_502() {
    // Bound, then released: nothing listens, so every dial is refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut cfg = config(&[dead]);
    cfg.upstreams[0].protocol = UpstreamProtocol::H2c;
    // Keep the one backend in rotation whatever the failures.
    cfg.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&cfg).await;

    // The first dial fails; those waiting on it dial for themselves, fail
    // too, and answer: nobody hangs on the dial that failed.
    for reply in concurrent_gets(proxy.addr()).await {
        assert_eq!(reply.status, 502);
        assert_eq!(
            reply.header("x-sluice-error"),
            Some("backend connection failed")
        );
    }
    // A later request dials again rather than waiting on a stale dial.
    let reply = H1::connect(proxy.addr()).await.get("/again").await;
    assert_eq!(reply.status, 502);
}
