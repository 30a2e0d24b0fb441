//! `sluice-drills`: runs the scale drills against the binaries next to this
//! one and writes the reports.
//!
//! ```sh
//! cargo build --release -p sluice -p sluice-app -p sluice-cache -p sluice-log
//! cargo run --release -p sluice-drills -- --report-dir perf/drills
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice_drills::Settings;

#[derive(Debug, clap::Parser)]
#[command(
    name = "sluice-drills",
    about = "Kill and restart pieces of the multi-process stack under load; report"
)]
struct Cli {
    /// Where the reports go.
    #[arg(long, default_value = "perf/drills")]
    report_dir: PathBuf,
    /// The binaries' directory (default: this executable's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Short phases (the CI test's).
    #[arg(long)]
    short: bool,
    /// Only these drills (proxy-kill, app-kill, cache-kill, redis-kill,
    /// rolling-restart, proxy-upgrade); all by default.
    only: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bin_dir = match cli.bin_dir.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from))
    }) {
        Some(d) => d,
        None => {
            eprintln!("sluice-drills: cannot tell where the binaries are; pass --bin-dir");
            return ExitCode::FAILURE;
        }
    };
    let settings = if cli.short {
        Settings::short(bin_dir, cli.report_dir.clone())
    } else {
        Settings::long(bin_dir, cli.report_dir.clone())
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-drills: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sluice_drills::run(&settings, &cli.only)) {
        Ok(reports) => {
            for r in &reports {
                println!("{:<16} {}", r.drill, r.result);
            }
            println!("reports: {}", cli.report_dir.display());
            if reports.iter().any(|r| r.failed()) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sluice-drills: {e}");
            ExitCode::FAILURE
        }
    }
}
