//! Output stage: the log files (`app.log`, rotated to `app.log.1` ... `.N`),
//! the flusher thread that moves released entries from the reorder buffer into
//! them, and the crash fix-up of the files against the checkpoint.
//!
//! One flush, in this order (see `checkpoint` for why it gives exactly-once):
//! 1. under the [`Pending`] lock, take the released entries and publish them
//!    as `in_flight` (so `/logs` never misses them);
//! 2. in chunks that end at the size limit: append lines, fsync, then under
//!    the lock advance `visible_len` and `in_flight.written` together;
//! 3. store the checkpoint (inode + length + written seqs);
//! 4. delete WAL segments that are now fully written;
//! 5. if the file reached its size limit, rotate (under the lock, so readers
//!    see a consistent set of files) and checkpoint the new, empty file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::checkpoint::{Checkpoint, sync_dir};
use crate::entry::Format;
use crate::error::StartError;
use crate::order::{ReorderBuffer, Sequenced};
use crate::stats::Stats;
use crate::wal::{self, Segments};

/// Name of the current output file inside the data dir.
pub const LOG_FILE: &str = "app.log";

/// `app.log` for generation 0, `app.log.N` for rotated ones.
pub fn output_path(dir: &Path, generation: usize) -> PathBuf {
    if generation == 0 {
        dir.join(LOG_FILE)
    } else {
        dir.join(format!("{LOG_FILE}.{generation}"))
    }
}

/// What a `/logs` reader must see atomically: held entries, the entries being
/// written right now, and how much of `app.log` holds complete lines.
///
/// A parking_lot mutex (not tokio's): it is taken by the WAL thread, the
/// flusher thread and `spawn_blocking` readers, never across an `.await`.
#[derive(Debug)]
pub struct Pending {
    pub buffer: ReorderBuffer,
    pub in_flight: Option<InFlight>,
    pub visible_len: u64,
}

/// The batch the flusher is writing; `batch[..written]` is already in the
/// file (within `visible_len`), the rest only here.
#[derive(Debug)]
pub struct InFlight {
    pub batch: Arc<Vec<Sequenced>>,
    pub written: usize,
}

impl InFlight {
    pub fn unwritten(&self) -> &[Sequenced] {
        &self.batch[self.written..]
    }
}

pub type SharedPending = Arc<Mutex<Pending>>;

/// The open output file plus rotation settings. Owned by the flusher.
#[derive(Debug)]
pub struct OutputFiles {
    dir: PathBuf,
    file: File,
    len: u64,
    ino: u64,
    max_bytes: u64,
    keep: usize,
}

fn open_append(path: &Path) -> io::Result<(File, u64, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta.len(), meta.ino()))
}

fn ino_of(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.len() > len {
        tracing::warn!(file = %path.display(), len, "discarding output written after the last checkpoint");
        f.set_len(len)?;
        f.sync_all()?;
    }
    Ok(())
}

