//! Order stage: the reorder buffer between the WAL (durable, arrival order)
//! and the output file (timestamp order).
//!
//! Entries are held in a min-heap keyed by `(timestamp, seq)` until the reorder
//! window has passed after their timestamp; then they are released in key
//! order. An entry whose timestamp is already older than the window when it
//! arrives is "late": it goes to a FIFO and is written at the next release, in
//! arrival order. An entry stamped in the future is keyed by its arrival time
//! instead (for one recovered from the WAL, the recovery time), so a skewed
//! clock cannot pin it in memory, before or after a restart; entries too far
//! ahead are refused at ingest (`entry::check_future_skew`).
//!
//! Memory is bounded by a byte cap ([`ReorderBuffer::with_max_bytes`],
//! `--max-buffered-bytes`): while the held entries cost more than the cap,
//! [`ReorderBuffer::release`] also releases the oldest ones early, in key
//! order, before their window has passed. Nothing is dropped or refused (every
//! entry here is already durable in the WAL); the price is only ordering: an
//! entry that arrives afterwards with an earlier timestamp is written after
//! the early ones. [`ReorderBuffer::over_cap`] tells the ingest side to wake
//! the flusher instead of waiting for its next tick.
//!
//! This is pure logic: the caller passes `now`, so tests need no clock.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::entry::Entry;

/// An entry with its WAL sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    pub seq: u64,
    pub entry: Entry,
}

/// What one held entry costs against the cap: its strings plus the
/// bookkeeping around them. An estimate of heap use, not an exact figure.
pub fn entry_cost(entry: &Entry) -> u64 {
    (std::mem::size_of::<Held>() + entry.level.len() + entry.source.len() + entry.message.len())
        as u64
}

#[derive(Debug)]
struct Held {
    /// Unix nanos used for ordering and release: min(timestamp, arrival).
    key: i128,
    item: Sequenced,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.item.seq).cmp(&(other.key, other.item.seq))
    }
}

/// Holds acknowledged entries until their reorder window has passed, or
/// until they are the oldest while the buffer is over its byte cap.
#[derive(Debug)]
pub struct ReorderBuffer {
    window_nanos: i128,
    heap: BinaryHeap<Reverse<Held>>,
    late: VecDeque<Sequenced>,
    /// Sum of [`entry_cost`] over `heap` and `late`.
    bytes: u64,
    max_bytes: u64,
}

impl ReorderBuffer {
    /// A buffer without a byte cap; see [`ReorderBuffer::with_max_bytes`].
    pub fn new(window: Duration) -> Self {
        ReorderBuffer {
            window_nanos: i128::try_from(window.as_nanos()).unwrap_or(i128::MAX),
            heap: BinaryHeap::new(),
            late: VecDeque::new(),
            bytes: 0,
            max_bytes: u64::MAX,
        }
    }

    /// Caps the held entries at `max_bytes` (by [`entry_cost`]): above it,
    /// [`ReorderBuffer::release`] releases the oldest early.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Adds a freshly acknowledged entry. Returns true if it was late.
    pub fn push(&mut self, item: Sequenced, now_nanos: i128) -> bool {
        self.bytes += entry_cost(&item.entry);
        let ts = item.entry.timestamp.unix_timestamp_nanos();
        if ts < now_nanos.saturating_sub(self.window_nanos) {
            self.late.push_back(item);
            return true;
        }
        self.heap.push(Reverse(Held {
            key: ts.min(now_nanos),
            item,
        }));
        false
    }

    /// Adds an entry recovered from the WAL at `now_nanos` (the recovery
    /// time): never late, merged by timestamp, and, like a live entry, one
    /// stamped in the future is keyed by the time it (re)arrived, so a
    /// restart cannot pin it in memory until its timestamp.
    pub fn push_recovered(&mut self, item: Sequenced, now_nanos: i128) {
        self.bytes += entry_cost(&item.entry);
        let key = item.entry.timestamp.unix_timestamp_nanos().min(now_nanos);
        self.heap.push(Reverse(Held { key, item }));
    }

