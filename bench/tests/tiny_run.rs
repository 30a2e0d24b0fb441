//! The harness end to end on a tiny run with Sluice alone: the built-in
//! generator (no wrk), no peers, no apt-get, one short round. It checks
//! that the pieces fit, not how fast anything is.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::sluice_bin;
use sluice_bench::load::Generator;
use sluice_bench::results::Status;
use sluice_bench::runner::{Options, run};

/// A quick run of Sluice alone (`bin`) with the built-in generator, one
/// 1 s round, unpinned, writing into `out`; the tests change what they test.
fn options(bin: PathBuf, out: &std::path::Path) -> Options {
    Options {
        args: vec!["--peers".into(), "sluice".into()],
        quick: true,
        peers: vec!["sluice".into()],
        direct: true,
        sluice_bin: Some(bin),
        sluice_bin_b: None,
        sluice_extra_config: None,
        sluice_extra_config_b: None,
        origin_bin: PathBuf::from(env!("CARGO_BIN_EXE_bench-origin")),
        rounds: Some(1),
        duration: Some(Duration::from_secs(1)),
        scenarios: None,
        install: false,
        builtin: true,
        close_generator: Generator::Wrk,
        idle_connections: None,
        pin: false,
        out_dir: out.to_path_buf(),
    }
}

#[test]
fn tiny_run_with_sluice_alone() {
    let Some(bin) = sluice_bin() else { return };
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        scenarios: Some(vec![
            "h1-1k".into(),
            "h1-close".into(),
            "gzip-1".into(),
            "idle".into(),
        ]),
        idle_connections: Some(20),
        ..options(bin, out.path())
    };
    let written = run(&opts).expect("the run completes");
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let svg = std::fs::read_to_string(&written.svg).unwrap();
    assert!(
        md.contains("## Machine") && md.contains("### h1-1k"),
        "{md}"
    );
    assert!(
        md.contains("sluice --listen 127.0.0.1:"),
        "the exact command line is in the report"
    );
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    let status = |scenario: &str, peer: &str| {
        written.status[&(scenario.to_string(), peer.to_string())].clone()
    };
    assert_eq!(status("h1-1k", "sluice"), Status::Ok, "{md}");
    assert_eq!(status("h1-1k", "direct"), Status::Ok, "{md}");
    assert_eq!(status("h1-close", "sluice"), Status::Ok, "{md}");
    assert_eq!(status("idle", "sluice"), Status::Ok, "{md}");
    // gzip is probed, not assumed: either Sluice compresses or it is
    // reported as unsupported, never as a failure.
    assert!(
        matches!(
            status("gzip-1", "sluice"),
            Status::Ok | Status::Unsupported(_)
        ),
        "{md}"
    );
    assert!(written.cpu_us[&("h1-1k".to_string(), "sluice".to_string())].is_finite());
}

/// The A/B mode end to end: the same binary as A and B, two short rounds of
/// one scenario; the report has the B ÷ A section with a spread over both
/// rounds (its value says nothing here: no timing is asserted).
#[test]
fn ab_mode_reports_b_over_a_with_its_spread() {
    let Some(bin) = sluice_bin() else { return };
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        args: vec!["--sluice-bin-b".into(), bin.display().to_string()],
        direct: false,
        sluice_bin_b: Some(bin.clone()),
        rounds: Some(2),
        scenarios: Some(vec!["h1-1k".into()]),
        ..options(bin, out.path())
    };
    let written = run(&opts).expect("the run completes");
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let key = |peer: &str| ("h1-1k".to_string(), peer.to_string());
    assert_eq!(written.status[&key("sluice")], Status::Ok, "{md}");
    assert_eq!(written.status[&key("sluice-b")], Status::Ok, "{md}");
    assert_eq!(written.ab["h1-1k"].rounds, 2, "{md}");
    assert!(md.contains("## A/B: sluice-b ÷ sluice"), "{md}");
    assert!(md.contains("sluice-b --listen 127.0.0.1:"), "{md}");
}

/// One binary as A and B, B with an extra config (no --sluice-bin-b): both
/// sides run from a generated config file, B's with the rate limit merged
/// in, and neither meets a 429 (a refused request would mark it FAILED).
#[test]
fn an_extra_config_b_runs_the_same_binary_as_b() {
    let Some(bin) = sluice_bin() else { return };
    let out = tempfile::tempdir().unwrap();
    let fragment = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/rate-limit-on.toml");
    let opts = Options {
        direct: false,
        sluice_extra_config_b: Some(fragment.clone()),
        scenarios: Some(vec!["h1-1k".into()]),
        ..options(bin.clone(), out.path())
    };
    let written = run(&opts).expect("the run completes");
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let key = |peer: &str| ("h1-1k".to_string(), peer.to_string());
    assert_eq!(written.status[&key("sluice")], Status::Ok, "{md}");
    assert_eq!(written.status[&key("sluice-b")], Status::Ok, "{md}");
    assert!(md.contains("## A/B: sluice-b ÷ sluice"), "{md}");
    // Each side's generated file is printed: A's without the fragment, B's
    // with it, and B's version line names it.
    let config = |peer: &str| {
        let head = format!("### {peer} (plain scenarios)");
        let at = md.find(&head).unwrap_or_else(|| panic!("{head}: {md}"));
        let text = &md[at + head.len()..];
        text[..text.find("\n### ").unwrap_or(text.len())].to_string()
    };
    let (a, b) = (config("sluice"), config("sluice-b"));
    assert!(
        a.contains("sluice --config ") && a.contains("no extra config"),
        "{a}"
    );
    assert!(!a.contains("[[rate_limit]]"), "{a}");
    assert!(b.contains("sluice-b --config "), "{b}");
    assert!(
        b.contains(&format!("extra config {} merged in", fragment.display())),
        "{b}"
    );
    assert!(
        b.contains("[[rate_limit]]") && b.contains("key = \"client\""),
        "{b}"
    );
    assert!(
        md.contains(&format!(
            "{}, extra config {}",
            bin.display(),
            fragment.display()
        )),
        "{md}"
    );
}

/// A fragment Sluice refuses (an unknown key) fails the cell with Sluice's
/// reason, even in a gzip scenario (where a quick-flags run of an old
/// build that cannot start is "not supported yet").
#[test]
fn a_fragment_sluice_refuses_fails_the_cell() {
    let Some(bin) = sluice_bin() else { return };
    let out = tempfile::tempdir().unwrap();
    let fragment = out.path().join("bogus.toml");
    std::fs::write(&fragment, "[upstream.default]\nbogus_key = 1\n").unwrap();
    let opts = Options {
        direct: false,
        sluice_extra_config: Some(fragment),
        scenarios: Some(vec!["gzip-1".into()]),
        ..options(bin, out.path())
    };
    let written = run(&opts).expect("the run completes");
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let status = &written.status[&("gzip-1".to_string(), "sluice".to_string())];
    assert!(
        matches!(status, Status::Failed(why) if why.contains("bogus_key")),
        "{status:?}\n{md}"
    );
}
