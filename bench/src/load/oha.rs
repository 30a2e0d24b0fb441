//! oha: an alternative generator for new-connection-per-request runs
//! (`--disable-keepalive`), selected with `--close-generator oha`. wrk with a
//! `Connection: close` header is the default, so oha is only installed
//! (`cargo install --locked oha`) when asked for.
//!
//! oha 1.x: JSON is `--output-format json` (the old `-j` is gone), and `-w`
//! lets the requests in flight at the deadline finish; without it each of
//! them is reported as an "aborted due to deadline" error, which would mark
//! every run failed. `samples/oha.json` is a real run through Sluice.

use super::{LoadResult, LoadSpec};
use crate::error::{Error, Result};
use crate::pin::Pinning;

pub fn run(spec: &LoadSpec, pin: &Pinning) -> Result<LoadResult> {
    let mut cmd = pin.load_command("oha");
    cmd.args(["--no-tui", "--output-format", "json", "-w"])
        .arg("-c")
        .arg(spec.connections.to_string())
        .arg("-z")
        .arg(format!("{}s", spec.duration.as_secs().max(1)));
    if spec.close {
        cmd.arg("--disable-keepalive");
    }
    if let Some(coding) = spec.accept_encoding {
        cmd.args(["-H", &format!("Accept-Encoding: {coding}")]);
    }
    cmd.arg(&spec.url);
    let output = super::checked_output("oha", &mut cmd)?;
    parse_json(&String::from_utf8_lossy(&output.stdout))
}

/// The error oha reports for a request it cut off itself at the deadline
/// (only without `-w`): the generator's doing, not a failed request.
const DEADLINE: &str = "aborted due to deadline";

/// Parses oha's JSON: `summary` (seconds), `latencyPercentiles` (seconds,
/// `null` when nothing succeeded), `statusCodeDistribution` and
/// `errorDistribution` (counts). oha's own `requestsPerSec` counts failed
/// attempts too, so rps is recomputed from the responses, as wrk counts it.
pub fn parse_json(text: &str) -> Result<LoadResult> {
    let err = |detail: &str| Error::Parse {
        what: "oha json",
        detail: detail.to_string(),
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| err(&e.to_string()))?;
    let num = |ptr: &str| v.pointer(ptr).and_then(serde_json::Value::as_f64);
    let counts = |ptr: &str| -> Vec<(String, u64)> {
        v.pointer(ptr)
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let statuses = counts("/statusCodeDistribution");
    let requests: u64 = statuses.iter().map(|(_, n)| n).sum();
    let bad_status: u64 = statuses
        .iter()
        .filter(|(code, _)| !(code.starts_with('2') || code.starts_with('3')))
        .map(|(_, n)| n)
        .sum();
    let socket_errors: u64 = counts("/errorDistribution")
        .iter()
        .filter(|(what, _)| what != DEADLINE)
        .map(|(_, n)| n)
        .sum();
    let us = |ptr: &str| num(ptr).map_or(f64::NAN, |s| s * 1e6);
    let duration_s = num("/summary/total").ok_or_else(|| err("summary.total"))?;
    Ok(LoadResult {
        requests,
        duration_s,
        rps: LoadResult::rate(requests, duration_s),
        p50_us: us("/latencyPercentiles/p50"),
        p99_us: us("/latencyPercentiles/p99"),
        p999_us: us("/latencyPercentiles/p99.9"),
        errors: bad_status + socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `oha --no-tui --output-format json -w -c 32 -z 1s --disable-keepalive`
    /// through Sluice (one worker) to bench-origin's `/1k`.
    const RUN: &str = include_str!("samples/oha.json");
    /// The same against a port nobody listens on.
    const REFUSED: &str = include_str!("samples/oha-errors.json");

    #[test]
    fn parses_a_real_run() {
        let r = parse_json(RUN).unwrap();
        assert_eq!(r.requests, 11069);
        assert_eq!(r.errors, 0);
        assert!((r.duration_s - 1.002752283).abs() < 1e-12);
        assert!((r.rps - 11069.0 / 1.002752283).abs() < 1e-6);
        assert!((r.p50_us - 2668.009).abs() < 1e-6);
        assert!((r.p99_us - 7653.565).abs() < 1e-6);
        assert!((r.p999_us - 9724.193).abs() < 1e-6);
    }

    #[test]
    fn refused_connections_are_errors_and_no_latency() {
        let r = parse_json(REFUSED).unwrap();
        assert_eq!((r.requests, r.errors), (0, 39938));
        assert_eq!(r.rps, 0.0);
        assert!(r.p50_us.is_nan() && r.p999_us.is_nan());
    }

    #[test]
    fn the_deadline_cut_is_not_a_failure() {
        let text = r#"{"summary":{"total":1.0},"latencyPercentiles":{"p50":0.001},
            "statusCodeDistribution":{"200":90,"503":2},
            "errorDistribution":{"aborted due to deadline":32,"Connection reset by peer (os error 104)":1}}"#;
        let r = parse_json(text).unwrap();
        assert_eq!((r.requests, r.errors), (92, 3));
        assert!(parse_json("error: unexpected argument '-j' found").is_err());
        assert!(parse_json(r#"{"summary":{}}"#).is_err());
    }
}
