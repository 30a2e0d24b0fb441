//! The committed fuzz inputs on every `cargo test`: each target's seeds and
//! regressions go through the same `check` its libFuzzer binary calls.

use sluice_fuzz_checks::TARGETS;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `seed-*` under `corpus/<target>/` (the rest of that directory is what
/// local runs add, git-ignored) and every `*-regression` file.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = fuzz_dir();
    let mut out = Vec::new();
    for (dir, keep) in [
        (fuzz.join("corpus").join(target), "seed-"),
        (fuzz.join("regressions").join(target), ""),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = if keep.is_empty() {
                name.ends_with("-regression")
            } else {
                name.starts_with(keep)
            };
            if wanted {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_seed_and_regression_keeps_its_targets_invariants() {
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        let files = inputs(target);
        let seeds = files
            .iter()
            .filter(|p| p.starts_with(fuzz_dir().join("corpus")))
            .count();
        assert!(seeds >= 3, "{target}: only {seeds} seeds");
        for path in files {
            let data = std::fs::read(&path).expect("read input");
            // Each failure's message is printed by the panic hook.
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(format!("{target}: {}", path.display()));
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

#[test]
fn every_fuzz_binary_has_its_check_here() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| {
            let line = bin.lines().find(|l| l.trim_start().starts_with("name"))?;
            line.split('"').nth(1)
        })
        .collect();
    let mut ours: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    bins.sort_unstable();
    ours.sort_unstable();
    assert_eq!(bins, ours, "fuzz/Cargo.toml [[bin]]s and TARGETS differ");
}
