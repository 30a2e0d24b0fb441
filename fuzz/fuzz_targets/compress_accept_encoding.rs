//! Fuzz target `compress_accept_encoding`: what it feeds and asserts, and what it defends
//! against, is `sluice_fuzz_checks::compress_accept_encoding` (`fuzz/checks/src/compress_accept_encoding.rs`), which
//! `cargo test` also runs on the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::compress_accept_encoding::check(data));
