//! `sluice-log`: a log service that orders entries by timestamp and never
//! loses one it has acknowledged.
//!
//! # The path of an entry
//!
//! ```text
//! POST / ─ api (body limit, 413) ─ entry::parse_body (whole batch valid, or 400)
//!   → wal::WalHandle::commit ──► [wal-writer thread] group commit: write N records, ONE fsync
//!                                   → order::ReorderBuffer::push  (min-heap by (timestamp, seq))
//!   ◄── 200 {"accepted":n} ◄──────── oneshot ack
//!
//! [log-flusher thread, every tick]
//!   ReorderBuffer::release(now - window, then oldest-first while over the byte cap)
//!   → append lines to app.log → fsync
//!   → checkpoint (file inode + length + written seqs) → delete finished WAL segments
//!   → rotate app.log → app.log.1 … when over --max-file-bytes
//!
//! GET /logs → query: rotated files + app.log prefix + in-flight batch + buffer
//! ```
//!
//! # Durability design
//!
//! * **Acknowledge only what is on disk.** A request is answered 200 only
//!   after its record is in the WAL and fsynced, while the entry may still sit
//!   in the reorder buffer. Group commit ([`wal`]) makes that cheap: one
//!   writer thread takes every queued batch, writes them and fsyncs once.
//! * **Every entry has a WAL sequence number.** The output side records which
//!   seqs it has durably written in a checkpoint ([`checkpoint`]), replaced
//!   atomically (temp + fsync + rename + dir fsync) and only after the output
//!   file was fsynced. Because output is in timestamp order, not seq order,
//!   the checkpoint keeps a set (watermark + ranges), not just a maximum.
//! * **Recovery is "truncate, then replay".** At startup the output file is
//!   cut back to the checkpointed length (found by inode, so a crash in the
//!   middle of a rotation is recognised), then every WAL entry whose seq is not
//!   in the checkpoint goes back into the reorder buffer. Lines written after
//!   the last checkpoint are thus discarded and written again: a crash at any
//!   point leaves every acknowledged entry in the output exactly once.
//! * **The WAL shrinks behind the output.** A segment is deleted once every
//!   seq in it is checkpointed; on a clean shutdown (SIGTERM) the buffer is
//!   flushed ignoring the window and the WAL is emptied.
//!
//! # Memory bound
//!
//! The reorder buffer holds every entry for the window, so its size grows
//! with ingest rate × window. `--max-buffered-bytes` (env
//! `SLUICE_LOG_MAX_BUFFERED_BYTES`, default 64 MiB, measured by
//! [`order::entry_cost`]) caps it: when a commit leaves the buffer over the
//! cap, the WAL thread wakes the flusher, which writes the oldest entries
//! early, in timestamp order, until the buffer is at or under the cap.
//! Nothing is refused, dropped or delayed: the entries are already durable
//! in the WAL, and the checkpoint and WAL sequence numbers treat an early
//! line exactly like any other, so recovery is unchanged. What is given up
//! is ordering at the edge: an entry arriving later with an earlier timestamp
//! is written after the early ones. `GET /stats` counts them as
//! `released_early` and shows the buffer's `buffered_bytes`. The cap bounds
//! the buffer, not the batch the flusher is writing at that moment.
//!
//! All file I/O runs on two dedicated threads (`wal-writer`, `log-flusher`)
//! and in `spawn_blocking` (recovery, `/logs`), never on the async workers.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_service_common::metrics::prometheus_client::registry::Registry;
use sluice_service_common::{HttpMetrics, Limits};
use time::OffsetDateTime;
use tokio::net::TcpListener;

pub mod api;
pub mod checkpoint;
pub mod config;
pub mod entry;
pub mod error;
pub mod order;
pub mod output;
pub mod query;
pub mod stats;
pub mod wal;

pub use config::{Args, Config, ConfigError};
pub use entry::{Entry, Format};
pub use error::{Error, StartError};

use checkpoint::Checkpoint;
use error::Unavailable;
use order::ReorderBuffer;
use output::{Cmd, Flusher, OutputFiles, Pending, SharedPending};
use stats::Stats;
use wal::{WalHandle, WalWriter};

