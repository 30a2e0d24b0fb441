//! The access log: each format's lines parse and match the requests sent
//! field by field; what a client sends cannot forge a field or a line; a
//! writer that cannot write costs lines (dropped and counted exactly),
//! never a request's time; a reload reopens the file after logrotate
//! moved it. Shipping to the real log service (`services/log`, in
//! process) delivers the entries in order, and a dead one costs entries
//! only. Each proxy names itself in `x-sluice-instance`.

use serde_json::Value;
use sluice::config::{AccessLogConfig, AdminConfig, LogFormat, RetryPolicy, ShipConfig};
use sluice_e2e::harness::client::{RawConn, RawResponse};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::eventually;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A proxy over `backends` with an admin API, logging as `log` says.
fn logging(backends: &[SocketAddr], log: AccessLogConfig) -> sluice::Config {
    let mut c = config(backends);
    c.access_log = Some(log);
    c.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    c
}

fn to_file(path: &Path, format: LogFormat) -> AccessLogConfig {
    AccessLogConfig {
        format,
        path: Some(path.to_owned()),
        ..AccessLogConfig::default()
    }
}

async fn send(addr: SocketAddr, raw: &str) -> RawResponse {
    let mut c = RawConn::connect(addr).await;
    c.send(raw.as_bytes()).await;
    c.read_response().await
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The file's lines once it has `n`.
async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} lines in {}", path.display()), || {
        lines(path).len() >= n
    })
    .await;
    let l = lines(path);
    assert_eq!(l.len(), n, "{l:#?}");
    l
}

/// An origin answering every request `status` with `body`.
async fn answering(status: u16, body: &'static str) -> Origin {
    Origin::http1()
        .route("/", reply::text(status, body))
        .start()
        .await
}

/// A temporary directory (removed when dropped) and a log file in it.
fn log_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    (dir, path)
}

async fn counters(proxy: &Proxy) -> Value {
    let r = Admin::of(proxy.server()).get("/access_log").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["counters"].clone()
}

#[tokio::test]
async fn json_lines_match_the_requests_field_by_field() {
    let (_dir, path) = log_dir();
    let origin = answering(200, "hello").await;
    let proxy = Proxy::start(&logging(&[origin.addr()], to_file(&path, LogFormat::Json))).await;
    let get = send(
        proxy.addr(),
        "GET /body?x=1&y=%22 HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: req-1\r\nUser-Agent: t/1\r\n\r\n",
    )
    .await;
    assert_eq!(get.status, 200);
    let post = send(
        proxy.addr(),
        "POST /up HTTP/1.1\r\nHost: b.test\r\nContent-Length: 6\r\n\r\nabcdef",
    )
    .await;
    assert_eq!(post.status, 200);
    let instance = get.header("x-sluice-instance").expect("instance header");
    assert!(
        instance.ends_with(&format!(":{}", proxy.addr().port())),
        "default id is host:port: {instance}"
    );

    let l = wait_lines(&path, 2).await;
    let mut v: Vec<Value> = l.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Two connections: their lines may be written in either order.
    v.sort_by_key(|v| v["method"].as_str().unwrap().to_owned());
    for (v, (method, path, host, resp, bytes_in)) in v.iter().zip([
        ("GET", "/body?x=1&y=%22", "a.test", &get, 0),
        ("POST", "/up", "b.test", &post, 6),
    ]) {
        assert_eq!(v["method"], method, "{v}");
        assert_eq!(v["path"], path);
        assert_eq!(v["host"], host);
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_in"], bytes_in);
        assert_eq!(v["bytes_out"], 5);
        assert_eq!(v["request_id"], resp.header("x-request-id").unwrap());
        assert_eq!(v["upstream"], origin.addr().to_string());
        assert_eq!(v["retries"], 0);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["completed"], true);
        assert_eq!(v["route"], "/");
        assert_eq!(v["instance"], instance);
        assert!(v["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(v["upstream_header_ms"].is_number(), "{v}");
        assert!(v["upstream_connect_ms"].is_number(), "{v}");
        let t = v["time"].as_str().unwrap();
        assert!(
            t.len() == 24 && t.ends_with('Z') && &t[19..20] == ".",
            "{t}"
        );
    }
    assert_eq!(v[0]["request_id"], "req-1");
    assert_eq!(v[0]["user_agent"], "t/1");
}

#[tokio::test]
async fn retries_and_error_reasons_are_in_the_line() {
    let (_dir, path) = log_dir();
    let down = answering(503, "down").await;
    let up = answering(200, "up").await;
    let mut c = logging(&[down.addr(), up.addr()], to_file(&path, LogFormat::Json));
    c.routes[0].retry = Some(Arc::new(RetryPolicy {
        attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        ..RetryPolicy::default()
    }));
    c.upstreams[0].passive.consecutive_5xx = 0;
    let proxy = Proxy::start(&c).await;
    // Round robin: some first tries go to `down`, and its 503s are retried
    // on `up`; every answer is `up`'s.
    for _ in 0..4 {
        let r = send(proxy.addr(), "GET /r HTTP/1.1\r\nHost: r.test\r\n\r\n").await;
        assert_eq!((r.status, r.body_str()), (200, "up"));
    }
    let retried = down.request_count();
    assert!(retried >= 1);
    let l = wait_lines(&path, 4).await;
    let mut with_retry = 0;
    for l in &l {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["upstream"], up.addr().to_string(), "{v}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 2);
        assert!(v["retries"] == 0 || v["retries"] == 1, "{v}");
        with_retry += usize::from(v["retries"] == 1);
    }
    assert_eq!(with_retry, retried, "one retry logged per try at down");

    // The proxy's own answers: no backend (503), a refused connect (502).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for (backends, status) in [(vec![], 503), (vec![dead], 502)] {
        let (_dir, path) = log_dir();
        let proxy = Proxy::start(&logging(&backends, to_file(&path, LogFormat::Json))).await;
        let r = send(proxy.addr(), "GET /e HTTP/1.1\r\nHost: e.test\r\n\r\n").await;
        assert_eq!(r.status, status, "{}", r.head);
        let reason = r.header("x-sluice-error").expect("a reason");
        assert!(r.header("x-sluice-instance").is_some(), "{}", r.head);
        let v: Value = serde_json::from_str(&wait_lines(&path, 1).await[0]).unwrap();
        assert_eq!(v["status"], status);
        assert_eq!(v["error"], reason);
        assert_eq!(v["bytes_out"], r.body.len());
        assert_eq!(v["request_id"], r.header("x-request-id").unwrap());
    }
}

