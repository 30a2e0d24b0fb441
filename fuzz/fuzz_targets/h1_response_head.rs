//! Fuzz target `h1_response_head`: what it feeds and asserts, and what it defends
//! against, is `sluice_fuzz_checks::h1_response_head` (`fuzz/checks/src/h1_response_head.rs`), which
//! `cargo test` also runs on the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::h1_response_head::check(data));
