//! Passive outlier detection, the inputs of the per-backend state machine
//! (`upstream::member`): what one request's outcome says about its backend,
//! the consecutive-outcome streaks the workers keep on atomics, and the
//! error rate over a sliding window that the group's tick samples.
//!
//! Semantics follow Envoy's outlier detection: a "5xx" is a 5xx response or
//! an error that makes the proxy answer one on the backend's behalf (connect
//! failure, reset, timeout); a "gateway error" is a 502, 503 or 504 (ours
//! included); a connect failure is a TCP or TLS connect that failed or timed
//! out. Any success ends every streak; a 5xx that is not a gateway error ends
//! the gateway streak; any answer from the backend ends the connect streak.
//! Streaks are decided on the worker (they cross a threshold at one request);
//! the error rate is decided on a tick, like Envoy's interval-based
//! detectors, from the backend's request and failure totals: nothing extra
//! on the hot path.

use crate::config::Passive;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// What one attempt on a backend says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that is not a 5xx.
    Success,
    /// A 5xx, or an error on the backend's side.
    Failure { gateway: bool, connect: bool },
}

impl Outcome {
    /// A response status from the backend.
    #[inline]
    pub fn of_status(status: u16) -> Outcome {
        if status < 500 {
            return Outcome::Success;
        }
        Outcome::Failure {
            gateway: matches!(status, 502..=504),
            connect: false,
        }
    }
}

/// Why the machine moved a backend; shown as the transition's reason.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cause {
    Consecutive5xx(u32),
    ConsecutiveGateway(u32),
    ConsecutiveConnect(u32),
    ErrorRate {
        percent: f64,
        requests: u64,
        window: Duration,
    },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Cause::Consecutive5xx(n) => write!(f, "{n} consecutive failures (5xx or errors)"),
            Cause::ConsecutiveGateway(n) => {
                write!(f, "{n} consecutive gateway errors (502/503/504)")
            }
            Cause::ConsecutiveConnect(n) => write!(f, "{n} consecutive connect failures"),
            Cause::ErrorRate {
                percent,
                requests,
                window,
            } => write!(
                f,
                "error rate {percent:.0}% over {requests} requests in {}ms",
                window.as_millis()
            ),
        }
    }
}

/// The three streaks of a backend as the machine reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreakCounts {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_errors: u32,
    pub consecutive_connect_failures: u32,
}

impl StreakCounts {
    /// The first streak at or past its threshold (0 turns one off).
    pub fn crossed(&self, p: &Passive) -> Option<Cause> {
        let over = |n: u32, limit: u32| limit != 0 && n >= limit;
        if over(
            self.consecutive_connect_failures,
            p.consecutive_connect_failures,
        ) {
            Some(Cause::ConsecutiveConnect(self.consecutive_connect_failures))
        } else if over(
            self.consecutive_gateway_errors,
            p.consecutive_gateway_errors,
        ) {
            Some(Cause::ConsecutiveGateway(self.consecutive_gateway_errors))
        } else if over(self.consecutive_5xx, p.consecutive_5xx) {
            Some(Cause::Consecutive5xx(self.consecutive_5xx))
        } else {
            None
        }
    }
}

const FIELD: u32 = 16;
const FIELD_MAX: u64 = (1 << FIELD) - 1;
const COUNTS: u64 = (1 << (3 * FIELD)) - 1;
/// Set while the backend is half-open: its outcomes are trial outcomes.
const HALF_OPEN: u64 = 1 << 63;

/// A backend's streaks in one word, so a success costs one load and a
/// branch: bits 0-15 the 5xx streak, 16-31 the gateway streak, 32-47 the
/// connect streak (each saturating), bit 63 the half-open mark.
///
/// # Concurrency
/// Updated by every worker that records an outcome, `Relaxed`: the word is
/// read only by the workers and by the machine under the member lock, and
/// no other memory is published with it. Failures update it by CAS (every
/// field moves together); a success clears the counts with a `fetch_and`
/// that keeps the mark. The mark is set and cleared only by the machine.
#[derive(Debug, Default)]
pub struct Streaks(AtomicU64);

