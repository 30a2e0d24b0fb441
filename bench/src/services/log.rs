//! `sluice-log` under wrk: POSTs of JSON arrays of B entries, timestamps
//! inside the reorder window; after each round everything received must be
//! written, and after SIGTERM the output files must hold exactly the lines
//! acknowledged.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Ctx;
use super::api::{LogStats, log_stats};
use super::process::Service;
use crate::error::{IoContext, Result};
use crate::measure::{self, Cores};
use crate::probe;
use crate::results::{ServiceResult, ServiceRound};

/// POSTs one JSON array of B entries, rebuilt once a second so every
/// timestamp is "now" (UTC, whole seconds: at most ~1 s old, inside the
/// default 2 s reorder window). Any status outside 2xx is counted.
pub const LOG_SCRIPT: &str = r#"
local batch = tonumber(os.getenv("SB_BATCH"))
local last = -1
local req
local function build()
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {}
  for j = 1, batch do
    parts[j] = string.format('{"level":"INFO","timestamp":"%s","source":"bench-%d","message":"request %d handled in 1.2 ms, status 200, bytes 1024"}', ts, j % 8, j)
  end
  req = wrk.format("POST", "/", {["Content-Type"] = "application/json"}, "[" .. table.concat(parts, ",") .. "]")
end
request = function()
  local now = os.time()
  if now ~= last then last = now; build() end
  return req
end
non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
"#;

/// Runs the log benchmark; a failure ends up in the result, not in `Err`.
pub fn bench(ctx: &Ctx<'_>, bin: &Path, batch: usize) -> ServiceResult {
    let mut res = ServiceResult {
        name: "sluice-log".into(),
        ..Default::default()
    };
    if let Err(e) = run(ctx, bin, batch, &mut res) {
        res.failures.push(e.to_string());
    }
    res
}

