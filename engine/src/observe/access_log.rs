//! The access log: one line per finished request, written off the request
//! path. A request formats its line ([`log_line`](super::log_line)) and
//! offers it to a bounded queue with `try_send`; it never waits. One
//! writer thread per log batches the lines into the file or stdout
//! ([`log_writer`](super::log_writer)), and one more ships them to the log
//! service when `[access_log.ship]` is set ([`ship`](super::ship)). A full
//! queue drops the line and counts it (`access_log_dropped`, also in
//! `GET /access_log` on the admin API), with a warning at most every 10 s:
//! a slow disk or a dead log service costs lines, never latency.

use super::{Exchange, log_line, log_writer, ship};
use crate::config::{AccessLogConfig, LogFormat};
use crate::state::State;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `e`'s line, when the state has an access log.
pub fn record(state: &State, e: &Exchange) {
    if let Some(log) = &state.access_log {
        log.record(e, state.metrics.route_name_of(e.trail.route()));
    }
}

/// The counts of one proxy's access log, kept across reloads (a reload
/// that changes the log starts new threads with these same counters).
///
/// # Concurrency
/// Plain counters, each added to by one side and read by the admin API:
/// `Relaxed` everywhere. `dropped` and `ship_dropped` are written by every
/// worker, but only when a queue is full, so they are not hot.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    /// Lines written and flushed to the file or stdout.
    pub written: AtomicU64,
    /// `access_log_dropped`: lines dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Lines lost to a failed open or write (disk full, no such directory).
    pub write_errors: AtomicU64,
    /// Entries the log service accepted.
    pub shipped: AtomicU64,
    /// `access_log_ship_dropped`: entries dropped because the ship queue
    /// was full, or because their batch was the oldest past `pending`.
    pub ship_dropped: AtomicU64,
    /// POSTs to the log service that failed (each is retried).
    pub ship_failures: AtomicU64,
    /// When a drop was last warned about (seconds since the epoch).
    #[serde(skip)]
    warned_at: AtomicU64,
}

impl Counters {
    /// Counts one line dropped into `counter` and warns at most every 10 s.
    pub(super) fn drop_one(&self, counter: &AtomicU64, what: &'static str) {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(dropped = n, "{what}");
        }
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A running access log: its settings, queues and counters.
#[derive(Debug)]
pub struct AccessLog {
    settings: AccessLogConfig,
    instance: Arc<str>,
    lines: SyncSender<String>,
    /// The writer's reopen request and idle count.
    flags: Arc<log_writer::Flags>,
    ship: Option<SyncSender<(SystemTime, String)>>,
    pub counters: Arc<Counters>,
}

impl AccessLog {
    /// The log for `settings`: `previous` itself when nothing changed (its
    /// file is kept; a reload reopens it), else a new one that keeps
    /// counting in `previous`'s counters.
    pub fn start(
        settings: &AccessLogConfig,
        instance: &Arc<str>,
        previous: Option<&Arc<AccessLog>>,
    ) -> Arc<AccessLog> {
        let open = log_writer::opener(settings.path.clone());
        AccessLog::start_with(settings, instance, previous, open)
    }

    /// [`AccessLog::start`] writing to what `open` opens.
    pub fn start_with(
        settings: &AccessLogConfig,
        instance: &Arc<str>,
        previous: Option<&Arc<AccessLog>>,
        open: log_writer::Open,
    ) -> Arc<AccessLog> {
        if let Some(p) = previous.filter(|p| p.settings == *settings && p.instance == *instance) {
            return p.clone();
        }
        let counters = previous.map(|p| p.counters.clone()).unwrap_or_default();
        let flags = Arc::new(log_writer::Flags::default());
        let (lines, rx) = mpsc::sync_channel(settings.queue);
        log_writer::spawn(rx, open, flags.clone(), counters.clone());
        let ship = settings.ship.as_ref().map(|s| {
            let (tx, rx) = mpsc::sync_channel(s.queue);
            let source = s.source.clone().unwrap_or_else(|| instance.to_string());
            ship::spawn(rx, s.clone(), source, counters.clone());
            tx
        });
        Arc::new(AccessLog {
            settings: settings.clone(),
            instance: instance.clone(),
            lines,
            flags,
            ship,
            counters,
        })
    }

    /// Formats `e`'s line and queues it for the writer and the shipper;
    /// drops and counts what does not fit.
    /// `route`: the matched route's name (`[[route]] name`, else its host
    /// and path), `None` when no route matched.
    pub fn record(&self, e: &Exchange, route: Option<&str>) {
        let line = match self.settings.format {
            LogFormat::Json => log_line::json(e, route, &self.instance),
            LogFormat::Combined => log_line::combined(e, route, &self.instance),
        };
        if let Some(ship) = &self.ship {
            let json = match self.settings.format {
                LogFormat::Json => line.clone(),
                LogFormat::Combined => log_line::json(e, route, &self.instance),
            };
            self.offer_ship(ship, e.started_wall, json);
        }
        self.offer(line);
    }

    fn offer(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lines.try_send(line)
        {
            self.counters.drop_one(
                &self.counters.dropped,
                "access log queue full: lines dropped (access_log_dropped)",
            );
        }
    }

    fn offer_ship(&self, ship: &SyncSender<(SystemTime, String)>, at: SystemTime, line: String) {
        if ship.try_send((at, line)).is_err() {
            self.counters.drop_one(
                &self.counters.ship_dropped,
                "access log ship queue full: entries dropped (access_log_ship_dropped)",
            );
        }
    }

    /// Asks the writer to reopen its file (after logrotate moved it).
    pub fn reopen(&self) {
        self.flags.reopen.store(true, Ordering::Relaxed);
    }

    /// Waits, at most `limit`, until the writer has been idle once since
    /// now: called after the workers stopped, so that the lines of the
    /// last requests are in the file before the process exits.
    pub async fn written(&self, limit: std::time::Duration) {
        let start = self.flags.idle.load(Ordering::Relaxed);
        let _ = tokio::time::timeout(limit, async {
            while self.flags.idle.load(Ordering::Relaxed) == start {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// `GET /access_log` on the admin API.
pub fn view(state: &State) -> serde_json::Value {
    let log = state.access_log.as_ref();
    serde_json::json!({
        "instance": &*state.instance,
        "enabled": log.is_some(),
        "format": log.map(|l| match l.settings.format {
            LogFormat::Json => "json",
            LogFormat::Combined => "combined",
        }),
        "path": log.and_then(|l| l.settings.path.as_ref()).map(|p| p.display().to_string()),
        "shipping": log.is_some_and(|l| l.ship.is_some()),
        "counters": log.map(|l| &*l.counters),
    })
}

#[cfg(test)]
mod tests;
