//! The Markdown report and its SVG chart: medians across rounds, Sluice's
//! ratio to each peer, the generator-bound check, and everything needed to
//! reproduce the run (machine, versions, exact configs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::load::Generator;
use crate::runner::{Cell, Status};
use crate::scenario::{Kind, Scenario, Timing};
use crate::stats::{median, ratio, tie};

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
fn per_round(cell: &Cell, f: impl Fn(&crate::runner::Round) -> f64) -> f64 {
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
    r.scenarios.iter().enumerate().find_map(|(sj, s)| {
        let lower = s.gzip_level().filter(|&l| l < level)?;
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

pub fn write(r: &Report, out_dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(out_dir).ctx(|| format!("creating {}", out_dir.display()))?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]-[hour][minute]");
    let stamp = r.started.format(&fmt).unwrap_or_else(|_| "run".into());
    let stem = format!("{stamp}{}", if r.quick { "-quick" } else { "" });
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

    let md = markdown(r, &sums, &stem);
    std::fs::write(&md_path, md).ctx(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&svg_path, svg(r, &sums)).ctx(|| format!("writing {}", svg_path.display()))?;
    let raw: Vec<_> = r
        .cells
        .iter()
        .map(|((si, pi), c)| serde_json::json!({"scenario": r.scenarios[*si].id, "peer": r.peers[*pi], "cell": c}))
        .collect();
    let json = serde_json::to_string_pretty(&raw).unwrap_or_default();
    std::fs::write(&json_path, json).ctx(|| format!("writing {}", json_path.display()))?;
    Ok(Written {
        markdown: md_path,
        svg: svg_path,
        json: json_path,
        cpu_us,
        status,
    })
}

fn markdown(r: &Report, sums: &BTreeMap<(usize, usize), Summary>, stem: &str) -> String {
    let mut o = String::new();
    let (cpu, cores, kernel) = &r.machine;
    let _ = writeln!(o, "# Sluice benchmark {stem}\n");
    let _ = writeln!(
        o,
        "Generated by `cargo run --release -p sluice-bench --{}`. Headline figure: **CPU µs per request** of the proxy's process tree (utime+stime from `/proc/PID/stat`, delta over the run ÷ completed requests); lower is better.\n",
        r.args.iter().fold(String::new(), |mut a, arg| {
            a.push(' ');
            a.push_str(arg);
            a
        })
    );
    let _ = writeln!(o, "## Machine\n");
    let _ = writeln!(
        o,
        "- CPU: {cpu}, {cores} cores\n- Kernel: {kernel}\n- Pinning: {}",
        r.pinning
    );
    let _ = writeln!(
        o,
        "- Rounds: {} (peers in turn, A B C A B C …; medians reported), {} s per measurement, {} s warm-up\n",
        r.timing.rounds,
        r.timing.duration.as_secs(),
        r.timing.warmup.as_secs()
    );
    let _ = writeln!(o, "## Versions\n");
    for (name, v) in &r.versions {
        let _ = writeln!(o, "- {name}: `{v}`");
    }
    for (name, why) in &r.skipped_peers {
        let _ = writeln!(o, "- {name}: skipped ({why})");
    }
    o.push('\n');
    if !r.notes.is_empty() || !r.install_log.is_empty() {
        let _ = writeln!(o, "## Notes\n");
        for n in &r.install_log {
            let _ = writeln!(o, "- installed: `{n}`");
        }
        for n in &r.notes {
            let _ = writeln!(o, "- {n}");
        }
        o.push('\n');
    }

    // Headline: CPU µs/request and ratios.
    let _ = writeln!(
        o,
        "## CPU µs per request (median)\n\n![CPU µs per request]({stem}.svg)\n"
    );
    peer_table(&mut o, r, sums, |m| m.cpu_us);
    let _ = writeln!(
        o,
        "\nA ratio below 1.00 means Sluice spends less CPU per request than that peer (target: ≤ 0.80 against the best peer). The `direct` column is the origin's own cost with no proxy.{}\n",
        if r.cells.values().any(|c| c.caveat.is_some()) {
            " † marks a run whose configuration could not be made equivalent to the others' (the scenario's notes say why): compare it with care."
        } else {
            ""
        }
    );

    // The user-space part alone: the proxies' own code, without the
    // kernel's share that the same syscalls cost every one of them.
    let _ = writeln!(o, "## User-space µs per request (median)\n");
    let _ = writeln!(
        o,
        "utime alone (the proxy's own code; the kernel's share, stime, is the `sys µs/req` column of each scenario below), same peers and ratios as above.\n"
    );
    peer_table(&mut o, r, sums, |m| m.user_us);
    o.push('\n');

    // Per-scenario detail.
    let _ = writeln!(o, "## Scenarios\n");
    for (si, s) in r.scenarios.iter().enumerate() {
        let _ = writeln!(o, "### {} — {}\n", s.id, s.title);
        match &s.kind {
            Kind::Load {
                generator,
                path,
                connections,
                close,
                h2_streams,
                gzip_level,
            } => {
                let _ = writeln!(
                    o,
                    "Generator: {} · path `{path}` · {connections} connections{}{}{}\n",
                    generator.name(),
                    match (*close, generator) {
                        (false, _) => "",
                        (true, Generator::Oha) =>
                            " · new connection per request (`--disable-keepalive`)",
                        (true, _) => " · `Connection: close`",
                    },
                    h2_streams.map_or(String::new(), |m| format!(
                        " · {m} streams/conn (h2 over TLS)"
                    )),
                    gzip_level.map_or(String::new(), |l| format!(
                        " · gzip level {l}, `Accept-Encoding: gzip`"
                    )),
                );
                let gz = gzip_level.is_some();
                let _ = writeln!(
                    o,
                    "| peer | rps | p50 µs | p99 µs | p99.9 µs | CPU µs/req | user µs/req | sys µs/req | peak RSS MiB | errors |{} notes |",
                    if gz { " gzip bytes (ratio) |" } else { "" }
                );
                let _ = writeln!(
                    o,
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}---|",
                    if gz { "---:|" } else { "" }
                );
                for (pi, p) in r.peers.iter().enumerate() {
                    let cell = &r.cells[&(si, pi)];
                    if matches!(cell.status, Status::Skipped(_)) && p == "direct" {
                        continue;
                    }
                    let m = sums[&(si, pi)];
                    let mut notes = vec![status_text(&cell.status)];
                    if m.generator_bound && p != "direct" {
                        notes.push("generator-bound".into());
                    }
                    if let Some(why) = &cell.caveat {
                        notes.push(format!("† {why}"));
                    }
                    if let Some(lower) = same_size_at_lower_level(r, si, pi) {
                        notes.push(format!(
                            "same output size as at gzip level {lower}: the level had no effect"
                        ));
                    }
                    notes.retain(|n| !n.is_empty());
                    let notes = notes.join("; ");
                    let gz_col = if gz {
                        cell.gzip_bytes.map_or(" – |".to_string(), |b| {
                            format!(" {b} ({:.1}:1) |", 65536.0 / b.max(1) as f64)
                        })
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        o,
                        "| {p} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{gz_col} {} |",
                        num(m.rps, 0),
                        num(m.p50, 0),
                        num(m.p99, 0),
                        num(m.p999, 0),
                        num(m.cpu_us, 1),
                        num(m.user_us, 1),
                        num(m.sys_us, 1),
                        num(m.peak_rss / 1048576.0, 1),
                        m.errors,
                        notes.trim()
                    );
                }
                // Ties at the generator's ceiling.
                let bound: Vec<usize> = (0..r.peers.len())
                    .filter(|&pi| r.peers[pi] != "direct" && sums[&(si, pi)].generator_bound)
                    .collect();
                for (a, &i) in bound.iter().enumerate() {
                    for &j in &bound[a + 1..] {
                        if tie(sums[&(si, i)].rps, sums[&(si, j)].rps, 0.05) {
                            let _ = writeln!(
                                o,
                                "\n{} and {} tie at the load generator's ceiling (rps within 5%, generator core saturated): their rps says nothing about which is faster; compare CPU µs/req.",
                                r.peers[i], r.peers[j]
                            );
                        }
                    }
                }
            }
            Kind::Idle { connections } => {
                let _ = writeln!(
                    o,
                    "{connections} idle keep-alive connections opened by the harness (one request each, then held); RSS growth of the proxy's process tree ÷ connections.\n"
                );
                let _ = writeln!(
                    o,
                    "| peer | KiB per idle connection | peak RSS MiB | failed connections | notes |"
                );
                let _ = writeln!(o, "|---|---:|---:|---:|---|");
                for (pi, p) in r.peers.iter().enumerate() {
                    let cell = &r.cells[&(si, pi)];
                    if p == "direct" {
                        continue;
                    }
                    let m = sums[&(si, pi)];
                    let _ = writeln!(
                        o,
                        "| {p} | {} | {} | {} | {} |",
                        num(m.idle_bytes / 1024.0, 2),
                        num(m.peak_rss / 1048576.0, 1),
                        m.errors,
                        status_text(&cell.status)
                    );
                }
            }
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## Generated configurations\n");
    let _ = writeln!(
        o,
        "Exactly as written for round 1 (ports and temp paths change per measurement).\n"
    );
    for ((peer, variant), text) in &r.configs {
        let _ = writeln!(
            o,
            "### {peer} ({variant})\n\n```\n{}\n```\n",
            text.trim_end()
        );
    }
    o
}

/// One row per load scenario, one column per peer with `value` of its
/// median summary, then Sluice's ratio to every other proxy (`direct` is
/// the origin's own cost, not a peer).
fn peer_table(
    o: &mut String,
    r: &Report,
    sums: &BTreeMap<(usize, usize), Summary>,
    value: impl Fn(&Summary) -> f64,
) {
    let sluice = r.peers.iter().position(|p| p == "sluice");
    let others: Vec<usize> = (0..r.peers.len())
        .filter(|&i| Some(i) != sluice && r.peers[i] != "direct")
        .collect();
    let mut header = String::from("| scenario |");
    let mut sep = String::from("|---|");
    for p in &r.peers {
        let _ = write!(header, " {p} |");
        sep.push_str("---:|");
    }
    if sluice.is_some() {
        for &i in &others {
            let _ = write!(header, " sluice ÷ {} |", r.peers[i]);
            sep.push_str("---:|");
        }
    }
    let _ = writeln!(o, "{header}\n{sep}");
    for (si, s) in r.scenarios.iter().enumerate() {
        if matches!(s.kind, Kind::Idle { .. }) {
            continue;
        }
        let _ = write!(o, "| {} |", s.id);
        for pi in 0..r.peers.len() {
            let cell = &r.cells[&(si, pi)];
            let text = match cell.status {
                Status::Ok => format!("{}{}", num(value(&sums[&(si, pi)]), 1), dagger(cell)),
                Status::Failed(_) => format!("{} (failed)", num(value(&sums[&(si, pi)]), 1)),
                Status::Unsupported(_) => "unsupported".into(),
                Status::Skipped(_) => "–".into(),
            };
            let _ = write!(o, " {text} |");
        }
        if let Some(sp) = sluice {
            for &i in &others {
                let ok = matches!(r.cells[&(si, sp)].status, Status::Ok)
                    && matches!(r.cells[&(si, i)].status, Status::Ok);
                let v = if ok {
                    ratio(value(&sums[&(si, sp)]), value(&sums[&(si, i)]))
                } else {
                    f64::NAN
                };
                let caveat =
                    r.cells[&(si, sp)].caveat.is_some() || r.cells[&(si, i)].caveat.is_some();
                let mark = if v.is_finite() && caveat { "†" } else { "" };
                let _ = write!(o, " {}{mark} |", num(v, 2));
            }
        }
        o.push('\n');
    }
}

/// A grouped bar chart of CPU µs/request: one group per load scenario, one
/// bar per peer, log scale (gzip costs ~10× a plain request).
fn svg(r: &Report, sums: &BTreeMap<(usize, usize), Summary>) -> String {
    const COLORS: [&str; 6] = [
        "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#7f7f7f", "#ff7f0e",
    ];
    let load: Vec<usize> = (0..r.scenarios.len())
        .filter(|&si| matches!(r.scenarios[si].kind, Kind::Load { .. }))
        .collect();
    let np = r.peers.len().max(1);
    let (bar, gap, left, top, height) = (18.0, 24.0, 60.0, 40.0, 300.0);
    let group_w = bar * np as f64 + gap;
    let width = left + group_w * load.len().max(1) as f64 + 140.0;
    let total_h = top + height + 70.0;
    let values: Vec<f64> = load
        .iter()
        .flat_map(|&si| (0..r.peers.len()).map(move |pi| (si, pi)))
        .filter(|k| matches!(r.cells[k].status, Status::Ok | Status::Failed(_)))
        .map(|k| sums[&k].cpu_us)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(1.0f64, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let y = |v: f64| top + height - (v.log10() - lo) / (hi - lo) * height;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{total_h:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="14">CPU µs per request (median, log scale; lower is better)</text>"#
    );
    let mut e = lo as i32;
    while f64::from(e) <= hi {
        let v = 10f64.powi(e);
        let yy = y(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            width - 140.0,
            left - 6.0,
            yy + 4.0
        );
        e += 1;
    }
    for (gi, &si) in load.iter().enumerate() {
        let gx = left + gap / 2.0 + gi as f64 * group_w;
        for pi in 0..r.peers.len() {
            let k = (si, pi);
            let v = sums[&k].cpu_us;
            if !matches!(r.cells[&k].status, Status::Ok | Status::Failed(_))
                || !v.is_finite()
                || v <= 0.0
            {
                continue;
            }
            let x = gx + pi as f64 * bar;
            let yy = y(v);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {v:.1} µs</title></rect>"#,
                bar - 2.0,
                top + height - yy,
                COLORS[pi % COLORS.len()],
                r.scenarios[si].id,
                r.peers[pi]
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle">{v:.0}</text>"#,
                x + bar / 2.0 - 1.0,
                yy - 2.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + bar * np as f64 / 2.0,
            top + height + 16.0,
            r.scenarios[si].id
        );
    }
    for (pi, p) in r.peers.iter().enumerate() {
        let ly = top + 10.0 + pi as f64 * 18.0;
        let lx = width - 120.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="{:.0}" width="12" height="12" fill="{}"/><text x="{:.0}" y="{:.0}">{p}</text>"#,
            ly - 10.0,
            COLORS[pi % COLORS.len()],
            lx + 18.0,
            ly
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadResult;
    use crate::runner::Round;
    use crate::scenario::Scenario;

    /// A round of synthetic numbers: CPU, user and system µs per request.
    fn round(cpu: f64, user: f64, sys: f64) -> Round {
        Round {
            load: Some(LoadResult {
                requests: 100_000,
                duration_s: 5.0,
                rps: 20_000.0,
                p50_us: 100.0,
                p99_us: 200.0,
                p999_us: 300.0,
                errors: 0,
            }),
            cpu_us_per_req: cpu,
            user_us_per_req: user,
            sys_us_per_req: sys,
            peak_rss: 10 * 1048576,
            ..Round::default()
        }
    }

    fn cell(rounds: Vec<Round>) -> Cell {
        Cell {
            status: Status::Ok,
            rounds,
            gzip_bytes: None,
            caveat: None,
        }
    }

    fn report(cells: BTreeMap<(usize, usize), Cell>) -> Report {
        Report {
            started: time::OffsetDateTime::UNIX_EPOCH,
            quick: true,
            args: vec!["--quick".into()],
            machine: ("test cpu".into(), 2, "test kernel".into()),
            pinning: "none".into(),
            timing: Timing {
                rounds: 3,
                duration: std::time::Duration::from_secs(5),
                warmup: std::time::Duration::from_secs(1),
            },
            versions: Vec::new(),
            install_log: Vec::new(),
            notes: Vec::new(),
            skipped_peers: Vec::new(),
            scenarios: vec![Scenario {
                id: "h1-1k",
                title: "HTTP/1.1 keep-alive, 1 KiB body",
                kind: Kind::Load {
                    generator: Generator::Wrk,
                    path: "/1k",
                    connections: 64,
                    close: false,
                    h2_streams: None,
                    gzip_level: None,
                },
            }],
            peers: vec!["sluice".into(), "nginx".into()],
            cells,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn user_and_sys_columns_and_the_user_space_table() {
        // (CPU, user, sys) per round, for sluice then nginx. Medians:
        // sluice 11.0 = 4.5 user + 6.5 sys, nginx 21.0 = 12.5 + 8.5.
        let rounds = [
            [(10.0, 4.0, 6.0), (12.0, 5.0, 7.0), (11.0, 4.5, 6.5)],
            [(22.0, 13.0, 9.0), (20.0, 12.0, 8.0), (21.0, 12.5, 8.5)],
        ];
        let cells = rounds
            .iter()
            .enumerate()
            .map(|(pi, rs)| {
                let rs = rs.iter().map(|&(c, u, s)| round(c, u, s)).collect();
                ((0, pi), cell(rs))
            })
            .collect();
        let r = report(cells);
        let sums: BTreeMap<_, _> = r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
        let md = markdown(&r, &sums, "test");

        let headline = md.find("## CPU µs per request (median)").expect(&md);
        let user = md.find("## User-space µs per request (median)").expect(&md);
        let scenarios = md.find("## Scenarios").expect(&md);
        assert!(headline < user && user < scenarios, "{md}");

        // The headline is unchanged: CPU medians and 11 / 21.
        let table = "| scenario | sluice | nginx | sluice ÷ nginx |\n|---|---:|---:|---:|\n";
        assert!(
            md[headline..user].contains(&format!("{table}| h1-1k | 11.0 | 21.0 | 0.52 |\n")),
            "{md}"
        );
        // The user-space table: same peers, user medians, 4.5 / 12.5.
        assert!(
            md[user..scenarios].contains(&format!("{table}| h1-1k | 4.5 | 12.5 | 0.36 |\n")),
            "{md}"
        );
        // Scenario rows: CPU, then user and sys, then peak RSS.
        assert!(
            md.contains("| CPU µs/req | user µs/req | sys µs/req | peak RSS MiB |"),
            "{md}"
        );
        assert!(
            md.contains("| sluice | 20000 | 100 | 200 | 300 | 11.0 | 4.5 | 6.5 | 10.0 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx | 20000 | 100 | 200 | 300 | 21.0 | 12.5 | 8.5 | 10.0 | 0 |"),
            "{md}"
        );
    }

    #[test]
    fn a_multi_line_error_stays_in_its_cell() {
        let why =
            "oha failed: exit status: 2: error: unexpected argument '-j' found\n\n  tip: a | b\n";
        assert_eq!(
            status_text(&Status::Failed(why.into())),
            "**FAILED**: oha failed: exit status: 2: error: unexpected argument '-j' found tip: a \\| b"
        );
    }
}
