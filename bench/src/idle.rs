//! Memory per idle connection: open N keep-alive connections through the
//! proxy from this process, one request on each, hold them, and read the
//! proxy's RSS growth.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{IoContext, Result};
use crate::measure;

/// Connections opened before the baseline reading, so that lazily created
/// state (upstream pool, buffers of the first connections) is not charged
/// to the idle ones.
const WARM: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IdleResult {
    pub connections: usize,
    pub failed: usize,
    /// RSS growth divided by connections, in bytes.
    pub bytes_per_conn: f64,
    pub rss_before: u64,
    pub rss_after: u64,
}

pub fn run(addr: SocketAddr, pid: u32, connections: usize) -> Result<IdleResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "building idle runtime".to_string())?;
    rt.block_on(async move {
        let mut held = Vec::with_capacity(connections + WARM);
        let mut failed = 0;
        for _ in 0..WARM {
            match open(addr).await {
                Some(c) => held.push(c),
                None => failed += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = measure::sample(pid).rss;
        // Open in batches of 100 concurrent handshakes.
        let mut opened = 0;
        while opened < connections {
            let batch = (connections - opened).min(100);
            let tasks: Vec<_> = (0..batch).map(|_| tokio::spawn(open(addr))).collect();
            for t in tasks {
                match t.await.ok().flatten() {
                    Some(c) => held.push(c),
                    None => failed += 1,
                }
            }
            opened += batch;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = measure::sample(pid).rss;
        drop(held);
        Ok(IdleResult {
            connections,
            failed,
            bytes_per_conn: after.saturating_sub(before) as f64 / connections.max(1) as f64,
            rss_before: before,
            rss_after: after,
        })
    })
}

/// A connection that has completed one request and is now idle; dropping
/// it closes the socket.
type Held = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn open(addr: SocketAddr) -> Option<Held> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/tiny")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new())
        .ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.into_body().collect().await.ok()?;
    Some(sender)
}
