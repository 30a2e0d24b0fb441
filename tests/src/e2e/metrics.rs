//! `GET /metrics` on the admin listener: the exposition parses strictly
//! (`harness::exposition`), and its numbers match the requests sent: counts
//! by route, method and status class, cumulative buckets, exact body bytes,
//! retries, 429s and 503s, a drained backend's state, the connections
//! gauge, counters kept across a reload, no new series for new paths, and
//! the README and the Grafana dashboard in step with the families.

use http::{Method, Request};
use sluice::config::{AdminConfig, RateKey, RateLimitConfig, RetryPolicy, RouteConfig};
use sluice_e2e::harness::client::{H1, H2, RawConn, collect};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::exposition::Exposition;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const DURATION: &str = "sluice_http_request_duration_seconds";

fn with_admin(backends: &[SocketAddr]) -> sluice::Config {
    let mut c = config(backends);
    c.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    c
}

async fn scrape(admin: &Admin) -> Exposition {
    let r = admin.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    Exposition::parse(&r.text)
}

/// Scrapes until `done` holds (a request is counted when its response body
/// is dropped, which may come just after the client has read it).
async fn scrape_until(admin: &Admin, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
    for _ in 0..400 {
        let e = scrape(admin).await;
        if done(&e) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn count(e: &Exposition, method: &str, route: &str, class: &str) -> f64 {
    e.value(
        &format!("{DURATION}_count"),
        &[
            ("method", method),
            ("route", route),
            ("status_class", class),
        ],
    )
}

async fn post(client: &mut H1, path: &str, body: &'static str) -> u16 {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "a.test")
        .body(reply::full(body))
        .expect("request");
    collect(client.send(req).await).await.status.as_u16()
}

#[tokio::test]
async fn requests_are_counted_by_route_method_and_status_with_exact_bytes() {
    let origin = Origin::http1()
        .route("/bad", reply::text(500, "boom!"))
        .route("/", reply::text(200, "hello"))
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.upstreams[0].passive.consecutive_5xx = 0;
    c.upstreams[0].passive.consecutive_gateway_errors = 0;
    c.routes.insert(
        0,
        RouteConfig {
            name: Some("bad".into()),
            path: "/bad".into(),
            ..c.routes[0].clone()
        },
    );
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let backend = origin.addr().to_string();

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..7 {
        assert_eq!(client.get("/ok").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(client.get("/bad/x").await.status, 500);
    }
    for _ in 0..2 {
        assert_eq!(post(&mut client, "/up", "eleven byte").await, 200);
    }
    let e = scrape_until(&admin, "12 requests", |e| {
        count(e, "GET", "/", "2xx") + count(e, "GET", "bad", "5xx") + count(e, "POST", "/", "2xx")
            == 12.0
    })
    .await;
    assert_eq!(count(&e, "GET", "/", "2xx"), 7.0);
    assert_eq!(count(&e, "GET", "bad", "5xx"), 3.0);
    assert_eq!(count(&e, "POST", "/", "2xx"), 2.0);
    assert_eq!(count(&e, "GET", "/", "5xx"), 0.0);
    let labels = [("method", "GET"), ("route", "/"), ("status_class", "2xx")];
    let buckets = e.buckets(DURATION, &labels);
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 7.0)));

    let route = |name, r| e.value(name, &[("route", r)]);
    assert_eq!(route("sluice_route_request_bytes_total", "/"), 22.0);
    assert_eq!(route("sluice_route_response_bytes_total", "/"), 45.0);
    assert_eq!(route("sluice_route_request_bytes_total", "bad"), 0.0);
    assert_eq!(route("sluice_route_response_bytes_total", "bad"), 15.0);

    let b = |name: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("group", "default"), ("backend", backend.as_str())];
        l.extend_from_slice(extra);
        e.value(name, &l)
    };
    assert_eq!(
        b("sluice_backend_requests_total", &[("status_class", "2xx")]),
        9.0
    );
    assert_eq!(
        b("sluice_backend_requests_total", &[("status_class", "5xx")]),
        3.0
    );
    assert_eq!(b("sluice_backend_request_bytes_total", &[]), 22.0);
    assert_eq!(b("sluice_backend_response_bytes_total", &[]), 60.0);
    assert_eq!(b("sluice_backend_state", &[("state", "healthy")]), 1.0);
    assert_eq!(b("sluice_backend_state", &[("state", "draining")]), 0.0);
    let group = [("group", "default")];
    assert_eq!(
        e.value("sluice_upstream_connect_duration_seconds_count", &group),
        12.0
    );
    assert_eq!(
        e.value("sluice_upstream_header_duration_seconds_count", &group),
        12.0
    );
    assert_eq!(e.value("sluice_build_info", &[]), 1.0);
    assert!(e.value("sluice_process_start_time_seconds", &[]) > 1.6e9);

    // One keep-alive client, one request at a time: one pooled connection.
    scrape_until(&admin, "the connection back in the pool", |e| {
        let l = [("backend", backend.as_str()), ("state", "idle")];
        e.value("sluice_upstream_pool_connections", &l) == 1.0
    })
    .await;

    // New paths make no new series: the label is the route, never the path.
    let series = |e: &Exposition| e.samples.len();
    let before = series(&scrape(&admin).await);
    for i in 0..1000 {
        let path = format!("/r{:x}/{i}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        assert_eq!(client.get(&path).await.status, 200);
    }
    let after = scrape_until(&admin, "1007 GETs", |e| {
        count(e, "GET", "/", "2xx") == 1007.0
    })
    .await;
    assert_eq!(series(&after), before, "new series for new paths");
}

