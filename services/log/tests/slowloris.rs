//! Slowloris against the real binary (issue 14, finding 6): a request head
//! that never completes, or no bytes at all, is closed once
//! `--header-timeout` passes, and the service keeps serving. The 30 s guard
//! only keeps a broken build from hanging the test; nothing measures time.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_stalled_request_head_is_closed() {
    let dir = TempDir::new("slowloris");
    let log = Proc::spawn(dir.path(), &["--header-timeout", "200ms"]);
    wait_ready(log.addr).await;
    for sent in [&b"POST / HTTP/1.1\r\nHost: log\r\n"[..], b""] {
        let mut stream = TcpStream::connect(log.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let mut answer = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "{sent:?}: still open");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text:?}"
        );
    }
    assert_eq!(get(log.addr, "/ping").await.0, 200);
    log.term();
}

/// A slow upload: a body that stops arriving gets 408 once
/// `--body-timeout` passes, and nothing from it is accepted.
#[tokio::test]
async fn a_stalled_body_gets_408() {
    let dir = TempDir::new("slowbody");
    let log = Proc::spawn(dir.path(), &["--body-timeout", "200ms"]);
    wait_ready(log.addr).await;
    let mut stream = TcpStream::connect(log.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: log\r\nContent-Length: 100\r\n\r\n[")
        .await
        .unwrap();
    let mut head = Vec::new();
    let read_head = async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_head)
        .await
        .expect("an answer");
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    let (_, stats) = get(log.addr, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["received"].as_u64(), Some(0), "{stats}");
    log.term();
}

/// Bodies in flight share one budget over all connections: while one
/// upload holds all of `--max-inflight-body-bytes`, another gets 503; once
/// it is committed, the budget is back.
#[tokio::test]
async fn uploads_in_flight_share_one_budget() {
    let dir = TempDir::new("inflight");
    let log = Proc::spawn(
        dir.path(),
        &[
            "--max-body-bytes",
            "1000",
            "--max-inflight-body-bytes",
            "1000",
        ],
    );
    wait_ready(log.addr).await;
    let entry = |m: &str| entry_json(time::OffsetDateTime::now_utc(), "info", "budget", m);
    // Nearly all of the budget, so no second body fits beside it.
    let whole = serde_json::json!([entry(&format!("slow{}", "x".repeat(850)))]).to_string();
    assert!((900..=1000).contains(&whole.len()), "{}", whole.len());
    let head = format!(
        "POST / HTTP/1.1\r\nHost: log\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        whole.len()
    );
    // Its reservation is taken when its head is handled, which the test
    // cannot see: keep trying until it shows (bounded). Right after a run
    // that left ~18,000 loopback sockets in TIME_WAIT (the bench's tests,
    // before this binary in `cargo test --workspace`), a connection was seen
    // never to reach the server while fresh ones did: after 2,000 tries a
    // new one (a new port) is opened.
    let mut refused = false;
    let mut slow = None;
    'attempts: for _ in 0..5 {
        let mut conn = TcpStream::connect(log.addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&whole.as_bytes()[..1]).await.unwrap();
        slow = Some(conn);
        for _ in 0..2000 {
            let (status, body) = post(log.addr, &entry("small").to_string()).await;
            if status == 503 {
                assert!(body.contains("uploads in flight"), "{body}");
                refused = true;
                break 'attempts;
            }
            assert_eq!(status, 200, "{body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(refused, "a second upload refused while the budget is taken");
    let mut slow = slow.expect("a slow upload");
    slow.write_all(&whole.as_bytes()[1..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert_eq!(post(log.addr, &entry("after").to_string()).await.0, 200);
    log.term();
}
