//! Ratios with their spread over rounds. Every round runs each peer once,
//! back to back, so a ratio is taken per round (the two peers saw the same
//! host at nearly the same time) and reported as the median of those, with
//! the lowest and highest round beside it. Two full runs an hour apart have
//! moved a ratio by 0.24 on a shared host: a verdict is only given when
//! every round agrees, otherwise it is "within noise".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Report, Summary, num};
use crate::results::{Cell, Round, Status};
use crate::scenario::Kind;
use crate::stats::{Spread, Verdict, ratio, spread, verdict};

/// Sluice's target against a peer: at most this share of its CPU per request.
pub const RATIO_TARGET: f64 = 0.8;
/// An A/B's target: B costs what A costs.
pub const AB_TARGET: f64 = 1.0;
/// The name of the second Sluice build in an A/B run (`--sluice-bin-b`).
pub const AB_PEER: &str = "sluice-b";

/// `num ÷ den` of `value` round by round (rounds paired by index), when
/// both cells ran cleanly.
pub fn per_round(num: &Cell, den: &Cell, value: impl Fn(&Round) -> f64) -> Option<Spread> {
    if !matches!(num.status, Status::Ok) || !matches!(den.status, Status::Ok) {
        return None;
    }
    let v: Vec<f64> = num
        .rounds
        .iter()
        .filter_map(|a| {
            let b = den.rounds.iter().find(|b| b.round == a.round)?;
            Some(ratio(value(a), value(b)))
        })
        .collect();
    spread(&v)
}

/// Index of `name` among the peers.
fn peer(r: &Report, name: &str) -> Option<usize> {
    r.peers.iter().position(|p| p == name)
}

/// The peers Sluice is compared with: not itself, its B build, or the
/// origin alone.
pub fn others(r: &Report) -> Vec<usize> {
    (0..r.peers.len())
        .filter(|&i| !matches!(r.peers[i].as_str(), "sluice" | "direct" | AB_PEER))
        .collect()
}

fn load_scenarios(r: &Report) -> impl Iterator<Item = usize> + '_ {
    (0..r.scenarios.len()).filter(|&si| matches!(r.scenarios[si].kind, Kind::Load { .. }))
}

/// Sluice ÷ every other peer, per load scenario, keyed by (scenario, peer).
pub fn against_peers(
    r: &Report,
    value: impl Fn(&Round) -> f64 + Copy,
) -> BTreeMap<(usize, usize), Spread> {
    let Some(sp) = peer(r, "sluice") else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for si in load_scenarios(r) {
        for pi in others(r) {
            if let Some(s) = per_round(&r.cells[&(si, sp)], &r.cells[&(si, pi)], value) {
                out.insert((si, pi), s);
            }
        }
    }
    out
}

/// B ÷ A (`sluice-b` ÷ `sluice`) per load scenario, in an A/B run.
pub fn ab(r: &Report, value: impl Fn(&Round) -> f64 + Copy) -> BTreeMap<usize, Spread> {
    let (Some(a), Some(b)) = (peer(r, "sluice"), peer(r, AB_PEER)) else {
        return BTreeMap::new();
    };
    load_scenarios(r)
        .filter_map(|si| {
            Some((
                si,
                per_round(&r.cells[&(si, b)], &r.cells[&(si, a)], value)?,
            ))
        })
        .collect()
}

/// `0.52 (0.45–0.60)`: the median of the per-round ratios and their range;
/// the range is left out for a single round.
pub fn text(s: &Spread) -> String {
    if s.rounds > 1 {
        format!("{} ({}–{})", num(s.median, 2), num(s.min, 2), num(s.max, 2))
    } else {
        num(s.median, 2)
    }
}

fn verdict_text(s: &Spread, target: f64, below: &str, above: &str) -> String {
    let v = match verdict(s, target) {
        Verdict::Below => below,
        Verdict::Above => above,
        Verdict::WithinNoise => "**within noise**",
    };
    if s.rounds > 1 {
        v.to_string()
    } else {
        format!("{v} (1 round: no spread)")
    }
}

/// The verdict table: Sluice ÷ each peer in CPU µs/request against
/// [`RATIO_TARGET`].
pub fn verdicts(o: &mut String, r: &Report) {
    let ratios = against_peers(r, |x| x.cpu_us_per_req);
    if ratios.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## Sluice ÷ each peer against the {RATIO_TARGET:.2} target, with the spread over rounds\n"
    );
    let _ = writeln!(
        o,
        "CPU µs per request. Each round runs every peer back to back, so the ratio is taken per round; the table gives their median and the lowest and highest round. **met**: every round at or below {RATIO_TARGET:.2}; **not met**: every round above; **within noise**: the rounds fall on both sides, and this run cannot tell.\n"
    );
    let _ = writeln!(
        o,
        "| scenario | peer | ratio (median) | lowest round | highest round | rounds | verdict |\n|---|---|---:|---:|---:|---:|---|"
    );
    for ((si, pi), s) in &ratios {
        let caveat = r.cells[&(*si, *pi)].caveat.is_some();
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {} | {} | {} | {} |",
            r.scenarios[*si].id,
            r.peers[*pi],
            if caveat { "†" } else { "" },
            num(s.median, 2),
            num(s.min, 2),
            num(s.max, 2),
            s.rounds,
            verdict_text(s, RATIO_TARGET, "met", "not met")
        );
    }
    o.push('\n');
}

/// The A/B section: two Sluice builds in the same sitting, B ÷ A per
/// round, CPU and user time, against [`AB_TARGET`].
pub fn ab_section(o: &mut String, r: &Report, sums: &BTreeMap<(usize, usize), Summary>) {
    let (Some(a), Some(b)) = (peer(r, "sluice"), peer(r, AB_PEER)) else {
        return;
    };
    let cpu = ab(r, |x| x.cpu_us_per_req);
    let user = ab(r, |x| x.user_us_per_req);
    let _ = writeln!(o, "## A/B: {AB_PEER} ÷ sluice, same sitting\n");
    let _ = writeln!(
        o,
        "A is `sluice`, B is `{AB_PEER}` (their binaries and extra configs are under Versions, their configurations under Generated configurations). The two run back to back in every round, A B in one round and B A in the next, so neither always goes first. The ratio is B ÷ A per round: below 1.00 B spends less. **B cheaper**: every round below 1.00; **B costlier**: every round above; **within noise**: the rounds fall on both sides.\n"
    );
    let _ = writeln!(
        o,
        "| scenario | A CPU µs/req | B CPU µs/req | B ÷ A CPU (lowest–highest) | verdict | B ÷ A user (lowest–highest) | verdict (user) |\n|---|---:|---:|---:|---|---:|---|"
    );
    for si in load_scenarios(r) {
        let (Some(c), Some(u)) = (cpu.get(&si), user.get(&si)) else {
            let why = [a, b]
                .iter()
                .map(|&pi| super::status_text(&r.cells[&(si, pi)].status))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(o, "| {} | | | – | {why} | – | |", r.scenarios[si].id);
            continue;
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenarios[si].id,
            num(sums[&(si, a)].cpu_us, 1),
            num(sums[&(si, b)].cpu_us, 1),
            text(c),
            verdict_text(c, AB_TARGET, "B cheaper", "B costlier"),
            text(u),
            verdict_text(u, AB_TARGET, "B cheaper", "B costlier"),
        );
    }
    o.push('\n');
}
