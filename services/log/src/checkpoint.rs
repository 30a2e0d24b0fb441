//! The output writer's durable progress: which WAL sequence numbers are in the
//! output files, and exactly how long the current output file was when that
//! was true.
//!
//! Entries leave the reorder buffer in timestamp order, not WAL order, so "the
//! highest seq written" is not enough: the checkpoint keeps the whole set of
//! written seqs as a low watermark plus ranges above it ([`SeqSet`]). In steady
//! state that is a handful of ranges.
//!
//! The checkpoint is replaced atomically (write temp, fsync, rename, fsync dir),
//! and only after the output file itself was fsynced. Recovery truncates the
//! output file back to `file_len` and re-emits every WAL entry not in `done`:
//! lines written after the last checkpoint are thrown away and written again,
//! so a crash anywhere gives every acknowledged entry exactly once.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StartError;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
const CHECKPOINT_TMP: &str = "checkpoint.json.tmp";

/// A set of sequence numbers: everything below `watermark`, plus disjoint,
/// non-adjacent half-open ranges above it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    watermark: u64,
    /// start → end (exclusive); every start > watermark.
    ranges: BTreeMap<u64, u64>,
}

impl SeqSet {
    /// All seqs below this are in the set.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// One past the highest seq in the set (or the watermark when none above).
    pub fn end(&self) -> u64 {
        self.ranges
            .last_key_value()
            .map_or(self.watermark, |(_, &e)| e)
    }

    pub fn contains(&self, seq: u64) -> bool {
        seq < self.watermark
            || self
                .ranges
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, &e)| seq < e)
    }

    pub fn insert(&mut self, seq: u64) {
        if seq < self.watermark {
            return;
        }
        let (mut start, mut end) = (seq, seq + 1);
        if let Some((&s, &e)) = self.ranges.range(..=seq).next_back() {
            if e > seq {
                return;
            }
            if e == seq {
                start = s;
                self.ranges.remove(&s);
            }
        }
        if let Some(e) = self.ranges.remove(&end) {
            end = e;
        }
        if start == self.watermark {
            self.watermark = end;
        } else {
            self.ranges.insert(start, end);
        }
    }

    /// Number of ranges above the watermark (for tests and stats).
    pub fn fragments(&self) -> usize {
        self.ranges.len()
    }
}

/// The durable progress record. See the module docs for the protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Inode of the output file this checkpoint measured (`app.log`, or
    /// `app.log.1` if a rotation happened after it was written).
    pub file_ino: u64,
    /// Durable length of that file covered by `done`.
    pub file_len: u64,
    /// WAL seqs whose lines are in the output files.
    pub done: SeqSet,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    file_ino: u64,
    file_len: u64,
    watermark: u64,
    ranges: Vec<(u64, u64)>,
}

impl Checkpoint {
    /// Loads the checkpoint, `Ok(None)` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Checkpoint>, StartError> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StartError::io("reading checkpoint", &path)(e)),
        };
        let d: OnDisk = serde_json::from_slice(&bytes)
            .map_err(|_| StartError::CorruptCheckpoint("not valid JSON"))?;
        if d.version != 1 {
            return Err(StartError::CorruptCheckpoint("unknown version"));
        }
        let mut ranges = BTreeMap::new();
        let mut last = d.watermark;
        for (s, e) in d.ranges {
            if s <= last || e <= s {
                return Err(StartError::CorruptCheckpoint("ranges not ordered"));
            }
            ranges.insert(s, e);
            last = e;
        }
        Ok(Some(Checkpoint {
            file_ino: d.file_ino,
            file_len: d.file_len,
            done: SeqSet {
                watermark: d.watermark,
                ranges,
            },
        }))
    }

    /// Atomically replaces the checkpoint on disk. Blocking.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        let d = OnDisk {
            version: 1,
            file_ino: self.file_ino,
            file_len: self.file_len,
            watermark: self.done.watermark,
            ranges: self.done.ranges.iter().map(|(&s, &e)| (s, e)).collect(),
        };
        let bytes = serde_json::to_vec(&d).map_err(io::Error::other)?;
        let tmp = dir.join(CHECKPOINT_TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
        sync_dir(dir)
    }
}

/// Makes renames and creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_merges_out_of_order_inserts() {
        let mut s = SeqSet::default();
        for seq in [3, 1, 5, 4] {
            s.insert(seq);
        }
        assert_eq!(s.watermark(), 0);
        assert!(s.contains(1) && s.contains(3) && s.contains(4) && s.contains(5));
        assert!(!s.contains(0) && !s.contains(2) && !s.contains(6));
        assert_eq!(s.fragments(), 2);
        s.insert(0);
        assert_eq!(s.watermark(), 2);
        s.insert(2);
        assert_eq!(s.watermark(), 6);
        assert_eq!(s.fragments(), 0);
        assert_eq!(s.end(), 6);
        s.insert(2);
        assert_eq!(s.watermark(), 6);
    }

    #[test]
    fn seqset_matches_a_naive_set() {
        let mut s = SeqSet::default();
        let mut naive = std::collections::BTreeSet::new();
        // A deterministic permutation of 0..200.
        for i in 0..200u64 {
            let seq = (i * 37) % 200;
            s.insert(seq);
            naive.insert(seq);
            for q in 0..201 {
                assert_eq!(
                    s.contains(q),
                    naive.contains(&q),
                    "after inserting {seq}, query {q}"
                );
            }
        }
        assert_eq!(s.watermark(), 200);
    }

    #[test]
    fn checkpoint_round_trips() {
        let dir = std::env::temp_dir().join(format!("sluice-log-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(Checkpoint::load(&dir).unwrap(), None);
        let mut done = SeqSet::default();
        for seq in [0, 1, 2, 7, 9, 10] {
            done.insert(seq);
        }
        let c = Checkpoint {
            file_ino: 42,
            file_len: 1234,
            done,
        };
        c.store(&dir).unwrap();
        assert_eq!(Checkpoint::load(&dir).unwrap(), Some(c));
        fs::write(dir.join(CHECKPOINT_FILE), b"{garbage").unwrap();
        assert!(matches!(
            Checkpoint::load(&dir),
            Err(StartError::CorruptCheckpoint(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
