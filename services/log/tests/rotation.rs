//! Output files rotate by size and no entry is lost across them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use sluice_log::Config;
use time::OffsetDateTime;

#[tokio::test]
async fn rotates_by_size_without_losing_entries() {
    let dir = TempDir::new("rotate");
    let mut config = Config::new(dir.path());
    config.reorder_window = Duration::ZERO;
    config.max_file_bytes = 2_000;
    config.keep_files = 100;
    let server = Server::start(config).await;
    let base = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let total = 400;
    for chunk in 0..(total / 20) {
        let batch: Vec<_> = (0..20)
            .map(|j| {
                let i = chunk * 20 + j;
                entry_json(
                    base + Duration::from_secs(i),
                    "info",
                    "rot",
                    &format!("entry-{i:05}"),
                )
            })
            .collect();
        let (status, _) = post(server.addr, &serde_json::Value::Array(batch).to_string()).await;
        assert_eq!(status, 200);
        wait_written(server.addr, (chunk + 1) * 20).await;
    }
    // While running, /logs sees everything across the rotated files.
    let (_, logs) = get(server.addr, "/logs?limit=100000").await;
    let logs: Vec<serde_json::Value> = serde_json::from_str(&logs).unwrap();
    assert_eq!(logs.len(), total as usize);
    server.stop().await;

    let rotated = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|d| {
            let name = d.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with("app.log.")
        })
        .count();
    assert!(
        rotated >= 3,
        "expected several rotated files, got {rotated}"
    );
    for generation in 1..=rotated {
        let path = dir.path().join(format!("app.log.{generation}"));
        let len = std::fs::metadata(&path).unwrap().len();
        // A file rotates after the flush that crosses the limit.
        assert!(len >= 2_000, "{} is only {len} bytes", path.display());
    }
    let lines = output_lines(dir.path());
    let messages: Vec<&str> = lines.iter().map(|l| classic_message(l)).collect();
    let unique: BTreeSet<&str> = messages.iter().copied().collect();
    assert_eq!(messages.len(), total as usize, "no duplicates");
    assert_eq!(unique.len(), total as usize, "no losses");
    // Old entries are all late, so each batch is written in arrival order;
    // batches were sent in order, so the files are in order overall.
    let expected: Vec<String> = (0..total).map(|i| format!("entry-{i:05}")).collect();
    assert_eq!(messages, expected);
}

#[tokio::test]
async fn keeps_at_most_keep_files() {
    let dir = TempDir::new("keep");
    let mut config = Config::new(dir.path());
    config.reorder_window = Duration::ZERO;
    config.max_file_bytes = 100;
    config.keep_files = 2;
    let server = Server::start(config).await;
    let base = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    for i in 0..30u64 {
        let e = entry_json(
            base + Duration::from_secs(i),
            "info",
            "k",
            &format!("{i:040}"),
        );
        assert_eq!(post(server.addr, &e.to_string()).await.0, 200);
        wait_written(server.addr, i + 1).await;
    }
    server.stop().await;
    assert!(dir.path().join("app.log.2").exists());
    assert!(!dir.path().join("app.log.3").exists());
}

#[tokio::test]
async fn a_single_large_flush_still_rotates_at_the_limit() {
    let dir = TempDir::new("bigflush");
    let mut config = Config::new(dir.path());
    // Everything is held until shutdown, then written in one flush.
    config.reorder_window = Duration::from_secs(3600);
    config.max_file_bytes = 1_000;
    config.keep_files = 100;
    let server = Server::start(config).await;
    let base = OffsetDateTime::now_utc() - Duration::from_secs(600);
    let batch: Vec<_> = (0..200u64)
        .map(|i| {
            entry_json(
                base + Duration::from_millis(i),
                "info",
                "big",
                &format!("e{i:04}"),
            )
        })
        .collect();
    assert_eq!(
        post(server.addr, &serde_json::Value::Array(batch).to_string())
            .await
            .0,
        200
    );
    server.stop().await;
    for generation in 1..=5 {
        let path = dir.path().join(format!("app.log.{generation}"));
        let len = std::fs::metadata(&path).unwrap().len();
        // At the limit, overshooting by at most one line.
        assert!(
            (1_000..1_100).contains(&len),
            "{} is {len} bytes",
            path.display()
        );
    }
    let lines = output_lines(dir.path());
    let expected: Vec<String> = (0..200).map(|i| format!("e{i:04}")).collect();
    assert_eq!(
        lines.iter().map(|l| classic_message(l)).collect::<Vec<_>>(),
        expected
    );
}
