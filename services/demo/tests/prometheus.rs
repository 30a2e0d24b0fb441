//! A real Prometheus (the distribution's `prometheus` package) scrapes the
//! demo stack's `/metrics` every second, and PromQL queries through its HTTP
//! API return the series the requests sent must have produced.
//!
//! The `prometheus` binary must be installed (`.ci/run` installs it). When
//! it is not, the test fails, unless `SLUICE_TEST_ALLOW_NO_PROMETHEUS=1` says
//! that skipping is acceptable on this machine; then it says so loudly.
//!
//! To check one more series, add a line to `expectations` (a query and the
//! least value it must reach); to scrape one more target, add it to
//! `targets` (`assert_up: false` scrapes it without waiting for it).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_demo::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set to `1` to let the test pass (loudly) without a `prometheus` binary.
const ALLOW_SKIP: &str = "SLUICE_TEST_ALLOW_NO_PROMETHEUS";
/// How long the expected series get to show up (1 s scrapes; a busy
/// machine starts Prometheus slowly).
const WAIT: Duration = Duration::from_secs(90);

/// One scrape target: a job name and its addresses.
struct Target {
    job: &'static str,
    addrs: Vec<SocketAddr>,
    /// A bearer token Prometheus sends (the proxy's admin API wants one).
    token: Option<String>,
    /// Whether `up` must be 1. False for a target whose `/metrics` lands
    /// from another branch: it is scraped, its series are not asserted.
    assert_up: bool,
}

/// A PromQL query whose every result's value must reach `at_least`; it
/// must have at least one result.
struct Expectation {
    query: String,
    at_least: f64,
}

/// The Prometheus child, killed and reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn find_prometheus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// The `prometheus.yml` for `targets`: every job scraped every second.
fn config(targets: &[Target]) -> String {
    let mut yml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for t in targets {
        yml.push_str(&format!("  - job_name: {}\n", t.job));
        if let Some(token) = &t.token {
            yml.push_str(&format!(
                "    authorization:\n      type: Bearer\n      credentials: {token}\n"
            ));
        }
        let addrs: Vec<String> = t.addrs.iter().map(|a| format!("'{a}'")).collect();
        yml.push_str(&format!(
            "    static_configs:\n      - targets: [{}]\n",
            addrs.join(", ")
        ));
    }
    yml
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn start_prometheus(binary: &Path, dir: &Path, targets: &[Target]) -> Prometheus {
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config(targets)).expect("write prometheus.yml");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = dir.join("prometheus.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start prometheus");
    Prometheus { child, addr, log }
}

/// One HTTP/1.1 request with `Connection: close`; the status and body.
async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    http_with(addr, method, target, "", body).await
}

/// [`http`] with more header lines (`extra`, each ending in CRLF).
async fn http_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &str,
    body: &str,
) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\naccept: application/json\r\n\
         content-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The values of an instant query's results (`None`: Prometheus did not
/// answer, or the query failed). The body may be chunked: the JSON is
/// taken from the first `{` to the last `}`.
async fn query(prometheus: SocketAddr, promql: &str) -> Option<Vec<f64>> {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (status, body) = http(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        "",
    )
    .await;
    if status != 200 {
        return None;
    }
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let answer: serde_json::Value = serde_json::from_str(json).ok()?;
    if answer["status"] != "success" {
        return None;
    }
    answer["data"]["result"]
        .as_array()?
        .iter()
        .map(|r| r["value"][1].as_str()?.parse().ok())
        .collect()
}

