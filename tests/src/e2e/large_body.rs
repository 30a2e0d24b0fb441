//! Bodies stream through without being held: 1 GiB up and 1 GiB down,
//! generated on the fly and verified byte for byte as they arrive, while the
//! process's resident memory (the proxy runs in this process) stays flat.
//!
//! The transfer runs alone in a child process (`harness::isolate`) so that
//! the other tests, running as threads of this binary, do not count against
//! its memory bound.

use http::Request;
use http_body_util::BodyExt;
use sluice_e2e::harness::client::{H1, collect};
use sluice_e2e::harness::isolate;
use sluice_e2e::harness::memory::PeakGrowth;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::pattern::{PatternBody, PatternCheck};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;

const SIZE: u64 = 1024 * 1024 * 1024;
/// Far below the body size: a proxy that buffered either body would exceed it.
const MAX_GROWTH_MIB: u64 = 64;
/// A hang guard only; this is not a speed test.
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn large_bodies_stream_both_ways_with_flat_memory() {
    let out = isolate::run("large_body::transfer_alone_in_a_child_process", LIMIT);
    eprintln!("{out}");
}

/// The measured transfer; it does its work only in the isolated child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_alone_in_a_child_process() {
    if !isolate::is_child() {
        return;
    }
    let origin = Origin::http1()
        .route("/upload", reply::check_pattern)
        .route("/download", |_| async {
            http::Response::new(reply::pattern(SIZE))
        })
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let mut client = H1::connect(proxy.addr()).await;

    let memory = PeakGrowth::start();
    let transfer = async {
        // Upload: the origin checks every byte and reports what it got.
        let req = Request::post("/upload")
            .header("host", "big.test")
            .body(PatternBody::new(SIZE).boxed())
            .expect("request");
        let reply = collect(client.send(req).await).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("{SIZE} ok"), "upload arrived intact");

        // Download: checked here as it streams in.
        let req = Request::get("/download")
            .header("host", "big.test")
            .body(reply::empty())
            .expect("request");
        let resp = client.send(req).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut check = PatternCheck::default();
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame.expect("download frame").data_ref() {
                check.feed(d);
            }
        }
        assert_eq!(check.count(), SIZE, "download byte count");
        assert!(check.ok(), "download corrupt at {:?}", check.corrupt_at());
    };
    tokio::time::timeout(LIMIT, transfer)
        .await
        .expect("2 GiB through the proxy in time");
    let growth = memory.finish();
    eprintln!("peak resident memory growth: {growth} MiB");
    assert!(
        growth < MAX_GROWTH_MIB,
        "resident memory grew by {growth} MiB while moving 2×1 GiB; bodies must stream"
    );
}
