//! `sluice-app` binary: flags → validate → bind → [`sluice_app::run`].

use std::process::ExitCode;

use sluice_app::Cli;
use sluice_service_common::{Logging, Stream, binary};

fn main() -> ExitCode {
    let cli: Cli = match binary::flags() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    let logging = Logging {
        stream: Stream::Stdout,
        ..Logging::default()
    };
    let settings = || cli.config().map(|config| (cli.listen, config));
    binary::main(&logging, settings, sluice_app::run, "app failed")
}