impl Streaks {
    /// A success: clears the counts. Returns whether the backend is half-open.
    #[inline]
    pub fn success(&self) -> bool {
        let w = self.0.load(Ordering::Relaxed);
        if w == 0 {
            return false;
        }
        self.success_slow(w)
    }

    #[cold]
    fn success_slow(&self, w: u64) -> bool {
        if w & COUNTS != 0 {
            self.0.fetch_and(HALF_OPEN, Ordering::Relaxed);
        }
        w & HALF_OPEN != 0
    }

    /// A failure: the counts after it, and whether the backend is half-open.
    pub fn failure(&self, gateway: bool, connect: bool) -> (StreakCounts, bool) {
        let mut w = self.0.load(Ordering::Relaxed);
        loop {
            let field = |i: u32| (w >> (i * FIELD)) & FIELD_MAX;
            let bump = |v: u64| (v + 1).min(FIELD_MAX);
            let s5 = bump(field(0));
            let gw = if gateway { bump(field(1)) } else { 0 };
            let cn = if connect { bump(field(2)) } else { 0 };
            let new = (w & HALF_OPEN) | s5 | (gw << FIELD) | (cn << (2 * FIELD));
            match self
                .0
                .compare_exchange_weak(w, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (counts(new), new & HALF_OPEN != 0),
                Err(now) => w = now,
            }
        }
    }

    pub fn counts(&self) -> StreakCounts {
        counts(self.0.load(Ordering::Relaxed))
    }

    /// Clears the counts and sets or clears the half-open mark. The machine only.
    pub fn reset(&self, half_open: bool) {
        self.0
            .store(if half_open { HALF_OPEN } else { 0 }, Ordering::Relaxed);
    }
}

fn counts(w: u64) -> StreakCounts {
    let field = |i: u32| ((w >> (i * FIELD)) & FIELD_MAX) as u32;
    StreakCounts {
        consecutive_5xx: field(0),
        consecutive_gateway_errors: field(1),
        consecutive_connect_failures: field(2),
    }
}

/// Samples per window: the error rate is known to a tenth of the window.
pub const WINDOW_SAMPLES: u32 = 10;

/// The error rate of one backend over a sliding window, from samples of its
/// request and failure totals taken by the group's tick. Under the member lock.
#[derive(Clone, Debug, Default)]
pub struct ErrorWindow {
    /// (when, requests, failures), oldest first, spanning at most the window.
    samples: VecDeque<(Instant, u64, u64)>,
}

/// The rate as `GET /backends` shows it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ErrorRate {
    pub percent: f64,
    pub requests: u64,
    pub failures: u64,
}

impl ErrorWindow {
    /// Takes a sample if a tenth of `window` passed since the last one.
    pub fn sample(&mut self, now: Instant, window: Duration, requests: u64, failures: u64) {
        let step = window / WINDOW_SAMPLES;
        if self.samples.back().is_some_and(|s| now < s.0 + step) {
            return;
        }
        while self.samples.front().is_some_and(|s| s.0 + window < now) {
            self.samples.pop_front();
        }
        self.samples.push_back((now, requests, failures));
    }

