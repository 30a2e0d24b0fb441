//! Routing and the backend agree on the host (RFC 9112 §3.2.2): with an
//! absolute-form target or an HTTP/2 `:authority`, the request is routed by
//! that authority and the backend's `Host` is replaced by it, whatever Host
//! the client sent. A host that is not `host[:port]` (a space, a slash,
//! userinfo, empty) is a 400 that reaches no backend.

use sluice_e2e::harness::client::{H2, RawConn};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

/// Two groups: `a.test` → `a`, `b.test` → `b`; nothing else matches.
async fn two_hosts() -> (Proxy, Origin, Origin) {
    let a = Origin::http1()
        .route("/", reply::text(200, "a"))
        .start()
        .await;
    let b = Origin::http1()
        .route("/", reply::text(200, "b"))
        .start()
        .await;
    let mut cfg = config(&[a.addr()]);
    let mut group_b = cfg.upstreams[0].clone();
    group_b.name = "b".to_owned();
    group_b.backends = vec![(sluice::addr::BackendAddr(b.addr()), 1)];
    cfg.upstreams.push(group_b);
    let mut route_a = cfg.routes[0].clone();
    route_a.host = Some("a.test".to_owned());
    let mut route_b = route_a.clone();
    route_b.host = Some("b.test".to_owned());
    route_b.upstream = 1;
    cfg.routes = vec![route_a, route_b];
    (Proxy::start(&cfg).await, a, b)
}

#[tokio::test]
async fn an_absolute_form_target_replaces_the_clients_host() {
    let (proxy, a, b) = two_hosts().await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body, b"b");
    assert_eq!(a.request_count(), 0);
    let seen = b.last_request();
    assert_eq!(seen.headers["host"], "b.test");
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(seen.headers["x-forwarded-host"], "b.test");
}

#[tokio::test]
async fn an_h2_authority_replaces_a_differing_host_field() {
    let (proxy, a, b) = two_hosts().await;
    let mut client = H2::connect_h2c(proxy.addr()).await;
    let req = http::Request::get("http://b.test/x")
        .header("host", "a.test")
        .body(reply::empty())
        .expect("request");
    let resp = client.send(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(a.request_count(), 0);
    let seen = b.last_request();
    assert_eq!(seen.headers["host"], "b.test");
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
}

#[tokio::test]
async fn hosts_that_are_not_host_port_get_400_and_reach_no_backend() {
    let (proxy, a, b) = two_hosts().await;
    let heads: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET http://user@b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n",
    ];
    for head in heads {
        let mut raw = RawConn::connect(proxy.addr()).await;
        raw.send(head).await;
        let resp = raw.read_response().await;
        assert_eq!(
            resp.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(head),
            resp.head
        );
    }
    assert_eq!(a.request_count() + b.request_count(), 0);
}

/// HTTP/1.0 may leave Host out; what the backend gets is HTTP/1.1, which
/// must carry one (RFC 9112 §3.2): the backend's address, as HTTP/2's
/// `:authority` gets (found by fuzz/connection).
#[tokio::test]
async fn an_http10_request_without_host_reaches_the_backend_with_one() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = origin.last_request();
    let hosts: Vec<_> = seen.headers.get_all("host").iter().collect();
    assert_eq!(hosts, [origin.addr().to_string().as_str()]);
}
