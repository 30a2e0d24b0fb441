//! RFC conformance for intermediaries: one case per MUST or SHOULD that
//! applies to a gateway (reverse proxy), each citing its section.
//!
//! Cases are data ([`case`]): what the client sends (raw HTTP/1.1 bytes, or
//! an HTTP/2 request), what the recording origin ([`origin`]) answers, and
//! what must be observed. [`runner`] runs them against any proxy given its
//! listen addresses and the origin it forwards to: `cargo test -p sluice-e2e
//! conformance` runs every case against Sluice, and the `differential` binary
//! runs the same cases against Sluice, nginx and HAProxy.

pub mod case;
pub mod cases;
pub mod client;
pub mod origin;
pub mod raw_h2;
pub mod runner;

pub use case::{Case, Check, Observed, Send};
pub use origin::RecordingOrigin;
pub use runner::{Outcome, Target, run, run_all};
