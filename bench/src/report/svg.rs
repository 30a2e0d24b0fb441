//! A grouped bar chart of CPU µs per request for the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Report, Summary};
use crate::results::Status;
use crate::scenario::Kind;

/// A grouped bar chart of CPU µs/request: one group per load scenario, one
/// bar per peer, log scale (gzip costs ~10× a plain request).
pub(super) fn svg(r: &Report, sums: &BTreeMap<(usize, usize), Summary>) -> String {
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
