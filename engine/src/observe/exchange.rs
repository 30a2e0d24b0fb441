//! One request's record: [`Exchange`] holds what `proxy::handle` knows at
//! the start and the end, [`Trail`] what the stages learn on the way.

use crate::addr::ClientAddr;
use crate::upstream::Backend;
use http::{HeaderValue, Method, Uri, Version};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// "Not known" for the `Trail`'s number fields.
const NONE: u64 = u64::MAX;

/// The facts the stages learn about a request as it goes: shared with the
/// parts of the request that run apart from `proxy` (hyper pipes an HTTP/2
/// request body on a task of its own), hence atomics. Each field is
/// written by one side at a time and read once, when the exchange
/// finishes, after those writers are done or gone: `Relaxed` everywhere.
#[derive(Debug)]
pub struct Trail {
    /// Request body bytes the client sent (`body::TimedBody`, per chunk).
    bytes_in: AtomicU64,
    /// The route's index in the config (`usize::MAX`: no route matched).
    route: AtomicUsize,
    /// Tries sent to a backend; retries are the tries after the first.
    tries: AtomicU32,
    /// The last try's connection checkout, in microseconds ([`NONE`]: no
    /// try got that far). Near 0 for a pooled connection.
    connect_micros: AtomicU64,
    /// The last try's wait from the request sent to the response head, in
    /// microseconds ([`NONE`]: no head).
    header_micros: AtomicU64,
    /// The last try's backend.
    ///
    /// # Concurrency
    /// A lock of this request's own, taken by its stages one at a time
    /// (set per try) and once at the finish: never contended.
    backend: Mutex<Option<Arc<Backend>>>,
}

impl Default for Trail {
    fn default() -> Trail {
        Trail {
            bytes_in: AtomicU64::new(0),
            route: AtomicUsize::new(usize::MAX),
            tries: AtomicU32::new(0),
            connect_micros: AtomicU64::new(NONE),
            header_micros: AtomicU64::new(NONE),
            backend: Mutex::new(None),
        }
    }
}

impl Trail {
    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_route(&self, index: usize) {
        self.route.store(index, Ordering::Relaxed);
    }

    /// A try is about to connect to `backend`.
    pub fn begin_try(&self, backend: &Arc<Backend>) {
        self.tries.fetch_add(1, Ordering::Relaxed);
        self.connect_micros.store(NONE, Ordering::Relaxed);
        self.header_micros.store(NONE, Ordering::Relaxed);
        self.set_backend(backend);
    }

    /// The try moved to `backend` (a pick again after a failed connect).
    pub fn set_backend(&self, backend: &Arc<Backend>) {
        let mut b = self.backend.lock();
        if b.as_ref().is_none_or(|b| b.id != backend.id) {
            *b = Some(backend.clone());
        }
    }

    pub fn connected(&self, took: Duration) {
        self.connect_micros.store(micros(took), Ordering::Relaxed);
    }

    pub fn answered(&self, took: Duration) {
        self.header_micros.store(micros(took), Ordering::Relaxed);
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub fn route(&self) -> Option<usize> {
        Some(self.route.load(Ordering::Relaxed)).filter(|&r| r != usize::MAX)
    }

    pub fn tries(&self) -> u32 {
        self.tries.load(Ordering::Relaxed)
    }

    /// Tries after the first.
    pub fn retries(&self) -> u32 {
        self.tries().saturating_sub(1)
    }

    pub fn connect_time(&self) -> Option<Duration> {
        duration(self.connect_micros.load(Ordering::Relaxed))
    }

    /// From the request sent to the backend's response head.
    pub fn header_time(&self) -> Option<Duration> {
        duration(self.header_micros.load(Ordering::Relaxed))
    }

    pub fn backend(&self) -> Option<Arc<Backend>> {
        self.backend.lock().clone()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(NONE - 1)
}

fn duration(m: u64) -> Option<Duration> {
    (m != NONE).then(|| Duration::from_micros(m))
}

/// One request from its head to the end of its response body: what
/// `proxy::handle` knows at each end, and the stages' [`Trail`].
#[derive(Debug)]
pub struct Exchange {
    pub trail: Arc<Trail>,
    /// For durations (monotonic).
    pub started: Instant,
    /// For the log line's time.
    pub started_wall: SystemTime,
    pub client: ClientAddr,
    pub method: Method,
    pub uri: Uri,
    /// `Host` or `:authority`, as the client sent it.
    pub host: Option<HeaderValue>,
    /// `Referer` and `User-Agent`, for the combined log format.
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub version: Version,
    /// Kept from the client or made here (`request_id`).
    pub request_id: HeaderValue,
    /// Set from the response head.
    pub status: u16,
    /// The `x-sluice-error` reason of a response the proxy made itself.
    pub error: Option<HeaderValue>,
    /// Response body bytes sent on (after compression).
    pub bytes_out: u64,
    /// A compressed response: its coding and the body bytes that went into
    /// the encoder (`bytes_out` is what came out). Set when finished.
    pub compressed: Option<(crate::proxy::compress::Encoding, u64)>,
    /// The request's span, when it is sampled and spans are exported.
    pub span: Option<super::trace::Span>,
    /// The client had the whole response body (not cut by either side).
    pub completed: bool,
    /// Set when finished: from the head to the body's end or abandonment.
    pub duration: Duration,
}
