//! `[[rate_limit]]`: token buckets per client, route or header value; a
//! request beyond the burst gets a 429 with `Retry-After` and never reaches
//! the backend. Global limits share one bucket between replicas through a
//! real `redis-server`, and fall back to local limits when it is gone.

use sluice::config::{GlobalLimits, RateKey, RateLimitConfig};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_testkit::redis_server::RedisServer;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
async fn get(proxy: SocketAddr, path: &str, extra: &str) -> (u16, Option<String>) {
    let mut raw = RawConn::connect(proxy).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n{extra}Connection: close\r\n\r\n");
    raw.send(req.as_bytes()).await;
    let resp = raw.read_response().await;
    if resp.status == 429 {
        assert_eq!(resp.header("x-sluice-error"), Some("rate limited"));
    }
    (resp.status, resp.header("retry-after").map(str::to_owned))
}

async fn count_ok(proxy: SocketAddr, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let (status, _) = get(proxy, "/", "").await;
        assert!(status == 200 || status == 429, "{status}");
        ok += usize::from(status == 200);
    }
    ok
}

#[tokio::test]
async fn beyond_the_burst_a_client_gets_429_with_retry_after() {
    let origin = origin().await;
    let mut c = config(&[origin.addr()]);
    c.rate_limits = vec![limit("per-client", RateKey::Client, 3)];
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

fn global_config(origin: &Origin, redis: &RedisServer, burst: u32) -> sluice::Config {
    let mut c = config(&[origin.addr()]);
    let mut l = limit("shared", RateKey::Route, burst);
    l.global = true;
    c.rate_limits = vec![l];
    c.global_limits = Some(GlobalLimits {
        redis: redis.url(),
        sync_interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
    });
    c
}

/// Waits until `proxy` has finished `n` more syncs with Redis than `since`.
async fn synced(proxy: &Proxy, n: u64) {
    let count = || {
        let state = proxy.server().shared().state.load();
        state.rate_limits.sync.successes.load(Ordering::Relaxed)
    };
    let start = count();
    tokio::time::timeout(Duration::from_secs(10), async {
        while count() < start + n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("syncs with Redis");
}

#[tokio::test]
async fn two_replicas_share_one_global_bucket_through_redis() {
    let redis = RedisServer::start().await;
    let origin = origin().await;
    let c = global_config(&origin, &redis, 20);
    let a = Proxy::start(&c).await;
    let b = Proxy::start(&c).await;
    // B learns the key, so that it syncs it from now on.
    let mut ok = count_ok(b.addr(), 1).await;
    synced(&b, 2).await;
    // A spends most of the shared burst; both replicas then sync.
    ok += count_ok(a.addr(), 15).await;
    synced(&a, 2).await;
    synced(&b, 2).await;
    // B has what is left of the 20, not a burst of its own.
    let on_b = count_ok(b.addr(), 15).await;
    ok += on_b;
    // One shared bucket of 20 (two local ones would pass 1 + 15 + 15 = 31);
    // slack for the refill of a token every 1000 s and a sync in flight.
    assert!((19..=22).contains(&ok), "200s across both replicas: {ok}");
    assert!(on_b <= 6, "B passed {on_b} after A took 15 of 20");
    assert_eq!(origin.request_count(), ok);
}

#[tokio::test]
async fn with_redis_gone_global_limits_run_locally_and_requests_are_served() {
    let mut redis = RedisServer::start().await;
    let origin = origin().await;
    let proxy = Proxy::start(&global_config(&origin, &redis, 5)).await;
    synced(&proxy, 1).await;
    redis.kill();
    // Every request is answered at once; the local bucket still limits.
    let ok = count_ok(proxy.addr(), 8).await;
    assert_eq!(ok, 5);
    let failures = || {
        let state = proxy.server().shared().state.load();
        state.rate_limits.sync.failures.load(Ordering::Relaxed)
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while failures() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("failed syncs are counted");
    // Redis back (empty): the counts are shared again.
    redis.restart().await;
    synced(&proxy, 2).await;
}
