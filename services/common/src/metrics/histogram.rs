//! A duration histogram on atomics: what a request pays to be timed.
//!
//! `prometheus-client`'s own `Histogram` takes a per-series lock on every
//! `observe`; this one is one `fetch_add` on the bucket and one on the sum.
//! It encodes through the same `encode_histogram`, so the exposition is
//! the library's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Bucket bounds in seconds, shared by every series built from them.
pub type Bounds = &'static [f64];

/// Cheap to clone: clones share the counts. Relaxed atomics: each count is
/// an independent tally; a scrape may see a request in its bucket before
/// its duration is in the sum, never a torn value.
#[derive(Debug, Clone)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: Bounds,
    /// Observations per bucket, not cumulative; the last is `+Inf`'s.
    counts: Box<[AtomicU64]>,
    /// The sum in nanoseconds (585 years of request time before it wraps).
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub fn new(bounds: Bounds) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(Inner {
                bounds,
                counts,
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let inner = &*self.inner;
        let bucket = inner
            .bounds
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(inner.bounds.len());
        inner.counts[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        inner.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        // Per bucket: the encoder makes them cumulative. `_count` is their
        // total, so it always agrees with the `+Inf` bucket.
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(inner.counts.iter())
            .map(|(le, count)| (le, count.load(Relaxed)))
            .collect();
        let total = buckets.iter().map(|(_, n)| n).sum();
        let sum = inner.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
