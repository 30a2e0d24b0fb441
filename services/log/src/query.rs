//! Read-back stage: `GET /logs?since=&until=&level=&source=&limit=`.
//!
//! Sources, consistent with each other because they are captured under the
//! one [`Pending`] lock: the rotated files (oldest first), the complete-line
//! prefix of `app.log`, the batch being written, and the reorder buffer. The
//! result is the `limit` earliest matching entries, ordered by timestamp
//! (ties in file order). Blocking: call from `spawn_blocking`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use parking_lot::Mutex;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::entry::{Entry, Format};
use crate::error::QueryError;
use crate::output::{Pending, output_path};

/// Entries returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 100_000;

/// A validated `/logs` query. `since` is inclusive, `until` exclusive; `level`
/// matches case-insensitively, `source` exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub level: Option<String>,
    pub source: Option<String>,
    pub limit: usize,
}

impl Query {
    /// Parses the raw query string. Values are percent-decoded; `+` is kept
    /// literally so that `since=...+02:00` means what it says.
    pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        let mut q = Query {
            since: None,
            until: None,
            level: None,
            source: None,
            limit: DEFAULT_LIMIT,
        };
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| QueryError::BadEncoding)?;
            let time = |e| OffsetDateTime::parse(&v, &Rfc3339).map_err(|_| e);
            match k {
                "since" => q.since = Some(time(QueryError::BadSince)?),
                "until" => q.until = Some(time(QueryError::BadUntil)?),
                "level" => q.level = Some(v.into_owned()),
                "source" => q.source = Some(v.into_owned()),
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(QueryError::BadLimit)?
                        .min(MAX_LIMIT);
                }
                _ => {} // unknown parameters are ignored
            }
        }
        Ok(q)
    }

    pub fn matches(&self, e: &Entry) -> bool {
        self.since.is_none_or(|s| e.timestamp >= s)
            && self.until.is_none_or(|u| e.timestamp < u)
            && self
                .level
                .as_deref()
                .is_none_or(|l| e.level.eq_ignore_ascii_case(l))
            && self.source.as_deref().is_none_or(|s| e.source == s)
    }
}

/// Keeps the `limit` smallest `(timestamp, ordinal)` entries seen.
struct Earliest {
    limit: usize,
    next: u64,
    heap: BinaryHeap<Ranked>,
}

struct Ranked {
    key: (i128, u64),
    entry: Entry,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl Earliest {
    fn offer(&mut self, q: &Query, entry: &Entry) {
        if !q.matches(entry) {
            return;
        }
        let key = (entry.timestamp.unix_timestamp_nanos(), self.next);
        self.next += 1;
        if self.heap.len() == self.limit && self.heap.peek().is_some_and(|top| top.key <= key) {
            return;
        }
        self.heap.push(Ranked {
            key,
            entry: entry.clone(),
        });
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
}

/// Runs `q` against the files in `dir` and the in-memory entries.
pub fn run(
    dir: &Path,
    format: Format,
    keep: usize,
    pending: &Mutex<Pending>,
    q: &Query,
) -> io::Result<Vec<Entry>> {
    let mut found = Earliest {
        limit: q.limit,
        next: 0,
        heap: BinaryHeap::new(),
    };
    let mut memory = Earliest {
        limit: q.limit,
        next: 0,
        heap: BinaryHeap::new(),
    };
    let mut files: Vec<Box<dyn Read>> = Vec::new();
    {
        let p = pending.lock();
        for generation in (1..=keep).rev() {
            if let Ok(f) = File::open(output_path(dir, generation)) {
                files.push(Box::new(f));
            }
        }
        match File::open(output_path(dir, 0)) {
            Ok(f) => files.push(Box::new(f.take(p.visible_len))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for s in p.in_flight.iter().flat_map(|f| f.unwritten()) {
            memory.offer(q, &s.entry);
        }
        for e in p.buffer.iter() {
            memory.offer(q, e);
        }
    }
    for f in files {
        for line in BufReader::new(f).lines() {
            let line = line?;
            match Entry::parse_line(&line, format) {
                Some(e) => found.offer(q, &e),
                None => tracing::debug!(line, "skipping unparsable output line"),
            }
        }
    }
    // Memory entries come after everything on disk at equal timestamps.
    let base = found.next;
    for mut r in memory.heap.drain() {
        r.key.1 += base;
        found.heap.push(r);
        if found.heap.len() > found.limit {
            found.heap.pop();
        }
    }
    Ok(found
        .heap
        .into_sorted_vec()
        .into_iter()
        .map(|r| r.entry)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_parameters() {
        let q = Query::parse(Some(
            "since=2024-01-01T00:00:00%2B02:00&level=warn&source=a%20b&limit=5&x=1",
        ))
        .unwrap();
        assert_eq!(q.since.unwrap().unix_timestamp(), 1_704_060_000);
        assert_eq!(q.level.as_deref(), Some("warn"));
        assert_eq!(q.source.as_deref(), Some("a b"));
        assert_eq!(q.limit, 5);
        let q = Query::parse(Some("until=2024-01-01T00:00:00+02:00")).unwrap();
        assert_eq!(q.until.unwrap().unix_timestamp(), 1_704_060_000);
        assert_eq!(Query::parse(None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(
            Query::parse(Some("since=yesterday")),
            Err(QueryError::BadSince)
        );
        assert_eq!(Query::parse(Some("until=1")), Err(QueryError::BadUntil));
        assert_eq!(Query::parse(Some("limit=0")), Err(QueryError::BadLimit));
        assert_eq!(Query::parse(Some("limit=-3")), Err(QueryError::BadLimit));
    }

    #[test]
    fn earliest_keeps_the_first_n_by_time() {
        let q = Query::parse(Some("limit=2")).unwrap();
        let mut e = Earliest {
            limit: 2,
            next: 0,
            heap: BinaryHeap::new(),
        };
        for secs in [30, 10, 20, 5, 40] {
            e.offer(
                &q,
                &Entry {
                    timestamp: OffsetDateTime::from_unix_timestamp(secs).unwrap(),
                    level: "I".into(),
                    source: "s".into(),
                    message: String::new(),
                },
            );
        }
        let got: Vec<i64> = e
            .heap
            .into_sorted_vec()
            .iter()
            .map(|r| r.entry.timestamp.unix_timestamp())
            .collect();
        assert_eq!(got, [5, 10]);
    }
}
