//! The counters behind `/metrics`, kept where the request already has the
//! object: a route's by its index in the state, a group's by its index, a
//! backend's in the backend itself, the process's in one shared struct.
//! All plain atomics bumped `Relaxed` (statistics: a scrape reads recent
//! values, none of which orders other memory), none behind a lock.

use super::histogram::{Histogram, REQUEST_BOUNDS, UPSTREAM_BOUNDS};
use crate::error::ErrorKind;
use crate::upstream::pool::Pool;
use http::Method;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `method` label: the nine methods of RFC 9110 and PATCH's RFC 5789,
/// and `other` for the rest, so a client cannot make new series.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

/// The `status_class` label.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// 1xx..5xx; anything outside 100..=599 (never sent) counts as 5xx.
pub fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// One route's request durations by method and status class, made at the
/// first request of each pair (a route serves a few of the 50), and its
/// body bytes. Kept across reloads by the route's name.
#[derive(Debug)]
pub struct RouteStats {
    pub name: String,
    /// `METHODS.len() × CLASSES.len()`, method-major.
    durations: Box<[OnceLock<Histogram>]>,
    /// Request body bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Response body bytes sent to clients (after compression).
    pub bytes_out: AtomicU64,
}

impl RouteStats {
    pub fn new(name: String) -> RouteStats {
        RouteStats {
            name,
            durations: (0..METHODS.len() * CLASSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, method: usize, class: usize, micros: u64) {
        self.durations[method * CLASSES.len() + class]
            .get_or_init(|| Histogram::new(REQUEST_BOUNDS))
            .observe(micros);
    }

    /// `(method, status class, histogram)` for each pair seen so far.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, &'static str, &Histogram)> {
        self.durations.iter().enumerate().filter_map(|(i, h)| {
            let h = h.get()?;
            Some((METHODS[i / CLASSES.len()], CLASSES[i % CLASSES.len()], h))
        })
    }
}

/// One upstream group's connect and first-byte times. Kept across reloads
/// by the group's name.
#[derive(Debug)]
pub struct GroupStats {
    pub name: String,
    /// A try's connection checkout: near 0 for a pooled connection.
    pub connect: Histogram,
    /// From the request sent to the response head (time to first byte).
    pub header: Histogram,
}

impl GroupStats {
    pub fn new(name: String) -> GroupStats {
        GroupStats {
            name,
            connect: Histogram::new(UPSTREAM_BOUNDS),
            header: Histogram::new(UPSTREAM_BOUNDS),
        }
    }
}

/// A backend's share: requests whose last try it served, by status class,
/// and their body bytes. Lives in the `Backend`, so it lasts as long as the
/// backend does (across reloads that keep it).
#[derive(Debug, Default)]
pub struct BackendStats {
    requests: [AtomicU64; 5],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl BackendStats {
    pub fn count(&self, class: usize, bytes_in: u64, bytes_out: u64) {
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    pub fn requests(&self, class: usize) -> u64 {
        self.requests[class].load(Ordering::Relaxed)
    }
}

/// Every [`ErrorKind`], in the order of [`reason_index`].
const KINDS: [ErrorKind; 26] = [
    ErrorKind::NoRoute,
    ErrorKind::NoBackend,
    ErrorKind::UriTooLong,
    ErrorKind::HeadersTooLarge,
    ErrorKind::AmbiguousFraming,
    ErrorKind::BadRequest,
    ErrorKind::ConnectFailed,
    ErrorKind::ConnectTimeout,
    ErrorKind::UpstreamTls,
    ErrorKind::UpstreamCertificate,
    ErrorKind::UpstreamReset,
    ErrorKind::UpstreamClosedAwaitingClient,
    ErrorKind::UpstreamProtocol,
    ErrorKind::UpstreamTimeout,
    ErrorKind::ClientAborted,
    ErrorKind::MalformedBody,
    ErrorKind::ClientTimeout,
    ErrorKind::ClientBodyTimeout,
    ErrorKind::RateLimited,
    ErrorKind::ClientBodyTooSlow,
    ErrorKind::BodyTooLarge,
    ErrorKind::UpstreamBodyTimeout,
    ErrorKind::RequestDeadline,
    ErrorKind::QueueFull,
    ErrorKind::QueueTimeout,
    ErrorKind::Internal,
];

/// The kind's place in [`KINDS`]. Exhaustive on purpose: a new kind does
/// not compile (in the tests, which clippy builds too) until it has a
/// place, and a unit test checks the list against it.
#[cfg(test)]
const fn kind_index(k: ErrorKind) -> usize {
    match k {
        ErrorKind::NoRoute => 0,
        ErrorKind::NoBackend => 1,
        ErrorKind::UriTooLong => 2,
        ErrorKind::HeadersTooLarge => 3,
        ErrorKind::AmbiguousFraming => 4,
        ErrorKind::BadRequest => 5,
        ErrorKind::ConnectFailed => 6,
        ErrorKind::ConnectTimeout => 7,
        ErrorKind::UpstreamTls => 8,
        ErrorKind::UpstreamCertificate => 9,
        ErrorKind::UpstreamReset => 10,
        ErrorKind::UpstreamClosedAwaitingClient => 11,
        ErrorKind::UpstreamProtocol => 12,
        ErrorKind::UpstreamTimeout => 13,
        ErrorKind::ClientAborted => 14,
        ErrorKind::MalformedBody => 15,
        ErrorKind::ClientTimeout => 16,
        ErrorKind::ClientBodyTimeout => 17,
        ErrorKind::RateLimited => 18,
        ErrorKind::ClientBodyTooSlow => 19,
        ErrorKind::BodyTooLarge => 20,
        ErrorKind::UpstreamBodyTimeout => 21,
        ErrorKind::RequestDeadline => 22,
        ErrorKind::QueueFull => 23,
        ErrorKind::QueueTimeout => 24,
        ErrorKind::Internal => 25,
    }
}

/// The `reason` label of a proxy-made response: its `x-sluice-error` value,
/// one of the fixed reasons of [`ErrorKind::reason`] (a cold path: only
/// error responses look it up).
fn reason_index(value: &[u8]) -> Option<usize> {
    KINDS.iter().position(|k| k.reason().as_bytes() == value)
}

/// What the whole proxy counts, beyond routes, groups and backends: one
/// per server, carried from state to state by reloads.
#[derive(Debug)]
pub struct Process {
    /// For `sluice_process_start_time_seconds`.
    pub started_unix: f64,
    /// Proxy-made responses by reason, in [`KINDS`] order.
    reasons: [AtomicU64; KINDS.len()],
    /// Bytes into and out of response compression (`proxy::compress`), per
    /// coding in `Encoding::ALL` order.
    pub compress_in: [AtomicU64; 3],
    pub compress_out: [AtomicU64; 3],
    /// Every worker's upstream pool, read at scrape time for the idle
    /// connections.
    ///
    /// # Concurrency
    /// Pushed once by each worker as it starts, read by scrapes: a
    /// `parking_lot` lock held for the push or a clone of the list, never
    /// on the request path.
    pools: Mutex<Vec<Weak<Pool>>>,
}

impl Default for Process {
    fn default() -> Process {
        Process {
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            reasons: Default::default(),
            compress_in: Default::default(),
            compress_out: Default::default(),
            pools: Mutex::new(Vec::new()),
        }
    }
}

impl Process {
    /// A proxy-made response with this `x-sluice-error` value.
    pub fn refused(&self, reason: &[u8]) {
        if let Some(i) = reason_index(reason) {
            self.reasons[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(reason, count)` for every reason (zeros included: the set is fixed).
    pub fn reasons(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KINDS
            .iter()
            .zip(&self.reasons)
            .map(|(k, n)| (k.reason(), n.load(Ordering::Relaxed)))
    }

    pub fn add_pool(&self, pool: Weak<Pool>) {
        let mut pools = self.pools.lock();
        pools.retain(|p| p.strong_count() > 0);
        pools.push(pool);
    }

    pub fn pools(&self) -> Vec<std::sync::Arc<Pool>> {
        self.pools.lock().iter().filter_map(Weak::upgrade).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_once_each_in_index_order() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(kind_index(*k), i, "{k:?}");
        }
    }

    #[test]
    fn each_reason_is_counted_under_its_own_label_and_others_not_at_all() {
        let p = Process::default();
        p.refused(b"rate limited");
        p.refused(b"rate limited");
        p.refused(b"backend queue full");
        p.refused(b"made up by a backend");
        let counts: std::collections::HashMap<_, _> = p.reasons().collect();
        assert_eq!(counts.len(), KINDS.len(), "reasons are distinct");
        assert_eq!(counts["rate limited"], 2);
        assert_eq!(counts["backend queue full"], 1);
        assert_eq!(counts.values().sum::<u64>(), 3);
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_index(&Method::from_bytes(b"BREW").unwrap()), 9);
        assert_eq!(class_index(100), 0);
        assert_eq!(class_index(599), 4);
        assert_eq!(class_index(999), 4);
        assert_eq!(class_index(0), 0);
    }
}
