//! The service with `--store redis://…` against a real redis-server: the
//! same API contract, with two replicas sharing one Redis (write through
//! one, read through the other).

mod support;

use std::time::Duration;

use sluice_cache::{Config, StoreConfig};
use sluice_testkit::redis_server::RedisServer;
use support::{Cache, contract};
use tokio::time::Instant;

/// One Redis and two cache replicas on it. Field order matters for drop:
/// the replicas go before the server.
struct Pair {
    a: Cache,
    b: Cache,
    redis: RedisServer,
}

async fn pair() -> Pair {
    let redis = RedisServer::start().await;
    let config = Config {
        store: StoreConfig::Redis(redis.url()),
        max_entry_bytes: contract::MAX_ENTRY_BYTES,
        ..Config::default()
    };
    let a = Cache::start(config.clone()).await;
    let b = Cache::start(config).await;
    // Each replica connects to Redis when its task first runs; a request
    // answered proves it did (startup without Redis is an error, see
    // `startup_fails_cleanly_without_redis`).
    for replica in [&a, &b] {
        assert_eq!(replica.get("/ready").await.status, 200);
    }
    Pair { a, b, redis }
}

#[tokio::test]
async fn content_type_round_trip_across_replicas() {
    let p = pair().await;
    contract::content_type_round_trip(&p.a, &p.b).await;
}

#[tokio::test]
async fn both_cache_control_forms_across_replicas() {
    let p = pair().await;
    contract::both_cache_control_forms(&p.a, &p.b).await;
}

#[tokio::test]
async fn bad_requests_get_400_and_store_nothing_in_redis() {
    let p = pair().await;
    contract::bad_requests_get_400_and_store_nothing(&p.a, &p.b).await;
}

#[tokio::test]
async fn invalidate_on_one_replica_removes_for_all() {
    let p = pair().await;
    contract::invalidate_every_way(&p.a, &p.b).await;
    contract::invalidate_every_way(&p.b, &p.a).await;
}

#[tokio::test]
async fn oversized_entries_get_413_with_redis() {
    let p = pair().await;
    contract::oversized_entries_get_413(&p.a, &p.b).await;
}

#[tokio::test]
async fn keys_are_url_encoded_byte_strings_in_redis() {
    let p = pair().await;
    contract::keys_are_url_encoded_byte_strings(&p.a, &p.b).await;
}

#[tokio::test]
async fn max_age_zero_stores_nothing_in_redis() {
    let p = pair().await;
    contract::max_age_zero_stores_nothing(&p.a, &p.b).await;
}

#[tokio::test]
async fn probes_with_redis() {
    let p = pair().await;
    contract::probes_and_unknown_routes(&p.a).await;
}

/// Redis owns the TTL (SET … PX): the same causal bounds as the memory
/// store's `expiry_is_exact`, observed through the other replica.
#[tokio::test]
async fn redis_expiry_is_exact_across_replicas() {
    let p = pair().await;
    let ttl = Duration::from_secs(1);
    let sent = Instant::now();
    assert_eq!(p.a.put("/?key=e", 1, "text/plain", b"v").await.status, 200);
    let acked = Instant::now();
    let mut misses_after = 0;
    while misses_after < 5 {
        let asked = Instant::now();
        let response = p.b.get("/?key=e").await;
        let answered = Instant::now();
        match response.status {
            200 => assert!(asked < acked + ttl, "served after its deadline"),
            404 => {
                assert!(answered >= sent + ttl, "expired before its deadline");
                if asked >= acked + ttl {
                    misses_after += 1;
                }
            }
            other => panic!("unexpected {other}: {response:?}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stats = p.a.stats().await;
    assert_eq!(stats["store"], "redis");
    assert_eq!(stats["entries"], 0, "{stats}");
}

/// Purging through the API never touches live entries (Redis expires the
/// rest itself, so a replica has nothing to sweep).
#[tokio::test]
async fn purge_keeps_live_entries_in_redis() {
    let p = pair().await;
    assert_eq!(
        p.a.put("/?key=live", 3600, "text/plain", b"l").await.status,
        200
    );
    let purge = support::request(p.b.addr, "POST", "/purge", &[], b"").await;
    assert_eq!(purge.status, 200);
    assert_eq!(purge.json()["purged"], 0);
    assert_eq!(p.b.get("/?key=live").await.status, 200);
}

/// Hits and misses are per replica; entries come from the shared store.
#[tokio::test]
async fn stats_with_redis() {
    let p = pair().await;
    assert_eq!(p.a.put("/?key=s", 60, "text/plain", b"v").await.status, 200);
    assert_eq!(p.b.get("/?key=s").await.status, 200);
    assert_eq!(p.b.get("/?key=nope").await.status, 404);
    let b = p.b.stats().await;
    assert_eq!(
        (b["hits"].as_u64(), b["misses"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(b["entries"], 1, "{b}");
    assert!(b["bytes"].as_u64().unwrap() > 0, "{b}");
    let a = p.a.stats().await;
    assert_eq!(
        (a["hits"].as_u64(), a["misses"].as_u64()),
        (Some(0), Some(0)),
        "{a}"
    );
    assert_eq!(a["entries"], 1, "{a}");
}

/// Readiness follows the store: 503 once Redis is gone, and requests that
/// need it fail with 503 rather than hanging or panicking.
#[tokio::test]
async fn not_ready_when_redis_goes_away() {
    let mut p = pair().await;
    assert_eq!(p.a.get("/ready").await.status, 200);
    p.redis.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = p.a.get("/ready").await;
        if ready.status == 503 {
            break;
        }
        assert_eq!(ready.status, 200, "{ready:?}");
        assert!(Instant::now() < deadline, "still ready without Redis");
    }
    assert_eq!(
        p.a.get("/ping").await.status,
        200,
        "liveness does not depend on Redis"
    );
    let get = p.b.get("/?key=x").await;
    assert_eq!(get.status, 503, "{get:?}");
}

/// A replica follows Redis back: ready again once it answers, serving writes.
#[tokio::test]
async fn ready_again_when_redis_returns() {
    let mut p = pair().await;
    p.redis.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.a.get("/ready").await.status != 503 {
        assert!(Instant::now() < deadline, "still ready without Redis");
    }
    p.redis.restart().await;
    while p.a.get("/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "not ready after Redis returned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        p.a.put("/?key=back", 60, "text/plain", b"v").await.status,
        200
    );
    let b_reads = loop {
        let response = p.b.get("/?key=back").await;
        if response.status != 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "replica b never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((b_reads.status, b_reads.body.as_slice()), (200, &b"v"[..]));
}

#[tokio::test]
async fn concurrent_writers_and_readers_across_replicas() {
    let p = pair().await;
    support::concurrent_writers_and_readers(&p.a, &p.b).await;
}

#[tokio::test]
async fn startup_fails_cleanly_without_redis() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        store: StoreConfig::Redis(format!("redis://127.0.0.1:{port}")),
        ..Config::default()
    };
    let result = sluice_cache::run(listener, config, std::future::pending()).await;
    let error = result.expect_err("no Redis to connect to");
    assert!(matches!(error, sluice_cache::Error::Store(_)), "{error:?}");
}
