//! The report of a run: medians across rounds, Sluice's ratio to each peer
//! with its spread over rounds and a verdict against the target, the A/B
//! comparison of two Sluice builds, the generator-bound check, and
//! everything needed to reproduce the run (machine, versions, exact
//! configs). It reads [`crate::results`] and nothing of the runner.
//!
//! ```text
//! mod.rs       Report → summaries → write .md/.svg/.json (file names, helpers)
//! markdown.rs  the Markdown document, section by section
//! ratios.rs    per-round ratios: spread, verdicts, the A/B section
//! svg.rs       the bar chart
//! ```

mod markdown;
mod ratios;
mod svg;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::results::{Cell, Round, Status};
use crate::scenario::{Scenario, Timing};
use crate::stats::{Spread, median};

pub use ratios::{AB_PEER, AB_TARGET, RATIO_TARGET};

/// Everything a run produced.
pub struct Report {
    pub started: time::OffsetDateTime,
    pub quick: bool,
    /// The command line's arguments, exactly as given.
    pub args: Vec<String>,
    /// CPU model, cores, kernel.
    pub machine: (String, usize, String),
    pub pinning: String,
    pub timing: Timing,
    pub versions: Vec<(String, String)>,
    pub install_log: Vec<String>,
    pub notes: Vec<String>,
    pub skipped_peers: Vec<(String, String)>,
    pub scenarios: Vec<Scenario>,
    pub peers: Vec<String>,
    /// Keyed by (scenario index, peer index).
    pub cells: BTreeMap<(usize, usize), Cell>,
    /// Keyed by (peer, variant).
    pub configs: BTreeMap<(String, String), String>,
    /// The machine's load averages (1/5/15 min) before and after the run.
    pub loadavg: ([f64; 3], [f64; 3]),
}

/// Paths of what was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub markdown: PathBuf,
    pub svg: PathBuf,
    pub json: PathBuf,
    /// Median CPU µs/request keyed by (scenario id, peer), for callers and tests.
    pub cpu_us: BTreeMap<(String, String), f64>,
    /// Cell status keyed by (scenario id, peer).
    pub status: BTreeMap<(String, String), Status>,
    /// Sluice ÷ peer, CPU µs/request, over rounds, keyed by (scenario id, peer).
    pub ratios: BTreeMap<(String, String), Spread>,
    /// The A/B run's B ÷ A, CPU µs/request, over rounds, keyed by scenario id.
    pub ab: BTreeMap<String, Spread>,
}

/// Medians of one cell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub cpu_us: f64,
    /// utime part of `cpu_us` (its own median, so with several rounds
    /// `user_us + sys_us` need not equal `cpu_us` exactly).
    pub user_us: f64,
    /// stime part of `cpu_us`.
    pub sys_us: f64,
    pub peak_rss: f64,
    pub errors: u64,
    pub idle_bytes: f64,
    /// The generator's core was saturated while the proxy's was not, in the
    /// majority of rounds.
    pub generator_bound: bool,
}

pub fn summarize(cell: &Cell) -> Summary {
    let loads: Vec<_> = cell.rounds.iter().filter_map(|r| r.load).collect();
    let m = |f: &dyn Fn(&crate::load::LoadResult) -> f64| {
        median(&loads.iter().map(f).collect::<Vec<_>>())
    };
    let bound = cell
        .rounds
        .iter()
        .filter(|r| r.load_core_busy >= 0.95 && r.proxy_core_busy < 0.90)
        .count();
    Summary {
        rps: m(&|l| l.rps),
        p50: m(&|l| l.p50_us),
        p99: m(&|l| l.p99_us),
        p999: m(&|l| l.p999_us),
        cpu_us: per_round(cell, |r| r.cpu_us_per_req),
        user_us: per_round(cell, |r| r.user_us_per_req),
        sys_us: per_round(cell, |r| r.sys_us_per_req),
        peak_rss: median(
            &cell
                .rounds
                .iter()
                .map(|r| r.peak_rss as f64)
                .collect::<Vec<_>>(),
        ),
        errors: loads.iter().map(|l| l.errors).sum::<u64>()
            + cell
                .rounds
                .iter()
                .filter_map(|r| r.idle)
                .map(|i| i.failed as u64)
                .sum::<u64>(),
        idle_bytes: median(
            &cell
                .rounds
                .iter()
                .filter_map(|r| r.idle.map(|i| i.bytes_per_conn))
                .collect::<Vec<_>>(),
        ),
        generator_bound: !cell.rounds.is_empty() && bound * 2 > cell.rounds.len(),
    }
}

