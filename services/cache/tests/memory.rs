//! The service with the in-process (moka) store, over real loopback sockets.

mod support;

use std::time::Duration;

use sluice_cache::Config;
use support::{Cache, contract, request};
use tokio::time::Instant;

fn config() -> Config {
    Config {
        max_entry_bytes: contract::MAX_ENTRY_BYTES,
        ..Config::default()
    }
}

async fn cache() -> Cache {
    Cache::start(config()).await
}

#[tokio::test]
async fn content_type_round_trip() {
    let c = cache().await;
    contract::content_type_round_trip(&c, &c).await;
}

#[tokio::test]
async fn both_cache_control_forms() {
    let c = cache().await;
    contract::both_cache_control_forms(&c, &c).await;
}

#[tokio::test]
async fn bad_requests_get_400_and_store_nothing() {
    let c = cache().await;
    contract::bad_requests_get_400_and_store_nothing(&c, &c).await;
}

#[tokio::test]
async fn invalidate_every_way() {
    let c = cache().await;
    contract::invalidate_every_way(&c, &c).await;
}

#[tokio::test]
async fn oversized_entries_get_413() {
    let c = cache().await;
    contract::oversized_entries_get_413(&c, &c).await;
}

#[tokio::test]
async fn keys_are_url_encoded_byte_strings() {
    let c = cache().await;
    contract::keys_are_url_encoded_byte_strings(&c, &c).await;
}

#[tokio::test]
async fn max_age_zero_stores_nothing() {
    let c = cache().await;
    contract::max_age_zero_stores_nothing(&c, &c).await;
}

#[tokio::test]
async fn probes_and_unknown_routes() {
    let c = cache().await;
    contract::probes_and_unknown_routes(&c).await;
}

