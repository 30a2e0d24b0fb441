//! Request limits with the right status: header block size and count (431),
//! request-target length (414), and a missing Host on HTTP/1.1 (400). None of
//! these requests may reach the backend.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

async fn status_for(request: &[u8]) -> (u16, Origin) {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(request).await;
    let resp = raw.read_response().await;
    (resp.status, origin)
}

#[tokio::test]
async fn oversized_header_block_gives_431() {
    let big = "x".repeat(sluice::config::defaults::MAX_HEADER_BYTES + 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n");
    let (status, origin) = status_for(req.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn too_many_header_fields_gives_431() {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: a.test\r\n");
    for i in 0..sluice::config::defaults::MAX_HEADERS + 20 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let (status, origin) = status_for(req.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn too_long_uri_gives_414() {
    let path = format!(
        "/{}",
        "a".repeat(sluice::config::defaults::MAX_URI_BYTES + 10)
    );
    let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (status, origin) = status_for(req.as_bytes()).await;
    assert_eq!(status, 414);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn missing_host_on_http11_gives_400() {
    let (status, origin) = status_for(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn two_host_headers_give_400() {
    let (status, origin) =
        status_for(b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(origin.request_count(), 0);
}
