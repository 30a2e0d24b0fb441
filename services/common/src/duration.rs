//! Durations in flags and environment variables, one grammar for every
//! service: `250ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number is seconds.
//! At most [`MAX_DURATION`], like the proxy's own settings.

use std::fmt;
use std::time::Duration;

/// The longest duration a flag may name, as in the proxy's config: every
/// timeout and interval becomes a deadline `Instant::now() + d`, which
/// panics when it overflows, so a longer value is refused at startup.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a duration flag was refused; clap prints it with the flag's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// The unit is not `ms`, `s`, `m` or `h`.
    Unit(String),
    /// The number is not a non-negative decimal.
    Number(String),
    /// Longer than [`MAX_DURATION`].
    TooLong(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Unit(unit) => {
                write!(f, "unknown duration unit {unit:?} (use ms, s, m or h)")
            }
            DurationError::Number(s) => write!(f, "{s:?} is not a duration"),
            DurationError::TooLong(s) => write!(
                f,
                "duration {s:?} is longer than the longest allowed, 365 days"
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration flag; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(DurationError::Unit(unit.to_owned())),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| DurationError::Number(s.to_owned()))?;
    // Negative values fail here, and so do ones too large for a `Duration`
    // (too long, like any past the cap).
    let d = Duration::try_from_secs_f64(n * scale).map_err(|_| {
        if n >= 0.0 {
            DurationError::TooLong(s.to_owned())
        } else {
            DurationError::Number(s.to_owned())
        }
    })?;
    if d > MAX_DURATION {
        return Err(DurationError::TooLong(s.to_owned()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_fractions_and_bare_seconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["1d", "s", "", "2 weeks", "-1s", "NaNs", "1e400s", "x5s"] {
            assert!(
                matches!(
                    parse_duration(bad),
                    Err(DurationError::Unit(_) | DurationError::Number(_))
                ),
                "{bad:?}: {:?}",
                parse_duration(bad)
            );
        }
    }

    /// 365 days is the longest; anything past it, however it is written
    /// (and even past what a `Duration` holds), is refused as too long.
    #[test]
    fn durations_are_capped_at_365_days() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        for long in [
            "8760.001h",
            "31536001s",
            "525601m",
            "1000000000h",
            "18446744073709551615s",
            "1000000000000000000000000000000000000000",
        ] {
            let got = parse_duration(long);
            assert_eq!(got, Err(DurationError::TooLong(long.to_owned())), "{long}");
            let message = got.unwrap_err().to_string();
            assert!(message.contains("365 days"), "{message}");
        }
    }
}
