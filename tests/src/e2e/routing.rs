//! Routing: host and path prefix pick the group; nothing matching is a 404.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn no_matching_route_gives_404_and_a_match_is_proxied() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "routed"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    // Start from the catch-all route so fields added later keep their defaults.
    let mut only_api = cfg.routes[0].clone();
    only_api.host = Some("app.test".to_owned());
    only_api.path = "/api".to_owned();
    cfg.routes = vec![only_api];
    let proxy = Proxy::start(&cfg).await;
    let mut raw = RawConn::connect(proxy.addr()).await;

    raw.send(b"GET /api/x HTTP/1.1\r\nHost: other.test\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 404, "{}", resp.head);
    assert!(resp.header("x-sluice-error").is_some(), "{}", resp.head);

    raw.send(b"GET /web HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    assert_eq!(raw.read_response().await.status, 404);
    assert_eq!(origin.request_count(), 0);

    raw.send(b"GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body, b"routed");
}