/// An entry with max-age=1 is served while its deadline cannot have passed
/// and never once it must have. Both bounds come from causality, not speed:
/// the server stamps the deadline after `sent` and before `acked`, so a reply
/// received before `sent + 1 s` was answered in time (must be a hit), and a
/// request sent after `acked + 1 s` arrives late (must be a miss).
#[tokio::test]
async fn expiry_is_exact() {
    let c = Cache::start(Config {
        // Keep the background sweep out of it: reads alone must get it right.
        purge_interval: Duration::from_secs(3600),
        ..config()
    })
    .await;
    let ttl = Duration::from_secs(1);
    let sent = Instant::now();
    assert_eq!(c.put("/?key=e", 1, "text/plain", b"v").await.status, 200);
    let acked = Instant::now();

    let mut hits_in_time = 0;
    let mut misses_after = 0;
    while misses_after < 5 {
        let asked = Instant::now();
        let response = c.get("/?key=e").await;
        let answered = Instant::now();
        match response.status {
            200 => {
                assert!(asked < acked + ttl, "served after its deadline");
                assert_eq!(response.body, b"v");
                if answered < sent + ttl {
                    hits_in_time += 1;
                }
            }
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
    // On any machine that answers a loopback GET in under a second, the
    // entry was seen live at least once.
    if acked < sent + ttl / 2 {
        assert!(hits_in_time > 0, "never served before its deadline");
    }
    let stats = c.stats().await;
    assert_eq!(stats["expirations"], 1, "{stats}");
    assert_eq!(stats["entries"], 0, "{stats}");
}

/// `POST /purge` removes the expired entry and leaves live ones alone.
#[tokio::test]
async fn purge_removes_only_expired_entries() {
    let c = Cache::start(Config {
        purge_interval: Duration::from_secs(3600),
        ..config()
    })
    .await;
    for i in 0..10 {
        let live = c
            .put(&format!("/?key=live-{i}"), 3600, "text/plain", b"l")
            .await;
        assert_eq!(live.status, 200);
    }
    assert_eq!(
        c.put("/?key=short", 1, "text/plain", b"s").await.status,
        200
    );
    let acked = Instant::now();

    let early = request(c.addr, "POST", "/purge", &[], b"").await;
    assert_eq!(early.status, 200, "{early:?}");
    assert!(early.json()["purged"].as_u64().is_some(), "{early:?}");
    // Wait until the short entry's deadline has certainly passed (no read of
    // it in between: a read would remove it itself).
    tokio::time::sleep_until(acked + Duration::from_secs(1)).await;

    let purge = request(c.addr, "POST", "/purge", &[], b"").await;
    assert_eq!(purge.status, 200);
    let purged = purge.json()["purged"].as_u64().expect("purged count");
    assert!(purged <= 1, "{purge:?}");
    let stats = c.stats().await;
    assert_eq!(stats["entries"], 10, "{stats}");
    assert_eq!(stats["expirations"], 1, "{stats}");
    for i in 0..10 {
        assert_eq!(c.get(&format!("/?key=live-{i}")).await.status, 200);
    }
    assert_eq!(c.get("/?key=short").await.status, 404);
}

/// The background sweep (not a read) removes expired entries on its own.
#[tokio::test]
async fn background_purge_removes_expired_entries() {
    let c = Cache::start(Config {
        purge_interval: Duration::from_millis(50),
        ..config()
    })
    .await;
    assert_eq!(
        c.put("/?key=live", 3600, "text/plain", b"l").await.status,
        200
    );
    assert_eq!(
        c.put("/?key=short", 1, "text/plain", b"s").await.status,
        200
    );
    // Poll the stats (which never read entries) until the sweep has run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = c.stats().await;
        if stats["expirations"] == 1 {
            assert_eq!(stats["entries"], 1, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "never purged: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.get("/?key=live").await.status, 200);
}

#[tokio::test]
async fn concurrent_writers_and_readers() {
    let c = cache().await;
    support::concurrent_writers_and_readers(&c, &c).await;
}

#[tokio::test]
async fn memory_bound_evicts() {
    let max_bytes = 64 * 1024;
    let c = support::filled_past_the_bound().await;
    let stats = c.stats().await;
    assert!(stats["evictions"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["bytes"].as_u64().unwrap() <= max_bytes, "{stats}");
    assert!(stats["entries"].as_u64().unwrap() < 64, "{stats}");
    assert!(stats["entries"].as_u64().unwrap() > 0, "{stats}");
}

#[tokio::test]
async fn stats_count_hits_misses_entries_and_bytes() {
    let c = cache().await;
    let fresh = c.stats().await;
    assert_eq!(
        fresh,
        serde_json::json!({"store": "memory", "entries": 0, "bytes": 0, "hits": 0,
                           "misses": 0, "evictions": 0, "expirations": 0})
    );
    assert_eq!(c.get("/?key=a").await.status, 404);
    assert_eq!(
        c.put("/?key=a", 60, "text/plain", b"12345").await.status,
        200
    );
    assert_eq!(c.get("/?key=a").await.status, 200);
    assert_eq!(c.get("/?key=a").await.status, 200);
    // A 400 is neither a hit nor a miss.
    assert_eq!(c.get("/").await.status, 400);
    let stats = c.stats().await;
    assert_eq!(stats["hits"], 2, "{stats}");
    assert_eq!(stats["misses"], 1, "{stats}");
    assert_eq!(stats["entries"], 1, "{stats}");
    // Three buffers (key, body, content type) and the entry's own overhead.
    let expected_bytes = 1
        + 5
        + "text/plain".len() as u64
        + 3 * sluice_cache::memory::BUFFER_OVERHEAD_BYTES
        + sluice_cache::memory::ENTRY_OVERHEAD_BYTES;
    assert_eq!(stats["bytes"], expected_bytes, "{stats}");
}

/// Shutdown stops accepting, lets the in-flight request finish, and `run()`
/// returns Ok.
#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    use tokio::io::AsyncWriteExt;

    let mut c = cache().await;
    // Half a request: headers and part of the body.
    let mut stream = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    stream
        .write_all(
            b"POST /?key=inflight HTTP/1.1\r\nHost: x\r\nCache-Control: max-age=60\r\n\
              Content-Length: 10\r\n\r\nhello",
        )
        .await
        .unwrap();
    // Connections are accepted in order, so once a later one is answered
    // the half-sent request's connection is being served.
    assert_eq!(c.get("/ping").await.status, 200);
    c.begin_shutdown();
    // Shutdown has begun once new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(c.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "listener still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(b"world").await.unwrap();
    let response = support::read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "stored");
    c.stop().await.expect("clean shutdown");
}
