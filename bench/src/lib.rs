//! `sluice-bench`: an honest side-by-side benchmark of Sluice against nginx,
//! HAProxy and Caddy, on pinned cores, with equivalent generated configs.
//!
//! One run, in the order [`runner::run`] calls the stages:
//!
//! ```text
//! install (apt-get / cargo install)      what is missing, once
//!   → origins (2× bench-origin, load core)
//!   → for round, for scenario, for peer:  peers::* start (proxy core) → probe
//!        → measure::sample → load::* run (load core) → measure::sample → stop
//!   → stats (medians, ratios) → report (Markdown + SVG + raw JSON)
//! ```
//!
//! The headline figure is CPU µs per request of the proxy's process tree,
//! because requests per second on a loopback pair mostly measures the
//! generator; the report flags runs where the generator's core was the
//! bottleneck.

pub mod error;
pub mod idle;
pub mod install;
pub mod load;
pub mod measure;
pub mod origin;
pub mod origins;
pub mod peers;
pub mod pin;
pub mod probe;
pub mod process;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod services;
pub mod stats;

pub use error::{Error, Result};
