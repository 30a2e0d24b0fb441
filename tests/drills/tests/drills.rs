//! Every drill, with short phases, on the debug binaries of this target
//! directory (built here first, as the e2e harness builds `sluice`).

use std::path::PathBuf;
use std::process::Command;

/// `<target>/debug`, from this test binary's `<target>/debug/deps/…`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("<target>/<profile>/deps")
        .to_owned()
}

/// Builds the stack's binaries with the cargo running this test, without
/// the variables cargo set for the test (they would make build scripts
/// rerun and rebuild the engine).
fn build_binaries() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root);
    for (key, _) in std::env::vars_os() {
        let set_for_tests = key.to_str().is_some_and(|k| {
            ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_"]
                .iter()
                .any(|p| k.starts_with(p))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"].contains(&k)
        });
        if set_for_tests {
            cmd.env_remove(key);
        }
    }
    let target = profile_dir().parent().expect("<target>").to_owned();
    let status = cmd
        .args(["build", "-p", "sluice", "-p", "sluice-app", "-p", "sluice-cache", "-p", "sluice-log", "-p", "sluice-demo"])
        .arg("--target-dir")
        .arg(target)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the stack's binaries failed");
}

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
            reports_dir.path().join(format!("{}.json", r.drill)).is_file()
                && reports_dir.path().join(format!("{}.md", r.drill)).is_file()
        );
    }
    let failed: Vec<String> = reports.iter().filter(|r| r.failed()).map(|r| r.markdown()).collect();
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