    fn pop_held(&mut self) -> Option<Sequenced> {
        let Reverse(h) = self.heap.pop()?;
        self.bytes -= entry_cost(&h.item.entry);
        Some(h.item)
    }

    fn drain_late(&mut self, out: &mut Vec<Sequenced>) {
        for item in self.late.drain(..) {
            self.bytes -= entry_cost(&item.entry);
            out.push(item);
        }
    }

    /// Moves everything whose window has passed into `out`: late entries first
    /// (arrival order), then held ones in timestamp order. Then, while the
    /// buffer is still over its cap, releases the oldest held entries early,
    /// continuing the same timestamp order. Returns how many were released
    /// early.
    pub fn release(&mut self, now_nanos: i128, out: &mut Vec<Sequenced>) -> u64 {
        self.drain_late(out);
        let horizon = now_nanos.saturating_sub(self.window_nanos);
        while self.heap.peek().is_some_and(|Reverse(h)| h.key <= horizon) {
            if let Some(item) = self.pop_held() {
                out.push(item);
            }
        }
        let mut early = 0;
        while self.over_cap() {
            let Some(item) = self.pop_held() else { break };
            out.push(item);
            early += 1;
        }
        early
    }

    /// Moves everything into `out`, ignoring the window (shutdown flush).
    pub fn drain_all(&mut self, out: &mut Vec<Sequenced>) {
        self.drain_late(out);
        while let Some(item) = self.pop_held() {
            out.push(item);
        }
    }

    /// The held entries cost more than the cap: the next
    /// [`ReorderBuffer::release`] will release some early.
    pub fn over_cap(&self) -> bool {
        self.bytes > self.max_bytes
    }

    /// Current cost of the held entries, by [`entry_cost`].
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.late.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry currently held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.late
            .iter()
            .map(|s| &s.entry)
            .chain(self.heap.iter().map(|Reverse(h)| &h.item.entry))
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    const SEC: i128 = 1_000_000_000;

    fn at(seq: u64, secs: i64) -> Sequenced {
        Sequenced {
            seq,
            entry: Entry {
                timestamp: OffsetDateTime::from_unix_timestamp(secs).unwrap(),
                level: "INFO".into(),
                source: "t".into(),
                message: format!("m{seq}"),
            },
        }
    }

