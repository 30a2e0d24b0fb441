//! `--max-buffered-bytes`: a reorder buffer over its cap writes its oldest
//! entries early, in timestamp order, and loses none.

mod common;

use std::time::Duration;

use common::*;
use sluice_log::Config;
use time::OffsetDateTime;

const BATCHES: usize = 20;
const PER_BATCH: usize = 20;
const N: usize = BATCHES * PER_BATCH;
/// Room for a few dozen of this test's entries, far less than `N`.
const CAP: u64 = 8 * 1024;

/// The entry index carried in a classic line's message (`n00042-xxx…`).
fn index(line: &str) -> usize {
    let msg = classic_message(line);
    msg[1..msg.find('-').unwrap()].parse().unwrap()
}

async fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/stats").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_oldest_entries_are_written_early_in_order() {
    let dir = TempDir::new("cap");
    let mut config = Config::new(dir.path());
    // Nothing posted here reaches the end of its window during the test.
    config.reorder_window = Duration::from_secs(3600);
    config.max_buffered_bytes = CAP;
    let server = Server::start(config).await;

    let base = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let pad = "x".repeat(100);
    for batch in 0..BATCHES {
        // Each batch is later than the one before, shuffled inside (a
        // reversal), so the timestamp order is the index order.
        let entries: Vec<_> = (batch * PER_BATCH..(batch + 1) * PER_BATCH)
            .rev()
            .map(|i| {
                let ts = base + Duration::from_millis(i as u64);
                entry_json(ts, "info", "cap", &format!("n{i:05}-{pad}"))
            })
            .collect();
        let (status, resp) =
            post(server.addr, &serde_json::Value::Array(entries).to_string()).await;
        assert_eq!(status, 200, "{resp}");
    }

    // Wait (bounded) for the flusher to bring the buffer under the cap with
    // nothing in flight.
    let mut settled = None;
    for _ in 0..2000 {
        let s = stats(server.addr).await;
        let (written, buffered) = (
            s["written"].as_u64().unwrap(),
            s["buffered"].as_u64().unwrap(),
        );
        if written + buffered == N as u64 && s["buffered_bytes"].as_u64().unwrap() <= CAP {
            settled = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = settled.expect("the buffer never came under the cap");
    assert_eq!(s["received"], N);
    assert_eq!(s["late"], 0);
    let written = s["written"].as_u64().unwrap();
    let early = s["released_early"].as_u64().unwrap();
    assert!(early > 0, "{s}");
    // The window has not passed for anything: every line written went early,
    // and the newest entries are still held.
    assert_eq!(written, early, "{s}");
    assert!(s["buffered"].as_u64().unwrap() > 0, "{s}");

    // Already in the file, window or not: the oldest entries, in order.
    let lines = output_lines(dir.path());
    let got: Vec<usize> = lines.iter().map(|l| index(l)).collect();
    let expected: Vec<usize> = (0..written as usize).collect();
    assert_eq!(got, expected);

    // The rest come out at shutdown: every entry exactly once, in order.
    server.stop().await;
    let got: Vec<usize> = output_lines(dir.path()).iter().map(|l| index(l)).collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}
