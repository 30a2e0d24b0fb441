//! `GET /metrics` of a replica: its request histogram by route name and the
//! hits and misses of its cache client equal what the test sent.

use serde_json::json;
use sluice_testkit::exposition::Exposition;

use crate::support::{self, get, get_json};

async fn scrape(client: &sluice_app::client::Client) -> Exposition {
    let reply = get(client, "/metrics").await.expect("metrics answered");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers[http::header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8");
    Exposition::parse(&text).expect("the exposition parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_cache_hits_and_misses_match_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cache = support::cache().await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(cache.url());
    let app = support::app(config).await;
    let client = support::client(&app.url());

    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "t", "body": "b"})).await;
    let path = format!("/posts/{}", post["id"]);
    // The first read misses and fills the cache; the next four hit.
    for _ in 0..5 {
        assert_eq!(get_json(&client, &path).await.status, 200);
    }
    // Unknown paths, each different: all `unmatched`.
    for bad in ["/nope", "/a/b/c", &format!("{path}/extra")] {
        assert_eq!(get(&client, bad).await.unwrap().status, 404, "{bad}");
    }

    let e = scrape(&client).await;
    let requests = |method, route, status| {
        e.sum(
            "http_request_duration_seconds_count",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "login", "2xx"), Some(1.0));
    assert_eq!(requests("POST", "posts", "2xx"), Some(1.0));
    assert_eq!(requests("GET", "post", "2xx"), Some(5.0));
    assert_eq!(requests("GET", "unmatched", "4xx"), Some(3.0));
    let pings = requests("GET", "ping", "2xx").expect("the start-up wait pinged");
    assert!(pings >= 1.0);
    // Every request so far, the scrape excepted (it is timed once answered).
    assert_eq!(
        e.sum("http_request_duration_seconds_count", &[]),
        Some(1.0 + 1.0 + 5.0 + 3.0 + pings)
    );
    assert_eq!(
        e.value("app_requests_total"),
        Some(1.0 + 1.0 + 5.0 + 3.0 + pings + 1.0)
    );
    assert_eq!(e.value("app_cache_misses_total"), Some(1.0));
    assert_eq!(e.value("app_cache_hits_total"), Some(4.0));
    assert_eq!(e.value("app_cache_errors_total"), Some(0.0));
    // The same numbers as /stats.
    let stats = support::stats(&client).await;
    assert_eq!(stats["cache_hits"], 4);
    assert_eq!(stats["cache_misses"], 1);

    app.stop().await;
    cache.stop().await;
}
