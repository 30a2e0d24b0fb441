//! Sessions and the job lease in a real Redis (`--sessions redis://…`).

use std::time::Duration;

use serde_json::json;
use sluice_app::SharedStore;
use sluice_app::lease::{Lease, RedisLease};

use crate::redis_server::RedisServer;
use crate::support::{self, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_the_lease_live_in_redis() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.sessions = SharedStore::Redis(redis.url());
    config.lease = SharedStore::Redis(redis.url());
    let a = support::app(config.clone()).await;
    let b = support::app(config).await;
    let (ca, cb) = (support::client(&a.url()), support::client(&b.url()));
    let s = support::stats(&ca).await;
    assert_eq!(
        (s["sessions"].as_str(), s["lease"].as_str()),
        (Some("redis"), Some("redis"))
    );

    let cookie = support::login(&ca, "admin", "sluice").await;
    support::create_post(&cb, &cookie, json!({"title": "r", "body": "b"})).await;
    // The session is a Redis key, not a row.
    let sid = cookie.trim_start_matches("sid=");
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap();
    let mut conn = manager.clone();
    let author: Option<String> = redis::cmd("GET")
        .arg(format!("sluice-app:session:{sid}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(author.as_deref(), Some("admin"));

    // The job runs through the Redis lease.
    eventually("job runs", || async {
        let runs = support::stats(&ca).await["job_runs"].as_u64().unwrap()
            + support::stats(&cb).await["job_runs"].as_u64().unwrap();
        (runs >= 3).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;

    // SET NX PX: exclusive, holder-checked release, expiry.
    let lease = RedisLease(manager);
    let ttl = Duration::from_millis(300);
    assert!(lease.try_acquire("t", "one", ttl).await.unwrap());
    assert!(!lease.try_acquire("t", "two", ttl).await.unwrap());
    lease.release("t", "two").await.unwrap();
    assert!(
        !lease.try_acquire("t", "two", ttl).await.unwrap(),
        "release by a non-holder is a no-op"
    );
    eventually("lease expiry", || async {
        lease
            .try_acquire("t", "two", ttl)
            .await
            .unwrap()
            .then_some(())
    })
    .await;
}