impl OutputFiles {
    /// Opens `app.log`, first undoing anything written after the checkpoint.
    /// Returns the files and the checkpoint to continue from (already stored).
    /// Blocking.
    pub fn open(
        dir: &Path,
        checkpoint: Option<Checkpoint>,
        max_bytes: u64,
        keep: usize,
    ) -> Result<(OutputFiles, Checkpoint), StartError> {
        let current = output_path(dir, 0);
        let err = |what| StartError::io(what, &current);
        let mut ckpt = match checkpoint {
            Some(c) if ino_of(&current) == Some(c.file_ino) => {
                truncate(&current, c.file_len).map_err(err("truncating output"))?;
                c
            }
            Some(c) if ino_of(&output_path(dir, 1)) == Some(c.file_ino) => {
                // Crashed during or right after a rotation: the checkpointed
                // file is now `.1`; whatever `app.log` holds came later.
                let rotated = output_path(dir, 1);
                truncate(&rotated, c.file_len)
                    .map_err(StartError::io("truncating output", &rotated))?;
                if current.exists() {
                    truncate(&current, 0).map_err(err("truncating output"))?;
                }
                c
            }
            Some(c) => {
                tracing::warn!(
                    "checkpointed output file not found; continuing with the current one"
                );
                c
            }
            None => Checkpoint::default(),
        };
        let (file, len, ino) = open_append(&current).map_err(err("opening output"))?;
        sync_dir(dir).map_err(err("syncing data dir"))?;
        ckpt.file_ino = ino;
        ckpt.file_len = len;
        ckpt.store(dir).map_err(err("storing checkpoint"))?;
        Ok((
            OutputFiles {
                dir: dir.to_owned(),
                file,
                len,
                ino,
                max_bytes,
                keep,
            },
            ckpt,
        ))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(data) {
            // Drop a partial line so the file stays line-aligned.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Shifts `app.log.K` → `.K+1` (dropping beyond `keep`), `app.log` →
    /// `app.log.1`, and starts an empty `app.log`. Blocking.
    fn rotate(&mut self) -> io::Result<()> {
        let oldest = output_path(&self.dir, self.keep);
        match fs::remove_file(&oldest) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for generation in (0..self.keep).rev() {
            let from = output_path(&self.dir, generation);
            match fs::rename(&from, output_path(&self.dir, generation + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let (file, len, ino) = open_append(&output_path(&self.dir, 0))?;
        sync_dir(&self.dir)?;
        (self.file, self.len, self.ino) = (file, len, ino);
        Ok(())
    }
}

/// Messages to the flusher thread.
#[derive(Debug)]
pub enum Cmd {
    /// Late entries arrived, or the reorder buffer went over its byte cap:
    /// release now rather than at the next tick.
    Wake,
    /// Write everything, ignoring the window, then stop. Carries the WAL's
    /// final next seq so the last segment can be deleted once written.
    Shutdown { wal_end: u64 },
}

/// Everything the flusher thread owns.
pub struct Flusher {
    pub files: OutputFiles,
    pub checkpoint: Checkpoint,
    pub pending: SharedPending,
    pub stats: Arc<Stats>,
    pub format: Format,
    pub wal_dir: PathBuf,
    pub segments: Segments,
}

fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

impl Flusher {
    /// Runs the flusher on its own thread, releasing every `tick`.
    pub fn spawn(
        mut self,
        tick: Duration,
    ) -> io::Result<(mpsc::Sender<Cmd>, thread::JoinHandle<io::Result<()>>)> {
        let (tx, rx) = mpsc::channel();
        let join = thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(tick) {
                        Ok(Cmd::Wake) | Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(error) = self.flush(false) {
                                tracing::error!(%error, "writing output failed; will retry");
                            }
                        }
                        Ok(Cmd::Shutdown { wal_end }) => return self.finish(Some(wal_end)),
                        Err(mpsc::RecvTimeoutError::Disconnected) => return self.finish(None),
                    }
                }
            })?;
        Ok((tx, join))
    }

    fn finish(&mut self, wal_end: Option<u64>) -> io::Result<()> {
        self.flush(true)?;
        // Only when the WAL writer has stopped can its last segment go.
        wal::remove_done_segments(
            &self.wal_dir,
            &self.segments,
            self.checkpoint.done.watermark(),
            wal_end,
        )?;
        tracing::info!(written = self.checkpoint.done.watermark(), "output flushed");
        Ok(())
    }

    /// One flush round (see the module docs). With `all`, ignores the window.
    pub fn flush(&mut self, all: bool) -> io::Result<()> {
        let batch = {
            let mut p = self.pending.lock();
            let mut out = Vec::new();
            if all {
                p.buffer.drain_all(&mut out);
            } else {
                let early = p.buffer.release(now_nanos(), &mut out);
                if early > 0 {
                    self.stats.add_released_early(early);
                }
            }
            if out.is_empty() {
                return Ok(());
            }
            let batch = Arc::new(out);
            p.in_flight = Some(InFlight {
                batch: batch.clone(),
                written: 0,
            });
            batch
        };
        let mut done = 0;
        let mut result = Ok(());
        while done < batch.len() {
            match self.write_chunk(&batch, done) {
                Ok(end) => done = end,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let mut p = self.pending.lock();
        p.in_flight = None;
        // Whatever was not written goes back (it is still in the WAL too).
        let now = now_nanos();
        for s in &batch[done..] {
            p.buffer.push_recovered(s.clone(), now);
        }
        result
    }

    /// Writes entries from `start` on until the file reaches its size limit,
    /// so rotation happens at the limit even for a large batch. Returns the
    /// index after the last entry written (and fsynced).
    fn write_chunk(&mut self, batch: &[Sequenced], start: usize) -> io::Result<usize> {
        if self.files.len >= self.files.max_bytes {
            self.rotate()?;
        }
        let room = self.files.max_bytes - self.files.len;
        let mut text = String::new();
        let mut end = start;
        while end < batch.len() && (text.len() as u64) < room {
            batch[end].entry.write_line(self.format, &mut text);
            end += 1;
        }
        let before = self.files.len;
        if let Err(e) = self
            .files
            .append(text.as_bytes())
            .and_then(|()| self.files.file.sync_data())
        {
            // Undo so the retry does not duplicate lines (best effort: the
            // checkpoint length makes recovery correct regardless).
            let _ = self.files.file.set_len(before);
            self.files.len = before;
            return Err(e);
        }
        {
            let mut p = self.pending.lock();
            p.visible_len = self.files.len;
            if let Some(f) = &mut p.in_flight {
                f.written = end;
            }
        }
        for s in &batch[start..end] {
            self.checkpoint.done.insert(s.seq);
        }
        self.stats.add_written((end - start) as u64);
        // The lines are durable and visible: from here on a failure must not
        // hand them back. A missed checkpoint only means recovery rewrites
        // them; the next round stores a newer one.
        if let Err(error) = self.after_write() {
            tracing::error!(%error, "checkpoint or WAL cleanup failed; will retry");
        }
        Ok(end)
    }

    fn after_write(&mut self) -> io::Result<()> {
        self.store_checkpoint()?;
        wal::remove_done_segments(
            &self.wal_dir,
            &self.segments,
            self.checkpoint.done.watermark(),
            None,
        )?;
        if self.files.len >= self.files.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Rotates under the [`Pending`] lock (readers see old or new file set,
    /// never a mix), then checkpoints the new, empty file.
    fn rotate(&mut self) -> io::Result<()> {
        {
            let mut p = self.pending.lock();
            self.files.rotate()?;
            p.visible_len = self.files.len;
        }
        self.store_checkpoint()
    }

    fn store_checkpoint(&mut self) -> io::Result<()> {
        self.checkpoint.file_ino = self.files.ino;
        self.checkpoint.file_len = self.files.len;
        self.checkpoint.store(&self.files.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SeqSet;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-log-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn open_truncates_lines_written_after_the_checkpoint() {
        let dir = tmp("trunc");
        fs::write(output_path(&dir, 0), "a\nb\n").unwrap();
        let (_, ckpt) = OutputFiles::open(&dir, None, 1 << 20, 2).unwrap();
        assert_eq!(ckpt.file_len, 4);
        // Lines appended, but the crash came before the next checkpoint.
        fs::write(output_path(&dir, 0), "a\nb\nc\nd").unwrap();
        let loaded = Checkpoint::load(&dir).unwrap();
        let (files, ckpt2) = OutputFiles::open(&dir, loaded, 1 << 20, 2).unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(ckpt2.file_len, 4);
        assert_eq!(fs::read_to_string(output_path(&dir, 0)).unwrap(), "a\nb\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_after_crash_mid_rotation_discards_the_new_file() {
        let dir = tmp("rot");
        fs::write(output_path(&dir, 0), "old\n").unwrap();
        let (mut files, mut ckpt) = OutputFiles::open(&dir, None, 1, 3).unwrap();
        ckpt.done = SeqSet::default();
        // Rotation renamed app.log → app.log.1 and new lines went into the
        // fresh app.log, but the checkpoint still names the old file.
        files.rotate().unwrap();
        fs::write(output_path(&dir, 0), "uncheckpointed\n").unwrap();
        let (files, ckpt2) = OutputFiles::open(&dir, Some(ckpt), 1, 3).unwrap();
        assert!(files.is_empty());
        assert_eq!(ckpt2.file_len, 0);
        assert_eq!(fs::read_to_string(output_path(&dir, 1)).unwrap(), "old\n");
        assert_eq!(fs::read_to_string(output_path(&dir, 0)).unwrap(), "");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotate_keeps_at_most_keep_files() {
        let dir = tmp("keep");
        let (mut files, _) = OutputFiles::open(&dir, None, 1, 2).unwrap();
        for i in 0..4 {
            files.append(format!("{i}\n").as_bytes()).unwrap();
            files.rotate().unwrap();
        }
        assert_eq!(fs::read_to_string(output_path(&dir, 1)).unwrap(), "3\n");
        assert_eq!(fs::read_to_string(output_path(&dir, 2)).unwrap(), "2\n");
        assert!(!output_path(&dir, 3).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
