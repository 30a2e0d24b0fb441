//! `sluice-bench services`: the cache and log services under wrk, one at a
//! time, on pinned cores (issue 6, "Performance").
//!
//! ```text
//! cargo build --release -p sluice-cache -p sluice-log   (unless --cache-bin/--log-bin)
//! cache: start `sluice-cache --store memory` on core 0 → POST N keys → wrk GET
//!        rotating over the keys (Lua, core 1) → CPU µs/request from /proc,
//!        hits/misses from GET /stats (every request must be a hit)
//! log:   start `sluice-log --dir <tempdir>` on core 0 → wrk POST of JSON
//!        arrays of B entries (timestamps = now, inside the reorder window)
//!        → entries/s, CPU µs/entry (sampled after the reorder buffer has
//!        drained, so the output writes are included), fsyncs/s from /stats
//!        → verify: written == received after each round, and after SIGTERM
//!        the lines in app.log* equal every entry acknowledged
//! → bench/results/YYYY-MM-DD-HHMM-services[-quick].{md,json}
//! ```
//!
//! Each service is started once and measured over several rounds after a
//! short warm-up; the report gives every round and the median. Any non-2xx
//! response, socket error or failed verification marks the service FAILED.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::load::{LoadResult, wrk};
use crate::measure::{self, busy_fraction, core_times};
use crate::pin::{Pinning, which};
use crate::probe;
use crate::stats::median;

/// The issue's bar for the log service, entries per second.
pub const LOG_TARGET_ENTRIES_PER_SEC: f64 = 50_000.0;

