//! The `sluice-cache` binary: flags, structured logs, SIGTERM → exit 0, and
//! exit 64 on bad settings before anything is bound.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-cache");

#[tokio::test]
async fn serves_then_exits_zero_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--max-bytes", "1MiB", "--purge-interval", "200ms"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice-cache");
    // The "listening" log line carries the bound address.
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .expect("a log line before exit")
            .expect("read stderr");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if event["message"] == "listening" {
            assert_eq!(event["store"], "memory");
            break event["addr"]
                .as_str()
                .expect("addr field")
                .parse()
                .expect("addr");
        }
    };
    // Keep draining the logs so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());

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
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(drain.join().unwrap() > 0, "logged its shutdown");
}

#[test]
fn bad_settings_exit_64() {
    for args in [
        &["--max-bytes", "1KiB", "--max-entry-bytes", "2KiB"][..],
        &["--store", "memcached://x"][..],
        &["--purge-interval", "0s"][..],
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