    fn seqs(v: &[Sequenced]) -> Vec<u64> {
        v.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn holds_until_window_then_releases_sorted() {
        let mut b = ReorderBuffer::new(Duration::from_secs(2));
        let now = 1000 * SEC;
        assert!(!b.push(at(0, 1000), now));
        assert!(!b.push(at(1, 999), now));
        assert!(!b.push(at(2, 1000), now));
        let mut out = Vec::new();
        b.release(now, &mut out);
        assert!(out.is_empty(), "nothing is older than the window yet");
        b.release(1001 * SEC, &mut out);
        assert_eq!(seqs(&out), [1]);
        out.clear();
        b.release(1002 * SEC, &mut out);
        assert_eq!(seqs(&out), [0, 2]);
        assert!(b.is_empty());
    }

    #[test]
    fn equal_timestamps_keep_arrival_order() {
        let mut b = ReorderBuffer::new(Duration::from_secs(1));
        for seq in [5, 3, 9, 4] {
            b.push(at(seq, 10), 10 * SEC);
        }
        let mut out = Vec::new();
        assert_eq!(b.release(100 * SEC, &mut out), 0);
        assert_eq!(seqs(&out), [3, 4, 5, 9]);
    }

    #[test]
    fn late_entries_go_first_in_arrival_order() {
        let mut b = ReorderBuffer::new(Duration::from_secs(2));
        let now = 1000 * SEC;
        assert!(!b.push(at(0, 999), now));
        assert!(b.push(at(1, 990), now));
        assert!(b.push(at(2, 980), now));
        let mut out = Vec::new();
        b.release(now, &mut out);
        assert_eq!(seqs(&out), [1, 2]);
    }

    #[test]
    fn future_timestamps_are_released_after_arrival_plus_window() {
        let mut b = ReorderBuffer::new(Duration::from_secs(2));
        b.push(at(0, 5000), 1000 * SEC);
        let mut out = Vec::new();
        b.release(1002 * SEC, &mut out);
        assert_eq!(seqs(&out), [0]);
    }

    /// The same rule as a live entry's: a recovered entry stamped in the
    /// future (a year-9999 one acknowledged before a crash) is released one
    /// window after the recovery, not at its timestamp.
    #[test]
    fn recovered_future_entry_is_keyed_by_recovery_time() {
        let mut b = ReorderBuffer::new(Duration::from_secs(2));
        let year_9999 = Sequenced {
            seq: 0,
            entry: Entry {
                timestamp: time::macros::datetime!(9999-12-31 23:59:59 UTC),
                ..at(0, 0).entry
            },
        };
        b.push_recovered(year_9999, 1000 * SEC);
        b.push_recovered(at(1, 999), 1000 * SEC);
        let mut out = Vec::new();
        b.release(1001 * SEC, &mut out);
        assert_eq!(seqs(&out), [1], "inside the window: only the older one");
        b.release(1002 * SEC, &mut out);
        assert_eq!(seqs(&out), [1, 0]);
        assert!(b.is_empty());
    }

    #[test]
    fn drain_all_ignores_window() {
        let mut b = ReorderBuffer::new(Duration::from_secs(3600));
        b.push(at(0, 20), 20 * SEC);
        b.push(at(1, 10), 20 * SEC);
        b.push_recovered(at(2, 15), 20 * SEC);
        let mut out = Vec::new();
        b.drain_all(&mut out);
        assert_eq!(seqs(&out), [1, 2, 0]);
    }

    #[test]
    fn cap_releases_oldest_early_in_timestamp_order_and_keeps_the_rest() {
        let now = 1000 * SEC;
        let cost = entry_cost(&at(0, 900).entry);
        // Room for exactly three entries; the window keeps everything.
        let mut b = ReorderBuffer::new(Duration::from_secs(3600)).with_max_bytes(3 * cost);
        for (seq, secs) in [(0, 905), (1, 901), (2, 904), (3, 902), (4, 903)] {
            assert!(!b.push(at(seq, secs), now));
        }
        assert!(b.over_cap());
        assert_eq!(b.bytes(), 5 * cost);
        let mut out = Vec::new();
        assert_eq!(b.release(now, &mut out), 2);
        // The two oldest by timestamp, oldest first.
        assert_eq!(seqs(&out), [1, 3]);
        assert!(!b.over_cap());
        assert_eq!((b.len(), b.bytes()), (3, 3 * cost));
        // At the cap, not over it: nothing more goes early.
        out.clear();
        assert_eq!(b.release(now, &mut out), 0);
        assert!(out.is_empty());
        // The rest keep waiting for their window, then come out in order.
        b.drain_all(&mut out);
        assert_eq!(seqs(&out), [4, 2, 0]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn cap_counts_late_and_recovered_entries() {
        let now = 1000 * SEC;
        let cost = entry_cost(&at(0, 900).entry);
        let mut b = ReorderBuffer::new(Duration::from_secs(2)).with_max_bytes(cost);
        assert!(b.push(at(0, 900), now));
        b.push_recovered(at(1, 1000), now);
        b.push_recovered(at(2, 999), now);
        assert_eq!(b.bytes(), 3 * cost);
        let mut out = Vec::new();
        // Late first; then the window releases nothing and the cap one entry.
        assert_eq!(b.release(now, &mut out), 1);
        assert_eq!(seqs(&out), [0, 2]);
        assert_eq!((b.len(), b.bytes()), (1, cost));
    }
}
