//! What the drills' tests share: the stack's binaries, built into this
//! test's target directory (as the e2e harness builds `sluice`).

use std::path::PathBuf;
use std::process::Command;

/// `<target>/debug`, from this test binary's `<target>/debug/deps/…`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("<target>/<profile>/deps")
        .to_owned()
}

/// Builds the stack's binaries with the cargo running this test, without
/// the variables cargo set for the test (they would make build scripts
/// rerun and rebuild the engine).
pub fn build_binaries() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root);
    for (key, _) in std::env::vars_os() {
        let set_for_tests = key.to_str().is_some_and(|k| {
            [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&k)
        });
        if set_for_tests {
            cmd.env_remove(key);
        }
    }
    let target = profile_dir().parent().expect("<target>").to_owned();
    let status = cmd
        .args([
            "build",
            "-p",
            "sluice",
            "-p",
            "sluice-app",
            "-p",
            "sluice-cache",
            "-p",
            "sluice-log",
            "-p",
            "sluice-demo",
        ])
        .arg("--target-dir")
        .arg(target)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the stack's binaries failed");
}
