//! wrk: HTTP/1.1, one thread on the load core.
//!
//! `--latency` prints p50/p75/p90/p99 only, so a Lua `done` hook writes the
//! exact figures we need (incl. p99.9 and the error counters) to a file;
//! stdout is parsed as a cross-check and as the fallback.

use std::path::Path;

use super::{LoadResult, LoadSpec, parse_duration_us};
use crate::error::{Error, IoContext, Result};
use crate::pin::Pinning;

/// Collects every thread (for the per-thread `non2xx` counter a script's
/// `response` hook may keep) and writes the exact figures to the file named
/// by `SLUICE_BENCH_WRK_OUT`. A `setup` hook costs nothing per request; a
/// `response` hook would (wrk then parses every response for Lua), so only
/// scripts that need one define it.
const DONE_HOOK: &str = r#"
local sb_threads = {}
setup = function(thread) table.insert(sb_threads, thread) end
done = function(summary, latency, requests)
  local non2xx = 0
  for _, t in ipairs(sb_threads) do non2xx = non2xx + (t:get("non2xx") or 0) end
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
  f:write(string.format("non_2xx %d\n", non2xx))
  f:close()
end
"#;

/// A workload that a URL and headers cannot express (the services mode's
/// rotating keys and JSON batches): Lua defining `request` (and, to count
/// non-2xx answers, `response` incrementing a global `non2xx`), with the
/// environment it reads. The default is wrk's own GET of the spec's URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Script<'a> {
    pub lua: &'a str,
    pub env: &'a [(&'a str, String)],
    /// Names the script and result files in the scratch dir (default `wrk`).
    pub tag: &'a str,
}

/// One wrk run: its figures, the non-2xx count of a `response` hook, and
/// the command line as a report prints it.
#[derive(Debug, Clone)]
pub struct WrkRun {
    pub load: LoadResult,
    pub non_2xx: u64,
    pub command: String,
}

/// wrk on `spec` with its own GET.
pub fn run(spec: &LoadSpec, pin: &Pinning, scratch: &Path) -> Result<LoadResult> {
    run_script(spec, pin, scratch, &Script::default()).map(|w| w.load)
}

/// wrk on `spec` with `script`: one thread on the load core, `--timeout 5s`.
pub fn run_script(
    spec: &LoadSpec,
    pin: &Pinning,
    scratch: &Path,
    script: &Script<'_>,
) -> Result<WrkRun> {
    let tag = if script.tag.is_empty() {
        "wrk"
    } else {
        script.tag
    };
    let lua = scratch.join(format!("{tag}.lua"));
    let out = scratch.join(format!("{tag}-done.txt"));
    std::fs::write(&lua, format!("{}\n{DONE_HOOK}", script.lua))
        .ctx(|| format!("writing {}", lua.display()))?;
    let _ = std::fs::remove_file(&out);
    let mut args = vec![
        "-t1".to_string(),
        format!("-c{}", spec.connections),
        format!("-d{}s", spec.duration.as_secs().max(1)),
        "--latency".into(),
        "--timeout".into(),
        "5s".into(),
    ];
    if spec.close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    if let Some(coding) = spec.accept_encoding {
        args.extend(["-H".into(), format!("Accept-Encoding: {coding}")]);
    }
    let mut cmd = pin.load_command("wrk");
    cmd.args(&args)
        .arg("-s")
        .arg(&lua)
        .arg(&spec.url)
        .env("SLUICE_BENCH_WRK_OUT", &out);
    for (k, v) in script.env {
        cmd.env(k, v);
    }
    let env: Vec<String> = script
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v} "))
        .collect();
    let command = format!(
        "{}{}wrk {} -s {tag}.lua {}",
        env.concat(),
        pin.load_prefix(),
        args.iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" "),
        spec.url
    );
    let output = super::checked_output("wrk", &mut cmd)?;
    let (load, non_2xx) = match std::fs::read_to_string(&out) {
        Ok(done) => (parse_done(&done)?, parse_non_2xx(&done)),
        Err(_) => (parse_stdout(&String::from_utf8_lossy(&output.stdout))?, 0),
    };
    Ok(WrkRun {
        load,
        non_2xx,
        command,
    })
}

/// The `non_2xx N` line of the done file (0 when absent).
pub fn parse_non_2xx(done: &str) -> u64 {
    done.lines()
        .find_map(|l| l.strip_prefix("non_2xx ")?.trim().parse().ok())
        .unwrap_or(0)
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
    // wrk's status errors are responses >= 400; a `response` hook's non-2xx
    // count is a superset of those, so count what it adds.
    let errors = errors + parse_non_2xx(text).saturating_sub(get("errors_status")? as u64);
    Ok(LoadResult {
        requests,
        duration_s,
        rps: LoadResult::rate(requests, duration_s),
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
    fn done_file_non_2xx() {
        let done = "requests 10\nduration_us 1000000\nerrors_connect 0\nerrors_read 0\nerrors_write 0\nerrors_status 2\nerrors_timeout 0\np50 100\np99 200\np99.9 300\nnon_2xx 3\n";
        assert_eq!(parse_non_2xx(done), 3);
        // Two 4xx/5xx counted by wrk, one more non-2xx from the hook.
        assert_eq!(parse_done(done).unwrap().errors, 3);
        assert_eq!(parse_non_2xx("requests 1\n"), 0);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_stdout("wrk: command not found").is_err());
    }

    const SAMPLE_REQUESTS: u64 = 82416;
}
