//! Median across rounds, ratios between peers and their spread over rounds:
//! the only arithmetic the report's conclusions rest on, so it is tested on
//! its own.

/// Median of the finite values (mean of the two middle ones for an even
/// count); NaN when there are none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `ours / theirs`; below 1.0 means Sluice spends less. NaN when either side
/// is missing or `theirs` is zero.
pub fn ratio(ours: f64, theirs: f64) -> f64 {
    if ours.is_finite() && theirs.is_finite() && theirs > 0.0 {
        ours / theirs
    } else {
        f64::NAN
    }
}

/// True when `a` and `b` are within `tolerance` (relative) of each other.
pub fn tie(a: f64, b: f64, tolerance: f64) -> bool {
    a.is_finite() && b.is_finite() && (a - b).abs() <= tolerance * a.max(b)
}

/// A figure over rounds: its median and the range it moved in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds gave a finite value.
    pub rounds: usize,
}

/// Median, min and max of the finite values; `None` when there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let min = finite.iter().copied().reduce(f64::min)?;
    let max = finite.iter().copied().reduce(f64::max)?;
    Some(Spread {
        median: median(&finite),
        min,
        max,
        rounds: finite.len(),
    })
}

/// Where a ratio's spread lies against a target: a verdict is only given
/// when every round agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// Every round at or below the target.
    Below,
    /// Every round above the target.
    Above,
    /// The rounds fall on both sides: the run cannot tell.
    WithinNoise,
}

/// `spread` against `target` (0.8 for Sluice ÷ a peer, 1.0 for an A/B).
pub fn verdict(spread: &Spread, target: f64) -> Verdict {
    if spread.max <= target {
        Verdict::Below
    } else if spread.min > target {
        Verdict::Above
    } else {
        Verdict::WithinNoise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[5.0, f64::NAN, 1.0, 3.0]), 3.0);
        assert!(median(&[]).is_nan());
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn ratios_and_ties() {
        assert_eq!(ratio(20.0, 25.0), 0.8);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(f64::NAN, 2.0).is_nan());
        assert!(tie(100.0, 97.0, 0.05));
        assert!(!tie(100.0, 90.0, 0.05));
    }

    #[test]
    fn spreads_and_verdicts() {
        let s = spread(&[0.9, 0.7, f64::NAN, 0.75]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (0.75, 0.7, 0.9, 3));
        assert!(spread(&[f64::NAN]).is_none() && spread(&[]).is_none());
        // Straddling the target is noise, whatever the median says.
        assert_eq!(verdict(&s, 0.8), Verdict::WithinNoise);
        assert_eq!(verdict(&s, 0.9), Verdict::Below);
        assert_eq!(verdict(&s, 0.6), Verdict::Above);
        let ab = spread(&[0.97, 1.02, 0.99]).unwrap();
        assert_eq!(verdict(&ab, 1.0), Verdict::WithinNoise);
        let one = spread(&[0.81]).unwrap();
        assert_eq!((one.rounds, verdict(&one, 0.8)), (1, Verdict::Above));
    }
}
