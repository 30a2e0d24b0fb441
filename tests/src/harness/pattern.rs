//! Large bodies that are generated as they are sent and checked as they
//! arrive, so a 256 MiB transfer never sits in the test's memory: the only
//! thing that could hold it is the proxy, which is what the memory test checks.
//!
//! The stream is a fixed pseudo-random block of [`PERIOD`] bytes (a prime, so
//! chunk boundaries never line up with it) repeated. [`PatternCheck`] compares
//! every received byte with the generator (`memcmp`, fast even unoptimised),
//! which is stronger than a checksum: a dropped, duplicated or reordered chunk
//! fails it.

use super::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// Length of the repeating block.
pub const PERIOD: usize = 65_521;
/// Size of each generated frame.
const CHUNK: usize = 32 * 1024;

/// The block, stored twice so any `PERIOD`-long window is one slice.
fn doubled() -> &'static Bytes {
    static BLOCK: OnceLock<Bytes> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let block: Vec<u8> = (0..PERIOD)
            .map(|_| {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut twice = block.clone();
        twice.extend_from_slice(&block);
        Bytes::from(twice)
    })
}

/// A body of `total` pattern bytes, with an exact size hint (so HTTP/1.1
/// sends it with `Content-Length`). Frames share one buffer: nothing is copied.
#[derive(Debug)]
pub struct PatternBody {
    sent: u64,
    total: u64,
}

impl PatternBody {
    pub fn new(total: u64) -> PatternBody {
        PatternBody { sent: 0, total }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let left = self.total - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
        let start = (self.sent % PERIOD as u64) as usize;
        self.sent += len as u64;
        Poll::Ready(Some(Ok(Frame::data(doubled().slice(start..start + len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

/// Checks a received stream against the pattern, chunk by chunk.
#[derive(Debug, Default)]
pub struct PatternCheck {
    count: u64,
    corrupt_at: Option<u64>,
}

impl PatternCheck {
    pub fn feed(&mut self, mut data: &[u8]) {
        let block = doubled();
        while !data.is_empty() {
            let start = (self.count % PERIOD as u64) as usize;
            let n = data.len().min(PERIOD);
            if self.corrupt_at.is_none() && data[..n] != block[start..start + n] {
                self.corrupt_at = Some(self.count);
            }
            self.count += n as u64;
            data = &data[n..];
        }
    }

    /// Bytes seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether every byte so far matched the pattern.
    pub fn ok(&self) -> bool {
        self.corrupt_at.is_none()
    }

    /// The offset of the first wrong byte's chunk, if any.
    pub fn corrupt_at(&self) -> Option<u64> {
        self.corrupt_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn generated_stream_checks_out_and_corruption_is_caught() {
        let mut body = PatternBody::new(3 * PERIOD as u64 + 17);
        let mut check = PatternCheck::default();
        let mut wrong = PatternCheck::default();
        while let Some(f) = body.frame().await {
            let d = f.unwrap().into_data().unwrap();
            check.feed(&d);
            let mut d = d.to_vec();
            d[0] ^= 1;
            wrong.feed(&d);
        }
        assert_eq!(check.count(), 3 * PERIOD as u64 + 17);
        assert!(check.ok());
        assert_eq!(wrong.corrupt_at(), Some(0));
    }
}
