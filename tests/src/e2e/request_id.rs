//! `X-Request-Id`: a valid id from the client is kept, anything else is
//! replaced by one the proxy makes; either way the backend and the client
//! see the same id, on the proxy's own error answers too.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

/// The id the origin saw and the one the client got back, for `extra`
/// header lines.
async fn ids(extra: &str) -> (Vec<String>, String) {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(format!("GET /id HTTP/1.1\r\nHost: id.test\r\n{extra}\r\n").as_bytes())
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = origin.last_request();
    let at_origin = seen
        .headers
        .get_all("x-request-id")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let back = resp.header_all("x-request-id");
    assert_eq!(back.len(), 1, "{}", resp.head);
    (at_origin, back[0].to_owned())
}

fn is_made(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_valid_client_id_goes_to_the_backend_and_back() {
    let (origin, back) = ids("X-Request-Id: trace-42.a_b:c\r\n").await;
    assert_eq!(origin, ["trace-42.a_b:c"]);
    assert_eq!(back, "trace-42.a_b:c");
}

#[tokio::test]
async fn without_one_the_proxy_makes_one_and_sends_it_both_ways() {
    let (origin, back) = ids("").await;
    assert_eq!(origin.len(), 1);
    assert!(is_made(&back), "{back}");
    assert_eq!(origin[0], back);
}

#[tokio::test]
async fn unsafe_or_repeated_ids_are_replaced_not_passed_on() {
    for extra in [
        "X-Request-Id: a\"b\r\n",
        "X-Request-Id: a b\r\n",
        "X-Request-Id: one\r\nX-Request-Id: two\r\n",
        "X-Request-Id: \r\n",
    ] {
        let (origin, back) = ids(extra).await;
        assert!(is_made(&back), "{extra:?}: {back}");
        assert_eq!(origin, [back], "{extra:?}");
    }
}

#[tokio::test]
async fn each_request_gets_its_own_and_errors_carry_one() {
    // No backend at all: the proxy's own 503 still names the request.
    let proxy = Proxy::start(&config(&[])).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        raw.send(b"GET / HTTP/1.1\r\nHost: e.test\r\n\r\n").await;
        let resp = raw.read_response().await;
        assert_eq!(resp.status, 503, "{}", resp.head);
        let id = resp.header("x-request-id").expect("an id").to_owned();
        assert!(is_made(&id), "{id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
}
