//! Counters for `GET /stats`. Relaxed atomics: each is an independent tally,
//! read for monitoring, never used to synchronise.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Stats {
    /// Entries acknowledged (durable in the WAL).
    received: AtomicU64,
    /// Entries written to the output files.
    written: AtomicU64,
    /// Entries that arrived after their reorder window.
    late: AtomicU64,
    /// Entries released before their window had passed because the reorder
    /// buffer was over `--max-buffered-bytes`.
    released_early: AtomicU64,
    /// Requests (batches) committed to the WAL.
    batches: AtomicU64,
    /// WAL fsyncs (one per group commit).
    fsyncs: AtomicU64,
    /// Entries replayed from the WAL at startup.
    recovered: AtomicU64,
    /// Requests rejected as malformed.
    rejected: AtomicU64,
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
    pub fn record_commit(&self, batches: usize, entries: u64) {
        self.fsyncs.fetch_add(1, Relaxed);
        self.batches.fetch_add(batches as u64, Relaxed);
        self.received.fetch_add(entries, Relaxed);
    }
    pub fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Relaxed);
    }
    pub fn add_late(&self, n: u64) {
        self.late.fetch_add(n, Relaxed);
    }
    pub fn add_released_early(&self, n: u64) {
        self.released_early.fetch_add(n, Relaxed);
    }
    pub fn add_recovered(&self, n: u64) {
        self.recovered.fetch_add(n, Relaxed);
    }
    pub fn add_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }
    pub fn snapshot(&self, buffered: usize, buffered_bytes: u64) -> Snapshot {
        Snapshot {
            received: self.received.load(Relaxed),
            written: self.written.load(Relaxed),
            late: self.late.load(Relaxed),
            released_early: self.released_early.load(Relaxed),
            batches: self.batches.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            recovered: self.recovered.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            buffered: buffered as u64,
            buffered_bytes,
        }
    }
}
