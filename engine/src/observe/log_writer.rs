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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The longest a queued line waits for the writer to look (and for a
/// reopen to be seen).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most lines written between two flushes.
const MAX_BATCH: usize = 1024;
/// After a batch that emptied the queue, the writer sleeps this long before
/// it waits on the queue again, so that lines gather meanwhile and the
/// requests that queue them find no writer parked on the queue: a parked
/// writer costs every request a futex wake and the writer a context switch
/// per line (perf/findings/2026-12-02-observe-cost.md: 1.7-1.8x the CPU of
/// a small request). A line is still in the file within about this plus
/// the batch's write.
const GATHER: Duration = Duration::from_millis(50);
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
            None => Ok(Box::new(Stdout)),
        }
    })
}

/// Stdout, each write whole under its lock: a batch of lines never
/// interleaves with `tracing`'s own lines, which go to stdout too.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// Starts the writer on a thread of its own. If no thread can be made,
/// the queue's receiver is dropped and every line counts as dropped.
pub fn spawn(rx: Receiver<String>, open: Open, flags: Arc<Flags>, counters: Arc<Counters>) {
    let spawned = std::thread::Builder::new()
        .name("sluice-access-log".into())
        .spawn(move || run(rx, open, &flags, &counters));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the access log writer; lines are dropped");
    }
}

/// What the rest of the proxy tells the writer, and sees of it.
#[derive(Debug, Default)]
pub struct Flags {
    /// Asks the writer to reopen its file (logrotate).
    ///
    /// # Concurrency
    /// Set by a reload, taken (`swap`) by the writer: `Relaxed`, it only
    /// has to be seen eventually, and carries no other data.
    pub reopen: AtomicBool,
    /// Times the writer found the queue empty for a whole [`FLUSH_EVERY`]
    /// with everything before flushed: a shutdown that sees it move knows
    /// the lines of finished requests are written.
    ///
    /// # Concurrency
    /// Added to by the writer, read by the shutdown: `Relaxed` counts.
    pub idle: AtomicU64,
}

/// The destination: open, or when to try again.
struct Dest {
    open: Open,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    open_at: Instant,
}

impl Dest {
    /// Reopens if asked, then opens if nothing is open and it is time.
    fn ensure(&mut self, flags: &Flags) {
        if flags.reopen.swap(false, Ordering::Relaxed) {
            // Flushed before closing: nothing is lost by a reopen.
            if let Some(mut w) = self.out.take() {
                let _ = w.flush();
            }
            self.open_at = Instant::now();
        }
        if self.out.is_none() && Instant::now() >= self.open_at {
            match (self.open)() {
                Ok(w) => self.out = Some(BufWriter::with_capacity(64 << 10, w)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the access log; its lines are lost until it opens");
                    self.open_at = Instant::now() + RETRY_OPEN;
                }
            }
        }
    }

    /// Writes and flushes `batch`; `false` when it is lost.
    fn write(&mut self, batch: &[String]) -> bool {
        let ok = self.out.as_mut().is_some_and(|w| {
            batch
                .iter()
                .try_for_each(|l| w.write_all(l.as_bytes()))
                .and_then(|()| w.flush())
                .is_ok()
        });
        if !ok && self.out.take().is_some() {
            tracing::error!("access log write failed; opening it again in a second");
            self.open_at = Instant::now() + RETRY_OPEN;
        }
        ok
    }
}

/// The writer's loop, until every sender is gone and the queue is empty.
pub fn run(rx: Receiver<String>, open: Open, flags: &Flags, counters: &Counters) {
    let mut dest = Dest {
        open,
        out: None,
        open_at: Instant::now(),
    };
    loop {
        // Before the first wait too: a destination that blocks on open
        // (a FIFO with no reader) takes nothing off the queue.
        dest.ensure(flags);
        let first = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                flags.idle.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(mut w) = dest.out.take() {
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
        let drained = batch.len() < MAX_BATCH;
        // A reopen asked while this thread waited applies to this batch.
        dest.ensure(flags);
        let n = batch.len() as u64;
        if dest.write(&batch) {
            counters.written.fetch_add(n, Ordering::Relaxed);
        } else {
            counters.write_errors.fetch_add(n, Ordering::Relaxed);
        }
        if drained {
            std::thread::sleep(GATHER);
        }
    }
}
