//! Fuzz target `h1_chunked_body`: what it feeds and asserts, and what it defends
//! against, is `sluice_fuzz_checks::h1_chunked_body` (`fuzz/checks/src/h1_chunked_body.rs`), which
//! `cargo test` also runs on the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::h1_chunked_body::check(data));
