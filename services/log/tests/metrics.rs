//! `GET /metrics` of the log service over a real socket: the ingest
//! counters, the group-commit histograms and the reorder buffer's depth
//! equal what the test sent.

mod common;

use std::time::Duration;

use common::*;
use sluice_log::Config;
use sluice_testkit::exposition::Exposition;

async fn scrape(addr: std::net::SocketAddr) -> Exposition {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Exposition::parse(&body).expect("the exposition parses")
}

fn entries(n: usize, source: &str) -> String {
    let all: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "level": "info",
                "timestamp": format!("2030-01-01T00:00:{i:02}Z"),
                "source": source,
                "message": format!("m{i}"),
            })
        })
        .collect();
    serde_json::to_string(&all).unwrap()
}

#[tokio::test]
async fn ingest_fsync_and_reorder_buffer_match_what_was_sent() {
    let dir = TempDir::new("metrics");
    let mut config = Config::new(dir.path());
    // Everything stays in the reorder buffer while the test looks.
    config.reorder_window = Duration::from_secs(3600);
    config.max_future_skew = Duration::from_secs(10 * 365 * 24 * 3600);
    let server = Server::start(config).await;

    let fresh = scrape(server.addr).await;
    assert_eq!(fresh.value("log_entries_received_total"), Some(0.0));
    assert_eq!(fresh.value("log_reorder_buffer_entries"), Some(0.0));

    for (n, source) in [(1, "a"), (2, "b"), (4, "c")] {
        let (status, body) = post(server.addr, &entries(n, source)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = post(server.addr, "{not json").await;
    assert_eq!(status, 400);
    let (status, _) = get(server.addr, "/nowhere").await;
    assert_eq!(status, 404);

    let e = scrape(server.addr).await;
    assert_eq!(e.value("log_entries_received_total"), Some(7.0));
    assert_eq!(e.value("log_requests_committed_total"), Some(3.0));
    assert_eq!(e.value("log_requests_rejected_total"), Some(1.0));
    assert_eq!(e.value("log_entries_written_total"), Some(0.0));
    // Group commit: however the three requests were grouped, every entry
    // was made durable by exactly one fsync.
    let fsyncs = e.value("log_fsyncs_total").unwrap();
    assert!((1.0..=3.0).contains(&fsyncs), "{fsyncs}");
    assert_eq!(e.value("log_fsync_batch_entries_count"), Some(fsyncs));
    assert_eq!(e.value("log_fsync_batch_entries_sum"), Some(7.0));
    assert_eq!(e.value("log_fsync_duration_seconds_count"), Some(fsyncs));
    assert_eq!(e.value("log_reorder_buffer_entries"), Some(7.0));
    assert!(e.value("log_reorder_buffer_bytes").unwrap() > 0.0);

    let requests = |method, route, status| {
        e.sum(
            "http_request_duration_seconds_count",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "ingest", "2xx"), Some(3.0));
    assert_eq!(requests("POST", "ingest", "4xx"), Some(1.0));
    assert_eq!(requests("GET", "unmatched", "4xx"), Some(1.0));
    assert_eq!(requests("GET", "metrics", "2xx"), Some(1.0));
    server.stop().await;
}
