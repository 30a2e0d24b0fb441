//! `[[rate_limit]]`: token buckets per client, route or header value; a
//! request beyond the burst gets a 429 with `Retry-After` and never reaches
//! the backend. Global limits, across real processes: `global_limits`.

use sluice::config::{RateKey, RateLimitConfig};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;

/// A limit on every request: `burst` at once, then a token every 1000 s
/// (no refill within a test).
fn limit(name: &str, key: RateKey, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        name: name.to_owned(),
        key,
        rate: 0.001,
        burst,
        host: None,
        path: None,
        global: false,
        max_keys: 1000,
    }
}

async fn origin() -> Origin {
    Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

/// One request on a fresh connection; its status and `Retry-After`.
pub(super) async fn get(proxy: SocketAddr, path: &str, extra: &str) -> (u16, Option<String>) {
    let mut raw = RawConn::connect(proxy).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n{extra}Connection: close\r\n\r\n");
    raw.send(req.as_bytes()).await;
    let resp = raw.read_response().await;
    if resp.status == 429 {
        assert_eq!(resp.header("x-sluice-error"), Some("rate limited"));
    }
    (resp.status, resp.header("retry-after").map(str::to_owned))
}

#[tokio::test]
async fn beyond_the_burst_a_client_gets_429_with_retry_after() {
    let origin = origin().await;
    let mut c = config(&[origin.addr()]);
    c.rate_limits = vec![limit("per-client", RateKey::Client(Default::default()), 3)];
    let proxy = Proxy::start(&c).await;
    for _ in 0..3 {
        assert_eq!(get(proxy.addr(), "/", "").await, (200, None));
    }
    let (status, retry_after) = get(proxy.addr(), "/", "").await;
    assert_eq!(status, 429);
    // A token every 1000 s: the next one is 1000 s away, give or take
    // what has refilled since (rounded up).
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((990..=1000).contains(&secs), "{secs}");
    assert_eq!(origin.request_count(), 3);
}

#[tokio::test]
async fn header_values_have_their_own_buckets_and_no_header_is_not_limited() {
    let origin = origin().await;
    let mut c = config(&[origin.addr()]);
    let key = RateKey::Header(http::HeaderName::from_static("x-api-key"));
    c.rate_limits = vec![limit("per-key", key, 2)];
    let proxy = Proxy::start(&c).await;
    let mut statuses = Vec::new();
    for k in ["a", "a", "a", "b", "b", "b"] {
        let h = format!("X-Api-Key: {k}\r\n");
        statuses.push(get(proxy.addr(), "/", &h).await.0);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    for _ in 0..5 {
        assert_eq!(get(proxy.addr(), "/", "").await.0, 200);
    }
}

#[tokio::test]
async fn a_limit_scoped_to_a_path_leaves_other_paths_alone() {
    let origin = origin().await;
    let mut c = config(&[origin.addr()]);
    let mut l = limit("api", RateKey::Route, 1);
    l.path = Some("/api".into());
    l.host = Some("a.test".into());
    c.rate_limits = vec![l];
    let proxy = Proxy::start(&c).await;
    assert_eq!(get(proxy.addr(), "/api/x", "").await.0, 200);
    assert_eq!(get(proxy.addr(), "/api/y", "").await.0, 429);
    for _ in 0..3 {
        assert_eq!(get(proxy.addr(), "/other", "").await.0, 200);
    }
}

/// Review finding 11: other spellings of a limited path are the same path
/// (a backend reads them as `/login`), so they take from the same bucket;
/// each still reaches the backend as it was sent.
#[tokio::test]
async fn other_spellings_of_a_limited_path_take_from_its_bucket() {
    let origin = origin().await;
    let mut c = config(&[origin.addr()]);
    let mut l = limit("login", RateKey::Route, 2);
    l.path = Some("/login".into());
    c.rate_limits = vec![l];
    let proxy = Proxy::start(&c).await;
    assert_eq!(get(proxy.addr(), "//login", "").await.0, 200);
    assert_eq!(
        origin.last_request().uri.path(),
        "//login",
        "forwarded as sent"
    );
    assert_eq!(get(proxy.addr(), "/%6Cogin", "").await.0, 200);
    for spelling in [
        "/login",
        "//login",
        "/%6cogin",
        "/x/../login",
        "/%2e%2E/login/",
        "/./login?x=1",
        "///login//more",
    ] {
        assert_eq!(get(proxy.addr(), spelling, "").await.0, 429, "{spelling}");
    }
    // Not the same path: not limited.
    for other in ["/logins/../api", "/%2Flogin", "/Login"] {
        assert_eq!(get(proxy.addr(), other, "").await.0, 200, "{other}");
    }
    assert_eq!(origin.request_count(), 5);
}
