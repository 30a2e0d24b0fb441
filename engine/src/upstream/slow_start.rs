//! Slow start (HAProxy's `slowstart`): a backend that returns to rotation,
//! or joins it after startup, takes a growing share over `slow_start`
//! instead of its full weight at once, so a cold cache or JIT is not flooded.
//!
//! The ramp is in [`RAMP_STEPS`] steps: during step `k` its effective
//! weight is `weight × k / RAMP_STEPS`. Effective weights are baked into the
//! snapshot (`Selector::build`), so every policy sees them with no work on
//! the hot path; the group's tick publishes a new snapshot when a ramping
//! backend enters its next step, so at most `RAMP_STEPS` rebuilds per ramp,
//! all on the rebuild thread. (A per-backend atomic factor would reach
//! least-conn and p2c at pick time, but not the round-robin and hash tables,
//! which are built per snapshot.)

use std::time::Duration;
use tokio::time::Instant;

/// Steps of a ramp, and the unit of effective weights while one runs.
pub const RAMP_STEPS: u32 = 10;

/// A backend's ramp, under the member lock.
#[derive(Clone, Debug, Default)]
pub struct Ramp {
    /// When the ramp began; `None` once at full weight.
    from: Option<Instant>,
    /// The step the latest snapshot was built with.
    published: u32,
}

impl Ramp {
    /// Starts a ramp (the backend (re)enters rotation).
    pub fn start(&mut self, now: Instant) {
        self.from = Some(now);
        self.published = 0;
    }

    /// Full weight from now on (startup members do not ramp).
    pub fn finish(&mut self) {
        self.from = None;
        self.published = RAMP_STEPS;
    }

    /// The step at `now`, 1 to [`RAMP_STEPS`].
    pub fn step(&self, now: Instant, window: Duration) -> u32 {
        let Some(from) = self.from else {
            return RAMP_STEPS;
        };
        if window.is_zero() {
            return RAMP_STEPS;
        }
        let elapsed = now.saturating_duration_since(from);
        let k = elapsed.as_nanos() * u128::from(RAMP_STEPS) / window.as_nanos() + 1;
        k.min(u128::from(RAMP_STEPS)) as u32
    }

    /// Moves to the step of `now`; true when it differs from the one the
    /// snapshot was built with (a rebuild is due).
    pub fn advance(&mut self, now: Instant, window: Duration) -> bool {
        let step = self.step(now, window);
        if step == RAMP_STEPS {
            self.from = None;
        }
        let moved = step != self.published;
        self.published = step;
        moved
    }

    pub fn ramping(&self, now: Instant, window: Duration) -> bool {
        self.step(now, window) < RAMP_STEPS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_climbs_in_tenths_and_ends() {
        let w = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut r = Ramp::default();
        assert_eq!(r.step(t0, w), RAMP_STEPS, "no ramp: full weight");
        r.start(t0);
        assert_eq!(r.step(t0, w), 1, "a tenth at once, never nothing");
        assert!(r.advance(t0, w));
        assert!(!r.advance(t0 + Duration::from_millis(999), w));
        assert_eq!(r.step(t0 + Duration::from_millis(4_500), w), 5);
        assert!(r.advance(t0 + Duration::from_millis(4_500), w));
        assert!(r.ramping(t0 + Duration::from_millis(8_999), w));
        assert!(r.advance(t0 + w, w), "the last step publishes");
        assert!(!r.ramping(t0 + w, w));
        assert!(!r.advance(t0 + 2 * w, w), "done: nothing more to publish");
        r.start(t0);
        assert_eq!(
            r.step(t0, Duration::ZERO),
            RAMP_STEPS,
            "slow_start 0 is off"
        );
    }
}
