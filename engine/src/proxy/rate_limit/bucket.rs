//! One token bucket: `burst` tokens at most, refilled at `rate` per second;
//! a request takes one. Pure arithmetic on a clock reading passed in, so the
//! tests need no clock.

use std::time::Duration;
use tokio::time::Instant;

/// A bucket's state; its rate and burst belong to the limit that owns it.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    /// May go below zero in global mode: consumption by other replicas,
    /// learned at a sync, is a debt repaid by refill before anything passes.
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // Finite and bounded whatever the level (a global level comes
            // from Redis): `from_secs_f64` would panic past `Duration::MAX`.
            let wait = ((1.0 - self.tokens) / rate).min(MAX_WAIT_SECS);
            Err(Duration::try_from_secs_f64(wait)
                .unwrap_or(Duration::from_secs(MAX_WAIT_SECS as u64)))
        }
    }

    /// Whether the bucket has refilled: forgetting it then loses nothing,
    /// since a key seen again starts with a full bucket.
    pub fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }

    /// The tokens now (global mode reads it before a sync).
    pub fn tokens(&mut self, rate: f64, burst: f64, now: Instant) -> f64 {
        self.refill(rate, burst, now);
        self.tokens
    }

    /// Global mode: the shared bucket's level after a sync, less what this
    /// replica took while the sync was in flight.
    pub fn set(&mut self, tokens: f64, now: Instant) {
        self.tokens = tokens;
        self.last = now;
    }
}

/// The longest wait a bucket reports (a day): a `Retry-After` past it says
/// nothing more useful, and it keeps the arithmetic finite.
const MAX_WAIT_SECS: f64 = 86_400.0;

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs_f64().ceil() as u64;
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_level_gives_a_finite_bounded_wait() {
        let t0 = Instant::now();
        for level in [-1e300, f64::MIN, -1e12, -0.5] {
            let mut b = Bucket::full(1.0, t0);
            b.set(level, t0);
            let wait = b.take(0.001, 1.0, t0).expect_err("in debt");
            assert!(wait <= Duration::from_secs(86_400), "{level}: {wait:?}");
        }
    }

    #[test]
    fn burst_then_refill_at_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3.0, t0);
        for _ in 0..3 {
            assert!(b.take(2.0, 3.0, t0).is_ok());
        }
        let wait = b.take(2.0, 3.0, t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(2.0, 3.0, t1).is_ok());
        assert!(b.take(2.0, 3.0, t1).is_err());
        // Never more than the burst, however long it sat.
        let t2 = t1 + Duration::from_secs(100);
        assert!(b.is_full(2.0, 3.0, t2));
        assert_eq!(b.tokens(2.0, 3.0, t2), 3.0);
    }

    #[test]
    fn retry_after_rounds_up() {
        let t0 = Instant::now();
        // 0.1 per second: the next token is 10 s away.
        let mut b = Bucket::full(1.0, t0);
        assert!(b.take(0.1, 1.0, t0).is_ok());
        let wait = b.take(0.1, 1.0, t0).expect_err("empty");
        assert_eq!(retry_after_secs(wait), 10);
        let wait = b
            .take(0.1, 1.0, t0 + Duration::from_millis(500))
            .expect_err("empty");
        assert_eq!(retry_after_secs(wait), 10, "9.5 s rounds up");
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }

    #[test]
    fn a_debt_is_repaid_before_anything_passes() {
        let t0 = Instant::now();
        let mut b = Bucket::full(5.0, t0);
        b.set(-2.0, t0);
        let wait = b.take(1.0, 5.0, t0).expect_err("in debt");
        assert_eq!(wait, Duration::from_secs(3));
        assert!(b.take(1.0, 5.0, t0 + Duration::from_secs(3)).is_ok());
    }
}
