//! The report's tests: synthetic rounds in, Markdown tables out.

use super::markdown::markdown;
use super::*;
use crate::load::{Generator, LoadResult};
use crate::scenario::{Kind, Scenario};

/// A round of synthetic numbers: CPU, user and system µs per request.
fn round(cpu: f64, user: f64, sys: f64) -> Round {
    Round {
        round: 0,
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

/// Cells of scenario 0, one per peer, from (CPU, user, sys) per round.
fn cells(peers: &[&[(f64, f64, f64)]]) -> BTreeMap<(usize, usize), Cell> {
    peers
        .iter()
        .enumerate()
        .map(|(pi, rs)| {
            let rs = rs
                .iter()
                .enumerate()
                .map(|(i, &(c, u, s))| Round {
                    round: i,
                    ..round(c, u, s)
                })
                .collect();
            ((0, pi), cell(rs))
        })
        .collect()
}

fn report(peers: &[&str], cells: BTreeMap<(usize, usize), Cell>) -> Report {
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
                coding: crate::scenario::Coding::Gzip,
            },
        }],
        peers: peers.iter().map(|p| p.to_string()).collect(),
        cells,
        configs: BTreeMap::new(),
        loadavg: ([0.5, 0.25, 0.125], [1.0, 0.5, 0.25]),
    }
}

#[test]
fn user_and_sys_columns_and_the_user_space_table() {
    // (CPU, user, sys) per round, for sluice then nginx. Medians:
    // sluice 11.0 = 4.5 user + 6.5 sys, nginx 21.0 = 12.5 + 8.5.
    let cells = cells(&[
        &[(10.0, 4.0, 6.0), (12.0, 5.0, 7.0), (11.0, 4.5, 6.5)],
        &[(22.0, 13.0, 9.0), (20.0, 12.0, 8.0), (21.0, 12.5, 8.5)],
    ]);
    let r = report(&["sluice", "nginx"], cells);
    let sums: BTreeMap<_, _> = r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
    let md = markdown(&r, &sums, "test");

    let headline = md.find("## CPU µs per request (median)").expect(&md);
    let user = md.find("## User-space µs per request (median)").expect(&md);
    let scenarios = md.find("## Scenarios").expect(&md);
    assert!(headline < user && user < scenarios, "{md}");

    // The headline: CPU medians, and the median of the per-round ratios
    // 10/22, 12/20, 11/21 with the lowest and highest round.
    let table = "| scenario | sluice | nginx | sluice ÷ nginx |\n|---|---:|---:|---:|\n";
    assert!(
        md[headline..user].contains(&format!(
            "{table}| h1-1k | 11.0 | 21.0 | 0.52 (0.45–0.60) |\n"
        )),
        "{md}"
    );
    // Every round at or below 0.80: met.
    assert!(
        md[headline..user].contains("| h1-1k | nginx | 0.52 | 0.45 | 0.60 | 3 | met |\n"),
        "{md}"
    );
    // The user-space table: same peers, user medians, 4.5 / 12.5, and the
    // per-round ratios 4/13, 5/12, 4.5/12.5.
    assert!(
        md[user..scenarios].contains(&format!(
            "{table}| h1-1k | 4.5 | 12.5 | 0.36 (0.31–0.42) |\n"
        )),
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
    let why = "oha failed: exit status: 2: error: unexpected argument '-j' found\n\n  tip: a | b\n";
    assert_eq!(
        status_text(&Status::Failed(why.into())),
        "**FAILED**: oha failed: exit status: 2: error: unexpected argument '-j' found tip: a \\| b"
    );
}

#[test]
fn a_spread_across_the_target_is_within_noise() {
    // Per-round ratios 0.8, 0.9, 0.7: the median meets 0.80, one round
    // does not.
    let r = report(
        &["sluice", "haproxy"],
        cells(&[
            &[(8.0, 3.0, 5.0), (9.0, 3.0, 6.0), (7.0, 3.0, 4.0)],
            &[(10.0, 4.0, 6.0), (10.0, 4.0, 6.0), (10.0, 4.0, 6.0)],
        ]),
    );
    let sums: BTreeMap<_, _> = r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
    let md = markdown(&r, &sums, "test");
    assert!(
        md.contains("| h1-1k | haproxy | 0.80 | 0.70 | 0.90 | 3 | **within noise** |\n"),
        "{md}"
    );
    assert!(
        md.contains("| h1-1k | 8.0 | 10.0 | 0.80 (0.70–0.90) |"),
        "{md}"
    );
    assert!(!md.contains("## A/B"), "no A/B section without a B: {md}");
}

#[test]
fn the_ab_section_gives_b_over_a_per_round() {
    // A then B; B ÷ A per round: 10.5/10, 9.5/10, 10/10 (CPU) and
    // 4.2/4, 3.8/4, 4/4 (user).
    let r = report(
        &["sluice", AB_PEER],
        cells(&[
            &[(10.0, 4.0, 6.0), (10.0, 4.0, 6.0), (10.0, 4.0, 6.0)],
            &[(10.5, 4.2, 6.3), (9.5, 3.8, 5.7), (10.0, 4.0, 6.0)],
        ]),
    );
    let sums: BTreeMap<_, _> = r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
    let md = markdown(&r, &sums, "test");
    let ab = md.find("## A/B: sluice-b ÷ sluice").expect(&md);
    assert!(
        md[ab..].contains(
            "| h1-1k | 10.0 | 10.0 | 1.00 (0.95–1.05) | **within noise** | 1.00 (0.95–1.05) | **within noise** |\n"
        ),
        "{md}"
    );
    // B is not a peer Sluice is compared with.
    assert!(!md.contains("sluice ÷ sluice-b"), "{md}");
    let spreads = ratios::ab(&r, |x| x.cpu_us_per_req);
    assert_eq!(spreads[&0].rounds, 3);
}

#[test]
fn one_round_has_no_spread() {
    let r = report(
        &["sluice", AB_PEER],
        cells(&[&[(10.0, 4.0, 6.0)], &[(12.0, 4.8, 7.2)]]),
    );
    let sums: BTreeMap<_, _> = r.cells.iter().map(|(k, c)| (*k, summarize(c))).collect();
    let md = markdown(&r, &sums, "test");
    assert!(
        md.contains("| h1-1k | 10.0 | 12.0 | 1.20 | B costlier (1 round: no spread) |"),
        "{md}"
    );
}
