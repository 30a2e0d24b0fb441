//! `sluice-cache` under wrk: preload N keys with POST, then GET rotating
//! over them; every request must be a hit (checked on `/stats`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::Ctx;
use super::api::cache_stats;
use super::process::Service;
use crate::error::{Error, Result};
use crate::measure::{self, Cores};
use crate::probe;
use crate::results::{ServiceResult, ServiceRound};

/// GETs rotating over keys `k1..kN` (requests pre-formatted at init).
/// No `response` hook: 4xx/5xx land in wrk's status errors, and the
/// service's own hit/miss counters confirm every request was a hit.
pub const CACHE_SCRIPT: &str = r#"
local n = tonumber(os.getenv("SB_KEYS"))
local reqs = {}
for i = 1, n do reqs[i] = wrk.format("GET", "/?key=k" .. i) end
local i = 0
request = function()
  i = i % n + 1
  return reqs[i]
end
"#;

/// Runs the cache benchmark; a failure ends up in the result, not in `Err`.
pub fn bench(ctx: &Ctx<'_>, bin: &Path, keys: usize, value_bytes: usize) -> ServiceResult {
    let mut res = ServiceResult {
        name: "sluice-cache".into(),
        ..Default::default()
    };
    if let Err(e) = run(ctx, bin, keys, value_bytes, &mut res) {
        res.failures.push(e.to_string());
    }
    res
}

fn run(
    ctx: &Ctx<'_>,
    bin: &Path,
    keys: usize,
    value_bytes: usize,
    res: &mut ServiceResult,
) -> Result<()> {
    let addr = probe::free_port()?;
    let args = vec![
        "--listen".to_string(),
        addr.to_string(),
        "--store".into(),
        "memory".into(),
        "--max-bytes".into(),
        "1GiB".into(),
    ];
    let mut svc = Service::start(
        "sluice-cache",
        ctx.pin,
        bin,
        &args,
        addr,
        &ctx.scratch.join("sluice-cache.log"),
    )?;
    res.command = svc.command.clone();
    // Preload: the value is printable and varies per key.
    let t0 = Instant::now();
    for i in 1..=keys {
        let value: Vec<u8> = (0..value_bytes)
            .map(|j| b'a' + ((i + j) % 26) as u8)
            .collect();
        let r = probe::request(
            addr,
            "POST",
            &format!("/?key=k{i}"),
            &[
                ("Cache-Control", "max-age=3600"),
                ("Content-Type", "text/plain"),
            ],
            &value,
        )?;
        if !(200..300).contains(&r.status) {
            return Err(Error::Tool {
                tool: "cache preload".into(),
                detail: format!("POST k{i}: status {}", r.status),
            });
        }
    }
    let loaded = cache_stats(addr)?;
    res.verification.push(format!(
        "preloaded {keys} keys × {value_bytes} B in {:.1} s; /stats entries = {}",
        t0.elapsed().as_secs_f64(),
        loaded.entries
    ));
    if loaded.entries != keys as u64 {
        res.failures.push(format!(
            "preload: /stats entries {} != {keys}",
            loaded.entries
        ));
    }
    let url = format!("http://{addr}/");
    let env = [("SB_KEYS", keys.to_string())];
    // Warm-up, not measured.
    ctx.wrk(
        &url,
        Duration::from_secs(1),
        CACHE_SCRIPT,
        &env,
        "cache-warmup",
    )?;
    for round in 0..ctx.rounds {
        let s0 = cache_stats(addr)?;
        let c0 = Cores::now(ctx.pin);
        let m0 = measure::sample(svc.pid());
        let w = ctx.wrk(&url, ctx.duration, CACHE_SCRIPT, &env, "cache")?;
        let m1 = measure::sample(svc.pid());
        let (service_core_busy, load_core_busy) = Cores::now(ctx.pin).busy_since(&c0);
        let s1 = cache_stats(addr)?;
        res.wrk_command = w.command.clone();
        res.peak_rss = res.peak_rss.max(m1.peak_rss);
        let hits = s1.hits - s0.hits;
        let misses = s1.misses - s0.misses;
        let cpu = measure::cpu_us_per_request(m0, m1, ctx.ticks, w.load.requests);
        // wrk drops in-flight requests at the end from its count, so the
        // service may have served up to `connections` more hits.
        let ok = w.load.errors == 0 && misses == 0 && hits >= w.load.requests;
        let r = ServiceRound {
            load: w.load,
            non_2xx: w.non_2xx,
            cpu_us_per_unit: cpu,
            cpu_us_per_request: cpu,
            units_per_sec: w.load.rps,
            service_core_busy,
            load_core_busy,
            check: format!(
                "hits +{hits}, misses +{misses}, evictions {}, wrk requests {}",
                s1.evictions, w.load.requests
            ),
            ok,
            ..Default::default()
        };
        if !ok {
            res.failures.push(format!(
                "round {}: errors {}, {}",
                round + 1,
                w.load.errors,
                r.check
            ));
        }
        eprintln!(
            "cache round {}: {:.0} rps, {:.2} CPU µs/req, p99 {:.0} µs, errors {}",
            round + 1,
            r.units_per_sec,
            cpu,
            r.load.p99_us,
            r.load.errors
        );
        res.rounds.push(r);
    }
    super::stop_clean(&mut svc, Duration::from_secs(10), res);
    Ok(())
}
