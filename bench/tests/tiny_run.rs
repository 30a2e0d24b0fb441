//! The harness end to end on a tiny run with Sluice alone: the built-in
//! generator (no wrk), no peers, no apt-get, one short round. It checks
//! that the pieces fit, not how fast anything is.

use std::path::PathBuf;
use std::time::Duration;

use sluice_bench::install;
use sluice_bench::load::Generator;
use sluice_bench::runner::{Options, Status, run};

/// An existing `sluice` binary, else one built into a target dir of our own
/// (so the nested cargo does not wait on the lock of the one running us).
fn sluice_bin() -> Option<PathBuf> {
    install::find_sluice(None).or_else(|| {
        install::build_sluice(
            &install::workspace_root()
                .join("target")
                .join("sluice-bench-test"),
            false,
        )
    })
}

#[test]
fn tiny_run_with_sluice_alone() {
    let Some(bin) = sluice_bin() else {
        eprintln!("SKIPPED: the sluice binary could not be found or built");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        args: vec!["--peers".into(), "sluice".into()],
        quick: true,
        peers: vec!["sluice".into()],
        direct: true,
        sluice_bin: Some(bin),
        origin_bin: PathBuf::from(env!("CARGO_BIN_EXE_bench-origin")),
        rounds: Some(1),
        duration: Some(Duration::from_secs(1)),
        scenarios: Some(vec![
            "h1-1k".into(),
            "h1-close".into(),
            "gzip-1".into(),
            "idle".into(),
        ]),
        install: false,
        builtin: true,
        close_generator: Generator::Wrk,
        idle_connections: Some(20),
        pin: false,
        out_dir: out.path().to_path_buf(),
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
