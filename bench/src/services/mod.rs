//! `sluice-bench services`: the cache and log services under wrk, one at a
//! time, on pinned cores (issue 6, "Performance").
//!
//! ```text
//! cargo build --release -p sluice-cache / -p sluice-log   (unless --cache-bin/--log-bin)
//! cache.rs: start `sluice-cache --store memory` on core 0 → POST N keys → wrk GET
//!        rotating over the keys (Lua, core 1) → CPU µs/request from /proc,
//!        hits/misses from GET /stats (every request must be a hit)
//! log.rs: start `sluice-log --dir <tempdir>` on core 0 → wrk POST of JSON
//!        arrays of B entries (timestamps = now, inside the reorder window)
//!        → entries/s, CPU µs/entry (sampled after the reorder buffer has
//!        drained, so the output writes are included), fsyncs/s from /stats
//!        → verify: written == received after each round, and after SIGTERM
//!        the lines in app.log* equal every entry acknowledged
//! → report.rs: bench/results/YYYY-MM-DD-HHMM-services[-quick].{md,json}
//! ```
//!
//! It reuses the proxy bench's parts: [`crate::probe`] for every plain
//! request, [`crate::load::wrk`] (with a Lua script) for the load,
//! [`crate::process::Running`] for the service process, [`crate::measure`]
//! for CPU and cores, and [`crate::results`] for what a round produced.
//! Each service is started once and measured over several rounds after a
//! short warm-up; the report gives every round and the median. Any non-2xx
//! response, socket error or failed verification marks the service FAILED.

mod api;
mod cache;
mod log;
mod process;
mod report;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::error::{Error, IoContext, Result};
use crate::load::LoadSpec;
use crate::load::wrk::{self, Script, WrkRun};
use crate::measure;
use crate::pin::{Pinning, which};
use crate::results::ServiceResult;

pub use api::{CacheStats, LogStats, parse_cache_stats, parse_log_stats};

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
    /// sluice-cache binary (default: `cargo build --release -p sluice-cache`).
    #[arg(long)]
    pub cache_bin: Option<PathBuf>,
    /// sluice-log binary (default: `cargo build --release -p sluice-log`).
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

/// What every service's measurement shares.
struct Ctx<'a> {
    pin: &'a Pinning,
    ticks: u64,
    rounds: usize,
    duration: Duration,
    connections: usize,
    scratch: &'a Path,
}

impl Ctx<'_> {
    /// The bench's wrk runner with a service's Lua script.
    fn wrk(
        &self,
        url: &str,
        duration: Duration,
        lua: &str,
        env: &[(&str, String)],
        tag: &str,
    ) -> Result<WrkRun> {
        let spec = LoadSpec {
            url: url.to_string(),
            connections: self.connections,
            duration,
            close: false,
            streams: 1,
            accept_encoding: None,
        };
        wrk::run_script(&spec, self.pin, self.scratch, &Script { lua, env, tag })
    }
}

/// SIGTERM, up to `grace`; a service that does not exit cleanly fails.
fn stop_clean(svc: &mut process::Service, grace: Duration, res: &mut ServiceResult) {
    match svc.running.stop_within(grace) {
        Some(st) if st.success() => res.verification.push("SIGTERM: clean exit".into()),
        other => res
            .failures
            .push(format!("SIGTERM: did not exit cleanly ({other:?})")),
    }
}

/// Runs the selected services and writes the report; returns its path and
/// whether everything passed.
pub fn run(a: &ServicesArgs) -> Result<(PathBuf, bool)> {
    let started = time::OffsetDateTime::now_utc();
    let pin = Pinning::for_run(!a.no_pin);
    if which("wrk").is_none() {
        return Err(Error::MissingBinary(PathBuf::from("wrk")));
    }
    let mut notes = Vec::new();
    let (cache_bin, log_bin) = process::service_bins(a, &mut notes)?;
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
    let load_before = measure::loadavg();
    let mut results = Vec::new();
    for s in &a.only {
        match s.as_str() {
            "cache" => results.push(cache::bench(&ctx, &cache_bin, keys, a.value_bytes)),
            "log" => results.push(log::bench(&ctx, &log_bin, a.batch.max(1))),
            other => notes.push(format!("unknown service {other:?} skipped")),
        }
    }
    let run = report::Run {
        started,
        a,
        rounds: ctx.rounds,
        duration: ctx.duration,
        keys,
        pin: &pin,
        load_before,
        load_after: measure::loadavg(),
        notes: &notes,
        results: &results,
        args: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    };
    let out_dir = a
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"));
    let md_path = report::write(&run, &out_dir)?;
    let ok = results.iter().all(|r| r.failures.is_empty());
    Ok((md_path, ok))
}
