//! The zstd encoder (`Content-Encoding: zstd`, RFC 9659): the reference
//! libzstd through the `zstd` crate's streaming `raw::Encoder`
//! (`ZSTD_compressStream2`).
//!
//! Memory per stream is the window plus the level's match tables, fixed
//! when the stream starts; with the size unknown in advance libzstd sizes
//! them for the level's own window (2 MiB at level 3, 8 MiB at 19), which
//! is how Traefik's zstd ran out of memory under load. So the window is
//! always set: `zstd_window_log`, at most 23 (8 MiB), the most RFC 9659
//! §3 lets an HTTP encoder use (perf/findings/2026-12-02-brotli-zstd.md).

use super::encoder::{EncodeError, Flush, reserve};
use ::zstd::stream::raw::{CParameter, Encoder, Operation, OutBuffer};
use bytes::BytesMut;

/// One zstd frame.
pub struct Zstd {
    e: Encoder<'static>,
}

impl Zstd {
    /// `level` 1 to 19 and `window_log` 10 to 23 (validated in config).
    /// Fails only if libzstd cannot allocate its context.
    pub(super) fn new(level: i32, window_log: u32) -> Result<Zstd, EncodeError> {
        let mut e = Encoder::new(level).map_err(EncodeError::Zstd)?;
        e.set_parameter(CParameter::WindowLog(window_log))
            .map_err(EncodeError::Zstd)?;
        Ok(Zstd { e })
    }

    /// Compresses `input` into `out`, then flushes (`ZSTD_e_flush`: the
    /// block so far is written and decodable) or ends the frame as asked.
    pub(super) fn encode(
        &mut self,
        mut input: &[u8],
        flush: Flush,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        while !input.is_empty() {
            let (start, _) = reserve(out, input.len());
            let st = self.e.run_on_buffers(input, &mut out[start..]);
            let st = st
                .inspect_err(|_| out.truncate(start))
                .map_err(EncodeError::Zstd)?;
            out.truncate(start + st.bytes_written);
            if st.bytes_read == 0 && st.bytes_written == 0 {
                return Err(EncodeError::Stalled);
            }
            input = input.get(st.bytes_read..).unwrap_or_default();
        }
        if flush == Flush::None {
            return Ok(());
        }
        loop {
            let (start, _) = reserve(out, 0);
            let mut buf = OutBuffer::around(&mut out[start..]);
            let left = match flush {
                Flush::Finish => self.e.finish(&mut buf, true),
                Flush::None | Flush::Sync => self.e.flush(&mut buf),
            };
            let written = buf.pos();
            out.truncate(start + written);
            match left.map_err(EncodeError::Zstd)? {
                0 => return Ok(()),
                _ if written == 0 => return Err(EncodeError::Stalled),
                _ => {}
            }
        }
    }
}
