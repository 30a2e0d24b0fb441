//! `sluice-log` binary: parse flags/env, validate (exit 64 on bad config),
//! bind, and hand over to [`sluice_log::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use sluice_log::Args;
use sluice_service_common::{Logging, binary};

fn main() -> ExitCode {
    let args = Args::parse();
    binary::main(
        &Logging::default(),
        || args.validate(),
        sluice_log::run,
        "fatal",
    )
}
