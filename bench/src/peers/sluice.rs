//! Sluice, started with its quick flags (no config file): the command line
//! *is* the configuration, and that is what the report prints.

use std::path::PathBuf;
use std::process::Command;

use super::{Peer, PeerCtx};
use crate::error::Result;
use crate::pin::Pinning;

pub struct Sluice {
    bin: PathBuf,
}

impl Sluice {
    pub fn new(bin: PathBuf) -> Self {
        Self { bin }
    }

    fn args(ctx: &PeerCtx) -> Vec<String> {
        let mut args = ctx.cli_flags();
        args.extend(["--workers", "1", "--lb", "round-robin"].map(String::from));
        args
    }
}

impl Peer for Sluice {
    fn name(&self) -> &'static str {
        "sluice"
    }

    fn program(&self) -> String {
        self.bin.display().to_string()
    }

    fn version(&self) -> String {
        format!("sluice {}", crate::install::git_rev())
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        Ok(super::flags_only(
            "sluice",
            &self.bin,
            &Self::args(ctx),
            pin,
        ))
    }
}
