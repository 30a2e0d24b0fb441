//! The services report: every round and the median per service, the checks
//! and their verdict, as Markdown, and the raw rounds as JSON, named and
//! written the way the proxy bench's report is ([`crate::report`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{LOG_TARGET_ENTRIES_PER_SEC, ServicesArgs};
use crate::error::Result;
use crate::install;
use crate::pin::Pinning;
use crate::results::{ServiceResult, ServiceRound};

/// Everything one services run produced.
pub struct Run<'a> {
    pub started: time::OffsetDateTime,
    pub a: &'a ServicesArgs,
    pub rounds: usize,
    pub duration: Duration,
    pub keys: usize,
    pub pin: &'a Pinning,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub notes: &'a [String],
    pub results: &'a [ServiceResult],
    pub args: String,
}

/// The raw JSON beside the Markdown.
#[derive(Debug, Serialize)]
struct Raw<'a> {
    started_utc: String,
    loadavg_before: [f64; 3],
    loadavg_after: [f64; 3],
    pinning: String,
    args: &'a str,
    results: &'a [ServiceResult],
}

/// Writes `YYYY-MM-DD-HHMM-services[-quick].{md,json}` into `out_dir`;
/// returns the Markdown's path.
pub fn write(r: &Run<'_>, out_dir: &Path) -> Result<PathBuf> {
    let stem = crate::report::file_stem(
        &r.started,
        if r.a.quick {
            "-services-quick"
        } else {
            "-services"
        },
    );
    let md_path = out_dir.join(format!("{stem}.md"));
    crate::report::write_file(&md_path, &markdown(r))?;
    let raw = Raw {
        started_utc: format!("{}", r.started),
        loadavg_before: r.load_before,
        loadavg_after: r.load_after,
        pinning: r.pin.describe(),
        args: &r.args,
        results: r.results,
    };
    crate::report::write_json(&out_dir.join(format!("{stem}.json")), &raw)?;
    Ok(md_path)
}

fn markdown(r: &Run<'_>) -> String {
    let mut s = String::new();
    let la = |l: [f64; 3]| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]);
    let _ = writeln!(
        s,
        "# Services benchmark: sluice-cache GET hits, sluice-log POST batches\n"
    );
    let (cpu, cores, kernel) = install::machine();
    let _ = writeln!(
        s,
        "- **Started**: {} UTC\n- **Command**: `sluice-bench {}`\n- **Machine**: {cpu}, {cores} cores, kernel {kernel}\n- **Pinning**: {}\n- **Load average** (1/5/15 min): before {}, after {}\n- **Rounds**: {} × {} s per service after a 1 s warm-up, wrk -t1 -c{}",
        r.started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        r.args,
        r.pin.describe(),
        la(r.load_before),
        la(r.load_after),
        r.rounds,
        r.duration.as_secs(),
        r.a.connections,
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
            rounds_table(
                &mut s,
                res,
                "errors (incl. non-2xx)",
                &[
                    Col("entries/s", 0, true, |x| x.units_per_sec),
                    Col("req/s", 0, false, |x| x.load.rps),
                    Col("CPU µs/entry", 2, true, |x| x.cpu_us_per_unit),
                    Col("CPU µs/req", 1, false, |x| x.cpu_us_per_request),
                    Col("fsyncs/s", 0, false, |x| x.fsyncs_per_sec),
                    Col("entries/fsync", 1, false, |x| x.entries_per_fsync),
                    Col("p50 µs", 0, false, |x| x.load.p50_us),
                    Col("p99 µs", 0, false, |x| x.load.p99_us),
                ],
            );
            if !res.rounds.is_empty() {
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
            rounds_table(
                &mut s,
                res,
                "errors",
                &[
                    Col("rps", 0, true, |x| x.units_per_sec),
                    Col("CPU µs/req", 2, true, |x| x.cpu_us_per_unit),
                    Col("p50 µs", 0, false, |x| x.load.p50_us),
                    Col("p99 µs", 0, false, |x| x.load.p99_us),
                ],
            );
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

/// One numeric column of a rounds table: heading, decimals, whether its
/// median is the headline (bold), and the value of a round.
struct Col(&'static str, usize, bool, fn(&ServiceRound) -> f64);

/// One row per round, then the medians: the columns given, then errors and
/// how busy each core was.
fn rounds_table(s: &mut String, res: &ServiceResult, errors: &str, cols: &[Col]) {
    let heads: String = cols.iter().map(|c| format!(" {} |", c.0)).collect();
    let _ = writeln!(
        s,
        "| round |{heads} {errors} | service core | load core |\n|---|{}---:|---:|---:|",
        "---:|".repeat(cols.len())
    );
    for (i, x) in res.rounds.iter().enumerate() {
        let vals: String = cols
            .iter()
            .map(|c| format!(" {:.*} |", c.1, (c.3)(x)))
            .collect();
        let _ = writeln!(
            s,
            "| {} |{vals} {} | {:.0}% | {:.0}% |",
            i + 1,
            x.load.errors,
            x.service_core_busy * 100.0,
            x.load_core_busy * 100.0
        );
    }
    if res.rounds.is_empty() {
        return;
    }
    let medians: String = cols
        .iter()
        .map(|c| {
            let v = format!("{:.*}", c.1, res.median(c.3));
            if c.2 {
                format!(" **{v}** |")
            } else {
                format!(" {v} |")
            }
        })
        .collect();
    let _ = writeln!(
        s,
        "| **median** |{medians} {} | | |",
        res.rounds.iter().map(|x| x.load.errors).sum::<u64>()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadResult;

    #[test]
    fn a_rounds_table_has_every_round_and_the_medians() {
        let round = |rps: f64, cpu: f64| ServiceRound {
            load: LoadResult {
                p50_us: 100.0,
                p99_us: 300.0,
                errors: 1,
                ..LoadResult::default()
            },
            units_per_sec: rps,
            cpu_us_per_unit: cpu,
            service_core_busy: 0.5,
            load_core_busy: 1.0,
            ..ServiceRound::default()
        };
        let res = ServiceResult {
            rounds: vec![round(1000.0, 2.0), round(3000.0, 4.0)],
            ..ServiceResult::default()
        };
        let mut s = String::new();
        rounds_table(
            &mut s,
            &res,
            "errors",
            &[
                Col("rps", 0, true, |x| x.units_per_sec),
                Col("CPU µs/req", 2, true, |x| x.cpu_us_per_unit),
                Col("p99 µs", 0, false, |x| x.load.p99_us),
            ],
        );
        assert_eq!(
            s,
            "| round | rps | CPU µs/req | p99 µs | errors | service core | load core |\n\
             |---|---:|---:|---:|---:|---:|---:|\n\
             | 1 | 1000 | 2.00 | 300 | 1 | 50% | 100% |\n\
             | 2 | 3000 | 4.00 | 300 | 1 | 50% | 100% |\n\
             | **median** | **2000** | **3.00** | 300 | 2 | | |\n"
        );
    }
}
