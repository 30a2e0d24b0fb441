//! `sluice-demo`: starts the demo stack, prints where to point a client,
//! and stops it cleanly on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use sluice_demo::{Options, Stack};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,sluice_demo=info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
