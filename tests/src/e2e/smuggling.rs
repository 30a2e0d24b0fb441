//! Request smuggling (RFC 9112 §6.1, §6.3): ambiguous framing is refused with
//! 400 and never forwarded. Each shape is written byte for byte; after the
//! 400 the proxy must close the connection (its framing is unknowable), and
//! the backend must not have seen any request at all.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

async fn assert_refused(request: &[u8]) {
    let origin = Origin::http1()
        .route("/", reply::text(200, "forwarded"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(request).await;
    let resp = raw.read_response().await;
    assert_eq!(
        resp.status, 400,
        "ambiguous framing must get 400, got:\n{}",
        resp.head
    );
    // The proxy closes the connection: nothing after the 400 is parsed.
    let rest = raw.read_to_eof().await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"),
        "a smuggled request was answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(
        origin.request_count(),
        0,
        "the backend saw {:?}",
        origin.requests()
    );
}

#[tokio::test]
async fn content_length_then_transfer_encoding_is_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_then_content_length_is_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn two_different_content_lengths_are_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
}

#[tokio::test]
async fn a_content_length_list_with_different_values_is_refused() {
    assert_refused(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 6\r\n\r\nhello!").await;
}

#[tokio::test]
async fn transfer_encoding_not_ending_in_chunked_is_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_without_chunked_is_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await;
}
