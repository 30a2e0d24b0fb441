//! Load generators: one module per tool, each of which runs the tool and
//! parses its output into the same [`LoadResult`].
//!
//! `Builtin` is a small hyper client loop inside this process. It is slower
//! than wrk but needs nothing installed, which is what lets `cargo test` run
//! the whole harness on a machine that has never seen apt-get.

pub mod builtin;
pub mod h2load;
pub mod oha;
pub mod wrk;

use std::path::Path;
use std::time::Duration;

use std::process::{Command, Output};

use crate::error::{Error, IoContext, Result};
use crate::pin::Pinning;

/// Which tool drives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Generator {
    Wrk,
    H2load,
    Oha,
    Builtin,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::Wrk => "wrk",
            Generator::H2load => "h2load",
            Generator::Oha => "oha",
            Generator::Builtin => "builtin",
        }
    }

    /// The executable this generator needs on `$PATH`, if any.
    pub fn binary(self) -> Option<&'static str> {
        match self {
            Generator::Wrk => Some("wrk"),
            Generator::H2load => Some("h2load"),
            Generator::Oha => Some("oha"),
            Generator::Builtin => None,
        }
    }

    /// Runs `spec`, writing any scratch files under `scratch`.
    pub fn run(self, spec: &LoadSpec, pin: &Pinning, scratch: &Path) -> Result<LoadResult> {
        match self {
            Generator::Wrk => wrk::run(spec, pin, scratch),
            Generator::H2load => h2load::run(spec, pin, scratch),
            Generator::Oha => oha::run(spec, pin),
            Generator::Builtin => builtin::run(spec),
        }
    }
}

/// What to send: the same spec drives every generator.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `http://127.0.0.1:PORT/path` or `https://…` for h2.
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    /// Close the connection after every request (`Connection: close`).
    pub close: bool,
    /// Concurrent streams per connection (h2 only).
    pub streams: usize,
    /// Send `Accept-Encoding: <this>` (gzip, br or zstd).
    pub accept_encoding: Option<&'static str>,
}

/// What came back, in the units the report uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LoadResult {
    /// Requests that completed (any status).
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Socket errors, timeouts and non-2xx/3xx responses.
    pub errors: u64,
}

/// Runs a generator's command to completion; its exit status must be
/// success, else the error carries what it printed.
pub(crate) fn checked_output(tool: &str, cmd: &mut Command) -> Result<Output> {
    let output = cmd.output().ctx(|| format!("running {tool}"))?;
    if !output.status.success() {
        return Err(Error::Tool {
            tool: tool.into(),
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(output)
}

impl LoadResult {
    /// `requests` over `duration_s`, as wrk counts rps (0 for no time).
    pub fn rate(requests: u64, duration_s: f64) -> f64 {
        if duration_s > 0.0 {
            requests as f64 / duration_s
        } else {
            0.0
        }
    }
}

/// Nearest-rank percentile of an ascending slice, `p` in 0–100.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // The epsilon keeps 99.9 % of 1000 at rank 999 despite 0.999 * 1000
    // being 999.0000000000001 in binary floating point.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Parses a latency such as `1.23ms`, `456.00us`, `2.00s` or `1.5m` into µs.
pub fn parse_duration_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let num: f64 = num.parse().ok()?;
    let factor = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(num * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[7], 99.9), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("456.00us"), Some(456.0));
        assert_eq!(parse_duration_us("1.50ms"), Some(1500.0));
        assert_eq!(parse_duration_us("2.00s"), Some(2_000_000.0));
        assert_eq!(parse_duration_us("12"), None);
    }
}