/// Median across the cell's rounds of one per-round figure.
fn per_round(cell: &Cell, f: impl Fn(&Round) -> f64) -> f64 {
    median(&cell.rounds.iter().map(f).collect::<Vec<_>>())
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// "†" when the cell's configuration is not equivalent to the others'.
fn dagger(cell: &Cell) -> &'static str {
    if cell.caveat.is_some() { "†" } else { "" }
}

/// A lower gzip level at which peer `pi` sent exactly as many bytes as in
/// gzip scenario `si`: the probe's evidence that the level was ignored.
fn same_size_at_lower_level(r: &Report, si: usize, pi: usize) -> Option<u32> {
    let level = r.scenarios[si].gzip_level()?;
    let bytes = r.cells[&(si, pi)].gzip_bytes?;
    let coding = r.scenarios[si].coding();
    r.scenarios.iter().enumerate().find_map(|(sj, s)| {
        let lower = s
            .gzip_level()
            .filter(|&l| l < level && s.coding() == coding)?;
        (r.cells[&(sj, pi)].gzip_bytes == Some(bytes)).then_some(lower)
    })
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Ok => String::new(),
        Status::Failed(why) => format!("**FAILED**: {}", table_cell(why)),
        Status::Unsupported(why) => format!("unsupported: {}", table_cell(why)),
        Status::Skipped(why) => format!("skipped: {}", table_cell(why)),
    }
}

/// A tool's message made safe for one Markdown table cell: one line, no
/// bare `|` (oha's and apt's errors span several lines).
fn table_cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// `YYYY-MM-DD-HHMM` of `started` (UTC) followed by `suffix`: every report
/// file's name.
pub fn file_stem(started: &time::OffsetDateTime, suffix: &str) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]-[hour][minute]");
    let stamp = started.format(&fmt).unwrap_or_else(|_| "run".into());
    format!("{stamp}{suffix}")
}

/// Writes `text` to `path`, creating its directory.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).ctx(|| format!("writing {}", path.display()))
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| Error::Parse {
        what: "report json",
        detail: e.to_string(),
    })?;
    write_file(path, &json)
}

pub fn write(r: &Report, out_dir: &Path) -> Result<Written> {
    let stem = file_stem(&r.started, if r.quick { "-quick" } else { "" });
    let md_path = out_dir.join(format!("{stem}.md"));
    let svg_path = out_dir.join(format!("{stem}.svg"));
    let json_path = out_dir.join(format!("{stem}.json"));

    let sums: BTreeMap<(usize, usize), Summary> =
        r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
    let mut cpu_us = BTreeMap::new();
    let mut status = BTreeMap::new();
    for ((si, pi), c) in &r.cells {
        let key = (r.scenarios[*si].id.to_string(), r.peers[*pi].clone());
        cpu_us.insert(key.clone(), sums[&(*si, *pi)].cpu_us);
        status.insert(key, c.status.clone());
    }
    let cpu = |x: &Round| x.cpu_us_per_req;
    let ratios = ratios::against_peers(r, cpu)
        .into_iter()
        .map(|((si, pi), s)| ((r.scenarios[si].id.to_string(), r.peers[pi].clone()), s))
        .collect();
    let ab = ratios::ab(r, cpu)
        .into_iter()
        .map(|(si, s)| (r.scenarios[si].id.to_string(), s))
        .collect();

    write_file(&md_path, &markdown::markdown(r, &sums, &stem))?;
    write_file(&svg_path, &svg::svg(r, &sums))?;
    let raw: Vec<_> = r
        .cells
        .iter()
        .map(|((si, pi), c)| serde_json::json!({"scenario": r.scenarios[*si].id, "peer": r.peers[*pi], "cell": c}))
        .collect();
    write_json(&json_path, &raw)?;
    Ok(Written {
        markdown: md_path,
        svg: svg_path,
        json: json_path,
        cpu_us,
        status,
        ratios,
        ab,
    })
}
