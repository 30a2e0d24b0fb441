//! HTTP/1.1 pipelining: requests written back to back in one segment are
//! answered in order, even when the first is the slowest.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::http1()
        .route("/", reply::echo_path)
        .route(
            "/1",
            reply::delayed(Duration::from_millis(150), reply::echo_path),
        )
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(
        b"GET /1 HTTP/1.1\r\nHost: p.test\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: p.test\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: p.test\r\n\r\n",
    )
    .await;
    for expected in ["/1", "/2", "/3"] {
        let resp = raw.read_response().await;
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert_eq!(resp.body_str(), expected);
    }
    assert_eq!(origin.request_count(), 3);
}
