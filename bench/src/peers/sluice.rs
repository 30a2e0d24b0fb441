//! Sluice, started with its quick flags (no config file): the command line
//! *is* the configuration, and that is what the report prints. In an A/B
//! run a second binary runs as the peer `sluice-b` with the same flags.
//! When a run gives an extra config (`--sluice-extra-config[-b]`), both
//! sides run from a generated config file instead ([`super::sluice_config`]),
//! so that A and B differ by the fragment only; the report prints the file.

use std::path::PathBuf;
use std::process::Command;

use super::sluice_config::{self, ExtraConfig};
use super::{Peer, PeerCtx};
use crate::error::{IoContext, Result};
use crate::pin::Pinning;
use crate::report::AB_PEER;
use crate::scenario::Coding;

pub struct Sluice {
    bin: PathBuf,
    name: &'static str,
    /// The commit it was built from, when the harness built it.
    rev: Option<String>,
    /// `None`: the quick flags; `Some`: a generated config file, with this
    /// fragment merged in if any.
    file: Option<Option<ExtraConfig>>,
}

impl Sluice {
    /// The Sluice under test (A in an A/B run).
    pub fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            name: "sluice",
            rev: None,
            file: None,
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
            file: None,
        }
    }

    /// Runs from a generated config file with `extra` merged in (or none).
    pub fn with_config_file(self, extra: Option<ExtraConfig>) -> Self {
        Self {
            file: Some(extra),
            ..self
        }
    }

    /// The fragment merged into its config, if any.
    fn extra(&self) -> Option<&ExtraConfig> {
        self.file.as_ref().and_then(Option::as_ref)
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
        let build = match &self.rev {
            Some(rev) => format!("sluice {rev} ({})", self.bin.display()),
            None => format!("sluice {}", self.bin.display()),
        };
        match self.extra() {
            Some(extra) => format!("{build}, extra config {}", extra.path.display()),
            None => build,
        }
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        // br and zstd have no quick flag: those rows run from the
        // generated file, which is what the flags would have said.
        let generated = (ctx.coding != Coding::Gzip).then_some(None);
        let Some(extra) = self.file.as_ref().or(generated.as_ref()) else {
            return Ok(super::flags_only(
                self.name,
                &self.bin,
                &Self::args(ctx),
                pin,
            ));
        };
        let text = sluice_config::render(ctx, extra.as_ref());
        let path = ctx.dir.join("sluice.toml");
        std::fs::write(&path, &text).ctx(|| format!("writing {}", path.display()))?;
        let mut cmd = pin.proxy_command(&self.bin.display().to_string());
        cmd.arg("--config").arg(&path);
        let merged = match extra {
            Some(e) => format!("extra config {} merged in", e.path.display()),
            None => "no extra config".to_string(),
        };
        let shown = format!(
            "{} --config {}\n# generated, {merged}:\n{text}",
            self.name,
            path.display()
        );
        Ok((shown, cmd))
    }
}
