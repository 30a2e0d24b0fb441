//! A panic while handling one request (the engine's `test-util` feature
//! panics on `x-sluice-test-panic`) gives that request a 500 and leaves the
//! server serving.

use sluice_e2e::harness::client::{H1, RawConn};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn a_handler_panic_gives_500_and_the_server_keeps_serving() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "still here"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Sluice-Test-Panic: 1\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 500, "{}", resp.head);
    assert_eq!(resp.header("x-sluice-error"), Some("internal error"));
    assert_eq!(origin.request_count(), 0);

    // A new connection is served normally, and so are several more.
    for _ in 0..3 {
        let reply = H1::connect(proxy.addr()).await.get("/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "still here");
    }
}
