//! Target `config_toml`: `sluice::config::validate::parse`, the TOML
//! config file to validated runtime model (also what a reload or the admin
//! API's config check runs on text someone else wrote).
//!
//! Defends against: panics in validation (spans turned into line and column
//! on multi-byte text, bounds, durations, addresses, weights, balance
//! policies) and errors that cannot be located: every syntax or validation
//! error must name a line and column ≥ 1 inside the text.
//!
//! The input is the file's text (invalid UTF-8 is skipped, as the loader
//! refuses it before parsing).

use sluice::config::validate::parse;
use std::path::Path;

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match parse(text, Path::new("fuzz.toml")).map_err(|e| (e.line_column(), e)) {
        Ok(_) => {}
        Err((Some((line, column)), _)) => {
            assert!(line >= 1 && column >= 1, "error at {line}:{column}");
            assert!(line <= lines, "line {line} of {lines}");
        }
        Err((None, e)) => panic!("parse returned {e:?}"),
    }
}
