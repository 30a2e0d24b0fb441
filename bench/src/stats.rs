//! Median across rounds and ratios between peers: the only arithmetic the
//! report's conclusions rest on, so it is tested on its own.

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
}