/// How long open connections get to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Subdirectory of the data dir holding the WAL segments.
const WAL_DIR: &str = "wal";

/// State shared by every connection.
pub struct App {
    config: Config,
    /// Bytes of request bodies being received, parsed or committed now.
    uploads: sluice_service_common::BodyBudget,
    pending: SharedPending,
    stats: Arc<Stats>,
    /// `GET /metrics`: the request histogram and `stats`' families.
    /// Filled before the `App` is shared, only read after.
    metrics: Registry,
    /// Set once recovery has finished.
    wal: OnceLock<WalHandle>,
    /// Recovery finished and not shutting down.
    ready: AtomicBool,
    /// Set by the WAL thread if a write or fsync failed; never cleared.
    wal_failed: Arc<AtomicBool>,
}

impl App {
    fn readiness(&self) -> Result<(), Unavailable> {
        if self.wal_failed.load(Ordering::Acquire) {
            Err(Unavailable::WalFailed)
        } else if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else if self.wal.get().is_some() {
            Err(Unavailable::ShuttingDown)
        } else {
            Err(Unavailable::Recovering)
        }
    }

    fn wal(&self) -> Result<&WalHandle, Unavailable> {
        self.readiness()?;
        self.wal.get().ok_or(Unavailable::Recovering)
    }
}

/// The background threads, started after recovery.
struct Workers {
    wal: WalHandle,
    wal_thread: thread::JoinHandle<WalWriter>,
    flusher: mpsc::Sender<Cmd>,
    flusher_thread: thread::JoinHandle<io::Result<()>>,
}

/// Joins a thread without blocking an async worker.
async fn join<T: Send + 'static>(h: thread::JoinHandle<T>) -> io::Result<T> {
    tokio::task::spawn_blocking(move || h.join())
        .await
        .map_err(io::Error::other)?
        .map_err(|_| io::Error::other("background thread panicked"))
}

fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// The outcome of the recovery task, a panic included.
fn recovered(
    joined: Result<Result<Workers, StartError>, tokio::task::JoinError>,
) -> Result<Workers, StartError> {
    joined.map_err(|e| StartError::io("recovery task", "")(io::Error::other(e)))?
}

/// Recovery and thread start-up. Blocking.
fn start(app: &App) -> Result<Workers, StartError> {
    let cfg = &app.config;
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir).map_err(StartError::io("creating data dir", dir))?;
    let checkpoint = Checkpoint::load(dir)?;
    let (files, checkpoint) =
        OutputFiles::open(dir, checkpoint, cfg.max_file_bytes, cfg.keep_files)?;
    let wal_dir = dir.join(WAL_DIR);
    let recovered = wal::recover(&wal_dir, &checkpoint.done)?;
    let next_seq = recovered.seq_end.max(checkpoint.done.end());
    let replayed = recovered.pending.len();
    {
        let mut p = app.pending.lock();
        p.visible_len = files.len();
        let now = now_nanos();
        for item in recovered.pending {
            p.buffer.push_recovered(item, now);
        }
    }
    app.stats.add_recovered(replayed as u64);
    tracing::info!(replayed, next_seq, dir = %dir.display(), "recovered");

    let segments = wal::Segments::new(Mutex::new(recovered.segments));
    let flusher = Flusher {
        files,
        checkpoint,
        pending: app.pending.clone(),
        stats: app.stats.clone(),
        format: cfg.format,
        wal_dir: wal_dir.clone(),
        segments: segments.clone(),
    };
    let spawn_err = StartError::io("spawning thread", "");
    let (flusher_tx, flusher_thread) = flusher.spawn(cfg.tick()).map_err(spawn_err)?;
    let writer = WalWriter::open(&wal_dir, next_seq, cfg.wal_segment_bytes, segments)
        .map_err(StartError::io("opening wal segment", &wal_dir))?;
    let (pending, stats, wake) = (app.pending.clone(), app.stats.clone(), flusher_tx.clone());
    let on_commit = move |batch: Vec<order::Sequenced>| {
        let now = now_nanos();
        let mut late = 0;
        let over_cap = {
            let mut p = pending.lock();
            for item in batch {
                late += u64::from(p.buffer.push(item, now));
            }
            p.buffer.over_cap()
        };
        if late > 0 {
            stats.add_late(late);
        }
        if late > 0 || over_cap {
            // The flusher may be gone during shutdown; the final flush covers it.
            let _ = wake.send(Cmd::Wake);
        }
    };
    let failed = app.wal_failed.clone();
    let on_fail = move || failed.store(true, Ordering::Release);
    let (wal, wal_thread) = wal::spawn_writer(writer, app.stats.clone(), on_commit, on_fail)
        .map_err(StartError::io("spawning thread", ""))?;
    Ok(Workers {
        wal,
        wal_thread,
        flusher: flusher_tx,
        flusher_thread,
    })
}