/// A strict reader of the combined format: the fixed fields, then exactly
/// the documented `key=value` extras, in order; a quoted value ends at the
/// first `"` (the format escapes every `"` in it as `\x22`).
fn parse_combined(line: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut rest = line;
    let mut fields = Vec::new();
    let take = |rest: &mut &str| -> String {
        *rest = rest.trim_start_matches(' ');
        let (open, close) = match rest.as_bytes()[0] {
            b'"' => ("\"", '"'),
            b'[' => ("[", ']'),
            _ => ("", ' '),
        };
        let body = &rest[open.len()..];
        let end = body.find(close).unwrap_or(body.len());
        let v = body[..end].to_owned();
        *rest = &body[(end + usize::from(!open.is_empty())).min(body.len())..];
        v
    };
    for _ in 0..9 {
        fields.push(take(&mut rest));
    }
    let mut extras = Vec::new();
    while !rest.trim().is_empty() {
        rest = rest.trim_start_matches(' ');
        let (k, v) = rest.split_once('=').expect("key=value");
        rest = v;
        extras.push((k.to_owned(), take(&mut rest)));
    }
    (fields, extras)
}

#[tokio::test]
async fn combined_lines_parse_and_client_bytes_cannot_forge_fields() {
    let (_dir, path) = log_dir();
    let origin = answering(200, "hello").await;
    let proxy = Proxy::start(&logging(
        &[origin.addr()],
        to_file(&path, LogFormat::Combined),
    ))
    .await;
    // Quotes, a backslash, a tab and a non-ASCII byte, shaped to end the
    // field early and add a status and a second line's worth of fields.
    let mut raw = b"GET /c?q=1 HTTP/1.1\r\nHost: c.test\r\nReferer: http://r/\\x\r\n".to_vec();
    raw.extend_from_slice(
        b"User-Agent: ua\" 500 0 \"-\" \"x\" rt=9\tok\xff\r\nX-Request-Id: c-1\r\n\r\n",
    );
    let mut conn = RawConn::connect(proxy.addr()).await;
    conn.send(&raw).await;
    let r = conn.read_response().await;
    assert_eq!(r.status, 200);

    let l = wait_lines(&path, 1).await;
    let (f, extras) = parse_combined(&l[0]);
    assert_eq!(f[0], "127.0.0.1");
    assert_eq!((f[1].as_str(), f[2].as_str()), ("-", "-"));
    assert!(f[3].ends_with(" +0000") && f[3].len() == 26, "{}", f[3]);
    assert_eq!(f[4], "GET /c?q=1 HTTP/1.1");
    assert_eq!(f[5], "200");
    assert_eq!(f[6], "5");
    assert_eq!(f[7], "http://r/\\x5Cx");
    assert_eq!(
        f[8],
        "ua\\x22 500 0 \\x22-\\x22 \\x22x\\x22 rt=9\\x09ok\\xFF"
    );
    let keys: Vec<&str> = extras.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "host",
            "request_id",
            "rt",
            "upstream",
            "uct",
            "uht",
            "retries",
            "error",
            "bytes_in",
            "completed",
            "route",
            "instance"
        ],
        "{}",
        l[0]
    );
    let get = |k: &str| extras.iter().find(|(key, _)| key == k).unwrap().1.as_str();
    assert_eq!(get("host"), "c.test");
    assert_eq!(get("request_id"), "c-1");
    assert_eq!(get("upstream"), origin.addr().to_string());
    assert_eq!(
        (get("retries"), get("error"), get("bytes_in")),
        ("0", "-", "0")
    );
    assert_eq!((get("completed"), get("route")), ("1", "/"));
    assert_eq!(get("instance"), r.header("x-sluice-instance").unwrap());
    for k in ["rt", "uct", "uht"] {
        let v: f64 = get(k).parse().unwrap_or_else(|_| panic!("{k}={}", get(k)));
        assert!(v >= 0.0);
    }
}

