use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::registry::Registry;
use sluice_testkit::exposition::Exposition;

use super::{HttpMetrics, UNMATCHED, response};

const ROUTES: [&str; 2] = ["entry", "stats"];

fn scrape(registry: &Registry) -> Exposition {
    let reply: http::Response<String> = response(registry);
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.headers()[http::header::CONTENT_TYPE],
        super::CONTENT_TYPE
    );
    Exposition::parse(reply.body()).expect("the exposition parses")
}

#[test]
fn each_request_is_counted_once_under_its_method_route_and_class() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry, &ROUTES);
    let ms = Duration::from_millis(3);
    for _ in 0..5 {
        metrics.observe(0, &Method::GET, StatusCode::OK, ms);
    }
    metrics.observe(0, &Method::GET, StatusCode::NOT_FOUND, ms);
    metrics.observe(1, &Method::POST, StatusCode::SERVICE_UNAVAILABLE, ms);
    let e = scrape(&registry);
    let count = "http_request_duration_seconds_count";
    let series = |m: &'static str, r: &'static str, s: &'static str| {
        e.sum(count, &[("method", m), ("route", r), ("status", s)])
    };
    assert_eq!(series("GET", "entry", "2xx"), Some(5.0));
    assert_eq!(series("GET", "entry", "4xx"), Some(1.0));
    assert_eq!(series("POST", "stats", "5xx"), Some(1.0));
    assert_eq!(e.sum(count, &[]), Some(7.0));
    // Only the slots used have series.
    assert_eq!(e.count(count), 3);
    // 3 ms falls in the 5 ms bucket, not the 2.5 ms one.
    let bucket = |le| {
        e.sum(
            "http_request_duration_seconds_bucket",
            &[("route", "entry"), ("status", "2xx"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0025"), Some(0.0));
    assert_eq!(bucket("0.005"), Some(5.0));
    assert_eq!(bucket("+Inf"), Some(5.0));
    assert_eq!(e.types["http_request_duration_seconds"], "histogram");
}

#[test]
fn unknown_routes_and_methods_share_fixed_series() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry, &ROUTES);
    // A flood of distinct methods on unknown routes: one series.
    for i in 0..1000 {
        let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        metrics.observe(2 + i, &method, StatusCode::NOT_FOUND, Duration::ZERO);
    }
    let e = scrape(&registry);
    let count = "http_request_duration_seconds_count";
    assert_eq!(e.count(count), 1);
    assert_eq!(
        e.sum(
            count,
            &[("method", "other"), ("route", UNMATCHED), ("status", "4xx")]
        ),
        Some(1000.0)
    );
}

#[test]
fn statuses_past_599_count_as_5xx() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry, &ROUTES);
    let odd = StatusCode::from_u16(799).unwrap();
    metrics.observe(0, &Method::GET, odd, Duration::ZERO);
    metrics.observe(0, &Method::GET, StatusCode::CONTINUE, Duration::ZERO);
    let e = scrape(&registry);
    let count = "http_request_duration_seconds_count";
    assert_eq!(e.sum(count, &[("status", "5xx")]), Some(1.0));
    assert_eq!(e.sum(count, &[("status", "1xx")]), Some(1.0));
}

#[test]
fn buckets_are_cumulative_and_the_sum_is_the_total_time() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry, &ROUTES);
    // On a bound (counted in it), past the last bound (only +Inf), and a
    // millisecond: 0.0025 + 60 + 0.001 seconds in all.
    for elapsed in [
        Duration::from_micros(2500),
        Duration::from_secs(60),
        Duration::from_millis(1),
    ] {
        metrics.observe(0, &Method::GET, StatusCode::OK, elapsed);
    }
    let e = scrape(&registry);
    let bucket = |le| e.sum("http_request_duration_seconds_bucket", &[("le", le)]);
    assert_eq!(bucket("0.0005"), Some(0.0));
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.0025"), Some(2.0));
    assert_eq!(bucket("10.0"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(e.value("http_request_duration_seconds_count"), None);
    assert_eq!(e.sum("http_request_duration_seconds_count", &[]), Some(3.0));
    let sum = e.sum("http_request_duration_seconds_sum", &[]).unwrap();
    assert!((sum - 60.0035).abs() < 1e-9, "{sum}");
}

#[test]
fn requests_are_counted_by_protocol_and_tls() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry, &ROUTES);
    metrics.count_protocol(http::Version::HTTP_2, true);
    metrics.count_protocol(http::Version::HTTP_2, true);
    metrics.count_protocol(http::Version::HTTP_11, true);
    metrics.count_protocol(http::Version::HTTP_10, false);
    metrics.count_protocol(http::Version::HTTP_2, false);
    let e = scrape(&registry);
    let total = "http_requests_by_protocol_total";
    let series = |p: &'static str, t: &'static str| e.sum(total, &[("protocol", p), ("tls", t)]);
    assert_eq!(series("h2", "true"), Some(2.0));
    assert_eq!(series("http/1.1", "true"), Some(1.0));
    assert_eq!(series("http/1.1", "false"), Some(1.0));
    assert_eq!(series("h2", "false"), Some(1.0));
    assert_eq!(e.count(total), 4);
    assert_eq!(e.types["http_requests_by_protocol"], "counter");
}
