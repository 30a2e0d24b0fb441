//! Every drill, with short phases, on the debug binaries of this target
//! directory (built here first, as the e2e harness builds `sluice`).

mod common;

use common::{build_binaries, profile_dir};

#[test]
fn every_drill_passes_with_short_phases() {
    build_binaries();
    let reports_dir = tempfile::tempdir().expect("temp dir");
    let settings = sluice_drills::Settings::short(profile_dir(), reports_dir.path().to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reports = runtime
        .block_on(sluice_drills::run(&settings, &[]))
        .expect("the drills run");
    assert_eq!(reports.len(), sluice_drills::ALL.len());
    for r in &reports {
        assert!(
            reports_dir
                .path()
                .join(format!("{}.json", r.drill))
                .is_file()
                && reports_dir.path().join(format!("{}.md", r.drill)).is_file()
        );
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.markdown())
        .collect();
    assert!(failed.is_empty(), "drills failed:\n{}", failed.join("\n"));
    for r in &reports {
        assert!(
            r.result == "passed" || r.result == "skipped: the binary has no --takeover",
            "{}: {}",
            r.drill,
            r.result
        );
    }
}
