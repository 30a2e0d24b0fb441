//! The access log's writer thread: takes lines off the queue in batches,
//! writes them through a `BufWriter` and flushes after each batch (so at
//! most [`FLUSH_EVERY`] after a line was queued, it is in the file). The
//! destination is opened here, not on the request path: a file on a hung
//! disk, or a FIFO with no reader, blocks this thread only, while the
//! requests' lines fill the queue and are dropped and counted.

use super::access_log::Counters;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The longest a queued line waits for the writer to look (and for a
/// reopen to be seen).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most lines written between two flushes.
const MAX_BATCH: usize = 1024;
/// How often a destination that failed to open is tried again.
const RETRY_OPEN: Duration = Duration::from_secs(1);

/// Opens (or reopens) the destination.
pub type Open = Box<dyn FnMut() -> io::Result<Box<dyn Write + Send>> + Send>;

/// Appends to `path`, creating it; stdout without one.
pub fn opener(path: Option<PathBuf>) -> Open {
    Box::new(move || -> io::Result<Box<dyn Write + Send>> {
        match &path {
            Some(p) => Ok(Box::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)?,
            )),
            None => Ok(Box::new(io::stdout())),
        }
    })
}

/// Starts the writer on a thread of its own. If no thread can be made,
/// the queue's receiver is dropped and every line counts as dropped.
pub fn spawn(rx: Receiver<String>, open: Open, reopen: Arc<AtomicBool>, counters: Arc<Counters>) {
    let spawned = std::thread::Builder::new()
        .name("sluice-access-log".into())
        .spawn(move || run(rx, open, &reopen, &counters));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the access log writer; lines are dropped");
    }
}

/// The writer's loop, until every sender is gone and the queue is empty.
pub fn run(rx: Receiver<String>, mut open: Open, reopen: &AtomicBool, counters: &Counters) {
    let mut out: Option<BufWriter<Box<dyn Write + Send>>> = None;
    let mut open_at = Instant::now();
    loop {
        if reopen.swap(false, Ordering::Relaxed) {
            // Flushed before closing: nothing is lost by a reopen.
            if let Some(mut w) = out.take() {
                let _ = w.flush();
            }
            open_at = Instant::now();
        }
        if out.is_none() && Instant::now() >= open_at {
            match open() {
                Ok(w) => out = Some(BufWriter::with_capacity(64 << 10, w)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the access log; its lines are lost until it opens");
                    open_at = Instant::now() + RETRY_OPEN;
                }
            }
        }
        let first = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(mut w) = out.take() {
                    let _ = w.flush();
                }
                return;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let written = out.as_mut().is_some_and(|w| {
            batch
                .iter()
                .try_for_each(|l| w.write_all(l.as_bytes()))
                .and_then(|()| w.flush())
                .is_ok()
        });
        if written {
            counters.written.fetch_add(n, Ordering::Relaxed);
        } else {
            counters.write_errors.fetch_add(n, Ordering::Relaxed);
            if out.take().is_some() {
                tracing::error!("access log write failed; reopening it");
                open_at = Instant::now() + RETRY_OPEN;
            }
        }
    }
}
