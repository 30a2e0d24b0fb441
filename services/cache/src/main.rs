//! `sluice-cache` binary: flags → validate → bind → [`sluice_cache::run`].

use std::process::ExitCode;

use sluice_cache::Cli;
use sluice_service_common::{Logging, binary};

fn main() -> ExitCode {
    let cli: Cli = match binary::flags() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    let logging = Logging {
        format: cli.log_format,
        ..Logging::default()
    };
    let settings = || cli.config().map(|config| (cli.listen, config));
    binary::main(&logging, settings, sluice_cache::run, "cache failed")
}
