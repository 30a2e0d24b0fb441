//! The WAL's record format: encoding a batch of entries into one
//! checksummed record, and decoding the valid prefix of a segment.
//!
//! Record layout (little endian):
//! `magic u32 | payload_len u32 | crc32(payload) u32 | payload`, where
//! `payload = first_seq u64 | count u32 | count × (ts_nanos i128 | level u16+bytes
//! | source u16+bytes | message u32+bytes)`.
//! A crash can only tear the tail of the active segment; decoding stops at the
//! first record that does not check out.

use std::ops::Range;

use time::OffsetDateTime;

use crate::entry::Entry;
use crate::order::Sequenced;

const MAGIC: u32 = 0x534c_5731; // "SLW1"
const HEADER: usize = 12;
/// Upper bound on one record, far above any accepted request body.
const MAX_RECORD: usize = 256 << 20;

// ---- CRC-32 (IEEE), table computed at compile time ----

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---- encoding ----

fn put_str16(buf: &mut Vec<u8>, s: &str) {
    // level and source are validated to be far shorter than u16::MAX.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Appends one record holding `entries` with seqs starting at `first_seq`.
pub(super) fn encode_record(buf: &mut Vec<u8>, first_seq: u64, entries: &[Entry]) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.extend_from_slice(&first_seq.to_le_bytes());
    buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        buf.extend_from_slice(&e.timestamp.unix_timestamp_nanos().to_le_bytes());
        put_str16(buf, &e.level);
        put_str16(buf, &e.source);
        buf.extend_from_slice(&(e.message.len() as u32).to_le_bytes());
        buf.extend_from_slice(e.message.as_bytes());
    }
    let payload_len = (buf.len() - start - HEADER) as u32;
    let crc = crc32(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn string(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_payload(payload: &[u8], out: &mut Vec<Sequenced>) -> Option<Range<u64>> {
    let mut r = Reader(payload);
    let first = u64::from_le_bytes(r.array()?);
    let count = u64::from(u32::from_le_bytes(r.array()?));
    for i in 0..count {
        let ts = i128::from_le_bytes(r.array()?);
        let level_len = u16::from_le_bytes(r.array()?);
        let level = r.string(usize::from(level_len))?;
        let source_len = u16::from_le_bytes(r.array()?);
        let source = r.string(usize::from(source_len))?;
        let msg_len = u32::from_le_bytes(r.array()?);
        let message = r.string(msg_len as usize)?;
        out.push(Sequenced {
            seq: first + i,
            entry: Entry {
                timestamp: OffsetDateTime::from_unix_timestamp_nanos(ts).ok()?,
                level,
                source,
                message,
            },
        });
    }
    r.0.is_empty().then_some(first..first + count)
}

/// Decodes records from the start of `data`. Returns the byte length of the
/// valid prefix and the seq range end seen.
pub(super) fn decode_segment(data: &[u8], out: &mut Vec<Sequenced>) -> (usize, Option<u64>) {
    let mut pos = 0;
    let mut end = None;
    while data.len() - pos >= HEADER {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&data[pos + i..pos + i + 4]);
            u32::from_le_bytes(w)
        };
        let (magic, len, crc) = (word(0), word(4) as usize, word(8));
        if magic != MAGIC || len > MAX_RECORD || data.len() - pos - HEADER < len {
            break;
        }
        let payload = &data[pos + HEADER..pos + HEADER + len];
        if crc32(payload) != crc {
            break;
        }
        let before = out.len();
        match decode_payload(payload, out) {
            Some(range) => end = Some(range.end),
            None => {
                out.truncate(before);
                break;
            }
        }
        pos += HEADER + len;
    }
    (pos, end)
}