#[tokio::test]
async fn the_bearer_token_guards_metrics_like_the_rest_of_the_api() {
    let origin = Origin::named("a").await;
    let mut c = with_admin(&[origin.addr()]);
    c.admin.as_mut().expect("admin").token = Some("s3cret-token".into());
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    assert_eq!(admin.get("/metrics").await.status, 401);
    let with = admin.clone().with_token("s3cret-token");
    scrape(&with).await;
    assert_eq!(with.call(Method::POST, "/metrics", None).await.status, 405);
}

#[tokio::test]
async fn retries_429s_and_503s_are_counted_and_a_drain_shows_in_the_state() {
    let down = Origin::http1()
        .route("/", reply::text(503, "down!"))
        .start()
        .await;
    let up = Origin::named("up").await;
    let mut c = with_admin(&[down.addr(), up.addr()]);
    c.routes[0].retry = Some(Arc::new(RetryPolicy {
        attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        ..RetryPolicy::default()
    }));
    let g = &mut c.upstreams[0];
    g.passive.consecutive_5xx = 0;
    g.passive.consecutive_gateway_errors = 0;
    g.retry_budget.ratio = 1.0;
    c.rate_limits = vec![RateLimitConfig {
        name: "per-client".into(),
        key: RateKey::Client(Default::default()),
        rate: 0.001,
        burst: 6,
        host: None,
        path: None,
        global: false,
        max_keys: 100,
    }];
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status, 200);
    }
    // Each try the failing backend got was retried once, on the other.
    let tries_at_down = down.request_count() as f64;
    assert!(tries_at_down >= 1.0);
    let group = [("group", "default")];
    let e = scrape(&admin).await;
    assert_eq!(e.value("sluice_retries_total", &group), tries_at_down);
    assert_eq!(e.value("sluice_retry_budget_exhausted_total", &group), 0.0);

    // Drained: its state series moves.
    let state = |e: &Exposition, addr: SocketAddr, s: &str| {
        let a = addr.to_string();
        e.value(
            "sluice_backend_state",
            &[("backend", a.as_str()), ("state", s)],
        )
    };
    assert_eq!(state(&e, up.addr(), "healthy"), 1.0);
    admin.drain(up.addr()).await;
    admin.drain(down.addr()).await;
    let e = scrape(&admin).await;
    assert_eq!(state(&e, up.addr(), "healthy"), 0.0);
    assert_eq!(state(&e, up.addr(), "draining"), 1.0);

    // Nothing in rotation: 503; then the bucket (6, 4 taken) runs dry: 429.
    assert_eq!(client.get("/").await.status, 503);
    assert_eq!(client.get("/").await.status, 503);
    for _ in 0..3 {
        assert_eq!(client.get("/").await.status, 429);
    }
    // A scrape reads the histograms before the reasons, so wait on both.
    let e = scrape_until(&admin, "five refusals", |e| {
        e.value("sluice_proxy_errors_total", &[("reason", "rate limited")]) == 3.0
            && count(e, "GET", "/", "4xx") == 3.0
    })
    .await;
    assert_eq!(
        e.value("sluice_rate_limited_total", &[("limit", "per-client")]),
        3.0
    );
    let reason = |r| e.value("sluice_proxy_errors_total", &[("reason", r)]);
    assert_eq!(reason("no backend available"), 2.0);
    assert_eq!(count(&e, "GET", "/", "5xx"), 2.0);
    assert_eq!(count(&e, "GET", "/", "4xx"), 3.0);
}

