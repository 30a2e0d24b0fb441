//! Scale drills: the multi-process stack (`sluice_demo::processes`, the
//! launcher behind `sluice-demo --processes`) under a client load spread
//! over both proxies, while one piece at a time is killed and restarted.
//!
//! ```text
//! start the stack once → for each drill: load on → warm up → disrupt
//!   (kill -9 / SIGTERM / takeover) → hold → restart → settle → load off →
//!   verify (failures, writes, session, job, log entries) → report
//! ```
//!
//! Each drill asserts what the issue asks, and never less: zero failed
//! idempotent requests once the first health interval after a disruption
//! has passed (none at all for the rolling restart and the upgrade); every
//! acknowledged post readable through the proxies and in PostgreSQL; the
//! session never logged out; the publishing job ran exactly once in every
//! period; every log entry the live replicas had acknowledged on disk.

mod drills;
pub mod load;
mod report;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

pub use drills::{ALL, Drill};
pub use report::Report;

/// How long each phase lasts, and where things are.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `sluice`, `sluice-app`, `sluice-cache`, `sluice-log`.
    pub bin_dir: PathBuf,
    /// Reports go here (`DRILL.json`, `DRILL.md`, `summary.md`).
    pub report_dir: PathBuf,
    /// Load before the disruption.
    pub warmup: Duration,
    /// How long a killed piece stays down.
    pub outage: Duration,
    /// Load after the restart.
    pub settle: Duration,
    /// Concurrent client workers.
    pub workers: usize,
    /// The proxies' health check interval (the grace after a disruption).
    pub health_interval: Duration,
    /// The app's job period.
    pub job_interval: Duration,
}

impl Settings {
    /// The long run's phases.
    pub fn long(bin_dir: PathBuf, report_dir: PathBuf) -> Settings {
        Settings {
            bin_dir,
            report_dir,
            warmup: Duration::from_secs(10),
            outage: Duration::from_secs(5),
            settle: Duration::from_secs(15),
            workers: 16,
            health_interval: Duration::from_secs(1),
            job_interval: Duration::from_secs(1),
        }
    }

    /// The CI run's phases: every drill in well under a minute.
    pub fn short(bin_dir: PathBuf, report_dir: PathBuf) -> Settings {
        Settings {
            warmup: Duration::from_secs(2),
            outage: Duration::from_secs(3),
            settle: Duration::from_secs(4),
            workers: 4,
            ..Settings::long(bin_dir, report_dir)
        }
    }
}

/// Runs the drills named (all when empty) on one stack, writes their
/// reports and a summary, and returns them.
pub async fn run(settings: &Settings, only: &[String]) -> Result<Vec<Report>, String> {
    std::fs::create_dir_all(&settings.report_dir)
        .map_err(|e| format!("{}: {e}", settings.report_dir.display()))?;
    let data = tempfile::Builder::new()
        .prefix("sluice-drills-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let selected: Vec<Drill> = ALL
        .iter()
        .copied()
        .filter(|d| only.is_empty() || only.iter().any(|n| n == d.name()))
        .collect();
    let mut stack = drills::Stack::start(settings, data.path().to_owned()).await?;
    let mut reports = Vec::new();
    for drill in selected {
        let (next, report) = drills::run_one(stack, settings, drill).await;
        stack = next;
        report.write(&settings.report_dir)?;
        reports.push(report);
    }
    stack.stop().await;
    let mut summary = String::new();
    if reports.iter().any(Report::failed) {
        // Keep the processes' logs (not the databases) for the diagnosis.
        let kept = tempfile::Builder::new()
            .prefix("sluice-drills-logs-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(|e| format!("temp dir: {e}"))?;
        let logs = data.path().join("logs");
        for entry in std::fs::read_dir(&logs)
            .map_err(|e| format!("{}: {e}", logs.display()))?
            .flatten()
        {
            let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
        }
        summary = format!(
            "\nA drill failed: the processes' logs are in {}.\n",
            kept.display()
        );
    }
    report::write_summary(&settings.report_dir, &reports, &summary)?;
    Ok(reports)
}
