//! Shipping access log entries to the log service (`services/log`): a
//! thread of its own takes entries off a bounded queue, gathers them into
//! batches of at most `batch` entries or `interval` of waiting, and POSTs
//! each batch as a JSON array of the service's entries
//! (`{"timestamp", "level", "source", "message"}`; the message is the
//! request's JSON access line). A failed POST is retried, oldest batch
//! first so the order holds, after a backoff that doubles from
//! [`MIN_BACKOFF`] to [`MAX_BACKOFF`]; meanwhile new batches wait, at most
//! `pending` of them, and past that the oldest is dropped and its entries
//! counted (`ship_dropped`). So a dead log service costs entries, never a
//! request's time nor unbounded memory: the queue plus `pending` batches.
//!
//! The client is a plain blocking HTTP/1.1 one (one connection per POST,
//! `Connection: close`, every step under a timeout): plain `http://` only.

use super::access_log::Counters;
use super::log_line::rfc3339_millis;
use crate::config::ShipConfig;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// For the connect, and for each read and write of a POST.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// One entry of the log service's ingest API.
#[derive(Serialize)]
struct Entry<'a> {
    timestamp: String,
    level: &'static str,
    source: &'a str,
    message: &'a str,
}

/// A batch ready to POST: its body and how many entries it holds.
struct Batch {
    body: Vec<u8>,
    entries: u64,
}

pub fn spawn(
    rx: Receiver<(SystemTime, String)>,
    cfg: ShipConfig,
    source: String,
    counters: Arc<Counters>,
) {
    let spawned = std::thread::Builder::new()
        .name("sluice-access-ship".into())
        .spawn(move || {
            let post = |body: &[u8]| post(&cfg.authority, &cfg.path, body);
            run(rx, &cfg, &source, &counters, post);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the access log shipper; entries are dropped");
    }
}

/// The shipper's loop, until every sender is gone; `post` sends one body.
pub fn run(
    rx: Receiver<(SystemTime, String)>,
    cfg: &ShipConfig,
    source: &str,
    counters: &Counters,
    mut post: impl FnMut(&[u8]) -> io::Result<()>,
) {
    let mut current: Vec<(SystemTime, String)> = Vec::new();
    let mut first_at: Option<Instant> = None;
    let mut pending: VecDeque<Batch> = VecDeque::new();
    let mut backoff = MIN_BACKOFF;
    let mut retry_at = Instant::now();
    loop {
        let now = Instant::now();
        let mut wait = cfg.interval;
        if let Some(f) = first_at {
            wait = wait.min((f + cfg.interval).saturating_duration_since(now));
        }
        if !pending.is_empty() {
            wait = wait.min(retry_at.saturating_duration_since(now));
        }
        let closed = match rx.recv_timeout(wait) {
            Ok(e) => {
                first_at.get_or_insert_with(Instant::now);
                current.push(e);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while current.len() < cfg.batch {
            match rx.try_recv() {
                Ok(e) => current.push(e),
                Err(_) => break,
            }
        }
        let due = first_at.is_some_and(|f| f.elapsed() >= cfg.interval);
        if current.len() >= cfg.batch || (due || closed) && !current.is_empty() {
            pending.push_back(seal(&mut current, source));
            first_at = None;
            while pending.len() > cfg.pending {
                if let Some(old) = pending.pop_front() {
                    counters
                        .ship_dropped
                        .fetch_add(old.entries, Ordering::Relaxed);
                }
            }
        }
        while let Some(b) = pending.front() {
            if Instant::now() < retry_at && !closed {
                break;
            }
            match post(&b.body) {
                Ok(()) => {
                    counters.shipped.fetch_add(b.entries, Ordering::Relaxed);
                    pending.pop_front();
                    backoff = MIN_BACKOFF;
                }
                Err(e) => {
                    counters.drop_one(
                        &counters.ship_failures,
                        "access log shipping failed; retrying",
                    );
                    tracing::debug!(error = %e, "access log POST failed");
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if closed {
                        // Closing: one more try each, no waiting.
                        let lost: u64 = pending.iter().map(|b| b.entries).sum();
                        counters.ship_dropped.fetch_add(lost, Ordering::Relaxed);
                        pending.clear();
                    }
                    break;
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// `current`'s entries as one JSON array body.
fn seal(current: &mut Vec<(SystemTime, String)>, source: &str) -> Batch {
    let entries: Vec<Entry<'_>> = current
        .iter()
        .map(|(at, line)| Entry {
            timestamp: rfc3339_millis(*at),
            level: "INFO",
            source,
            message: line.trim_end_matches('\n'),
        })
        .collect();
    let body = serde_json::to_vec(&entries).unwrap_or_default();
    let n = current.len() as u64;
    current.clear();
    Batch { body, entries: n }
}

/// One POST over a new connection; any status but 2xx is a failure.
fn post(authority: &str, path: &str, body: &[u8]) -> io::Result<()> {
    let mut last = io::Error::other(format!("{authority}: no address"));
    let mut stream = None;
    for a in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut s = stream.ok_or(last)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    // The status line is all that matters: `HTTP/1.1 200 ...`.
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let status = std::str::from_utf8(&buf[..got.min(12)])
        .ok()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(s) if (200..300).contains(&s) => Ok(()),
        Some(s) => Err(io::Error::other(format!("log service answered {s}"))),
        None => Err(io::Error::other("no HTTP status from the log service")),
    }
}