/// Command line of `sluice-bench services`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-bench services",
    about = "Benchmark the cache (GET hits) and log (POST batches) services on pinned cores"
)]
pub struct ServicesArgs {
    /// Short run: 1 round × 3 s per service, 1000 cache keys.
    #[arg(long)]
    pub quick: bool,
    /// Which services: cache, log.
    #[arg(long, value_delimiter = ',', default_value = "cache,log")]
    pub only: Vec<String>,
    /// Rounds per service (default 3, or 1 with --quick).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seconds per round (default 10, or 3 with --quick).
    #[arg(long)]
    pub duration: Option<u64>,
    /// wrk connections (one wrk thread on the load core).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Cache keys preloaded and rotated over (default 10000, 1000 with --quick).
    #[arg(long)]
    pub keys: Option<usize>,
    /// Bytes per cache value.
    #[arg(long, default_value_t = 1024)]
    pub value_bytes: usize,
    /// Log entries per POST (one JSON array).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// sluice-cache binary (default: built with cargo into the target dir of this binary).
    #[arg(long)]
    pub cache_bin: Option<PathBuf>,
    /// sluice-log binary (default: built with cargo into the target dir of this binary).
    #[arg(long)]
    pub log_bin: Option<PathBuf>,
    /// Don't pin cores with taskset.
    #[arg(long)]
    pub no_pin: bool,
    /// Report directory (default: bench/results).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Entry point from `main`: `args` starts with the word `services`.
/// Returns the process exit code (1 if a service failed its run).
pub fn cli(args: impl IntoIterator<Item = OsString>) -> i32 {
    let a = ServicesArgs::parse_from(args);
    match run(&a) {
        Ok((path, ok)) => {
            println!("report: {}", path.display());
            i32::from(!ok)
        }
        Err(e) => {
            eprintln!("sluice-bench services: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------- /stats

/// `GET /stats` of `sluice-log` (unknown fields such as `ready` ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogStats {
    pub received: u64,
    pub written: u64,
    pub late: u64,
    pub batches: u64,
    pub fsyncs: u64,
    pub recovered: u64,
    pub rejected: u64,
    pub buffered: u64,
}

/// `GET /stats` of `sluice-cache` (`store` ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
}

fn parse_json<T: for<'de> Deserialize<'de>>(what: &'static str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Parse {
        what,
        detail: format!("{e}: {}", String::from_utf8_lossy(body)),
    })
}

pub fn parse_log_stats(body: &[u8]) -> Result<LogStats> {
    parse_json("sluice-log /stats", body)
}

pub fn parse_cache_stats(body: &[u8]) -> Result<CacheStats> {
    parse_json("sluice-cache /stats", body)
}

/// The `non_2xx N` line our wrk `done` hook adds to the standard keys.
pub fn parse_non_2xx(done: &str) -> u64 {
    done.lines()
        .find_map(|l| l.strip_prefix("non_2xx ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn loadavg() -> [f64; 3] {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .as_deref()
        .and_then(parse_loadavg)
        .unwrap_or([f64::NAN; 3])
}

// ---------------------------------------------------------------- HTTP

/// One request with `Connection: close` over a plain socket.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<probe::Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .ctx(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .ctx(|| "set_read_timeout".into())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    s.write_all(&raw).ctx(|| format!("writing to {addr}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .ctx(|| format!("reading from {addr}"))?;
    probe::parse_response(&resp)
}

fn get_ok(addr: SocketAddr, path: &str) -> Result<Vec<u8>> {
    let r = http(addr, "GET", path, &[], b"")?;
    if r.status != 200 {
        return Err(Error::Tool {
            tool: format!("GET {path}"),
            detail: format!("status {}", r.status),
        });
    }
    Ok(r.body)
}

// ---------------------------------------------------------------- processes

fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").ctx(|| "binding a free port".into())?;
    l.local_addr().ctx(|| "local_addr".into())
}

/// A service process on the proxy core; dropping it stops it.
struct Service {
    name: &'static str,
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    command: String,
}

impl Service {
    fn start(
        name: &'static str,
        pin: &Pinning,
        bin: &Path,
        args: &[String],
        addr: SocketAddr,
        log: &Path,
    ) -> Result<Self> {
        let out = std::fs::File::create(log).ctx(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().ctx(|| "dup log file".into())?;
        let bin_s = bin.to_string_lossy().into_owned();
        let mut cmd = pin.proxy_command(&bin_s);
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().ctx(|| format!("starting {name}"))?;
        let prefix = match pin.proxy_core {
            Some(c) => format!("taskset -c {c} "),
            None => String::new(),
        };
        let mut s = Self {
            name,
            pid: child.id(),
            child: Some(child),
            addr,
            command: format!("{prefix}{bin_s} {}", args.join(" ")),
        };
        s.wait_ready(Duration::from_secs(30))?;
        Ok(s)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                return Err(Error::Tool {
                    tool: self.name.into(),
                    detail: format!("exited during startup: {st}"),
                });
            }
            if http(self.addr, "GET", "/ready", &[], b"").is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Tool {
            tool: self.name.into(),
            detail: format!("not ready within {} s", timeout.as_secs()),
        })
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL. Returns the
    /// exit status if it exited on its own.
    fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        crate::peers::signal(&[self.pid], "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// `--cache-bin`/`--log-bin`, or `cargo build --release` of both services
/// into the target dir this binary lives in.
fn service_bins(a: &ServicesArgs, notes: &mut Vec<String>) -> Result<(PathBuf, PathBuf)> {
    if let (Some(c), Some(l)) = (&a.cache_bin, &a.log_bin) {
        return Ok((c.clone(), l.clone()));
    }
    let exe = std::env::current_exe().ctx(|| "current_exe".into())?;
    // target/<profile>/sluice-bench → target
    let target = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let cmd = format!(
        "CARGO_TARGET_DIR={} cargo build --release -p sluice-cache -p sluice-log",
        target.display()
    );
    eprintln!("building: {cmd}");
    let st = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "sluice-cache",
            "-p",
            "sluice-log",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&workspace)
        .status()
        .ctx(|| "running cargo build".into())?;
    if !st.success() {
        return Err(Error::Tool {
            tool: "cargo build".into(),
            detail: st.to_string(),
        });
    }
    notes.push(format!("services built with `{cmd}`"));
    let rel = target.join("release");
    let cache = a
        .cache_bin
        .clone()
        .unwrap_or_else(|| rel.join("sluice-cache"));
    let log = a.log_bin.clone().unwrap_or_else(|| rel.join("sluice-log"));
    for b in [&cache, &log] {
        if !b.is_file() {
            return Err(Error::MissingBinary(b.clone()));
        }
    }
    Ok((cache, log))
}

// ---------------------------------------------------------------- wrk

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

/// GETs rotating over keys `k1..kN` (requests pre-formatted at init).
/// No `response` hook: 4xx/5xx land in wrk's status errors, and the
/// service's own hit/miss counters confirm every request was a hit.
const CACHE_SCRIPT: &str = r#"
local n = tonumber(os.getenv("SB_KEYS"))
local reqs = {}
for i = 1, n do reqs[i] = wrk.format("GET", "/?key=k" .. i) end
local i = 0
request = function()
  i = i % n + 1
  return reqs[i]
end
"#;

/// POSTs one JSON array of B entries, rebuilt once a second so every
/// timestamp is "now" (UTC, whole seconds: at most ~1 s old, inside the
/// default 2 s reorder window). Any status outside 2xx is counted.
const LOG_SCRIPT: &str = r#"
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

struct WrkRun {
    load: LoadResult,
    non_2xx: u64,
    command: String,
}

fn run_wrk(
    ctx: &Ctx<'_>,
    url: &str,
    duration: Duration,
    script: &str,
    env: &[(&str, String)],
    tag: &str,
) -> Result<WrkRun> {
    let (pin, connections, scratch) = (ctx.pin, ctx.connections, ctx.scratch);
    let lua = scratch.join(format!("{tag}.lua"));
    let out = scratch.join(format!("{tag}-done.txt"));
    std::fs::write(&lua, format!("{script}\n{DONE_HOOK}"))
        .ctx(|| format!("writing {}", lua.display()))?;
    let _ = std::fs::remove_file(&out);
    let secs = duration.as_secs().max(1);
    let mut cmd = pin.load_command("wrk");
    cmd.args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&lua)
        .arg(url)
        .env("SLUICE_BENCH_WRK_OUT", &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let env_s: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let prefix = match pin.load_core {
        Some(c) => format!("taskset -c {c} "),
        None => String::new(),
    };
    let command = format!(
        "{} {prefix}wrk -t1 -c{connections} -d{secs}s --latency --timeout 5s -s {tag}.lua {url}",
        env_s.join(" ")
    );
    let output = cmd.output().ctx(|| "running wrk".into())?;
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
    let done = std::fs::read_to_string(&out).ctx(|| format!("reading {}", out.display()))?;
    let mut load = wrk::parse_done(&done)?;
    let non_2xx = parse_non_2xx(&done);
    // errors already holds wrk's status errors (>= 400); non_2xx is a
    // superset of those, so count socket errors + non-2xx when we have it.
    let status_errors = done
        .lines()
        .find_map(|l| l.strip_prefix("errors_status ")?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if non_2xx > status_errors {
        load.errors += non_2xx - status_errors;
    }
    Ok(WrkRun {
        load,
        non_2xx,
        command,
    })
}

// ---------------------------------------------------------------- rounds

/// One measured round of one service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundResult {
    pub load: LoadResult,
    /// Non-2xx responses (log; the cache relies on wrk's status errors).
    pub non_2xx: u64,
    /// CPU µs of the service per request (cache) or per entry (log).
    pub cpu_us_per_unit: f64,
    /// CPU µs of the service per request, both services.
    pub cpu_us_per_request: f64,
    /// Requests (cache) or acknowledged entries (log) per second.
    pub units_per_sec: f64,
    pub service_core_busy: f64,
    pub load_core_busy: f64,
    /// Log only: WAL fsyncs per second and entries per fsync.
    pub fsyncs_per_sec: f64,
    pub entries_per_fsync: f64,
    /// Log only: entries that arrived after their reorder window.
    pub late: u64,
    /// What the service's /stats said about the round, as text.
    pub check: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceResult {
    pub name: String,
    pub command: String,
    pub wrk_command: String,
    pub rounds: Vec<RoundResult>,
    /// Failures (errors, verification); empty when all is well.
    pub failures: Vec<String>,
    /// Final verification text.
    pub verification: Vec<String>,
    pub peak_rss: u64,
}

impl ServiceResult {
    fn median(&self, f: impl Fn(&RoundResult) -> f64) -> f64 {
        median(&self.rounds.iter().map(f).collect::<Vec<_>>())
    }
}

struct Ctx<'a> {
    pin: &'a Pinning,
    ticks: u64,
    rounds: usize,
    duration: Duration,
    connections: usize,
    scratch: &'a Path,
}

fn cache_bench(ctx: &Ctx<'_>, bin: &Path, keys: usize, value_bytes: usize) -> ServiceResult {
    let mut res = ServiceResult {
        name: "sluice-cache".into(),
        ..Default::default()
    };
    if let Err(e) = cache_inner(ctx, bin, keys, value_bytes, &mut res) {
        res.failures.push(e.to_string());
    }
    res
}

fn cache_inner(
    ctx: &Ctx<'_>,
    bin: &Path,
    keys: usize,
    value_bytes: usize,
    res: &mut ServiceResult,
) -> Result<()> {
    let addr = free_port()?;
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
        let r = http(
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
    let loaded = parse_cache_stats(&get_ok(addr, "/stats")?)?;
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
    run_wrk(
        ctx,
        &url,
        Duration::from_secs(1),
        CACHE_SCRIPT,
        &env,
        "cache-warmup",
    )?;
    for round in 0..ctx.rounds {
        let s0 = parse_cache_stats(&get_ok(addr, "/stats")?)?;
        let (c0, l0) = (core_times(0), core_times(1));
        let m0 = measure::sample(svc.pid);
        let w = run_wrk(ctx, &url, ctx.duration, CACHE_SCRIPT, &env, "cache")?;
        let m1 = measure::sample(svc.pid);
        let (c1, l1) = (core_times(0), core_times(1));
        let s1 = parse_cache_stats(&get_ok(addr, "/stats")?)?;
        res.wrk_command = w.command.clone();
        res.peak_rss = res.peak_rss.max(m1.peak_rss);
        let hits = s1.hits - s0.hits;
        let misses = s1.misses - s0.misses;
        let cpu = measure::cpu_us_per_request(m0, m1, ctx.ticks, w.load.requests);
        // wrk drops in-flight requests at the end from its count, so the
        // service may have served up to `connections` more hits.
        let ok = w.load.errors == 0 && misses == 0 && hits >= w.load.requests;
        let mut r = RoundResult {
            load: w.load,
            non_2xx: w.non_2xx,
            cpu_us_per_unit: cpu,
            cpu_us_per_request: cpu,
            units_per_sec: w.load.rps,
            check: format!(
                "hits +{hits}, misses +{misses}, evictions {}, wrk requests {}",
                s1.evictions, w.load.requests
            ),
            ok,
            ..Default::default()
        };
        if let (Some(c0), Some(c1), Some(l0), Some(l1)) = (c0, c1, l0, l1) {
            r.service_core_busy = busy_fraction(c0, c1);
            r.load_core_busy = busy_fraction(l0, l1);
        }
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
    match svc.stop(Duration::from_secs(10)) {
        Some(st) if st.success() => res.verification.push("SIGTERM: clean exit".into()),
        other => res
            .failures
            .push(format!("SIGTERM: did not exit cleanly ({other:?})")),
    }
    Ok(())
}

fn log_bench(ctx: &Ctx<'_>, bin: &Path, batch: usize) -> ServiceResult {
    let mut res = ServiceResult {
        name: "sluice-log".into(),
        ..Default::default()
    };
    if let Err(e) = log_inner(ctx, bin, batch, &mut res) {
        res.failures.push(e.to_string());
    }
    res
}

fn log_stats(addr: SocketAddr) -> Result<LogStats> {
    parse_log_stats(&get_ok(addr, "/stats")?)
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
fn count_log_lines(dir: &Path) -> Result<u64> {
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

fn log_inner(ctx: &Ctx<'_>, bin: &Path, batch: usize, res: &mut ServiceResult) -> Result<()> {
    let data = tempfile::Builder::new()
        .prefix("sluice-bench-log-")
        .tempdir()
        .ctx(|| "creating the log data dir".into())?;
    let addr = free_port()?;
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
    let warm = run_wrk(
        ctx,
        &url,
        Duration::from_secs(1),
        LOG_SCRIPT,
        &env,
        "log-warmup",
    )?;
    if warm.load.errors > 0 {
        res.failures
            .push(format!("warm-up: {} errors", warm.load.errors));
    }
    wait_drained(addr, Duration::from_secs(15))?;
    for round in 0..ctx.rounds {
        let s0 = log_stats(addr)?;
        let (c0, l0) = (core_times(0), core_times(1));
        let m0 = measure::sample(svc.pid);
        let w = run_wrk(ctx, &url, ctx.duration, LOG_SCRIPT, &env, "log")?;
        let (c1, l1) = (core_times(0), core_times(1));
        let s1 = log_stats(addr)?;
        let (sd, waited) = wait_drained(addr, Duration::from_secs(15))?;
        // After the drain: the output writes of this round's entries are in.
        let m1 = measure::sample(svc.pid);
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
        let mut r = RoundResult {
            load: w.load,
            non_2xx: w.non_2xx,
            cpu_us_per_unit: cpu_entry,
            cpu_us_per_request: cpu_req,
            units_per_sec: acked_by_client as f64 / dur,
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
            ..Default::default()
        };
        if let (Some(c0), Some(c1), Some(l0), Some(l1)) = (c0, c1, l0, l1) {
            r.service_core_busy = busy_fraction(c0, c1);
            r.load_core_busy = busy_fraction(l0, l1);
        }
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
    match svc.stop(Duration::from_secs(30)) {
        Some(st) if st.success() => res.verification.push("SIGTERM: clean exit".into()),
        other => res
            .failures
            .push(format!("SIGTERM: did not exit cleanly ({other:?})")),
    }
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

// ---------------------------------------------------------------- run + report

#[derive(Debug, Serialize)]
struct Raw<'a> {
    started_utc: String,
    loadavg_before: [f64; 3],
    loadavg_after: [f64; 3],
    pinning: String,
    args: String,
    results: &'a [ServiceResult],
}

/// Runs the selected services and writes the report; returns its path and
/// whether everything passed.
pub fn run(a: &ServicesArgs) -> Result<(PathBuf, bool)> {
    let started = time::OffsetDateTime::now_utc();
    let pin = if a.no_pin {
        Pinning::none()
    } else {
        Pinning::detect()
    };
    pin.pin_self();
    crate::pin::raise_nofile();
    if which("wrk").is_none() {
        return Err(Error::MissingBinary(PathBuf::from("wrk")));
    }
    let mut notes = Vec::new();
    let (cache_bin, log_bin) = service_bins(a, &mut notes)?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-services-")
        .tempdir()
        .ctx(|| "creating a scratch dir".into())?;
    let ctx = Ctx {
        pin: &pin,
        ticks: measure::clock_ticks_per_sec(),
        rounds: a.rounds.unwrap_or(if a.quick { 1 } else { 3 }).max(1),
        duration: Duration::from_secs(a.duration.unwrap_or(if a.quick { 3 } else { 10 })),
        connections: a.connections,
        scratch: scratch.path(),
    };
    let keys = a.keys.unwrap_or(if a.quick { 1000 } else { 10_000 }).max(1);
    let load_before = loadavg();
    let mut results = Vec::new();
    for s in &a.only {
        match s.as_str() {
            "cache" => results.push(cache_bench(&ctx, &cache_bin, keys, a.value_bytes)),
            "log" => results.push(log_bench(&ctx, &log_bin, a.batch.max(1))),
            other => notes.push(format!("unknown service {other:?} skipped")),
        }
    }
    let load_after = loadavg();
    let args_s = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let md = render(&Rendered {
        started: &started,
        a,
        ctx: &ctx,
        keys,
        pin: &pin,
        load_before,
        load_after,
        notes: &notes,
        results: &results,
        args: &args_s,
    });
    let out_dir = a
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"));
    std::fs::create_dir_all(&out_dir).ctx(|| format!("creating {}", out_dir.display()))?;
    let stamp = format!(
        "{:04}-{:02}-{:02}-{:02}{:02}-services{}",
        started.year(),
        u8::from(started.month()),
        started.day(),
        started.hour(),
        started.minute(),
        if a.quick { "-quick" } else { "" }
    );
    let md_path = out_dir.join(format!("{stamp}.md"));
    std::fs::write(&md_path, md).ctx(|| format!("writing {}", md_path.display()))?;
    let raw = Raw {
        started_utc: format!("{started}"),
        loadavg_before: load_before,
        loadavg_after: load_after,
        pinning: pin.describe(),
        args: args_s.clone(),
        results: &results,
    };
    let json_path = out_dir.join(format!("{stamp}.json"));
    let json = serde_json::to_string_pretty(&raw).map_err(|e| Error::Parse {
        what: "report json",
        detail: e.to_string(),
    })?;
    std::fs::write(&json_path, json).ctx(|| format!("writing {}", json_path.display()))?;
    let ok = results.iter().all(|r| r.failures.is_empty());
    Ok((md_path, ok))
}

struct Rendered<'a> {
    started: &'a time::OffsetDateTime,
    a: &'a ServicesArgs,
    ctx: &'a Ctx<'a>,
    keys: usize,
    pin: &'a Pinning,
    load_before: [f64; 3],
    load_after: [f64; 3],
    notes: &'a [String],
    results: &'a [ServiceResult],
    args: &'a str,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// CPUs of the machine (not of this pinned process): `processor` lines.
fn online_cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

fn render(r: &Rendered<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let la = |l: [f64; 3]| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]);
    let _ = writeln!(
        s,
        "# Services benchmark: sluice-cache GET hits, sluice-log POST batches\n"
    );
    let _ = writeln!(
        s,
        "- **Started**: {} UTC\n- **Command**: `sluice-bench {}`\n- **Machine**: {}, {} cores\n- **Pinning**: {}\n- **Load average** (1/5/15 min): before {}, after {}\n- **Rounds**: {} × {} s per service after a 1 s warm-up, wrk -t1 -c{}",
        r.started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        r.args,
        cpu_model(),
        online_cpus(),
        r.pin.describe(),
        la(r.load_before),
        la(r.load_after),
        r.ctx.rounds,
        r.ctx.duration.as_secs(),
        r.ctx.connections,
    );
    for n in r.notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(
        s,
        "\nCPU µs is utime+stime of the service process from `/proc/PID/stat` before and after the load \
         (for the log service: after the reorder buffer drained, so the output-file writes are included), \
         divided by completed requests or acknowledged entries. It is the figure that survives a shared machine; \
         rps depends on the generator core."
    );
    for res in r.results {
        let is_log = res.name == "sluice-log";
        let _ = writeln!(s, "\n## {}\n", res.name);
        let _ = writeln!(s, "```\n{}\n{}\n```\n", res.command, res.wrk_command);
        if is_log {
            let _ = writeln!(
                s,
                "Workload: POST / with a JSON array of {} entries (timestamps = now, whole seconds, inside the 2 s reorder window).\n",
                r.a.batch.max(1)
            );
            let _ = writeln!(
                s,
                "| round | entries/s | req/s | CPU µs/entry | CPU µs/req | fsyncs/s | entries/fsync | p50 µs | p99 µs | errors (incl. non-2xx) | service core | load core |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (i, x) in res.rounds.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {} | {:.0}% | {:.0}% |",
                    i + 1,
                    x.units_per_sec,
                    x.load.rps,
                    x.cpu_us_per_unit,
                    x.cpu_us_per_request,
                    x.fsyncs_per_sec,
                    x.entries_per_fsync,
                    x.load.p50_us,
                    x.load.p99_us,
                    x.load.errors,
                    x.service_core_busy * 100.0,
                    x.load_core_busy * 100.0
                );
            }
            if !res.rounds.is_empty() {
                let _ = writeln!(
                    s,
                    "| **median** | **{:.0}** | {:.0} | **{:.2}** | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {} | | |",
                    res.median(|x| x.units_per_sec),
                    res.median(|x| x.load.rps),
                    res.median(|x| x.cpu_us_per_unit),
                    res.median(|x| x.cpu_us_per_request),
                    res.median(|x| x.fsyncs_per_sec),
                    res.median(|x| x.entries_per_fsync),
                    res.median(|x| x.load.p50_us),
                    res.median(|x| x.load.p99_us),
                    res.rounds.iter().map(|x| x.load.errors).sum::<u64>()
                );
                let eps = res.median(|x| x.units_per_sec);
                let met = eps >= LOG_TARGET_ENTRIES_PER_SEC && res.failures.is_empty();
                let _ = writeln!(
                    s,
                    "\n**50,000 entries/s with group commit: {}** (median {:.0} entries/s; the CPU figure implies a ceiling of ~{:.0} entries/s for one saturated core).",
                    if met { "met" } else { "NOT met" },
                    eps,
                    1e6 / res.median(|x| x.cpu_us_per_unit)
                );
            }
        } else {
            let _ = writeln!(
                s,
                "Workload: GET /?key=kI rotating over {} preloaded keys of {} B (every request a hit).\n",
                r.keys, r.a.value_bytes
            );
            let _ = writeln!(
                s,
                "| round | rps | CPU µs/req | p50 µs | p99 µs | errors | service core | load core |\n|---|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (i, x) in res.rounds.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {} | {:.0}% | {:.0}% |",
                    i + 1,
                    x.units_per_sec,
                    x.cpu_us_per_unit,
                    x.load.p50_us,
                    x.load.p99_us,
                    x.load.errors,
                    x.service_core_busy * 100.0,
                    x.load_core_busy * 100.0
                );
            }
            if !res.rounds.is_empty() {
                let _ = writeln!(
                    s,
                    "| **median** | **{:.0}** | **{:.2}** | {:.0} | {:.0} | {} | | |",
                    res.median(|x| x.units_per_sec),
                    res.median(|x| x.cpu_us_per_unit),
                    res.median(|x| x.load.p50_us),
                    res.median(|x| x.load.p99_us),
                    res.rounds.iter().map(|x| x.load.errors).sum::<u64>()
                );
            }
        }
        let _ = writeln!(
            s,
            "\nPeak RSS: {:.1} MiB.\n",
            res.peak_rss as f64 / 1048576.0
        );
        let _ = writeln!(s, "Checks:\n");
        for (i, x) in res.rounds.iter().enumerate() {
            let _ = writeln!(
                s,
                "- round {}: {} — {}",
                i + 1,
                x.check,
                if x.ok { "ok" } else { "FAILED" }
            );
        }
        for v in &res.verification {
            let _ = writeln!(s, "- {v}");
        }
        if res.failures.is_empty() {
            let _ = writeln!(s, "\n**Status: ok** (no errors, all checks passed).");
        } else {
            let _ = writeln!(s, "\n**Status: FAILED**\n");
            for f in &res.failures {
                let _ = writeln!(s, "- {f}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stats_json() {
        // As sluice-log's GET /stats sends it (with the extra `ready`).
        let body = br#"{"received":1200,"written":1100,"late":3,"batches":12,"fsyncs":5,"recovered":0,"rejected":1,"buffered":100,"ready":true}"#;
        let s = parse_log_stats(body).unwrap();
        assert_eq!(
            s,
            LogStats {
                received: 1200,
                written: 1100,
                late: 3,
                batches: 12,
                fsyncs: 5,
                recovered: 0,
                rejected: 1,
                buffered: 100,
            }
        );
        assert!(parse_log_stats(br#"{"received":1}"#).is_err());
        assert!(parse_log_stats(b"not json").is_err());
    }

    #[test]
    fn cache_stats_json() {
        let body = br#"{"store":"memory","entries":10000,"bytes":10485760,"hits":5,"misses":0,"evictions":0,"expirations":0}"#;
        let s = parse_cache_stats(body).unwrap();
        assert_eq!((s.entries, s.hits, s.misses), (10000, 5, 0));
        assert!(parse_cache_stats(br#"{"entries":-1}"#).is_err());
    }

    #[test]
    fn done_file_non_2xx_and_loadavg() {
        let done = "requests 10\nduration_us 1000000\nerrors_connect 0\nerrors_read 0\nerrors_write 0\nerrors_status 2\nerrors_timeout 0\np50 100\np99 200\np99.9 300\nnon_2xx 3\n";
        assert_eq!(parse_non_2xx(done), 3);
        assert_eq!(wrk::parse_done(done).unwrap().errors, 2);
        assert_eq!(parse_non_2xx("requests 1\n"), 0);
        assert_eq!(
            parse_loadavg("5.41 6.97 8.70 3/812 12345\n"),
            Some([5.41, 6.97, 8.70])
        );
        assert_eq!(parse_loadavg("5.41"), None);
    }

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
