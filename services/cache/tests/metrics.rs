//! `GET /metrics` of the cache over a real socket: every family present and
//! its numbers equal to what the test sent.

mod support;

use sluice_cache::Config;
use sluice_testkit::exposition::Exposition;
use support::{Cache, request};

async fn scrape(c: &Cache) -> Exposition {
    let reply = c.get("/metrics").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    Exposition::parse(&reply.text()).expect("the exposition parses")
}

fn requests(e: &Exposition, method: &str, route: &str, status: &str) -> Option<f64> {
    e.sum(
        "http_request_duration_seconds_count",
        &[("method", method), ("route", route), ("status", status)],
    )
}

#[tokio::test]
async fn requests_hits_misses_entries_and_bytes_match_what_was_sent() {
    let c = Cache::start(Config::default()).await;
    let fresh = scrape(&c).await;
    assert_eq!(fresh.value("cache_hits_total"), Some(0.0));
    assert_eq!(fresh.value("cache_misses_total"), Some(0.0));
    assert_eq!(fresh.value("cache_entries"), Some(0.0));
    assert_eq!(fresh.value("cache_store_up"), Some(1.0));
    // Nothing but the scrape itself has been served, and it is counted
    // once it has been answered.
    assert_eq!(fresh.count("http_request_duration_seconds_count"), 0);

    for key in ["a", "b", "c"] {
        let stored = c
            .put(&format!("/?key={key}"), 60, "text/plain", b"12345")
            .await;
        assert_eq!(stored.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(c.get("/?key=a").await.status, 200);
    }
    for _ in 0..4 {
        assert_eq!(c.get("/?key=nope").await.status, 404);
    }
    assert_eq!(c.delete("/?key=c").await.status, 200);
    // Unknown paths, each different: one `unmatched` series, no new ones.
    for i in 0..20 {
        assert_eq!(c.get(&format!("/no/such/path/{i}")).await.status, 404);
    }
    let patch = request(c.addr, "PATCH", "/stats", &[], b"").await;
    assert_eq!(patch.status, 405);

    let e = scrape(&c).await;
    assert_eq!(requests(&e, "POST", "entry", "2xx"), Some(3.0));
    assert_eq!(requests(&e, "GET", "entry", "2xx"), Some(5.0));
    assert_eq!(requests(&e, "GET", "entry", "4xx"), Some(4.0));
    assert_eq!(requests(&e, "DELETE", "entry", "2xx"), Some(1.0));
    assert_eq!(requests(&e, "GET", "unmatched", "4xx"), Some(20.0));
    assert_eq!(requests(&e, "PATCH", "stats", "4xx"), Some(1.0));
    assert_eq!(requests(&e, "GET", "metrics", "2xx"), Some(1.0));
    assert_eq!(e.count("http_request_duration_seconds_count"), 7);
    assert_eq!(
        e.sum("http_request_duration_seconds_count", &[]),
        Some(3.0 + 5.0 + 4.0 + 1.0 + 20.0 + 1.0 + 1.0)
    );
    assert_eq!(e.value("cache_hits_total"), Some(5.0));
    assert_eq!(e.value("cache_misses_total"), Some(4.0));
    assert_eq!(e.value("cache_entries"), Some(2.0));
    // The same numbers as /stats, read from the store at scrape time.
    let stats = c.stats().await;
    assert_eq!(e.value("cache_bytes"), stats["bytes"].as_f64());
    assert!(e.value("cache_bytes").unwrap() >= 10.0);
    assert_eq!(e.value("cache_evictions_total"), Some(0.0));
    assert_eq!(e.value("cache_expirations_total"), Some(0.0));
    for family in [
        "http_request_duration_seconds",
        "cache_hits",
        "cache_misses",
        "cache_evictions",
        "cache_expirations",
    ] {
        assert!(e.types.contains_key(family), "{family} has a # TYPE");
    }
    c.stop().await.unwrap();
}

#[tokio::test]
async fn evictions_are_the_stores_own_count() {
    let c = support::filled_past_the_bound().await;
    let stats = c.stats().await;
    let e = scrape(&c).await;
    let evicted = e.value("cache_evictions_total").unwrap();
    assert!(evicted > 0.0, "filled past the bound");
    assert!(evicted >= stats["evictions"].as_f64().unwrap());
    assert_eq!(
        e.value("cache_entries").unwrap() + evicted,
        support::FILL_PUTS as f64,
        "every put is either there or was evicted"
    );
    c.stop().await.unwrap();
}
