//! A client that goes away while its response is pending: the proxy cancels
//! the upstream request, so the backend sees its connection closed, and that
//! connection is never used for another request.

use sluice_e2e::harness::client::{H1, H2, RawConn};
use sluice_e2e::harness::eventually;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn client_disconnect_during_a_slow_response_closes_the_backend_connection() {
    let origin = Origin::http1()
        .route("/slow", reply::hang)
        .route("/", reply::text(200, "fast"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    eventually("the slow request to reach the backend", || {
        origin.request_count() == 1
    })
    .await;
    drop(raw);

    eventually("the backend to see its connection closed", || {
        origin.closed() == 1
    })
    .await;

    // The next request gets a fresh backend connection, never the abandoned one.
    let reply = H1::connect(proxy.addr()).await.get("/").await;
    assert_eq!(reply.status, 200);
    let last = origin.last_request();
    assert_eq!(last.conn, 2, "the abandoned connection must not be reused");
    assert_eq!(origin.accepted(), 2);
}

#[tokio::test]
async fn h2_stream_reset_during_a_slow_response_closes_the_backend_connection() {
    let origin = Origin::http1()
        .route("/slow", reply::hang)
        .route("/", reply::text(200, "fast"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut client = H2::connect_h2c(proxy.addr()).await;
    let slow = {
        let mut c = client.clone();
        tokio::spawn(async move { c.get("/slow").await })
    };
    eventually("the slow request to reach the backend", || {
        origin.request_count() == 1
    })
    .await;
    // Dropping the response future resets the stream; the connection stays.
    slow.abort();

    eventually("the backend to see its connection closed", || {
        origin.closed() == 1
    })
    .await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(origin.last_request().conn, 2);
}
