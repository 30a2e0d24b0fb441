//! oha: an alternative generator for new-connection-per-request runs
//! (`--disable-keepalive`), selected with `--close-generator oha`. wrk with a
//! `Connection: close` header is the default, so oha is only installed
//! (`cargo install oha`) when asked for.

use super::{LoadResult, LoadSpec};
use crate::error::{Error, IoContext, Result};
use crate::pin::Pinning;

pub fn run(spec: &LoadSpec, pin: &Pinning) -> Result<LoadResult> {
    let mut cmd = pin.load_command("oha");
    cmd.args(["--no-tui", "-j"])
        .arg("-c")
        .arg(spec.connections.to_string())
        .arg("-z")
        .arg(format!("{}s", spec.duration.as_secs().max(1)));
    if spec.close {
        cmd.arg("--disable-keepalive");
    }
    if spec.accept_gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    cmd.arg(&spec.url);
    let output = cmd.output().ctx(|| "running oha".to_string())?;
    if !output.status.success() {
        return Err(Error::Tool {
            tool: "oha".into(),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    parse_json(&String::from_utf8_lossy(&output.stdout))
}

/// Parses oha's `-j` JSON: `summary` (seconds), `latencyPercentiles`
/// (seconds), `statusCodeDistribution` and `errorDistribution` (counts).
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
    let socket_errors: u64 = counts("/errorDistribution").iter().map(|(_, n)| n).sum();
    let us = |ptr: &str| num(ptr).map_or(f64::NAN, |s| s * 1e6);
    Ok(LoadResult {
        requests,
        duration_s: num("/summary/total").ok_or_else(|| err("summary.total"))?,
        rps: num("/summary/requestsPerSec").ok_or_else(|| err("summary.requestsPerSec"))?,
        p50_us: us("/latencyPercentiles/p50"),
        p99_us: us("/latencyPercentiles/p99"),
        p999_us: us("/latencyPercentiles/p99.9"),
        errors: bad_status + socket_errors,
    })
}
