//! Fuzz target `route_match`: what it feeds and asserts, and what it defends
//! against, is `sluice_fuzz_checks::route_match` (`fuzz/checks/src/route_match.rs`), which
//! `cargo test` also runs on the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::route_match::check(data));
