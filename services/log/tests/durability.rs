//! Crash safety with the real binary: every acknowledged entry survives
//! SIGKILL and ends up in the output exactly once; SIGTERM flushes the buffer.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use time::OffsetDateTime;

const CLIENTS: usize = 6;

/// Starts `CLIENTS` tasks posting unique entries in batches until the server
/// goes away. Returns the messages that were acknowledged (200).
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, tag: String) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let base = OffsetDateTime::now_utc() - Duration::from_secs(60);
        let tasks = (0..CLIENTS)
            .map(|client| {
                let acked = acked.clone();
                let tag = tag.clone();
                tokio::spawn(async move {
                    for batch in 0.. {
                        let messages: Vec<String> = (0..(batch % 5 + 1))
                            .map(|i| format!("{tag}-c{client}-b{batch}-e{i}"))
                            .collect();
                        let body: Vec<_> = messages
                            .iter()
                            .enumerate()
                            .map(|(i, m)| {
                                // Timestamps shuffled across clients and batches.
                                let offset =
                                    ((batch * 7919 + client * 104_729 + i * 31) % 50_000) as u64;
                                entry_json(base + Duration::from_millis(offset), "info", "dur", m)
                            })
                            .collect();
                        match request(
                            addr,
                            "POST",
                            "/",
                            serde_json::Value::Array(body).to_string().as_bytes(),
                        )
                        .await
                        {
                            Ok((200, _)) => acked.lock().extend(messages),
                            // 503 while shutting down, connection errors once killed.
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        Load { acked, tasks }
    }

    async fn wait_acked(&self, n: usize) {
        for _ in 0..6000 {
            if self.acked.lock().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("only {} entries acknowledged", self.acked.lock().len());
    }

    async fn finish(self) -> Vec<String> {
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner()
    }
}

fn assert_exactly_once(dir: &std::path::Path, acked: &[String], tag: &str) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in output_lines(dir) {
        *counts.entry(classic_message(&line).to_owned()).or_default() += 1;
    }
    let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicated entries: {dupes:?}");
    let missing: Vec<_> = acked.iter().filter(|m| !counts.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged entries lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Unacknowledged entries may appear (in flight at the kill), nothing else.
    assert!(counts.keys().all(|m| m.starts_with(tag)));
}

/// Kill while everything is still inside the reorder window: the only copy of
/// the acknowledged entries is the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_ack_loses_nothing_buffered() {
    let dir = TempDir::new("kill-buffered");
    let proc = Proc::spawn(dir.path(), &["--reorder-window", "1h"]);
    wait_ready(proc.addr).await;
    let load = Load::start(proc.addr, "buf".into());
    load.wait_acked(500).await;
    proc.kill9();
    let acked = load.finish().await;
    assert!(output_lines(dir.path()).is_empty(), "nothing was due yet");

    let proc = Proc::spawn(dir.path(), &["--reorder-window", "1h"]);
    wait_ready(proc.addr).await;
    let (_, stats) = get(proc.addr, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(
        stats["recovered"].as_u64().unwrap() >= acked.len() as u64,
        "{stats}"
    );
    proc.term();
    assert_exactly_once(dir.path(), &acked, "buf");
    // A clean shutdown leaves nothing to replay.
    let wal_files = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert_eq!(wal_files, 0);
}

/// Kill while the flusher is busy writing and checkpointing (zero window):
/// lines written after the last checkpoint must not be duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_output_gives_exactly_once() {
    let dir = TempDir::new("kill-writing");
    let mut all_acked = Vec::new();
    for round in 0..3 {
        let proc = Proc::spawn(
            dir.path(),
            &["--reorder-window", "0", "--max-file-bytes", "20000"],
        );
        wait_ready(proc.addr).await;
        let load = Load::start(proc.addr, format!("wr{round}"));
        load.wait_acked(300 * (round + 1)).await;
        proc.kill9();
        all_acked.extend(load.finish().await);
    }
    let proc = Proc::spawn(dir.path(), &["--reorder-window", "0"]);
    wait_ready(proc.addr).await;
    proc.term();
    assert_exactly_once(dir.path(), &all_acked, "wr");
}

/// SIGTERM writes everything still buffered, ignoring the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_entries() {
    let dir = TempDir::new("term");
    let proc = Proc::spawn(dir.path(), &["--reorder-window", "1h"]);
    wait_ready(proc.addr).await;
    let now = OffsetDateTime::now_utc();
    let batch: Vec<_> = (0..50u64)
        .rev()
        .map(|i| {
            entry_json(
                now - Duration::from_secs(60 - i),
                "info",
                "t",
                &format!("term-{i:02}"),
            )
        })
        .collect();
    assert_eq!(
        post(proc.addr, &serde_json::Value::Array(batch).to_string())
            .await
            .0,
        200
    );
    proc.term();
    let messages: Vec<String> = output_lines(dir.path())
        .iter()
        .map(|l| classic_message(l).to_owned())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("term-{i:02}")).collect();
    assert_eq!(messages, expected);
}
