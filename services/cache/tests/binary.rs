//! The `sluice-cache` binary: flags, structured logs, SIGTERM → exit 0, and
//! exit 64 on bad settings before anything is bound.

mod support;

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-cache");

#[tokio::test]
async fn serves_then_exits_zero_on_sigterm() {
    let mut cache = support::Binary::spawn(&["--max-bytes", "1MiB", "--purge-interval", "200ms"]);
    let addr = cache.addr;

    assert_eq!(
        support::request(addr, "GET", "/ping", &[], b"")
            .await
            .status,
        200
    );
    let stored = support::request(
        addr,
        "POST",
        "/?key=k",
        &[
            ("Cache-Control", "maxage=60"),
            ("Content-Type", "text/html"),
        ],
        b"<p>hi</p>",
    )
    .await;
    assert_eq!(stored.status, 200, "{stored:?}");
    let hit = support::request(addr, "GET", "/?key=k", &[], b"").await;
    assert_eq!(
        (hit.status, hit.header("content-type")),
        (200, Some("text/html"))
    );

    let killed = Command::new("kill")
        .args(["-TERM", &cache.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let logs = cache.logs.take().expect("log reader");
    let (cache, status) = tokio::task::spawn_blocking(move || {
        let status = cache.child.wait();
        (cache, status)
    })
    .await
    .unwrap();
    let status = status.expect("wait");
    assert!(status.success(), "exit status {status}");
    drop(cache);
    assert!(logs.join().unwrap() > 0, "logged its shutdown");
}

#[test]
fn bad_settings_exit_64() {
    for args in [
        &["--max-bytes", "1KiB", "--max-entry-bytes", "2KiB"][..],
        &["--store", "memcached://x"][..],
        &["--purge-interval", "0s"][..],
        &[
            "--max-entry-bytes",
            "2MiB",
            "--max-inflight-body-bytes",
            "1MiB",
        ][..],
    ] {
        let status = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run sluice-cache");
        assert_eq!(status.code(), Some(64), "{args:?}");
    }
}

/// A certificate file that is not one, a key that is not the certificate's,
/// a missing file, or a certificate without a key: exit 64 before anything
/// is bound, with the file named.
#[test]
fn bad_tls_files_exit_64_naming_the_file() {
    let pki = sluice_testkit::certs::Pki::new();
    let a = pki.leaf("a", &["localhost"]);
    let b = pki.leaf("b", &["localhost"]);
    let text = pki.dir().join("text.pem");
    std::fs::write(&text, "not PEM").unwrap();
    let missing = pki.dir().join("missing.pem");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    for (args, named) in [
        (
            vec!["--tls-cert", &path(&text), "--tls-key", &path(&a.key)],
            "text.pem",
        ),
        (
            vec!["--tls-cert", &path(&a.cert), "--tls-key", &path(&b.key)],
            "b.key",
        ),
        (
            vec!["--tls-cert", &path(&missing), "--tls-key", &path(&a.key)],
            "missing.pem",
        ),
        (vec!["--tls-cert", &path(&a.cert)], "--tls-key"),
    ] {
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run sluice-cache");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

/// A duration past 365 days (issue 14) is refused at startup with exit 64
/// and a message naming the flag, by flag and by env var alike. Before, it
/// was taken and the binary served with it (a deadline `now + d` built from
/// it overflows, and panics, wherever one is computed).
#[test]
fn a_duration_past_365_days_is_refused_at_startup() {
    use std::time::{Duration, Instant};
    // Flags, and an env var as `KEY=value` (empty for none).
    let cases: [(&[&str], &str); 3] = [
        (&["--purge-interval", "1000000000h"], ""),
        (&["--header-timeout", "8761h"], ""),
        (&[], "SLUICE_CACHE_BODY_TIMEOUT=31536001s"),
    ];
    for (args, env) in cases {
        let mut command = Command::new(BIN);
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((key, value)) = env.split_once('=') {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("run sluice-cache");
        // Bounded: a binary that took the value serves until killed.
        let until = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        let status = status.unwrap_or_else(|| panic!("{args:?} {env:?}: still running: {stderr}"));
        assert_eq!(status.code(), Some(64), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("365 days"), "{args:?} {env:?}: {stderr}");
        let flag = args.first().copied().unwrap_or("--body-timeout");
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Slowloris (issue 14, finding 6): a request head that never completes,
/// or no bytes at all, is closed once `--header-timeout` passes, and the
/// binary keeps serving. The 30 s guard only keeps a broken build from
/// hanging the test; nothing here measures time.
#[tokio::test]
async fn a_stalled_request_head_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cache = support::Binary::spawn(&["--header-timeout", "200ms"]);
    for sent in [&b"POST /?key=k HTTP/1.1\r\nHost: cache\r\n"[..], b""] {
        let mut stream = tokio::net::TcpStream::connect(cache.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(closed.is_ok(), "{sent:?}: still open");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text:?}"
        );
    }
    let ping = support::request(cache.addr, "GET", "/ping", &[], b"").await;
    assert_eq!(ping.status, 200);
}

/// A slow upload (issue 14, finding 6's class): a body that stops arriving
/// gets 408 once `--body-timeout` passes, and nothing is stored.
#[tokio::test]
async fn a_stalled_body_gets_408_and_stores_nothing() {
    let cache = support::Binary::spawn(&["--body-timeout", "200ms"]);
    let mut conn = support::Conn::open(cache.addr).await;
    let response = conn
        .send(
            b"POST /?key=slow HTTP/1.1\r\nHost: cache\r\nCache-Control: max-age=60\r\n\
              Content-Length: 10\r\n\r\nx",
        )
        .await;
    assert_eq!(response.status, 408, "{response:?}");
    let miss = support::request(cache.addr, "GET", "/?key=slow", &[], b"").await;
    assert_eq!(miss.status, 404);
}

/// Uploads in flight are bounded over all connections, not only one by one
/// (finding 1's class: memory outside `--max-bytes`): while one upload holds
/// the whole `--max-inflight-body-bytes`, another gets 503; once it is
/// stored, the budget is back.
#[tokio::test]
async fn uploads_in_flight_share_one_budget() {
    let cache = support::Binary::spawn(&[
        "--max-entry-bytes",
        "1KiB",
        "--max-inflight-body-bytes",
        "1KiB",
    ]);
    let head = "POST /?key=slow HTTP/1.1\r\nHost: cache\r\nCache-Control: max-age=60\r\n\
                Content-Length: 1000\r\n\r\n";
    let mut first = head.as_bytes().to_vec();
    first.push(b's');
    let small = |i: usize| {
        let cc = [("Cache-Control", "max-age=60")];
        let target = format!("/?key=small{i}");
        async move { support::request(cache.addr, "POST", &target, &cc, &[b'x'; 100]).await }
    };
    // The slow upload's reservation is taken when its head is handled, which
    // this test cannot see: keep trying until it shows (bounded; on a loaded
    // 2-core CI machine 2,000 tries, about 15 s, once were not enough).
    // Right after a run that left ~18,000 loopback sockets in TIME_WAIT (the
    // bench's tests, just before this binary in `cargo test --workspace`),
    // the slow connection was seen never to reach the server while fresh
    // connections did; a new one (a new port) is tried after 2,000 tries.
    let mut refused = None;
    let mut slow = None;
    'attempts: for attempt in 0..5 {
        let mut conn = support::Conn::open(cache.addr).await;
        conn.write(&first).await;
        slow = Some(conn);
        for i in 0..2_000 {
            let response = small(attempt * 2_000 + i).await;
            if response.status == 503 {
                refused = Some(response);
                break 'attempts;
            }
            assert_eq!(response.status, 200, "{response:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let mut slow = slow.expect("a slow upload");
    let refused = refused.expect("a second upload refused while the budget is taken");
    assert!(refused.text().contains("uploads in flight"), "{refused:?}");
    let stored = slow.send(&[b's'; 999]).await;
    assert_eq!(stored.status, 200, "{stored:?}");
    assert_eq!(small(9999).await.status, 200);
}