/// Polls Prometheus until every expectation holds; fails with the last
/// answers and Prometheus's log after [`WAIT`].
async fn wait_for(prometheus: &Prometheus, expectations: &[Expectation]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pending: Vec<&Expectation> = expectations.iter().collect();
    let mut last = Vec::new();
    while !pending.is_empty() {
        last.clear();
        let mut still = Vec::new();
        for e in pending {
            let values = query(prometheus.addr, &e.query).await;
            let met = values
                .as_ref()
                .is_some_and(|v| !v.is_empty() && v.iter().all(|x| *x >= e.at_least));
            if !met {
                last.push(format!("{} → {values:?} (want ≥ {})", e.query, e.at_least));
                still.push(e);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "series never reached their values:\n{}\n--- prometheus log ---\n{}",
            last.join("\n"),
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_every_service_and_answers_promql() {
    let Some(binary) = find_prometheus() else {
        if std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1") {
            eprintln!(
                "\n\n*** SKIPPED: no `prometheus` binary on PATH ({ALLOW_SKIP}=1). \
                 Install it: apt-get install -y prometheus ***\n\n"
            );
            return;
        }
        panic!(
            "no `prometheus` binary on PATH: apt-get install -y prometheus \
             (or set {ALLOW_SKIP}=1 to skip this test)"
        );
    };
    support::show_warnings();
    let dir = tempfile::tempdir().unwrap();
    let options = support::options(dir.path().join("data"));
    let stack = Stack::start(&options).await.expect("stack starts");

    let targets = [
        Target {
            job: "cache",
            addrs: vec![stack.cache],
            token: None,
            assert_up: true,
        },
        Target {
            job: "log",
            addrs: vec![stack.log],
            token: None,
            assert_up: true,
        },
        Target {
            job: "app",
            addrs: stack.replicas.clone(),
            token: None,
            assert_up: true,
        },
        // The proxy's own /metrics, on its admin listener, behind its token.
        Target {
            job: "proxy",
            addrs: vec![stack.admin],
            token: Some(stack.admin_token.clone()),
            assert_up: true,
        },
    ];
    let prometheus = start_prometheus(&binary, dir.path(), &targets);
    // Every target scraped once before the traffic, so that rates see it.
    let up: Vec<Expectation> = targets
        .iter()
        .filter(|t| t.assert_up)
        .flat_map(|t| {
            t.addrs.iter().map(|addr| Expectation {
                query: format!("up{{job=\"{}\",instance=\"{addr}\"}}", t.job),
                at_least: 1.0,
            })
        })
        .collect();
    wait_for(&prometheus, &up).await;

    // Traffic: reads through the proxy (the replicas read through the
    // cache), reads and writes on the cache directly, entries to the log.
    // Every request is checked answered before the series are awaited.
    let reads = 10;
    for _ in 0..reads {
        let (status, body) = http(stack.proxy, "GET", "/posts", "").await;
        assert_eq!(status, 200, "{body}");
    }
    let cache_hits = 3;
    let (status, _) = http(stack.cache, "PUT", "/?key=prom", "value").await;
    // No max-age: the cache refuses to guess a TTL.
    assert_eq!(status, 400);
    let ttl = "cache-control: max-age=600\r\n";
    let (status, body) = http_with(stack.cache, "PUT", "/?key=prom", ttl, "value").await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..cache_hits {
        assert_eq!(http(stack.cache, "GET", "/?key=prom", "").await.0, 200);
    }
    let entries = r#"[{"level":"info","timestamp":"2026-01-01T00:00:00Z","source":"prom","message":"a"},
                      {"level":"info","timestamp":"2026-01-01T00:00:01Z","source":"prom","message":"b"}]"#;
    let (status, body) = http(stack.log, "POST", "/", entries).await;
    assert_eq!(status, 200, "{body}");

    let mut expectations = up;
    let count = "http_request_duration_seconds_count";
    expectations.extend([
        // 1 refused PUT, 1 stored, the hits, plus the replicas' own calls.
        Expectation {
            query: format!("sum({count}{{job=\"cache\",route=\"entry\"}})"),
            at_least: f64::from(2 + cache_hits),
        },
        Expectation {
            query: format!("sum({count}{{job=\"cache\",route=\"entry\",status=\"4xx\",method=\"PUT\"}})"),
            at_least: 1.0,
        },
        Expectation {
            query: "cache_hits_total{job=\"cache\"}".into(),
            at_least: f64::from(cache_hits),
        },
        Expectation {
            query: format!("sum({count}{{job=\"app\",route=\"posts\",method=\"GET\",status=\"2xx\"}})"),
            at_least: f64::from(reads),
        },
        // The replicas read /posts through the cache: at most one miss each
        // before the page is cached, so some reads hit.
        Expectation {
            query: "sum(app_cache_hits_total) + sum(app_cache_misses_total)".into(),
            at_least: f64::from(reads),
        },
        Expectation {
            query: "sum(rate(app_cache_hits_total[1m])) / (sum(rate(app_cache_hits_total[1m])) + sum(rate(app_cache_misses_total[1m])))".into(),
            at_least: 0.01,
        },
        // The replicas ship their own log lines too: at least ours.
        Expectation {
            query: "log_entries_received_total{job=\"log\"}".into(),
            at_least: 2.0,
        },
        Expectation {
            query: "log_fsyncs_total{job=\"log\"}".into(),
            at_least: 1.0,
        },
        Expectation {
            query: format!("sum({count}{{job=\"log\",route=\"ingest\",status=\"2xx\"}})"),
            at_least: 1.0,
        },
        // The proxy counted the reads it forwarded, all 2xx.
        Expectation {
            query: "sum(sluice_http_request_duration_seconds_count{job=\"proxy\",method=\"GET\",status_class=\"2xx\"})".into(),
            at_least: f64::from(reads),
        },
        Expectation {
            query: "sum(sluice_backend_requests_total{job=\"proxy\"})".into(),
            at_least: f64::from(reads),
        },
    ]);

    wait_for(&prometheus, &expectations).await;
    drop(prometheus);
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .expect("the stack stops");
}
