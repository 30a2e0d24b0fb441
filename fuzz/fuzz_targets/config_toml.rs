//! Fuzz target `config_toml`: what it feeds and asserts, and what it defends
//! against, is `sluice_fuzz_checks::config_toml` (`fuzz/checks/src/config_toml.rs`), which
//! `cargo test` also runs on the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::config_toml::check(data));
