//! `sluice-demo`: starts the demo stack, prints where to point a client,
//! and stops it cleanly on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use sluice_demo::{Options, Stack};
use sluice_service_common::{Logging, Stream, binary, shutdown_signal};

fn main() -> ExitCode {
    let options = Options::parse();
    binary::init_tracing(&Logging {
        default_filter: "warn,sluice_demo=info",
        stream: Stream::Stdout,
        ..Logging::default()
    });
    let Some(runtime) = binary::runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let stack = match Stack::start(&options).await {
            Ok(stack) => stack,
            Err(error) => {
                eprintln!("sluice-demo: {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
                return ExitCode::FAILURE;
            }
        };
        println!("{}", stack.banner());
        shutdown_signal().await;
        println!("stopping: replicas unregister and drain, then the proxy, the cache and the log service…");
        stack.stop().await;
        ExitCode::SUCCESS
    })
}
