//! The wait before a retry: exponential backoff with full jitter (AWS's
//! "Exponential Backoff and Jitter"; Envoy's `retry_back_off` is this too).
//! The n-th retry waits a uniform random time in `[0, min(max, base·2^(n-1))]`:
//! retries of many requests spread out instead of arriving together.

use std::time::Duration;

/// The ceiling of the `retry`-th retry's wait (1-based).
pub fn ceiling(retry: u32, base: Duration, max: Duration) -> Duration {
    let doubling = retry.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doubling).min(max)
}

/// A random wait in `[0, ceiling]`, from `fastrand`'s thread-local generator.
pub fn delay(retry: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = ceiling(retry, base, max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(25);
    const MAX: Duration = Duration::from_millis(250);

    #[test]
    fn the_ceiling_doubles_up_to_the_max() {
        let ms = |r| ceiling(r, BASE, MAX).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4), ms(5)], [25, 50, 100, 200, 250]);
        assert_eq!(ms(1000), 250, "no overflow however many retries");
    }

    #[test]
    fn every_wait_is_within_its_bounds() {
        for retry in 1..12 {
            let top = ceiling(retry, BASE, MAX);
            for _ in 0..1000 {
                assert!(delay(retry, BASE, MAX) <= top);
            }
        }
        assert_eq!(delay(3, Duration::ZERO, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn waits_are_jittered_across_the_whole_range() {
        let seen: Vec<Duration> = (0..1000).map(|_| delay(4, BASE, MAX)).collect();
        let top = ceiling(4, BASE, MAX);
        assert!(seen.iter().any(|d| *d < top / 4), "some short waits");
        assert!(seen.iter().any(|d| *d > top * 3 / 4), "some long waits");
    }
}
