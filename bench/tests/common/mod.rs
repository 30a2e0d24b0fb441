//! What the harness's integration tests share: the Sluice binary they run.

use std::path::PathBuf;

use sluice_bench::install::{self, Profile};

/// An existing `sluice` binary (any profile: this checks that the pieces
/// fit, not speed), else a debug one built into a target dir of our own (so
/// the nested cargo does not wait on the lock of the one running us).
/// `None` (the test is then skipped, and says so) when neither works.
pub fn sluice_bin() -> Option<PathBuf> {
    let bin = find_or_build();
    if bin.is_none() {
        eprintln!("SKIPPED: the sluice binary could not be found or built");
    }
    bin
}

fn find_or_build() -> Option<PathBuf> {
    let target = install::target_dir();
    // The newer of the two: a release binary left from an earlier bench
    // run may predate the config keys the fragments use.
    ["release/sluice", "debug/sluice"]
        .iter()
        .map(|p| target.join(p))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
        .or_else(|| {
            install::cargo_build(
                "sluice",
                "sluice",
                &target.join("sluice-bench-test"),
                Profile::Debug,
            )
            .ok()
            .map(|(bin, _)| bin)
        })
}