#[tokio::test]
async fn the_connections_gauge_follows_open_connections() {
    let origin = Origin::named("a").await;
    let proxy = Proxy::start(&with_admin(&[origin.addr()])).await;
    let admin = Admin::of(proxy.server());
    let listener = proxy.addr().to_string();
    let open = |e: &Exposition, proto: &str| {
        e.value(
            "sluice_client_connections",
            &[("listener", listener.as_str()), ("protocol", proto)],
        )
    };

    let l = [("listener", listener.as_str())];
    let accepted = |e: &Exposition| e.value("sluice_client_connections_accepted_total", &l);
    // The harness's readiness probe connected once; it closes.
    let e = scrape_until(&admin, "the probe gone", |e| {
        open(e, "h1") == 0.0 && accepted(e) >= 1.0
    })
    .await;
    let before = accepted(&e);

    let mut h1 = Vec::new();
    for _ in 0..3 {
        let mut c = H1::connect(proxy.addr()).await;
        assert_eq!(c.get("/").await.status, 200);
        h1.push(c);
    }
    let mut h2 = H2::connect_h2c(proxy.addr()).await;
    assert_eq!(h2.get("/").await.status, 200);
    let e = scrape_until(&admin, "3 + 1 open", |e| {
        open(e, "h1") == 3.0 && open(e, "h2") == 1.0
    })
    .await;
    assert_eq!(accepted(&e), before + 4.0);

    drop(h1);
    drop(h2);
    // A raw connection that has sent nothing yet counts as HTTP/1.
    let _raw = RawConn::connect(proxy.addr()).await;
    scrape_until(&admin, "back down to the raw one", |e| {
        open(e, "h1") == 1.0 && open(e, "h2") == 0.0
    })
    .await;
}

/// `reload.rs`'s one-group config (its route `/` is named by its path), and `extra`.
fn file(a: SocketAddr, extra: &str) -> String {
    format!("{}{extra}", super::reload::base(a))
}

#[tokio::test]
async fn counters_do_not_reset_on_a_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let a = Origin::named("a").await;
    std::fs::write(&path, file(a.addr(), "")).expect("write config");
    let proxy = Proxy::start(&sluice::Config::load(&path).expect("config")).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..3 {
        assert_eq!(client.get("/x").await.status, 200);
    }
    scrape_until(&admin, "3 requests", |e| count(e, "GET", "/", "2xx") == 3.0).await;

    let more = "\n[[route]]\nname = \"other\"\npath = \"/other\"\nupstream = \"a\"\n";
    std::fs::write(&path, file(a.addr(), more)).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(client.get("/x").await.status, 200);
    assert_eq!(client.get("/other").await.status, 200);
    let e = scrape_until(&admin, "5 requests", |e| {
        count(e, "GET", "/", "2xx") + count(e, "GET", "other", "2xx") == 5.0
    })
    .await;
    assert_eq!(count(&e, "GET", "/", "2xx"), 4.0);
    assert_eq!(count(&e, "GET", "other", "2xx"), 1.0);
    let b = a.addr().to_string();
    let l = [("backend", b.as_str()), ("status_class", "2xx")];
    assert_eq!(e.value("sluice_backend_requests_total", &l), 5.0);
    assert_eq!(
        e.value(
            "sluice_upstream_header_duration_seconds_count",
            &[("group", "a")]
        ),
        5.0
    );
}

#[tokio::test]
async fn with_metrics_off_requests_are_not_counted() {
    let origin = Origin::named("a").await;
    let mut c = with_admin(&[origin.addr()]);
    c.metrics.enabled = false;
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    assert_eq!(client.get("/").await.status, 200);
    let e = scrape(&admin).await;
    assert!(e.find(&format!("{DURATION}_count"), &[]).is_empty());
    let b = origin.addr().to_string();
    let l = [("backend", b.as_str()), ("state", "healthy")];
    assert_eq!(
        e.value("sluice_backend_state", &l),
        1.0,
        "scrape-time families stay"
    );
}

