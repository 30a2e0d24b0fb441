//! Durability stage: the write-ahead log, its group-commit writer thread, and
//! recovery.
//!
//! A request's entries become one WAL *record* (so a batch is atomic in the
//! WAL too). One dedicated thread owns the active segment: it takes every
//! submission waiting in the channel, writes them with one `write`, issues ONE
//! `fsync`, hands the entries to the reorder buffer and only then answers each
//! submitter through its oneshot. That is group commit: under load many
//! requests share an fsync, and no request is acknowledged before its bytes
//! are on disk.
//!
//! A crash can only tear the tail of the active segment; recovery stops at the
//! first record that does not check out (`record`) and truncates there.
//!
//! Segments are files `wal/wal-<first seq, 20 digits>`. A new one starts at
//! each startup and when the active one passes its size limit; the output
//! writer deletes a segment once every seq in it is in the checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{SeqSet, sync_dir};
use crate::entry::Entry;
use crate::error::{StartError, Unavailable};
use crate::order::Sequenced;
use crate::stats::Stats;

mod record;
use record::{decode_segment, encode_record};

/// Most submissions one group commit takes before it fsyncs.
const MAX_GROUP: usize = 1024;
const PREFIX: &str = "wal-";

/// First seqs of the live segments, ascending. Shared by the writer thread
/// (which appends on roll) and the output thread (which deletes finished
/// segments). A parking_lot mutex: held only for Vec operations, never I/O.
pub type Segments = Arc<Mutex<Vec<u64>>>;

fn segment_path(wal_dir: &Path, first_seq: u64) -> PathBuf {
    wal_dir.join(format!("{PREFIX}{first_seq:020}"))
}

