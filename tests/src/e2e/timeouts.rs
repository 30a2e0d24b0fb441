//! Client-side timeouts: a client that never finishes its request head
//! (slowloris) cannot hold a connection forever.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_header = Duration::from_millis(300);
    let proxy = Proxy::start(&cfg).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: ")
        .await;
    // The proxy closes the connection (with or without a 408 first); the
    // read is bounded, so a proxy that waits forever fails here.
    let rest = raw.read_to_eof().await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer to an unfinished head: {text:?}"
    );
    assert_eq!(origin.request_count(), 0);
}
