//! Fuzz target `proxy_protocol`: what it feeds and asserts, and what it
//! defends against, is `sluice_fuzz_checks::proxy_protocol`
//! (`fuzz/checks/src/proxy_protocol.rs`), which `cargo test` also runs on
//! the committed seeds and regressions.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sluice_fuzz_checks::proxy_protocol::check(data));
