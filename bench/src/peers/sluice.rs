//! Sluice, started with its quick flags (no config file): the command line
//! *is* the configuration, and that is what the report prints. In an A/B
//! run a second binary runs as the peer `sluice-b` with the same flags.

use std::path::PathBuf;
use std::process::Command;

use super::{Peer, PeerCtx};
use crate::error::Result;
use crate::pin::Pinning;
use crate::report::AB_PEER;

pub struct Sluice {
    bin: PathBuf,
    name: &'static str,
    /// The commit it was built from, when the harness built it.
    rev: Option<String>,
}

impl Sluice {
    /// The Sluice under test (A in an A/B run).
    pub fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            name: "sluice",
            rev: None,
        }
    }

    /// Built by the harness from this tree at `rev`.
    pub fn built_at(self, rev: String) -> Self {
        Self {
            rev: Some(rev),
            ..self
        }
    }

    /// The second build of an A/B run.
    pub fn b(bin: PathBuf) -> Self {
        Self {
            bin,
            name: AB_PEER,
            rev: None,
        }
    }

    /// Its configuration, the one a user would write for this job: one
    /// worker, round robin, and the defaults for everything else (access
    /// log off, as `--access-log` is opt-in; X-Forwarded-*, Forwarded and
    /// Via added, as always).
    fn args(ctx: &PeerCtx) -> Vec<String> {
        let mut args = ctx.cli_flags();
        args.extend(["--workers", "1", "--lb", "round-robin"].map(String::from));
        args
    }
}

impl Peer for Sluice {
    fn name(&self) -> &'static str {
        self.name
    }

    fn program(&self) -> String {
        self.bin.display().to_string()
    }

    fn version(&self) -> String {
        match &self.rev {
            Some(rev) => format!("sluice {rev} ({})", self.bin.display()),
            None => format!("sluice {}", self.bin.display()),
        }
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        Ok(super::flags_only(
            self.name,
            &self.bin,
            &Self::args(ctx),
            pin,
        ))
    }
}
