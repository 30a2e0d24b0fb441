//! Counters for `GET /stats` and `GET /metrics`. They are prometheus-client
//! metrics (relaxed atomics behind an `Arc`; the histograms lock their own
//! series): each is an independent tally, read for monitoring, never used
//! to synchronise. The WAL and flusher threads update them; the
//! reorder-buffer gauges are set from the buffer at scrape time.
//!
//! | family | type | meaning |
//! |---|---|---|
//! | `log_entries_received_total` | counter | entries acknowledged (durable in the WAL): the ingest rate |
//! | `log_entries_written_total` | counter | entries written to the output files |
//! | `log_entries_late_total` | counter | entries that arrived after their reorder window |
//! | `log_entries_released_early_total` | counter | entries written before their window passed (buffer over its byte cap) |
//! | `log_entries_recovered_total` | counter | entries replayed from the WAL at startup |
//! | `log_requests_committed_total` | counter | requests (batches) committed to the WAL |
//! | `log_requests_rejected_total` | counter | requests rejected as malformed or too large |
//! | `log_fsyncs_total` | counter | WAL fsyncs (one per group commit) |
//! | `log_fsync_batch_entries` | histogram | entries made durable by one fsync (group commit size) |
//! | `log_fsync_duration_seconds` | histogram | time of one WAL fsync |
//! | `log_reorder_buffer_entries` | gauge | entries held in the reorder buffer |
//! | `log_reorder_buffer_bytes` | gauge | estimated bytes held by it (what `--max-buffered-bytes` caps) |

use std::time::Duration;

use serde::Serialize;
use sluice_service_common::metrics::prometheus_client::metrics::counter::Counter;
use sluice_service_common::metrics::prometheus_client::metrics::gauge::Gauge;
use sluice_service_common::metrics::prometheus_client::metrics::histogram::{
    Histogram, exponential_buckets,
};
use sluice_service_common::metrics::prometheus_client::registry::{Registry, Unit};

#[derive(Debug)]
pub struct Stats {
    /// Entries acknowledged (durable in the WAL).
    received: Counter,
    /// Entries written to the output files.
    written: Counter,
    /// Entries that arrived after their reorder window.
    late: Counter,
    /// Entries released before their window had passed because the reorder
    /// buffer was over `--max-buffered-bytes`.
    released_early: Counter,
    /// Requests (batches) committed to the WAL.
    batches: Counter,
    /// WAL fsyncs (one per group commit).
    fsyncs: Counter,
    /// Entries replayed from the WAL at startup.
    recovered: Counter,
    /// Requests rejected as malformed.
    rejected: Counter,
    /// Entries per fsync: 1 to 4096 by powers of two.
    fsync_batch: Histogram,
    /// Seconds per fsync: 50 µs to about 3 s.
    fsync_seconds: Histogram,
    /// The reorder buffer, as of the last scrape.
    buffered: Gauge,
    buffered_bytes: Gauge,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            received: Counter::default(),
            written: Counter::default(),
            late: Counter::default(),
            released_early: Counter::default(),
            batches: Counter::default(),
            fsyncs: Counter::default(),
            recovered: Counter::default(),
            rejected: Counter::default(),
            fsync_batch: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            fsync_seconds: Histogram::new(exponential_buckets(0.00005, 3.0, 11)),
            buffered: Gauge::default(),
            buffered_bytes: Gauge::default(),
        }
    }
}

/// A point-in-time copy, serialised by `/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub received: u64,
    pub written: u64,
    pub late: u64,
    pub released_early: u64,
    pub batches: u64,
    pub fsyncs: u64,
    pub recovered: u64,
    pub rejected: u64,
    pub buffered: u64,
    /// Estimated bytes held by the reorder buffer (what the cap measures).
    pub buffered_bytes: u64,
}

impl Stats {
    /// Registers every family (see the module doc) under `log_`.
    pub fn register(&self, registry: &mut Registry) {
        let log = registry.sub_registry_with_prefix("log");
        let counters = [
            (
                "entries_received",
                "Entries acknowledged (durable in the WAL)",
                &self.received,
            ),
            (
                "entries_written",
                "Entries written to the output files",
                &self.written,
            ),
            (
                "entries_late",
                "Entries that arrived after their reorder window",
                &self.late,
            ),
            (
                "entries_released_early",
                "Entries written before their window passed because the reorder buffer was over its byte cap",
                &self.released_early,
            ),
            (
                "entries_recovered",
                "Entries replayed from the WAL at startup",
                &self.recovered,
            ),
            (
                "requests_committed",
                "Requests (batches) committed to the WAL",
                &self.batches,
            ),
            (
                "requests_rejected",
                "Requests rejected as malformed or too large",
                &self.rejected,
            ),
            ("fsyncs", "WAL fsyncs (one per group commit)", &self.fsyncs),
        ];
        for (name, help, counter) in counters {
            log.register(name, help, counter.clone());
        }
        log.register(
            "fsync_batch_entries",
            "Entries made durable by one WAL fsync (group commit size)",
            self.fsync_batch.clone(),
        );
        log.register_with_unit(
            "fsync_duration",
            "Time of one WAL fsync",
            Unit::Seconds,
            self.fsync_seconds.clone(),
        );
        log.register(
            "reorder_buffer_entries",
            "Entries held in the reorder buffer",
            self.buffered.clone(),
        );
        log.register(
            "reorder_buffer_bytes",
            "Estimated bytes held by the reorder buffer (what --max-buffered-bytes caps)",
            self.buffered_bytes.clone(),
        );
    }

    /// One group commit: `batches` requests, `entries` entries, one fsync
    /// that took `fsync`.
    pub fn record_commit(&self, batches: usize, entries: u64, fsync: Duration) {
        self.fsyncs.inc();
        self.batches.inc_by(batches as u64);
        self.received.inc_by(entries);
        self.fsync_batch.observe(entries as f64);
        self.fsync_seconds.observe(fsync.as_secs_f64());
    }
    pub fn add_written(&self, n: u64) {
        self.written.inc_by(n);
    }
    pub fn add_late(&self, n: u64) {
        self.late.inc_by(n);
    }
    pub fn add_released_early(&self, n: u64) {
        self.released_early.inc_by(n);
    }
    pub fn add_recovered(&self, n: u64) {
        self.recovered.inc_by(n);
    }
    pub fn add_rejected(&self) {
        self.rejected.inc();
    }
    /// Sets the reorder-buffer gauges before a scrape.
    pub fn set_buffer(&self, buffered: usize, buffered_bytes: u64) {
        self.buffered
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
        self.buffered_bytes
            .set(i64::try_from(buffered_bytes).unwrap_or(i64::MAX));
    }
    pub fn snapshot(&self, buffered: usize, buffered_bytes: u64) -> Snapshot {
        Snapshot {
            received: self.received.get(),
            written: self.written.get(),
            late: self.late.get(),
            released_early: self.released_early.get(),
            batches: self.batches.get(),
            fsyncs: self.fsyncs.get(),
            recovered: self.recovered.get(),
            rejected: self.rejected.get(),
            buffered: buffered as u64,
            buffered_bytes,
        }
    }
}