fn list_segments(wal_dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for dirent in fs::read_dir(wal_dir)? {
        let name = dirent?.file_name();
        if let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// What recovery found in the WAL.
#[derive(Debug)]
pub struct Recovered {
    /// Entries not yet in the output, in seq order.
    pub pending: Vec<Sequenced>,
    /// One past the highest seq found in any segment (0 if none).
    pub seq_end: u64,
    /// Live segments (first seqs, ascending).
    pub segments: Vec<u64>,
}

/// Reads every segment, truncating torn tails, and returns the entries not in
/// `done`. Blocking.
pub fn recover(wal_dir: &Path, done: &SeqSet) -> Result<Recovered, StartError> {
    fs::create_dir_all(wal_dir).map_err(StartError::io("creating wal dir", wal_dir))?;
    let segments = list_segments(wal_dir).map_err(StartError::io("listing wal dir", wal_dir))?;
    let mut pending = Vec::new();
    let mut seq_end = 0;
    let mut all = Vec::new();
    for &first in &segments {
        let path = segment_path(wal_dir, first);
        let data = fs::read(&path).map_err(StartError::io("reading wal segment", &path))?;
        all.clear();
        let (valid, end) = decode_segment(&data, &mut all);
        if valid < data.len() {
            tracing::warn!(segment = %path.display(), valid, len = data.len(), "truncating torn WAL tail");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(StartError::io("opening wal segment", &path))?;
            f.set_len(valid as u64)
                .and_then(|()| f.sync_all())
                .map_err(StartError::io("truncating wal segment", &path))?;
        }
        seq_end = seq_end.max(end.unwrap_or(0));
        pending.extend(all.drain(..).filter(|s| !done.contains(s.seq)));
    }
    Ok(Recovered {
        pending,
        seq_end,
        segments,
    })
}

/// Deletes segments whose every seq is below `watermark`. The active segment
/// (the last one) is only considered when `active_end` (one past its last
/// seq) is given, i.e. once the writer has stopped. Blocking.
pub fn remove_done_segments(
    wal_dir: &Path,
    segments: &Segments,
    watermark: u64,
    active_end: Option<u64>,
) -> io::Result<()> {
    let doomed: Vec<u64> = {
        let mut segs = segments.lock();
        let mut doomed = Vec::new();
        while let Some(&first) = segs.first() {
            let end = match segs.get(1) {
                Some(&next) => next,
                None => match active_end {
                    Some(end) => end,
                    None => break,
                },
            };
            if end > watermark {
                break;
            }
            doomed.push(first);
            segs.remove(0);
        }
        doomed
    };
    if doomed.is_empty() {
        return Ok(());
    }
    for first in doomed {
        fs::remove_file(segment_path(wal_dir, first))?;
    }
    sync_dir(wal_dir)
}

/// Owns the active segment. Used only by the writer thread.
pub struct WalWriter {
    wal_dir: PathBuf,
    file: File,
    len: u64,
    next_seq: u64,
    segment_limit: u64,
    segments: Segments,
    buf: Vec<u8>,
    /// The last fsync's duration, for `log_fsync_duration_seconds`.
    last_fsync: std::time::Duration,
}

impl WalWriter {
    /// Starts a fresh segment at `next_seq`. Blocking.
    pub fn open(
        wal_dir: &Path,
        next_seq: u64,
        segment_limit: u64,
        segments: Segments,
    ) -> io::Result<Self> {
        let file = Self::create_segment(wal_dir, next_seq, &segments)?;
        Ok(WalWriter {
            wal_dir: wal_dir.to_owned(),
            file,
            len: 0,
            next_seq,
            segment_limit,
            segments,
            buf: Vec::new(),
            last_fsync: std::time::Duration::ZERO,
        })
    }

    fn create_segment(wal_dir: &Path, first: u64, segments: &Segments) -> io::Result<File> {
        // A segment with this name can only exist if it holds no valid record
        // (its first seq would otherwise be below `next_seq`), so truncate.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(segment_path(wal_dir, first))?;
        sync_dir(wal_dir)?;
        let mut segs = segments.lock();
        if segs.last() != Some(&first) {
            segs.push(first);
        }
        Ok(file)
    }

    /// How long the last [`append`](Self::append)'s fsync took.
    pub fn last_fsync(&self) -> std::time::Duration {
        self.last_fsync
    }

    /// One past the last seq handed out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Writes one record per batch, then fsyncs once. Returns each batch's seq
    /// range. On error nothing is acknowledged and the writer must not be used
    /// again (after a failed fsync the page cache state is unknown).
    pub fn append(&mut self, batches: &[&[Entry]]) -> io::Result<Vec<Range<u64>>> {
        if self.len >= self.segment_limit {
            self.file = Self::create_segment(&self.wal_dir, self.next_seq, &self.segments)?;
            self.len = 0;
        }
        self.buf.clear();
        let mut ranges = Vec::with_capacity(batches.len());
        let mut seq = self.next_seq;
        for batch in batches {
            encode_record(&mut self.buf, seq, batch);
            ranges.push(seq..seq + batch.len() as u64);
            seq += batch.len() as u64;
        }
        self.file.write_all(&self.buf)?;
        let started = std::time::Instant::now();
        self.file.sync_data()?;
        self.last_fsync = started.elapsed();
        self.len += self.buf.len() as u64;
        self.next_seq = seq;
        Ok(ranges)
    }
}

/// One request's entries waiting for group commit.
struct Submit {
    entries: Vec<Entry>,
    reply: oneshot::Sender<Result<Range<u64>, Unavailable>>,
}

enum Msg {
    Submit(Submit),
    /// Commit what is queued, refuse the rest, end the thread.
    Stop,
}

/// The async side of the WAL: submit a batch and wait until it is durable.
#[derive(Clone)]
pub struct WalHandle {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for WalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalHandle")
    }
}

impl WalHandle {
    /// Resolves once `entries` are fsynced in the WAL and in the reorder buffer.
    pub async fn commit(&self, entries: Vec<Entry>) -> Result<Range<u64>, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Submit(Submit { entries, reply }))
            .await
            .map_err(|_| Unavailable::ShuttingDown)?;
        rx.await.map_err(|_| Unavailable::ShuttingDown)?
    }

    /// Asks the writer thread to commit what is queued and stop. Later
    /// commits fail with [`Unavailable::ShuttingDown`].
    pub async fn stop(&self) {
        // An error means the thread is already gone.
        let _ = self.tx.send(Msg::Stop).await;
    }
}