#[tokio::test]
async fn a_blocked_writer_drops_and_counts_exactly_and_requests_complete() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let origin = answering(200, "ok").await;
    // A FIFO with no reader: the writer's open blocks, nothing is read
    // off the queue of 4.
    let mut log = to_file(&fifo, LogFormat::Json);
    log.queue = 4;
    let proxy = Proxy::start(&logging(&[origin.addr()], log)).await;
    let mut conn = RawConn::connect(proxy.addr()).await;
    for i in 0..20 {
        conn.send(format!("GET /{i} HTTP/1.1\r\nHost: f.test\r\n\r\n").as_bytes())
            .await;
        assert_eq!(conn.read_response().await.status, 200);
    }
    // The line is queued when the body is done, just after the client
    // has it: wait for the count, then check it is exact.
    eventually("20 lines offered", || {
        let state = proxy.server().shared().state.load();
        let c = &state.access_log.as_ref().unwrap().counters;
        sluice::observe::access_log::Counters::get(&c.dropped) == 16
    })
    .await;
    let c = counters(&proxy).await;
    assert_eq!(
        (c["dropped"].as_u64(), c["written"].as_u64()),
        (Some(16), Some(0)),
        "{c}"
    );

    // A reader comes: the 4 queued lines arrive, the first 4 requests'.
    let read = std::thread::spawn(move || {
        use std::io::BufRead;
        let f = std::io::BufReader::new(std::fs::File::open(&fifo).unwrap());
        f.lines().take(4).map(Result::unwrap).collect::<Vec<_>>()
    });
    let got = tokio::task::spawn_blocking(move || read.join().unwrap())
        .await
        .unwrap();
    let mut paths: Vec<String> = got
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, ["/0", "/1", "/2", "/3"]);
    let c = counters(&proxy).await;
    assert_eq!(c["dropped"].as_u64(), Some(16), "{c}");
}

fn reload_config(origin: SocketAddr, log: &Path) -> String {
    format!(
        r#"workers = 1
instance_id = "rot-1"

[[listener]]
address = "127.0.0.1:0"

[timeouts]
shutdown_grace = "5s"

[admin]
address = "127.0.0.1:0"

[access_log]
format = "json"
path = "{}"

[upstream.a]
backends = ["{origin}"]
"#,
        log.display()
    )
}

#[tokio::test]
async fn a_reload_reopens_the_file_logrotate_moved() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let moved: PathBuf = dir.path().join("access.log.1");
    let conf = dir.path().join("sluice.toml");
    let origin = answering(200, "ok").await;
    std::fs::write(&conf, reload_config(origin.addr(), &log)).unwrap();
    let proxy = Proxy::start(&sluice::Config::load(&conf).unwrap()).await;
    let get = |i: usize| {
        let addr = proxy.addr();
        async move {
            let r = send(addr, &format!("GET /{i} HTTP/1.1\r\nHost: r.test\r\n\r\n")).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-sluice-instance"), Some("rot-1"));
        }
    };
    get(0).await;
    wait_lines(&log, 1).await;
    std::fs::rename(&log, &moved).unwrap();
    // Until the reload, lines go on into the moved file.
    get(1).await;
    wait_lines(&moved, 2).await;
    assert!(!log.exists());
    let r = Admin::of(proxy.server())
        .call(http::Method::POST, "/reload", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The writer sees the reopen within its flush interval: requests after
    // the reload land in a new file, and no line is lost on the way.
    let mut sent = 2;
    loop {
        get(sent).await;
        sent += 1;
        if !lines(&log).is_empty() || sent > 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("every line written", || {
        lines(&moved).len() + lines(&log).len() == sent
    })
    .await;
    let n = |l: &String| -> usize {
        let v: Value = serde_json::from_str(l).unwrap();
        v["path"].as_str().unwrap()[1..].parse().unwrap()
    };
    let (old, new): (Vec<usize>, Vec<usize>) = (
        lines(&moved).iter().map(n).collect(),
        lines(&log).iter().map(n).collect(),
    );
    assert!(old.contains(&0) && old.contains(&1), "{old:?}");
    assert!(!new.is_empty());
    let mut all: Vec<usize> = old.iter().chain(&new).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..sent).collect::<Vec<_>>(),
        "old {old:?} new {new:?}"
    );
    let c = counters(&proxy).await;
    assert_eq!(c["dropped"].as_u64(), Some(0));
    assert_eq!(c["write_errors"].as_u64(), Some(0));
}

