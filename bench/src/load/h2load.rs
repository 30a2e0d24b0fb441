//! h2load: HTTP/2 over TLS with several streams per connection.
//!
//! h2load prints min/max/mean/sd but no percentiles, so we ask for
//! `--log-file` (one line per request: start time, status, duration in µs)
//! and compute p50/p99/p99.9 from it.

use std::path::Path;

use super::{LoadResult, LoadSpec, percentile};
use crate::error::{Error, Result};
use crate::pin::Pinning;

pub fn run(spec: &LoadSpec, pin: &Pinning, scratch: &Path) -> Result<LoadResult> {
    let log = scratch.join("h2load.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = pin.load_command("h2load");
    cmd.args(["-t", "1"])
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-m{}", spec.streams.max(1)))
        .arg(format!("-D{}", spec.duration.as_secs().max(1)))
        .arg(format!("--log-file={}", log.display()));
    if let Some(coding) = spec.accept_encoding {
        cmd.args(["-H", &format!("accept-encoding: {coding}")]);
    }
    cmd.arg(&spec.url);
    let output = super::checked_output("h2load", &mut cmd)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut result = parse_stdout(&stdout)?;
    if let Ok(text) = std::fs::read_to_string(&log) {
        let mut lat = parse_log(&text);
        lat.sort_unstable();
        if !lat.is_empty() {
            result.p50_us = percentile(&lat, 50.0);
            result.p99_us = percentile(&lat, 99.0);
            result.p999_us = percentile(&lat, 99.9);
        }
    }
    Ok(result)
}

/// Parses the summary h2load prints on stdout. Percentiles are left at
/// NaN; [`parse_log`] supplies them.
pub fn parse_stdout(text: &str) -> Result<LoadResult> {
    let err = |detail: &str| Error::Parse {
        what: "h2load output",
        detail: detail.to_string(),
    };
    let mut r = LoadResult {
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        p999_us: f64::NAN,
        ..LoadResult::default()
    };
    let mut seen = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 5.00s, 12345.60 req/s, 1.23MB/s"
            let mut parts = rest.split(',');
            let dur = parts.next().unwrap_or("");
            r.duration_s = super::parse_duration_us(dur).ok_or_else(|| err("duration"))? / 1e6;
            let rps = parts.next().unwrap_or("").trim();
            r.rps = rps
                .trim_end_matches(" req/s")
                .parse()
                .map_err(|_| err("req/s"))?;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            let field = |name: &str| -> Option<u64> {
                rest.split(',').find_map(|p| {
                    let mut it = p.split_whitespace();
                    let n = it.next()?.parse().ok()?;
                    (it.next()? == name).then_some(n)
                })
            };
            r.requests = field("done").ok_or_else(|| err("done"))?;
            // "failed" already includes "errored" and "timeout".
            r.errors += field("failed").unwrap_or(0);
            seen = true;
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            // "N 2xx, N 3xx, N 4xx, N 5xx"
            r.errors += rest
                .split(',')
                .filter_map(|p| {
                    let mut it = p.split_whitespace();
                    let n: u64 = it.next()?.parse().ok()?;
                    matches!(it.next()?, "4xx" | "5xx").then_some(n)
                })
                .sum::<u64>();
        }
    }
    if !seen {
        return Err(err("no 'requests:' line"));
    }
    Ok(r)
}

/// Request durations in µs from an h2load `--log-file`.
pub fn parse_log(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<u32>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT: &str = include_str!("samples/h2load.txt");
    const LOG: &str = include_str!("samples/h2load-log.txt");

    #[test]
    fn parses_stdout() {
        // A real run against nginx 1.22 with its default 1000 requests per
        // h2 connection: the streams in flight at the close fail.
        let r = parse_stdout(STDOUT).unwrap();
        assert_eq!(r.requests, 4020);
        assert_eq!(r.rps, 2000.0);
        assert_eq!(r.duration_s, 2.01);
        assert_eq!(r.errors, 20);
        assert!(r.p50_us.is_nan());
    }

    #[test]
    fn parses_log() {
        let lat = parse_log(LOG);
        assert_eq!(lat.len(), 200);
        assert_eq!(&lat[..3], &[3439, 3505, 3512]);
    }

    #[test]
    fn counts_failures_and_5xx() {
        let text = "finished in 1.00s, 10.00 req/s, 1KB/s\nrequests: 10 total, 10 started, 10 done, 7 succeeded, 3 failed, 0 errored, 0 timeout\nstatus codes: 7 2xx, 0 3xx, 0 4xx, 2 5xx\n";
        let r = parse_stdout(text).unwrap();
        assert_eq!(r.requests, 10);
        assert_eq!(r.errors, 5);
    }
}
