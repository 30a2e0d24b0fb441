//! What a measurement produced: the types the runner and the services mode
//! fill in, and the reports read. They live here, apart from both, so that
//! the report depends on results and never on the code that runs the
//! measurement (the runner calls the report, not the other way round).

use serde::Serialize;

use crate::idle::IdleResult;
use crate::load::LoadResult;
use crate::stats::median;

/// How a (scenario, peer) cell ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Status {
    Ok,
    /// Some request failed, or the peer failed to start or run.
    Failed(String),
    /// The peer lacks the feature (probed, not assumed).
    Unsupported(String),
    /// Not run: tool or peer missing.
    Skipped(String),
}

/// One measurement of one peer in one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    /// Which round of the run (0-based): per-round ratios pair the rounds
    /// of two peers by this index, as they ran in the same pass.
    pub round: usize,
    pub load: Option<LoadResult>,
    /// utime + stime of the proxy's tree ÷ requests.
    pub cpu_us_per_req: f64,
    /// utime alone: the proxy's own code.
    pub user_us_per_req: f64,
    /// stime alone: the kernel's work on the proxy's behalf.
    pub sys_us_per_req: f64,
    pub peak_rss: u64,
    pub proxy_core_busy: f64,
    pub load_core_busy: f64,
    pub idle: Option<IdleResult>,
}

/// Every round of one peer in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub status: Status,
    pub rounds: Vec<Round>,
    /// Compressed size of `/json64k` as this peer sent it (gzip scenarios).
    pub gzip_bytes: Option<usize>,
    /// Why this peer's run of this scenario is not equivalent (see
    /// [`crate::peers::Peer::caveat`]).
    pub caveat: Option<String>,
}

impl Cell {
    pub fn new() -> Self {
        Self {
            status: Status::Ok,
            rounds: Vec::new(),
            gzip_bytes: None,
            caveat: None,
        }
    }

    /// Whether it still gets measured (nothing has failed or been skipped).
    pub fn runnable(&self) -> bool {
        matches!(self.status, Status::Ok)
    }
}

impl Default for Cell {
    fn default() -> Self {
        Self::new()
    }
}

/// One measured round of one service (`sluice-bench services`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceRound {
    pub load: LoadResult,
    /// Non-2xx responses (log; the cache relies on wrk's status errors).
    pub non_2xx: u64,
    /// CPU µs of the service per request (cache) or per entry (log).
    pub cpu_us_per_unit: f64,
    /// CPU µs of the service per request, both services.
    pub cpu_us_per_request: f64,
    /// Requests (cache) or acknowledged entries (log) per second.
    pub units_per_sec: f64,
    pub service_core_busy: f64,
    pub load_core_busy: f64,
    /// Log only: WAL fsyncs per second and entries per fsync.
    pub fsyncs_per_sec: f64,
    pub entries_per_fsync: f64,
    /// Log only: entries that arrived after their reorder window.
    pub late: u64,
    /// What the service's /stats said about the round, as text.
    pub check: String,
    pub ok: bool,
}

/// Every round of one service, and what its final checks found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceResult {
    pub name: String,
    pub command: String,
    pub wrk_command: String,
    pub rounds: Vec<ServiceRound>,
    /// Failures (errors, verification); empty when all is well.
    pub failures: Vec<String>,
    /// Final verification text.
    pub verification: Vec<String>,
    pub peak_rss: u64,
}

impl ServiceResult {
    /// Median across rounds of one per-round figure.
    pub fn median(&self, f: impl Fn(&ServiceRound) -> f64) -> f64 {
        median(&self.rounds.iter().map(f).collect::<Vec<_>>())
    }
}
