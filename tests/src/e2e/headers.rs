//! Forwarding semantics for headers (RFC 9110 §7.6): hop-by-hop headers are
//! removed in both directions, `X-Forwarded-For` is replaced or appended to
//! per the trust setting, `Via` is added, and repeated fields stay apart.

use http::{Response, StatusCode};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

/// Sends one raw request head through a fresh proxy; returns what the origin saw.
async fn forwarded_head(
    request: &[u8],
    trust_forwarded: bool,
) -> sluice_e2e::harness::origin::Seen {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.forwarding.trust_forwarded_headers = trust_forwarded;
    let proxy = Proxy::start(&cfg).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(request).await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    origin.last_request()
}

#[tokio::test]
async fn each_request_hop_by_hop_header_is_stripped() {
    let seen = forwarded_head(
        b"GET /hop HTTP/1.1\r\n\
          Host: hop.test\r\n\
          Connection: keep-alive, X-Secret-Hop\r\n\
          X-Secret-Hop: named by Connection\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          TE: gzip, deflate\r\n\
          Upgrade: h2c\r\n\
          Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
          X-End-To-End: kept\r\n\r\n",
        false,
    )
    .await;
    let h = &seen.headers;
    for name in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "proxy-authorization",
        "transfer-encoding",
    ] {
        assert!(
            !h.contains_key(name),
            "{name} must not reach the backend: {h:?}"
        );
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(h["host"], "hop.test");
}

#[tokio::test]
async fn te_trailers_is_the_one_te_that_passes() {
    let seen = forwarded_head(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nTE: trailers, deflate;q=0.5\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(seen.headers["te"], "trailers");
}

#[tokio::test]
async fn x_forwarded_for_is_replaced_when_untrusted_and_via_is_added() {
    let seen = forwarded_head(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 6.6.6.6\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nVia: 1.0 elsewhere\r\n\r\n",
        false,
    )
    .await;
    let h = &seen.headers;
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "a.test");
    let vias: Vec<_> = h.get_all("via").iter().collect();
    assert_eq!(vias, ["1.0 elsewhere", "1.1 sluice"]);
}

#[tokio::test]
async fn x_forwarded_for_is_appended_to_when_trusted() {
    let seen = forwarded_head(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n\
          X-Forwarded-Proto: https\r\n\r\n",
        true,
    )
    .await;
    assert_eq!(
        seen.headers["x-forwarded-for"],
        "1.1.1.1, 2.2.2.2, 127.0.0.1"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn x_forwarded_for_is_set_when_absent() {
    let seen = forwarded_head(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", true).await;
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "a.test");
}

#[tokio::test]
async fn response_hop_by_hop_headers_are_stripped_and_via_added() {
    let origin = Origin::http1()
        .route("/", |_| async {
            let mut r = Response::new(reply::full("body"));
            let h = r.headers_mut();
            h.insert("connection", "x-resp-hop".parse().expect("value"));
            h.insert("x-resp-hop", "named by Connection".parse().expect("value"));
            h.insert("keep-alive", "timeout=5".parse().expect("value"));
            h.insert("proxy-authenticate", "Basic".parse().expect("value"));
            h.insert("x-resp-kept", "yes".parse().expect("value"));
            r
        })
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    for name in ["x-resp-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            resp.header(name).is_none(),
            "{name} must not reach the client:\n{}",
            resp.head
        );
    }
    // Whatever Connection the proxy sends is its own, never the backend's list.
    assert!(
        resp.header_all("connection")
            .iter()
            .all(|c| !c.to_ascii_lowercase().contains("x-resp-hop")),
        "{}",
        resp.head
    );
    assert_eq!(resp.header("x-resp-kept"), Some("yes"));
    assert_eq!(resp.header("via"), Some("1.1 sluice"));
    assert_eq!(resp.body, b"body");
}

#[tokio::test]
async fn repeated_set_cookie_lines_stay_apart() {
    let origin = Origin::http1()
        .route("/", |_| async {
            let mut r = reply::status(StatusCode::OK);
            for c in [
                "a=1; Path=/",
                "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
                "c=3; HttpOnly",
            ] {
                r.headers_mut()
                    .append("set-cookie", c.parse().expect("value"));
            }
            r
        })
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(
        resp.header_all("set-cookie"),
        [
            "a=1; Path=/",
            "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
            "c=3; HttpOnly"
        ],
        "three separate Set-Cookie lines, in order:\n{}",
        resp.head
    );
}