/// Starts the group-commit thread. `on_commit` gets each fsynced group before
/// the submitters are answered; `on_fail` is called once if the WAL breaks.
/// The thread ends when every [`WalHandle`] is dropped and returns the writer.
pub fn spawn_writer(
    mut writer: WalWriter,
    stats: Arc<Stats>,
    mut on_commit: impl FnMut(Vec<Sequenced>) + Send + 'static,
    on_fail: impl FnOnce() + Send + 'static,
) -> io::Result<(WalHandle, thread::JoinHandle<WalWriter>)> {
    let (tx, mut rx) = mpsc::channel::<Msg>(4 * MAX_GROUP);
    let join = thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || {
            let mut on_fail = Some(on_fail);
            let mut group: Vec<Submit> = Vec::new();
            let mut stopping = false;
            loop {
                if !stopping {
                    match rx.blocking_recv() {
                        Some(Msg::Submit(s)) => group.push(s),
                        Some(Msg::Stop) | None => {
                            stopping = true;
                            rx.close();
                        }
                    }
                }
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Msg::Submit(s)) => group.push(s),
                        Ok(Msg::Stop) => {
                            stopping = true;
                            rx.close();
                        }
                        Err(_) => break,
                    }
                }
                if group.is_empty() {
                    if stopping {
                        break;
                    }
                    continue;
                }
                if on_fail.is_none() {
                    for s in group.drain(..) {
                        let _ = s.reply.send(Err(Unavailable::WalFailed));
                    }
                    continue;
                }
                let batches: Vec<&[Entry]> = group.iter().map(|s| s.entries.as_slice()).collect();
                match writer.append(&batches) {
                    Ok(ranges) => {
                        stats.record_commit(
                            group.len(),
                            ranges.iter().map(|r| r.end - r.start).sum(),
                            writer.last_fsync(),
                        );
                        let mut committed = Vec::new();
                        let mut replies = Vec::with_capacity(group.len());
                        for (s, range) in group.drain(..).zip(ranges) {
                            committed.extend(
                                range
                                    .clone()
                                    .zip(s.entries)
                                    .map(|(seq, entry)| Sequenced { seq, entry }),
                            );
                            replies.push((s.reply, range));
                        }
                        on_commit(committed);
                        for (reply, range) in replies {
                            // The submitter may have gone away; the entry is durable anyway.
                            let _ = reply.send(Ok(range));
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "WAL write failed; refusing further writes");
                        if let Some(f) = on_fail.take() {
                            f();
                        }
                        for s in group.drain(..) {
                            let _ = s.reply.send(Err(Unavailable::WalFailed));
                        }
                    }
                }
            }
            writer
        })?;
    Ok((WalHandle { tx }, join))
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::record::crc32;
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry {
            timestamp: OffsetDateTime::from_unix_timestamp_nanos(
                1_700_000_000_123_456_789 + i128::from(i),
            )
            .unwrap(),
            level: "INFO".into(),
            source: format!("src{i}"),
            message: format!("message {i}\nwith newline"),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-log-wal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn append_then_recover_skips_done_and_truncates_torn_tail() {
        let dir = tmp("recover");
        let segs = Segments::default();
        let mut w = WalWriter::open(&dir, 0, 1 << 20, segs.clone()).unwrap();
        let a: Vec<Entry> = (0..3).map(entry).collect();
        let b: Vec<Entry> = (3..5).map(entry).collect();
        assert_eq!(w.append(&[&a, &b]).unwrap(), vec![0..3, 3..5]);
        // A torn record: header and half a payload.
        let mut torn = Vec::new();
        encode_record(&mut torn, 5, &[entry(5)]);
        torn.truncate(torn.len() / 2);
        w.file.write_all(&torn).unwrap();
        drop(w);

        let mut done = SeqSet::default();
        done.insert(1);
        let r = recover(&dir, &done).unwrap();
        assert_eq!(r.seq_end, 5);
        assert_eq!(r.segments, vec![0]);
        let seqs: Vec<u64> = r.pending.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [0, 2, 3, 4]);
        assert_eq!(r.pending[3].entry, entry(4));
        let len = fs::metadata(segment_path(&dir, 0)).unwrap().len();
        let mut expected = Vec::new();
        encode_record(&mut expected, 0, &a);
        encode_record(&mut expected, 3, &b);
        assert_eq!(len, expected.len() as u64, "torn tail truncated");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_record_stops_recovery_there() {
        let dir = tmp("corrupt");
        let mut w = WalWriter::open(&dir, 10, 1 << 20, Segments::default()).unwrap();
        w.append(&[&[entry(0)], &[entry(1)]]).unwrap();
        drop(w);
        let path = segment_path(&dir, 10);
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, &data).unwrap();
        let r = recover(&dir, &SeqSet::default()).unwrap();
        assert_eq!(r.pending.len(), 1);
        assert_eq!(r.seq_end, 11);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rolls_segments_and_removes_finished_ones() {
        let dir = tmp("roll");
        let segs = Segments::default();
        let mut w = WalWriter::open(&dir, 0, 1, segs.clone()).unwrap();
        for i in 0..3 {
            w.append(&[&[entry(i)]]).unwrap();
        }
        assert_eq!(*segs.lock(), vec![0, 1, 2]);
        remove_done_segments(&dir, &segs, 2, None).unwrap();
        assert_eq!(*segs.lock(), vec![2]);
        remove_done_segments(&dir, &segs, 3, None).unwrap();
        assert_eq!(*segs.lock(), vec![2], "active segment kept while writing");
        remove_done_segments(&dir, &segs, 3, Some(w.next_seq())).unwrap();
        assert!(segs.lock().is_empty());
        assert!(list_segments(&dir).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
