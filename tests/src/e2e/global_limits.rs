//! Global rate limits across two real `sluice` processes sharing one real
//! `redis-server`, run from `engine/examples/global-rate-limit.toml` (the
//! README's demo; its addresses replaced by free ports), watched through
//! each process's `GET /rate_limits`.
//!
//! The example's limit refills a token every 1000 s, so nothing refills
//! while the test runs: the counts below are exact, whatever the timing.
//! Between loads the test waits for both processes to sync twice
//! ([`settle`]): the shared level is exact once every replica has sent what
//! it took and read the result (between syncs replicas admit from their
//! own view, the documented accuracy of global limits).

use super::rate_limit::get;
use serde_json::Value;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::eventually;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::{Sluice, workspace_root};
use sluice_testkit::redis_server::RedisServer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The demo's config with its addresses replaced: each must be there, so
/// the test fails if the example and this test drift apart.
fn example_config(dir: &Path, origin: SocketAddr, redis: &RedisServer) -> PathBuf {
    let example = workspace_root().join("engine/examples/global-rate-limit.toml");
    let mut text = std::fs::read_to_string(&example).expect("read the example");
    for (from, to) in [
        ("127.0.0.1:8080", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:9901", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:9001", origin.to_string()),
        ("redis://127.0.0.1:6379", redis.url()),
    ] {
        assert!(text.contains(from), "the example no longer has {from}");
        text = text.replace(from, &to);
    }
    let path = dir.join("global-rate-limit.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A Redis, an origin, and the example config pointing at both (in a
/// temporary directory that lives as long as the returned guard).
async fn setup() -> (RedisServer, Origin, tempfile::TempDir, PathBuf) {
    let redis = RedisServer::start().await;
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = example_config(dir.path(), origin.addr(), &redis);
    (redis, origin, dir, config)
}

struct Replica {
    process: Sluice,
    addr: SocketAddr,
    admin: Admin,
}

impl Replica {
    async fn start(config: &Path) -> Replica {
        let process = Sluice::start(config);
        let (addr, admin) = process.serving().await;
        Replica {
            process,
            addr,
            admin,
        }
    }

    async fn rate_limits(&self) -> Value {
        let r = self.admin.get("/rate_limits").await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    }

    async fn global(&self) -> Value {
        self.rate_limits().await["global"].clone()
    }

    /// Waits until the state is `state` and `n` more syncs ended with it
    /// (successes when connected, failures when falling back).
    async fn wait(&self, state: &str, n: u64) {
        let counter = if state == "connected" {
            "syncs"
        } else {
            "sync_failures"
        };
        let count = |g: &Value| g[counter].as_u64().expect("a count");
        let start = count(&self.global().await);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let g = self.global().await;
            if g["state"] == state && count(&g) >= start + n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: not {state} after {n} syncs: {g}\nlog:\n{}",
                self.addr,
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` requests with API key `key`: how many passed; every refusal is a
    /// 429 with the `Retry-After` of a token 1000 s away.
    async fn load(&self, key: &str, n: usize) -> usize {
        let mut ok = 0;
        for _ in 0..n {
            let (status, retry_after) = get(self.addr, "/", &format!("X-Api-Key: {key}\r\n")).await;
            match status {
                200 => ok += 1,
                429 => {
                    let secs: u64 = retry_after.expect("Retry-After").parse().expect("secs");
                    assert!((990..=1000).contains(&secs), "Retry-After {secs}");
                }
                other => panic!("{}: status {other}", self.addr),
            }
        }
        ok
    }
}

/// Both replicas sync twice, twice over: the first round sends what each
/// took, the second reads the level that includes the other's.
async fn settle(replicas: &[&Replica]) {
    for _ in 0..2 {
        for r in replicas {
            r.wait("connected", 2).await;
        }
    }
}

/// One key's budget across both replicas: each learns the key, A spends
/// what is left, B then has nothing. Returns the 200s in all.
async fn shared_budget(a: &Replica, b: &Replica, key: &str, burst: usize) -> usize {
    let mut ok = a.load(key, 1).await + b.load(key, 1).await;
    settle(&[a, b]).await;
    let on_a = a.load(key, burst).await;
    assert_eq!(on_a, burst - 2, "A has the burst less B's and its own");
    ok += on_a;
    settle(&[a, b]).await;
    let on_b = b.load(key, burst).await;
    assert_eq!(on_b, 0, "B has nothing left: A spent the shared burst");
    ok + on_b
}

#[tokio::test]
async fn two_processes_share_one_budget_and_fall_back_to_local_limits_without_redis() {
    let (mut redis, origin, _dir, config) = setup().await;
    let a = Replica::start(&config).await;
    let b = Replica::start(&config).await;

    // The example's limit, as the admin API reports it.
    let limits = a.rate_limits().await;
    let limit = &limits["limits"][0];
    assert_eq!(limit["key"], "header:x-api-key", "{limits}");
    assert_eq!(limit["global"], true);
    assert!(
        limit["rate"].as_f64().expect("rate") <= 0.001,
        "the counts below assume no refill during the test"
    );
    let burst = limit["burst"].as_u64().expect("burst") as usize;
    assert!(burst >= 3, "{burst}");
    a.wait("connected", 1).await;
    b.wait("connected", 1).await;

    // One shared bucket: exactly `burst` pass across both processes (two
    // local buckets would pass twice as many).
    let ok = shared_budget(&a, &b, "alice", burst).await;
    assert_eq!(ok, burst);
    assert_eq!(origin.request_count(), burst);

    // Redis dies: both processes notice, count it, log it, and go on
    // answering, each with its own full local budget.
    redis.kill();
    for r in [&a, &b] {
        r.wait("falling_back_to_local", 2).await;
        let g = r.global().await;
        assert_eq!(g["fallbacks"], 1, "{g}");
        assert!(g["sync_failures"].as_u64().expect("count") >= 2, "{g}");
        let error = &g["last_error"];
        assert!(!error["error"].as_str().expect("text").is_empty(), "{g}");
        assert!(error["at_unix_ms"].as_u64().expect("time") > 0, "{g}");
        let log = r.process.log();
        assert_eq!(
            log.matches("Redis unreachable; falling back to local limits")
                .count(),
            1,
            "logged once per outage:\n{log}"
        );
    }
    assert_eq!(
        a.load("alice", 3).await,
        0,
        "A's local bucket is still empty"
    );
    assert_eq!(a.load("bob", burst + 3).await, burst);
    assert_eq!(
        b.load("bob", burst + 3).await,
        burst,
        "B's own, not what A left"
    );

    // Redis back (empty): the budget is shared again.
    redis.restart().await;
    for r in [&a, &b] {
        r.wait("connected", 1).await;
        let log = r.process.log();
        assert!(
            log.contains("Redis answers again; counts shared"),
            "log:\n{log}"
        );
        assert_eq!(r.global().await["fallbacks"], 1);
    }
    let before = origin.request_count();
    assert_eq!(shared_budget(&a, &b, "carol", burst).await, burst);
    assert_eq!(origin.request_count(), before + burst);
}

/// Requests are answered at once while Redis is unreachable from the start:
/// the sync's failures show in `GET /rate_limits` as they rise.
#[tokio::test]
async fn with_no_redis_at_all_limits_are_local_and_the_failures_show() {
    let (mut redis, _origin, _dir, config) = setup().await;
    redis.kill();
    let a = Replica::start(&config).await;
    a.wait("falling_back_to_local", 1).await;
    let first = a.global().await["sync_failures"].as_u64().expect("count");
    a.wait("falling_back_to_local", 2).await;
    let g = a.global().await;
    assert!(
        g["sync_failures"].as_u64().expect("count") >= first + 2,
        "{g}"
    );
    assert_eq!(g["syncs"], 0, "{g}");
    assert_eq!(g["fallbacks"], 1, "{g}");
    let burst = a.rate_limits().await["limits"][0]["burst"]
        .as_u64()
        .expect("burst") as usize;
    assert_eq!(a.load("dave", burst + 2).await, burst);
    eventually("the outage to be logged", || {
        a.process.log().contains("falling back to local limits")
    })
    .await;
}
