//! A backend that floods 1xx heads at a client that does not read: the
//! proxy holds at most a bounded queue of them (RFC 9110 §15.2 asks to
//! forward 1xx, not to buffer them without end), and the final response
//! still arrives once the client reads.

use sluice_e2e::harness::isolate;
use sluice_e2e::harness::memory::PeakGrowth;
use sluice_e2e::harness::proxy::{Proxy, config};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// 103 heads sent, each with a `link` field of [`LINK`] bytes: 128 MiB.
const HEADS: usize = 4096;
const LINK: usize = 32 * 1024;
/// Far below what the backend sends: a proxy that queued the heads for the
/// silent client would exceed it.
const MAX_GROWTH_MIB: u64 = 32;
/// A hang guard only; this is not a speed test.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_1xx_flood_to_a_client_that_does_not_read_is_bounded() {
    let out = isolate::run("interim_flood::flood_alone_in_a_child_process", LIMIT);
    eprintln!("{out}");
}

/// The measured flood; it does its work only in the isolated child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_alone_in_a_child_process() {
    if !isolate::is_child() {
        return;
    }
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = backend.local_addr().expect("addr");
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = backend.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "the proxy closed before its request");
            head.extend_from_slice(&buf[..n]);
        }
        let hint = format!(
            "HTTP/1.1 103 Early Hints\r\nlink: </{}>; rel=preload\r\n\r\n",
            "a".repeat(LINK)
        );
        for _ in 0..HEADS {
            s.write_all(hint.as_bytes()).await.expect("write a 103");
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .expect("write the final response");
        let _ = sent_tx.send(());
        // Keep the connection until the proxy is done with it.
        let _ = s.read(&mut buf).await;
    });
    let mut c = config(&[addr]);
    c.timeouts.upstream_response = Duration::from_secs(60);
    let proxy = Proxy::start(&c).await;

    let memory = PeakGrowth::start();
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    client
        .write_all(b"GET /hints HTTP/1.1\r\nHost: flood.test\r\n\r\n")
        .await
        .expect("request");
    // The client reads nothing until the backend has sent everything.
    tokio::time::timeout(LIMIT, sent_rx)
        .await
        .expect("the backend sent every head")
        .expect("sent");
    let growth = memory.finish();

    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        while !got.ends_with(b"\r\n\r\nok") {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the final response");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(LIMIT, read_all)
        .await
        .expect("the final response arrives");
    let text = String::from_utf8_lossy(&got);
    let hints = text.matches("HTTP/1.1 103 ").count();
    let finals = text.matches("HTTP/1.1 200 OK").count();
    eprintln!("growth {growth} MiB, {hints} of {HEADS} hints forwarded");
    assert_eq!(finals, 1, "one final response");
    assert!(hints >= 1, "the first hints are forwarded");
    assert!(
        hints < HEADS,
        "a silent client got every head queued for it"
    );
    assert!(
        growth <= MAX_GROWTH_MIB,
        "the proxy grew {growth} MiB holding 1xx heads for a silent client"
    );
}