    /// The rate between the oldest and the newest sample, if any requests.
    pub fn rate(&self) -> Option<ErrorRate> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let requests = last.1.saturating_sub(first.1);
        let failures = last.2.saturating_sub(first.2).min(requests);
        (requests > 0).then(|| ErrorRate {
            percent: failures as f64 * 100.0 / requests as f64,
            requests,
            failures,
        })
    }

    /// Whether the rate crosses `p`'s threshold with enough requests.
    pub fn crossed(&self, p: &Passive) -> Option<Cause> {
        if p.error_rate_percent == 0 {
            return None;
        }
        let r = self.rate()?;
        let over = r.requests >= u64::from(p.error_rate_min_requests.max(1))
            && r.failures * 100 >= u64::from(p.error_rate_percent) * r.requests;
        over.then_some(Cause::ErrorRate {
            percent: r.percent,
            requests: r.requests,
            window: p.error_rate_window,
        })
    }

    /// Forgets the past: a backend back in rotation starts a clean window.
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive() -> Passive {
        Passive {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 3,
            consecutive_connect_failures: 2,
            error_rate_percent: 50,
            error_rate_min_requests: 10,
            ..Passive::default()
        }
    }

    #[test]
    fn streaks_count_and_reset_like_envoy() {
        let s = Streaks::default();
        let p = passive();
        let (c, half) = s.failure(true, true);
        assert!(!half);
        assert_eq!(c.crossed(&p), None);
        let (c, _) = s.failure(true, true);
        assert_eq!(c.crossed(&p), Some(Cause::ConsecutiveConnect(2)));
        // A 502 answer (not a connect failure) ends the connect streak.
        let (c, _) = s.failure(true, false);
        assert_eq!(c.consecutive_connect_failures, 0);
        assert_eq!(c.crossed(&p), Some(Cause::ConsecutiveGateway(3)));
        // A plain 500 ends the gateway streak, not the 5xx one.
        let (c, _) = s.failure(false, false);
        assert_eq!((c.consecutive_gateway_errors, c.consecutive_5xx), (0, 4));
        let (c, _) = s.failure(false, false);
        assert_eq!(c.crossed(&p), Some(Cause::Consecutive5xx(5)));
        assert!(!s.success());
        assert_eq!(s.counts(), StreakCounts::default());
    }

    #[test]
    fn the_half_open_mark_survives_outcomes() {
        let s = Streaks::default();
        s.reset(true);
        assert!(s.failure(false, false).1);
        assert!(s.success(), "a success on a half-open backend is a trial");
        assert!(s.success());
        s.reset(false);
        assert!(!s.success());
    }

    #[test]
    fn streaks_saturate() {
        let s = Streaks::default();
        for _ in 0..70_000 {
            s.failure(true, true);
        }
        let c = s.counts();
        assert_eq!(c.consecutive_5xx, 65_535);
        assert_eq!(c.consecutive_connect_failures, 65_535);
    }

    #[test]
    fn the_error_rate_needs_its_minimum_volume_and_slides() {
        let p = passive();
        let w = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut e = ErrorWindow::default();
        e.sample(t0, w, 0, 0);
        e.sample(t0 + Duration::from_millis(500), w, 100, 100);
        assert_eq!(e.rate(), None, "too soon after the last sample");
        e.sample(t0 + Duration::from_secs(1), w, 8, 8);
        assert_eq!(e.crossed(&p), None, "8 requests < the minimum 10");
        e.sample(t0 + Duration::from_secs(2), w, 20, 9);
        assert_eq!(e.crossed(&p), None, "45% < 50%");
        e.sample(t0 + Duration::from_secs(3), w, 30, 15);
        assert!(matches!(e.crossed(&p), Some(Cause::ErrorRate { .. })));
        e.sample(t0 + Duration::from_secs(5), w, 40, 15);
        // Fourteen seconds on, the early failures have left the window.
        e.sample(t0 + Duration::from_secs(14), w, 130, 15);
        let r = e.rate().unwrap();
        assert_eq!((r.requests, r.failures), (90, 0));
        assert_eq!(e.crossed(&p), None);
        e.clear();
        assert_eq!(e.rate(), None);
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(Outcome::of_status(404), Outcome::Success);
        assert_eq!(
            Outcome::of_status(500),
            Outcome::Failure {
                gateway: false,
                connect: false
            }
        );
        assert_eq!(
            Outcome::of_status(503),
            Outcome::Failure {
                gateway: true,
                connect: false
            }
        );
    }
}
