//! The body of every service binary's `main`: flags, logging, settings,
//! runtime, bind, run, exit code. A service's `main.rs` names its flags,
//! its logging and its `run`, and calls [`main`].
//!
//! Exit codes: 0 after a clean shutdown (and for `--help`/`--version`),
//! [`EXIT_USAGE`] for bad flags or settings before anything is bound, 1 when
//! the runtime cannot start, the address cannot be bound or the service
//! fails.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::signal::{Shutdown, shutdown_signal};

/// EX_USAGE: bad flags or settings, nothing was started.
pub const EXIT_USAGE: u8 = 64;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stderr,
    Stdout,
}

/// A binary's logging: `RUST_LOG` when set (and valid), else `default_filter`.
#[derive(Clone, Copy, Debug)]
pub struct Logging {
    pub default_filter: &'static str,
    pub format: LogFormat,
    pub stream: Stream,
}

impl Default for Logging {
    /// `info`, text lines, on stderr.
    fn default() -> Self {
        Logging {
            default_filter: "info",
            format: LogFormat::Text,
            stream: Stream::Stderr,
        }
    }
}

/// Installs the global tracing subscriber. Colours only on a terminal (and
/// not with `NO_COLOR`), so files and pipes get plain lines.
pub fn init_tracing(logging: &Logging) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(logging.default_filter));
    let (writer, terminal) = match logging.stream {
        Stream::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
        Stream::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(terminal && !no_color);
    match logging.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Parses the command line; on an error prints it and gives the exit code:
/// [`EXIT_USAGE`], or success for `--help` and `--version`.
pub fn flags<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// The multi-threaded runtime every service runs on; `None` (logged) if the
/// OS refuses it.
pub fn runtime() -> Option<Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            None
        }
    }
}

/// A service binary after its flags are parsed: starts logging, validates
/// the settings (exit 64 before any socket is bound), binds the listen
/// address and runs the service until SIGTERM or SIGINT. `failed` is the
/// message logged with the service's error.
pub fn main<C, E, R, Fut, F>(
    logging: &Logging,
    settings: impl FnOnce() -> Result<(SocketAddr, C), E>,
    run: R,
    failed: &'static str,
) -> ExitCode
where
    E: std::error::Error + 'static,
    R: FnOnce(TcpListener, C, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), F>>,
    F: std::error::Error + 'static,
{
    init_tracing(logging);
    let (listen, config) = match settings() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(error = &error as &dyn std::error::Error, "invalid settings");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, addr = %listen, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        match run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = &error as &dyn std::error::Error, "{failed}");
                ExitCode::FAILURE
            }
        }
    })
}
