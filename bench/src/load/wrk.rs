//! wrk: HTTP/1.1, one thread on the load core.
//!
//! `--latency` prints p50/p75/p90/p99 only, so a Lua `done` hook writes the
//! exact figures we need (incl. p99.9 and the error counters) to a file;
//! stdout is parsed as a cross-check and as the fallback.

use std::path::Path;

use super::{LoadResult, LoadSpec, parse_duration_us};
use crate::error::{Error, IoContext, Result};
use crate::pin::Pinning;

const DONE_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local f = io.open(os.getenv("SLUICE_BENCH_WRK_OUT"), "w")
  f:write(string.format("requests %d\n", summary.requests))
  f:write(string.format("duration_us %d\n", summary.duration))
  f:write(string.format("errors_connect %d\n", summary.errors.connect))
  f:write(string.format("errors_read %d\n", summary.errors.read))
  f:write(string.format("errors_write %d\n", summary.errors.write))
  f:write(string.format("errors_status %d\n", summary.errors.status))
  f:write(string.format("errors_timeout %d\n", summary.errors.timeout))
  f:write(string.format("p50 %d\n", latency:percentile(50)))
  f:write(string.format("p99 %d\n", latency:percentile(99)))
  f:write(string.format("p99.9 %d\n", latency:percentile(99.9)))
  f:close()
end
"#;

pub fn run(spec: &LoadSpec, pin: &Pinning, scratch: &Path) -> Result<LoadResult> {
    let script = scratch.join("done.lua");
    let out = scratch.join("wrk-done.txt");
    std::fs::write(&script, DONE_SCRIPT).ctx(|| format!("writing {}", script.display()))?;
    let _ = std::fs::remove_file(&out);
    let mut cmd = pin.load_command("wrk");
    cmd.args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.duration.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .env("SLUICE_BENCH_WRK_OUT", &out);
    if spec.close {
        cmd.args(["-H", "Connection: close"]);
    }
    if spec.accept_gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    cmd.arg(&spec.url);
    let output = cmd.output().ctx(|| "running wrk".to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::Tool {
            tool: "wrk".into(),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    match std::fs::read_to_string(&out) {
        Ok(done) => parse_done(&done),
        Err(_) => parse_stdout(&stdout),
    }
}

/// Parses the file written by the `done` hook.
pub fn parse_done(text: &str) -> Result<LoadResult> {
    let get = |key: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .ok_or_else(|| Error::Parse {
                what: "wrk done file",
                detail: format!("missing {key}"),
            })
    };
    let requests = get("requests")? as u64;
    let duration_s = get("duration_us")? / 1e6;
    let errors = [
        "errors_connect",
        "errors_read",
        "errors_write",
        "errors_status",
        "errors_timeout",
    ]
    .iter()
    .map(|k| get(k).map(|v| v as u64))
    .sum::<Result<u64>>()?;
    Ok(LoadResult {
        requests,
        duration_s,
        rps: if duration_s > 0.0 {
            requests as f64 / duration_s
        } else {
            0.0
        },
        p50_us: get("p50")?,
        p99_us: get("p99")?,
        p999_us: get("p99.9")?,
        errors,
    })
}

/// Parses wrk's human output (`--latency`). p99.9 is not printed there, so
/// the fallback reports p99 in its place.
pub fn parse_stdout(text: &str) -> Result<LoadResult> {
    let err = |detail: &str| Error::Parse {
        what: "wrk output",
        detail: detail.to_string(),
    };
    let mut r = LoadResult::default();
    let mut found_requests = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some((reqs, rest)) = t.split_once(" requests in ") {
            r.requests = reqs.trim().parse().map_err(|_| err("request count"))?;
            let dur = rest.split(',').next().unwrap_or("");
            r.duration_s = parse_duration_us(dur).ok_or_else(|| err("duration"))? / 1e6;
            found_requests = true;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().map_err(|_| err("Requests/sec"))?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().map_err(|_| err("Non-2xx"))?;
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_us = parse_duration_us(v).ok_or_else(|| err("p50"))?;
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_us = parse_duration_us(v).ok_or_else(|| err("p99"))?;
            r.p999_us = r.p99_us;
        }
    }
    if !found_requests {
        return Err(err("no 'requests in' line"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT: &str = include_str!("samples/wrk.txt");
    const STDOUT_ERRORS: &str = include_str!("samples/wrk-errors.txt");
    const DONE: &str = include_str!("samples/wrk-done.txt");

    #[test]
    fn parses_stdout() {
        let r = parse_stdout(STDOUT).unwrap();
        assert_eq!(r.requests, SAMPLE_REQUESTS);
        assert_eq!(r.rps, 40748.36);
        assert_eq!(r.duration_s, 2.02);
        assert_eq!(r.p50_us, 347.0);
        assert_eq!(r.p99_us, 6430.0);
        assert_eq!(r.errors, 0);
    }

    #[test]
    fn parses_stdout_with_errors() {
        let r = parse_stdout(STDOUT_ERRORS).unwrap();
        assert_eq!(r.errors, 41718);
    }

    #[test]
    fn parses_done_file() {
        let r = parse_done(DONE).unwrap();
        assert_eq!(r.requests, SAMPLE_REQUESTS);
        assert_eq!((r.p50_us, r.p99_us, r.p999_us), (347.0, 6427.0, 15785.0));
        assert!((r.duration_s - 2.02256).abs() < 1e-9);
        assert_eq!(r.errors, 0);
        assert!(parse_done("requests 5\n").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_stdout("wrk: command not found").is_err());
    }

    const SAMPLE_REQUESTS: u64 = 82416;
}
