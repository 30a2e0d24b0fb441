//! Shipping this replica's log records to the log service, in batches, off
//! the request path.
//!
//! A request hands its record to [`LogShip::log`], which never waits: it is a
//! `try_send` into a bounded channel (`--log-buffer` records). One shipper
//! task drains the channel into batches (up to [`crate::config::Config::log_batch`]
//! records, or whatever arrived within `log_flush`) and `POST`s each as a
//! JSON array. While the log service is down the shipper retries the batch
//! in hand with backoff; meanwhile the channel fills, and records that find
//! it full are dropped and counted (`logs.dropped` in `/stats`). So memory is
//! bounded by the buffer plus one batch, and requests never slow down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::config::Config;
use crate::register::jittered;

/// Longest pause between attempts to send a batch.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// First pause after a failed batch.
const RETRY_START: Duration = Duration::from_millis(50);

/// One record, in the log service's wire shape.
#[derive(Debug, Serialize)]
struct Record {
    level: &'static str,
    timestamp: String,
    source: String,
    message: String,
}

#[derive(Debug, Default)]
pub struct ShipStats {
    /// Records the log service acknowledged.
    pub shipped: AtomicU64,
    /// Records dropped because the buffer was full (or at shutdown while the
    /// log service was unreachable).
    pub dropped: AtomicU64,
    /// Failed POSTs (each retried or, at shutdown, dropped).
    pub failed_posts: AtomicU64,
    /// How the last POST went: [`UNKNOWN`] before the first, then
    /// [`REACHED`] (the service answered) or [`UNREACHABLE`] (no answer:
    /// refused, timed out, or a certificate that does not verify).
    /// `Relaxed`: a report, ordered with nothing else.
    pub last_post: AtomicU8,
}

/// [`ShipStats::last_post`] values.
pub const UNKNOWN: u8 = 0;
pub const REACHED: u8 = 1;
pub const UNREACHABLE: u8 = 2;

/// The request side: cheap to call, never blocks.
pub struct LogShip {
    tx: Option<mpsc::Sender<Record>>,
    source: Arc<str>,
    stats: Arc<ShipStats>,
    capacity: usize,
}

impl LogShip {
    pub fn info(&self, message: String) {
        self.log("INFO", message);
    }

    pub fn warn(&self, message: String) {
        self.log("WARN", message);
    }

    fn log(&self, level: &'static str, message: String) {
        let Some(tx) = &self.tx else { return };
        let record = Record {
            level,
            timestamp: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            source: self.source.to_string(),
            message,
        };
        if tx.try_send(record).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let buffered = self
            .tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity());
        serde_json::json!({
            "enabled": self.tx.is_some(),
            "shipped": get(&self.stats.shipped),
            "dropped": get(&self.stats.dropped),
            "failed_posts": get(&self.stats.failed_posts),
            // `null` until the first batch is sent.
            "reachable": match self.stats.last_post.load(Ordering::Relaxed) {
                REACHED => Some(true),
                UNREACHABLE => Some(false),
                _ => None,
            },
            "buffered": buffered,
            "capacity": self.capacity,
        })
    }
}

/// Starts the shipper (if a log service is configured). It stops when
/// `stop` turns true: it then sends what is buffered, once, and returns.
pub fn spawn(
    config: &Config,
    source: &str,
    stop: watch::Receiver<bool>,
) -> (LogShip, Option<JoinHandle<()>>) {
    let stats = Arc::new(ShipStats::default());
    let source: Arc<str> = Arc::from(source);
    let Some(url) = &config.log else {
        let ship = LogShip {
            tx: None,
            source,
            stats,
            capacity: 0,
        };
        return (ship, None);
    };
    let (tx, rx) = mpsc::channel(config.log_buffer);
    let shipper = Shipper {
        client: Client::new(url, config.service_timeout, config.service_tls.as_ref()),
        rx,
        stats: Arc::clone(&stats),
        batch: config.log_batch,
        flush: config.log_flush,
    };
    let task = tokio::spawn(shipper.run(stop));
    let ship = LogShip {
        tx: Some(tx),
        source,
        stats,
        capacity: config.log_buffer,
    };
    (ship, Some(task))
}

struct Shipper {
    client: Client,
    rx: mpsc::Receiver<Record>,
    stats: Arc<ShipStats>,
    batch: usize,
    flush: Duration,
}

impl Shipper {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                n = self.rx.recv_many(&mut batch, self.batch) => if n == 0 { break },
            }
            // Let a small batch fill for up to `flush`.
            let deadline = tokio::time::sleep(self.flush);
            tokio::pin!(deadline);
            while batch.len() < self.batch {
                let room = self.batch - batch.len();
                tokio::select! {
                    _ = &mut deadline => break,
                    n = self.rx.recv_many(&mut batch, room) => if n == 0 { break },
                }
            }
            if !self.send_until_done(&mut batch, &mut stop).await {
                break;
            }
        }
        // Stopping: one attempt for what is in hand and what is buffered.
        self.rx.close();
        while self.rx.recv_many(&mut batch, self.batch).await > 0 || !batch.is_empty() {
            if !self.send(&batch).await {
                self.stats
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            batch.clear();
        }
    }

    /// Retries `batch` until sent (true) or stop is signalled (false; the
    /// batch is still in hand).
    async fn send_until_done(
        &self,
        batch: &mut Vec<Record>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut backoff = RETRY_START;
        while !self.send(batch).await {
            tokio::select! {
                _ = stop.changed() => return false,
                _ = tokio::time::sleep(jittered(backoff)) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        batch.clear();
        true
    }

    async fn send(&self, batch: &[Record]) -> bool {
        if batch.is_empty() {
            return true;
        }
        let Ok(body) = serde_json::to_vec(batch) else {
            return true;
        };
        let headers = [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        let sent = self
            .client
            .send(Method::POST, "/", &headers, Bytes::from(body))
            .await;
        let reached = if sent.is_ok() { REACHED } else { UNREACHABLE };
        self.stats.last_post.store(reached, Ordering::Relaxed);
        match sent {
            Ok(reply) if reply.status.is_success() => {
                self.stats
                    .shipped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Ok(reply) if reply.status.is_client_error() => {
                // The service will never take this batch: drop, do not retry.
                tracing::warn!(status = %reply.status, "log service refused a batch");
                self.stats
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Ok(_) | Err(_) => {
                self.stats.failed_posts.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}