/// The metric names in `text`: `sluice_` and what follows.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("sluice_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Every `expr` of every panel (and nested row panels) of the dashboard.
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_readme_and_the_dashboard_name_exactly_what_the_proxy_exports() {
    let origin = Origin::named("a").await;
    let proxy = Proxy::start(&with_admin(&[origin.addr()])).await;
    let admin = Admin::of(proxy.server());
    let e = scrape(&admin).await;
    let families: BTreeSet<String> = e.families.keys().cloned().collect();
    let samples = e.sample_names();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    // The README's metrics table: one row per family, its name as written
    // in queries (counters with `_total`).
    let table: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `sluice_"))
        .map(|l| format!("sluice_{}", &l[..l.find('`').expect("closing backtick")]))
        .collect();
    let written: BTreeSet<String> = table
        .iter()
        .map(|n| e.family_of(n).unwrap_or(n).to_owned())
        .collect();
    assert_eq!(written, families, "README metrics table vs /metrics");

    let path = root.join("engine/examples/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "{} queries", all.len());
    let used: BTreeSet<String> = all.iter().flat_map(|x| names_in(x)).collect();
    let unknown: Vec<_> = used.difference(&samples).collect();
    assert!(unknown.is_empty(), "the dashboard queries {unknown:?}");
}

#[tokio::test]
async fn gzip_input_and_output_bytes_are_counted() {
    let body: Vec<u8> = (0..64)
        .flat_map(|i| format!("line {i:04} of a compressible text body\n").into_bytes())
        .collect();
    let plain = body.len() as f64;
    let origin = Origin::http1()
        .route("/", move |_| {
            let mut r = http::Response::new(reply::full(body.clone()));
            r.headers_mut()
                .insert("content-type", "text/plain".parse().expect("ct"));
            std::future::ready(r)
        })
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.compression.enabled = true;
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    let mut sent = 0.0;
    for _ in 0..2 {
        let req = Request::builder()
            .uri("/")
            .header("host", "a.test")
            .header("accept-encoding", "gzip")
            .body(reply::empty())
            .expect("request");
        let r = collect(client.send(req).await).await;
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        sent += r.body.len() as f64;
    }
    assert!(sent < plain, "{sent} bytes of gzip for {plain} of text");
    let e = scrape_until(&admin, "two gzip responses", |e| {
        e.value(
            "sluice_compression_input_bytes_total",
            &[("algorithm", "gzip")],
        ) == 2.0 * plain
            && e.value("sluice_route_response_bytes_total", &[("route", "/")]) == sent
    })
    .await;
    assert_eq!(
        e.value(
            "sluice_compression_output_bytes_total",
            &[("algorithm", "gzip")]
        ),
        sent
    );
    // Every coding has its series, at zero until used.
    assert_eq!(
        e.value(
            "sluice_compression_input_bytes_total",
            &[("algorithm", "zstd")]
        ),
        0.0
    );
    assert_eq!(
        e.value("sluice_route_response_bytes_total", &[("route", "/")]),
        sent
    );
}

#[tokio::test]
async fn heads_refused_before_routing_are_counted_by_reason() {
    let origin = Origin::named("a").await;
    let proxy = Proxy::start(&with_admin(&[origin.addr()])).await;
    let admin = Admin::of(proxy.server());
    for _ in 0..2 {
        let mut raw = RawConn::connect(proxy.addr()).await;
        let big = "x".repeat(128 * 1024);
        let req = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n");
        raw.send(req.as_bytes()).await;
        let r = raw.read_response().await;
        assert_eq!(r.status, 431);
    }
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    assert_eq!(raw.read_response().await.status, 400);
    let e = scrape_until(&admin, "3 refused heads", |e| {
        let reason = |r| e.value("sluice_proxy_errors_total", &[("reason", r)]);
        reason("ambiguous message framing") == 1.0
            && reason("request header fields too large") == 2.0
    })
    .await;
    let reason = |r| e.value("sluice_proxy_errors_total", &[("reason", r)]);
    assert_eq!(reason("request header fields too large"), 2.0);
    assert!(
        e.find(&format!("{DURATION}_count"), &[]).is_empty(),
        "no request was routed"
    );
}

#[tokio::test]
async fn queue_depth_in_flight_and_connections_in_use_while_a_backend_is_full() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let origin = Origin::http1()
        .route("/", reply::gated(gate.clone(), "done"))
        .start()
        .await;
    let mut c = with_admin(&[origin.addr()]);
    c.upstreams[0].limit = Some(sluice::config::LimitConfig {
        per_backend: 1,
        max_queue: 10,
        queue_timeout: Duration::from_secs(600),
    });
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let addr = proxy.addr();
    let waiting: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { H1::connect(addr).await.get("/").await.status }))
        .collect();
    let b = origin.addr().to_string();
    let backend = [("group", "default"), ("backend", b.as_str())];
    let e = scrape_until(&admin, "one at the backend, two queued", |e| {
        e.value("sluice_queue_depth", &[("group", "default")]) == 2.0
    })
    .await;
    assert_eq!(e.value("sluice_backend_in_flight", &backend), 1.0);
    let mut in_use = backend.to_vec();
    in_use.push(("state", "in_use"));
    assert_eq!(e.value("sluice_upstream_pool_connections", &in_use), 1.0);
    gate.add_permits(3);
    for w in waiting {
        assert_eq!(w.await.expect("request"), 200);
    }
    scrape_until(&admin, "the queue empty", |e| {
        e.value("sluice_queue_depth", &[("group", "default")]) == 0.0
            && e.value("sluice_backend_in_flight", &backend) == 0.0
    })
    .await;
}
