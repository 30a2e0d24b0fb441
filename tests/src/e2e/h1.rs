//! HTTP/1.1 client → HTTP/1.1 backend.

use sluice_e2e::harness::client::{H1, RawConn};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn h1_to_h1_round_trip() {
    let origin = Origin::http1()
        .route("/hello", reply::text(200, "hello h1"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/hello?x=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello h1");

    let seen = origin.last_request();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/hello?x=1");
    assert_eq!(seen.headers["host"], "test.local");
}

#[tokio::test]
async fn h1_byte_exact_request_reaches_backend_and_response_comes_back() {
    let origin = Origin::http1()
        .route("/", reply::text(201, "made"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"POST /things HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\nX-Custom: a b\r\n\r\nhello")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 201, "{}", resp.head);
    assert_eq!(resp.body, b"made");
    assert_eq!(resp.header("content-length"), Some("4"));
    assert_eq!(resp.header("x-origin"), Some("origin"));

    let seen = origin.last_request();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.uri, "/things");
    assert_eq!(seen.headers["host"], "api.test");
    assert_eq!(seen.headers["x-custom"], "a b");
    assert_eq!(seen.headers["content-length"], "5");
}
