//! Entries from concurrent, out-of-order senders come out sorted by time.

mod common;

use std::time::Duration;

use common::*;
use sluice_log::{Config, Format};
use time::OffsetDateTime;

const SENDERS: usize = 6;
const PER_SENDER: usize = 200;

/// A deterministic shuffle (xorshift), so failures reproduce.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

async fn send_shuffled(format: Format) -> Vec<String> {
    let dir = TempDir::new("order");
    let mut config = Config::new(dir.path());
    // Wide enough that nothing sent by this test is late, whatever the load.
    config.reorder_window = Duration::from_secs(3600);
    config.format = format;
    let server = Server::start(config).await;
    let base = OffsetDateTime::now_utc() - Duration::from_secs(600);
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            // Each sender owns interleaved timestamps and posts them shuffled,
            // in batches of varying size.
            let mut idx: Vec<usize> = (0..PER_SENDER).map(|i| i * SENDERS + sender).collect();
            shuffle(&mut idx, 0x9e37_79b9 + sender as u64);
            let mut rest = &idx[..];
            let mut size = 1;
            while !rest.is_empty() {
                let (batch, tail) = rest.split_at(size.min(rest.len()));
                rest = tail;
                size = size % 7 + 1;
                let entries: Vec<_> = batch
                    .iter()
                    .map(|&i| {
                        let ts = base + Duration::from_millis(i as u64 * 10);
                        entry_json(ts, "info", &format!("sender{sender}"), &format!("n{i}"))
                    })
                    .collect();
                let body = serde_json::Value::Array(entries).to_string();
                let (status, resp) = post(addr, &body).await;
                assert_eq!(status, 200, "{resp}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, stats) = get(server.addr, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["received"], SENDERS * PER_SENDER);
    assert_eq!(stats["late"], 0);
    // SIGTERM-equivalent: flush everything, ignoring the window.
    server.stop().await;
    output_lines(dir.path())
}

fn assert_all_in_order(numbers: Vec<usize>) {
    let expected: Vec<usize> = (0..SENDERS * PER_SENDER).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_senders_classic() {
    let lines = send_shuffled(Format::Classic).await;
    // Classic timestamps have second resolution; the message carries the
    // exact index, and the order must be the timestamp order.
    let numbers = lines
        .iter()
        .map(|l| classic_message(l).trim_start_matches('n').parse().unwrap())
        .collect();
    assert_all_in_order(numbers);
    let stamps: Vec<&str> = lines.iter().map(|l| &l[..19]).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_senders_json() {
    let lines = send_shuffled(Format::Json).await;
    let numbers = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"]
                .as_str()
                .unwrap()
                .trim_start_matches('n')
                .parse()
                .unwrap()
        })
        .collect();
    assert_all_in_order(numbers);
}