#[tokio::test]
async fn each_instance_names_itself_on_answers_and_errors() {
    for id in ["alpha:1", "beta"] {
        let origin = answering(200, "ok").await;
        for backends in [vec![origin.addr()], vec![]] {
            let mut c = config(&backends);
            c.instance_id = Some(id.to_owned());
            let proxy = Proxy::start(&c).await;
            let r = send(proxy.addr(), "GET / HTTP/1.1\r\nHost: i.test\r\n\r\n").await;
            assert_eq!(r.status, if backends.is_empty() { 503 } else { 200 });
            assert_eq!(r.header_all("x-sluice-instance"), [id], "{}", r.head);
        }
    }
    // Off: no header.
    let mut c = config(&[]);
    c.instance_header = None;
    let proxy = Proxy::start(&c).await;
    let r = send(proxy.addr(), "GET / HTTP/1.1\r\nHost: i.test\r\n\r\n").await;
    assert_eq!(r.header("x-sluice-instance"), None, "{}", r.head);
}

/// The real binary: `kill -HUP` (what logrotate's `postrotate` sends)
/// reopens the file, and `--access-log` writes JSON lines to stdout.
#[tokio::test]
async fn the_binary_reopens_on_sighup_and_logs_to_stdout_with_the_flag() {
    use sluice_e2e::harness::process::{Sluice, signal};
    let dir = tempfile::tempdir().unwrap();
    let (log, moved) = (
        dir.path().join("access.log"),
        dir.path().join("access.log.1"),
    );
    let conf = dir.path().join("sluice.toml");
    let origin = answering(200, "ok").await;
    std::fs::write(&conf, reload_config(origin.addr(), &log)).unwrap();
    let sluice = Sluice::start(&conf);
    let (addr, _admin) = sluice.serving().await;
    let get = |i: usize| async move {
        let r = send(addr, &format!("GET /{i} HTTP/1.1\r\nHost: h.test\r\n\r\n")).await;
        assert_eq!(r.status, 200);
    };
    get(0).await;
    wait_lines(&log, 1).await;
    std::fs::rename(&log, &moved).unwrap();
    signal(sluice.child.id(), "HUP");
    let mut sent = 1;
    while lines(&log).is_empty() && sent < 200 {
        get(sent).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!lines(&log).is_empty(), "a new file after SIGHUP");
    eventually("every line written", || {
        lines(&moved).len() + lines(&log).len() == sent
    })
    .await;

    // The old switch: JSON lines on stdout, among tracing's own lines.
    let stdout_conf = dir.path().join("stdout.toml");
    let text = reload_config(origin.addr(), &log)
        .replace("[access_log]\nformat = \"json\"\n", "")
        .replace(&format!("path = \"{}\"\n", log.display()), "");
    std::fs::write(&stdout_conf, text).unwrap();
    let sluice = Sluice::start_with(
        &stdout_conf,
        &[
            "--access-log".into(),
            "--instance-id".into(),
            "flag-1".into(),
        ],
    );
    let (addr, _admin) = sluice.serving().await;
    let r = send(
        addr,
        "GET /out HTTP/1.1\r\nHost: o.test\r\nX-Request-Id: out-1\r\n\r\n",
    )
    .await;
    assert_eq!(r.header("x-sluice-instance"), Some("flag-1"));
    eventually("the line on stdout", || {
        sluice.log().contains("\"request_id\":\"out-1\"")
    })
    .await;
    let log_text = sluice.log();
    let line = log_text.lines().find(|l| l.contains("out-1")).unwrap();
    let v: Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(
        (v["path"].as_str(), v["instance"].as_str()),
        (Some("/out"), Some("flag-1"))
    );
}

mod ship;
