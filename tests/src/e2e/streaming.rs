//! Request bodies stream as they come: chunked uploads of unknown length, and
//! `Expect: 100-continue`, where the client waits for the interim response
//! before sending its body.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn chunked_upload_streams_to_the_backend_and_back() {
    let origin = Origin::http1().route("/", reply::echo_body).start().await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n1\r\n \r\n6\r\nchunks\r\n0\r\n\r\n",
    )
    .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body_str(), "hello chunks");
    let seen = origin.last_request();
    assert!(!seen.headers.contains_key("content-length"));
    // Framing is per hop: the proxy re-frames, it does not copy the header.
    assert!(
        seen.headers
            .get("transfer-encoding")
            .is_none_or(|te| te == "chunked"),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn expect_100_continue_gets_the_interim_response_then_the_body_flows() {
    let origin = Origin::http1().route("/", reply::echo_body).start().await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(
        b"PUT /doc HTTP/1.1\r\nHost: a.test\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    // The body is withheld until the proxy says to go on.
    let interim = raw.read_head().await;
    assert_eq!(interim.status, 100, "{}", interim.head);
    raw.send(b"payload").await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body_str(), "payload");
    let seen = origin.last_request();
    assert_eq!(seen.headers["content-length"], "7");
}
