//! Timestamps far from the server's clock (issue 14, finding 8), with the
//! real binary and SIGKILL. One rule for live and recovered entries: an
//! entry stamped more than `--max-future-skew` ahead is refused with 400
//! (so it is never acknowledged, never in the WAL); one within it is
//! ordered by when it arrived, and after a crash by when it was recovered,
//! so it is written one reorder window later, not at its timestamp.

mod common;

use std::time::Duration;

use common::*;
use time::OffsetDateTime;
use time::macros::datetime;

fn messages(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| classic_message(l)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_is_refused_and_near_future_survives_a_crash_unheld() {
    let dir = TempDir::new("future");
    // A window long enough that nothing is written before the kill: the
    // accepted entry's only copy is the WAL.
    let proc = Proc::spawn(
        dir.path(),
        &["--reorder-window", "1h", "--max-future-skew", "1h"],
    );
    wait_ready(proc.addr).await;
    let year_9999 = entry_json(datetime!(9999-12-31 23:59:59 UTC), "info", "skew", "y9999");
    let (status, body) = post(proc.addr, &year_9999.to_string()).await;
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (error["index"].as_u64(), error["field"].as_str()),
        (Some(0), Some("timestamp"))
    );
    // Refused whole: the good entry in the same batch is not taken either.
    let now = OffsetDateTime::now_utc();
    let batch = serde_json::json!([entry_json(now, "info", "skew", "with-y9999"), year_9999,]);
    assert_eq!(post(proc.addr, &batch.to_string()).await.0, 400);
    let ahead = entry_json(now + Duration::from_secs(30 * 60), "info", "skew", "ahead");
    let (status, body) = post(proc.addr, &ahead.to_string()).await;
    assert_eq!(status, 200, "{body}");
    proc.kill9();
    assert!(output_lines(dir.path()).is_empty(), "nothing was due yet");

    // Restarted with a short window, the replayed entry is written one
    // window after recovery, though its timestamp is 30 minutes ahead.
    let proc = Proc::spawn(dir.path(), &["--reorder-window", "200ms"]);
    wait_ready(proc.addr).await;
    wait_written(proc.addr, 1).await;
    assert_eq!(messages(&output_lines(dir.path())), ["ahead"]);
    let (status, body) = get(proc.addr, "/logs?source=skew").await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let listed: Vec<&str> = listed
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(listed, ["ahead"]);
    proc.term();
    assert_eq!(messages(&output_lines(dir.path())), ["ahead"]);
}
