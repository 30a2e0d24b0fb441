//! Upstream keep-alive: steady sequential load opens no new backend
//! connections, and a connection the backend closes while it sits idle in
//! the pool (the idle-close race) never fails a request.

use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::origin::{ClosePolicy, Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;

#[tokio::test]
async fn sequential_requests_reuse_one_backend_connection() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "pooled"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..200 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "pooled");
    }
    // The pool belongs to the worker, not to the client connection.
    for _ in 0..20 {
        let reply = H1::connect(proxy.addr()).await.get("/").await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(origin.request_count(), 220);
    assert_eq!(
        origin.accepted(),
        1,
        "every request should reuse the one pooled connection"
    );
}

#[tokio::test]
async fn backend_closing_after_each_response_never_fails_a_request() {
    let origin = Origin::closing_h1("closer", ClosePolicy::AfterEachResponse).await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut client = H1::connect(proxy.addr()).await;
    for i in 0..100 {
        let reply = client.get(&format!("/{i}")).await;
        assert_eq!(
            reply.status,
            200,
            "request {i} failed: {:?} {:?}",
            reply.headers.get("x-sluice-error"),
            reply.text()
        );
        assert_eq!(reply.text(), "closer");
        // Alternate between racing the FIN and letting it land first.
        if i % 2 == 1 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(origin.request_count(), 100);
}

#[tokio::test]
async fn backend_closing_idle_connections_never_fails_a_request() {
    let idle = Duration::from_millis(20);
    let origin = Origin::closing_h1("idler", ClosePolicy::Idle(idle)).await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut client = H1::connect(proxy.addr()).await;
    for i in 0..60u64 {
        // Gaps around the backend's idle timeout, so some requests find the
        // pooled connection alive, some closed, some closing right then.
        tokio::time::sleep(Duration::from_millis((i * 7) % 41)).await;
        let reply = client.get(&format!("/{i}")).await;
        assert_eq!(
            reply.status,
            200,
            "request {i} failed: {:?} {:?}",
            reply.headers.get("x-sluice-error"),
            reply.text()
        );
    }
    assert_eq!(origin.request_count(), 60);
    assert!(
        origin.accepted() > 1,
        "the backend did close idle connections"
    );
}

#[tokio::test]
async fn a_non_idempotent_request_is_never_sent_twice() {
    // The backend closes every connection after answering, so POSTs keep
    // meeting pooled connections that are closing. Whichever way each race
    // goes (a fresh connection, or a 502), no POST may reach the backend twice.
    let origin = Origin::closing_h1("closer", ClosePolicy::AfterEachResponse).await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut client = H1::connect(proxy.addr()).await;
    for i in 0..60 {
        let req = http::Request::post(format!("/order/{i}"))
            .header("host", "shop.test")
            .body(reply::empty())
            .expect("request");
        let reply = sluice_e2e::harness::client::collect(client.send(req).await).await;
        assert!(
            reply.status == 200 || reply.status == 502,
            "POST {i}: unexpected {}",
            reply.status
        );
    }
    let mut paths: Vec<String> = origin
        .requests()
        .iter()
        .map(|s| s.uri.path().to_owned())
        .collect();
    let total = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), total, "a POST reached the backend twice");
}