impl Workers {
    /// Stops the WAL writer (committing what is queued), then flushes the
    /// whole reorder buffer ignoring the window and empties the WAL.
    async fn stop(self) -> io::Result<()> {
        self.wal.stop().await;
        let writer = join(self.wal_thread).await?;
        // If the flusher already died its error is in its join result.
        let _ = self.flusher.send(Cmd::Shutdown {
            wal_end: writer.next_seq(),
        });
        join(self.flusher_thread).await?
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains connections,
/// writes every buffered entry and returns.
///
/// Recovery runs in the background: `/ping` answers at once, `/ready` and
/// `POST /` answer 503 until it has finished. A recovery failure ends `run`
/// with the error.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future,
) -> Result<(), StartError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "listening"),
        Err(error) => tracing::warn!(%error, "no local address"),
    }
    let stats = Arc::new(Stats::default());
    let mut metrics = Registry::default();
    let http = HttpMetrics::register(&mut metrics, &api::ROUTES);
    stats.register(&mut metrics);
    let app = Arc::new(App {
        pending: Arc::new(Mutex::new(Pending {
            buffer: ReorderBuffer::new(config.reorder_window)
                .with_max_bytes(config.max_buffered_bytes),
            in_flight: None,
            visible_len: 0,
        })),
        uploads: sluice_service_common::BodyBudget::new(config.max_inflight_body_bytes),
        config,
        stats,
        metrics,
        wal: OnceLock::new(),
        ready: AtomicBool::new(false),
        wal_failed: Arc::new(AtomicBool::new(false)),
    });
    let mut startup = tokio::task::spawn_blocking({
        let app = app.clone();
        move || start(&app)
    });
    // Serving ends on `shutdown`, or at once if recovery fails; it yields
    // recovery's outcome if recovery finished first.
    let stopping = async {
        tokio::pin!(shutdown);
        let started = tokio::select! {
            _ = &mut shutdown => None,
            started = &mut startup => Some(recovered(started)),
        };
        let started = match started {
            Some(Ok(workers)) => {
                // Set once, here; nothing else writes it.
                let _ = app.wal.set(workers.wal.clone());
                app.ready.store(true, Ordering::Release);
                tracing::info!("ready");
                shutdown.await;
                Some(Ok(workers))
            }
            failed_or_not_yet => failed_or_not_yet,
        };
        tracing::info!("shutting down");
        app.ready.store(false, Ordering::Release);
        started
    };
    let handler = {
        let app = app.clone();
        move |req| api::handle(app.clone(), req)
    };
    let handler = sluice_service_common::measured(handler, http, api::route_index);
    let limits = Limits {
        grace: SHUTDOWN_GRACE,
        header_timeout: app.config.header_timeout,
        max_connections: app.config.max_connections,
    };
    let tls = app.config.tls.clone();
    let started = sluice_service_common::serve_tls(listener, tls, handler, stopping, limits).await;
    let workers = match started {
        Some(started) => started?,
        // Shutdown during recovery: let it finish so the threads can be stopped.
        None => recovered(startup.await)?,
    };
    workers
        .stop()
        .await
        .map_err(StartError::io("final flush", &app.config.dir))?;
    tracing::info!("stopped");
    Ok(())
}
