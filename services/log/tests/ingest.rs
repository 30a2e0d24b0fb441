//! `POST /` validation, field-name styles, escaping, and the small endpoints.

mod common;

use std::time::Duration;

use common::*;
use sluice_log::{Config, Format};
use time::OffsetDateTime;

fn config(dir: &TempDir) -> Config {
    let mut c = Config::new(dir.path());
    // Everything stays buffered until shutdown: the file only changes then.
    c.reorder_window = Duration::from_secs(3600);
    // The entries here are stamped in 2030.
    c.max_future_skew = Duration::from_secs(10 * 365 * 24 * 3600);
    c
}

#[tokio::test]
async fn both_field_name_styles_are_accepted() {
    let dir = TempDir::new("styles");
    let server = Server::start(config(&dir)).await;
    let (status, body) = post(
        server.addr,
        r#"{"level":"info","timestamp":"2030-01-01T00:00:01Z","source":"lower","message":"one"}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":1}"#));
    let (status, _) = post(
        server.addr,
        r#"[{"Level":"warn","Timestamp":"2030-01-01T00:00:02Z","Source":"upper","Message":"two"},
            {"Level":"error","Timestamp":"2030-01-01T01:00:03+01:00","Source":"upper","Message":"three","Extra":1}]"#,
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
    assert_eq!(
        output_lines(dir.path()),
        [
            "2030-01-01 00:00:01;INFO;lower;one",
            "2030-01-01 00:00:02;WARN;upper;two",
            "2030-01-01 00:00:03;ERROR;upper;three",
        ]
    );
}

#[tokio::test]
async fn bad_entry_gets_400_naming_index_and_field() {
    let dir = TempDir::new("bad");
    let server = Server::start(config(&dir)).await;
    let cases = [
        (
            r#"{"level":"info","source":"s","message":"m"}"#,
            0,
            "timestamp",
        ),
        (
            r#"{"level":"info","timestamp":"01/02/2006","source":"s","message":"m"}"#,
            0,
            "timestamp",
        ),
        (
            r#"{"level":"info","timestamp":"2030-01-01T00:00:00Z","source":"s","message":7}"#,
            0,
            "message",
        ),
        (
            r#"{"level":"","timestamp":"2030-01-01T00:00:00Z","source":"s","message":"m"}"#,
            0,
            "level",
        ),
    ];
    for (body, index, field) in cases {
        let (status, resp) = post(server.addr, body).await;
        assert_eq!(status, 400, "{body}");
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["index"], index, "{resp}");
        assert_eq!(v["field"], field, "{resp}");
        assert!(v["error"].as_str().unwrap().contains(field), "{resp}");
    }
    for body in ["not json", "{", "42", ""] {
        let (status, _) = post(server.addr, body).await;
        assert_eq!(status, 400, "{body:?}");
    }
    let (_, stats) = get(server.addr, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["received"], 0);
    assert_eq!(stats["rejected"], 8);
    server.stop().await;
    assert!(output_lines(dir.path()).is_empty());
}

#[tokio::test]
async fn batch_with_one_bad_entry_is_rejected_whole() {
    let dir = TempDir::new("batch");
    let server = Server::start(config(&dir)).await;
    let (status, _) = post(
        server.addr,
        r#"{"level":"info","timestamp":"2030-01-01T00:00:00Z","source":"s","message":"kept"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let bad_batch = r#"[
        {"level":"info","timestamp":"2030-01-01T00:00:01Z","source":"s","message":"a"},
        {"level":"info","timestamp":"2030-01-01T00:00:02Z","source":"s","message":"b"},
        {"level":"info","timestamp":"2030-01-01T00:00:03Z","source":"s;x","message":"c"}
    ]"#;
    let (status, resp) = post(server.addr, bad_batch).await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(
        (v["index"].as_u64(), v["field"].as_str()),
        (Some(2), Some("source"))
    );
    // Nothing of the batch is visible, in memory or (after flush) on disk.
    let (_, logs) = get(server.addr, "/logs").await;
    let logs: Vec<serde_json::Value> = serde_json::from_str(&logs).unwrap();
    assert_eq!(logs.len(), 1);
    server.stop().await;
    assert_eq!(
        output_lines(dir.path()),
        ["2030-01-01 00:00:00;INFO;s;kept"]
    );
}

#[tokio::test]
async fn newlines_and_backslashes_are_escaped_one_line_per_entry() {
    let dir = TempDir::new("escape");
    let server = Server::start(config(&dir)).await;
    let message = "line1\nline2\r\nsemi;colon back\\slash";
    let body = entry_json(
        OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
        "error",
        "svc",
        message,
    );
    assert_eq!(post(server.addr, &body.to_string()).await.0, 200);
    server.stop().await;
    let lines = output_lines(dir.path());
    assert_eq!(
        lines,
        ["2030-03-17 17:46:40;ERROR;svc;line1\\nline2\\r\\nsemi;colon back\\\\slash"]
    );
    // Read back through /logs after a restart: unescaped again.
    let server = Server::start(config(&dir)).await;
    let (_, logs) = get(server.addr, "/logs").await;
    let logs: Vec<serde_json::Value> = serde_json::from_str(&logs).unwrap();
    assert_eq!(logs[0]["message"], message);
    server.stop().await;
}

#[tokio::test]
async fn json_lines_format() {
    let dir = TempDir::new("jsonfmt");
    let mut c = config(&dir);
    c.format = Format::Json;
    let server = Server::start(c).await;
    let body =
        r#"{"level":"info","timestamp":"2030-01-01T00:00:00.5Z","source":"s","message":"a\nb"}"#;
    assert_eq!(post(server.addr, body).await.0, 200);
    server.stop().await;
    let lines = output_lines(dir.path());
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["timestamp"], "2030-01-01T00:00:00.5Z");
    assert_eq!(v["message"], "a\nb");
    assert_eq!(v["level"], "INFO");
}

#[tokio::test]
async fn oversized_body_gets_413_and_unknown_routes_404_405() {
    let dir = TempDir::new("limits");
    let mut c = config(&dir);
    c.max_body_bytes = 64;
    let server = Server::start(c).await;
    let big = format!(
        r#"{{"level":"info","timestamp":"2030-01-01T00:00:00Z","source":"s","message":"{}"}}"#,
        "x".repeat(100)
    );
    assert_eq!(post(server.addr, &big).await.0, 413);
    assert_eq!(get(server.addr, "/nope").await.0, 404);
    assert_eq!(get(server.addr, "/").await.0, 405);
    assert_eq!(
        request(server.addr, "POST", "/logs", b"").await.unwrap().0,
        405
    );
    assert_eq!(get(server.addr, "/ping").await, (200, "pong\n".to_owned()));
    assert_eq!(get(server.addr, "/ready").await.0, 200);
    server.stop().await;
    assert!(output_lines(dir.path()).is_empty());
}