/// Polls /stats until everything received is written and nothing is
/// buffered (the reorder window has passed), at most `timeout`.
fn wait_drained(addr: SocketAddr, timeout: Duration) -> Result<(LogStats, Duration)> {
    let t0 = Instant::now();
    loop {
        let s = log_stats(addr)?;
        if (s.written == s.received && s.buffered == 0) || t0.elapsed() > timeout {
            return Ok((s, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Newlines in `app.log` and its rotations `app.log.N`.
pub fn count_log_lines(dir: &Path) -> Result<u64> {
    let mut n = 0u64;
    for e in std::fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let e = e.ctx(|| "read_dir entry".into())?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_log = name == "app.log"
            || name
                .strip_prefix("app.log.")
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()));
        if !is_log {
            continue;
        }
        let f = std::fs::File::open(e.path()).ctx(|| format!("opening {name}"))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        loop {
            let buf = r.fill_buf().ctx(|| format!("reading {name}"))?;
            if buf.is_empty() {
                break;
            }
            n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            let len = buf.len();
            r.consume(len);
        }
    }
    Ok(n)
}

fn run(ctx: &Ctx<'_>, bin: &Path, batch: usize, res: &mut ServiceResult) -> Result<()> {
    let data = tempfile::Builder::new()
        .prefix("sluice-bench-log-")
        .tempdir()
        .ctx(|| "creating the log data dir".into())?;
    let addr = probe::free_port()?;
    // No rotation during the run (8 GiB files), so every line stays countable.
    let args = vec![
        "--listen".to_string(),
        addr.to_string(),
        "--dir".into(),
        data.path().display().to_string(),
        "--max-file-bytes".into(),
        (8u64 << 30).to_string(),
    ];
    let mut svc = Service::start(
        "sluice-log",
        ctx.pin,
        bin,
        &args,
        addr,
        &ctx.scratch.join("sluice-log.log"),
    )?;
    res.command = svc.command.clone();
    let url = format!("http://{addr}/");
    let env = [("SB_BATCH", batch.to_string())];
    let warm = ctx.wrk(&url, Duration::from_secs(1), LOG_SCRIPT, &env, "log-warmup")?;
    if warm.load.errors > 0 {
        res.failures
            .push(format!("warm-up: {} errors", warm.load.errors));
    }
    wait_drained(addr, Duration::from_secs(15))?;
    for round in 0..ctx.rounds {
        let s0 = log_stats(addr)?;
        let c0 = Cores::now(ctx.pin);
        let m0 = measure::sample(svc.pid());
        let w = ctx.wrk(&url, ctx.duration, LOG_SCRIPT, &env, "log")?;
        let (service_core_busy, load_core_busy) = Cores::now(ctx.pin).busy_since(&c0);
        let s1 = log_stats(addr)?;
        let (sd, waited) = wait_drained(addr, Duration::from_secs(15))?;
        // After the drain: the output writes of this round's entries are in.
        let m1 = measure::sample(svc.pid());
        res.wrk_command = w.command.clone();
        res.peak_rss = res.peak_rss.max(m1.peak_rss);
        let acked_by_client = w.load.requests * batch as u64;
        let received = sd.received - s0.received;
        let written = sd.written - s0.written;
        let fsyncs = s1.fsyncs - s0.fsyncs;
        let dur = w.load.duration_s.max(1e-9);
        let cpu_entry = measure::cpu_us_per_request(m0, m1, ctx.ticks, received);
        let cpu_req = measure::cpu_us_per_request(m0, m1, ctx.ticks, sd.batches - s0.batches);
        let drained = sd.written == sd.received && sd.buffered == 0;
        let ok = w.load.errors == 0
            && w.non_2xx == 0
            && drained
            && received >= acked_by_client
            && sd.rejected == s0.rejected;
        let r = ServiceRound {
            load: w.load,
            non_2xx: w.non_2xx,
            cpu_us_per_unit: cpu_entry,
            cpu_us_per_request: cpu_req,
            units_per_sec: acked_by_client as f64 / dur,
            service_core_busy,
            load_core_busy,
            fsyncs_per_sec: fsyncs as f64 / dur,
            entries_per_fsync: (s1.received - s0.received) as f64 / fsyncs.max(1) as f64,
            late: sd.late - s0.late,
            check: format!(
                "received +{received} (wrk 2xx × {batch} = {acked_by_client}), written +{written}, \
                 buffered {} after {:.1} s drain, late +{}, rejected +{}",
                sd.buffered,
                waited.as_secs_f64(),
                sd.late - s0.late,
                sd.rejected - s0.rejected
            ),
            ok,
        };
        if !ok {
            res.failures.push(format!(
                "round {}: errors {}, non-2xx {}, {}",
                round + 1,
                w.load.errors,
                w.non_2xx,
                r.check
            ));
        }
        eprintln!(
            "log round {}: {:.0} entries/s ({:.0} req/s), {:.2} CPU µs/entry, {:.0} fsyncs/s, p99 {:.0} µs, errors {}",
            round + 1,
            r.units_per_sec,
            r.load.rps,
            cpu_entry,
            r.fsyncs_per_sec,
            r.load.p99_us,
            r.load.errors + r.non_2xx
        );
        res.rounds.push(r);
    }
    // Final: everything acknowledged is written, and after a clean SIGTERM
    // the output files hold exactly that many lines.
    let fin = log_stats(addr)?;
    res.verification.push(format!(
        "before SIGTERM: /stats received {}, written {}, buffered {}, rejected {}, late {}",
        fin.received, fin.written, fin.buffered, fin.rejected, fin.late
    ));
    if fin.written != fin.received {
        res.failures.push(format!(
            "written {} != received {}",
            fin.written, fin.received
        ));
    }
    super::stop_clean(&mut svc, Duration::from_secs(30), res);
    let lines = count_log_lines(data.path())?;
    res.verification.push(format!(
        "after SIGTERM: {lines} lines in app.log* vs {} entries acknowledged",
        fin.received
    ));
    if lines != fin.received {
        res.failures.push(format!(
            "app.log* has {lines} lines, {} entries were acknowledged",
            fin.received
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_of_app_log_and_rotations() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("app.log"), "a\nb\n").unwrap();
        std::fs::write(d.path().join("app.log.1"), "c\n").unwrap();
        std::fs::write(d.path().join("app.log.tmp"), "x\n").unwrap();
        std::fs::create_dir(d.path().join("wal")).unwrap();
        assert_eq!(count_log_lines(d.path()).unwrap(), 3);
    }
}
