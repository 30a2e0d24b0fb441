//! The brotli encoder (`Content-Encoding: br`): the `brotli` crate, a
//! pure-Rust port of Google's encoder (no C, no `unsafe` with only its
//! `std` feature), driven through its `BrotliEncoderCompressStream` API.
//!
//! Memory per stream is bounded by the window (`brotli_window_log`: the
//! ring buffer holds 2^lgwin bytes) and the quality's hash tables; both are
//! fixed when the stream starts (perf/findings/2026-12-02-brotli-zstd.md).

use super::encoder::{EncodeError, Flush, reserve};
use ::brotli::enc::StandardAlloc;
use ::brotli::enc::encode::{
    BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct,
};
use bytes::BytesMut;

/// One brotli stream.
pub struct Br {
    /// Boxed: the state is about 1.7 KiB inline, and moves with the body.
    s: Box<BrotliEncoderStateStruct<StandardAlloc>>,
}

impl Br {
    /// `quality` 0 to 11, `lgwin` 10 to 24 (validated in config).
    pub(super) fn new(quality: u32, lgwin: u32) -> Br {
        let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, quality);
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, lgwin);
        Br { s: Box::new(s) }
    }

    /// Compresses `input` into `out`, then flushes or finishes as asked.
    ///
    /// A flush (`BROTLI_OPERATION_FLUSH`) ends the meta-block and pads to a
    /// byte, so everything so far decodes; brotli wants the same operation
    /// repeated until the input is in and no output is pending
    /// (dropbox/rust-brotli#73), which is what the loop does.
    pub(super) fn encode(
        &mut self,
        input: &[u8],
        flush: Flush,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let op = match flush {
            Flush::None => BrotliEncoderOperation::BROTLI_OPERATION_PROCESS,
            Flush::Sync => BrotliEncoderOperation::BROTLI_OPERATION_FLUSH,
            Flush::Finish => BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
        };
        let (mut avail_in, mut in_off) = (input.len(), 0);
        loop {
            let (start, room) = reserve(out, avail_in);
            let (mut avail_out, mut out_off, mut total) = (room, 0, None);
            let before = avail_in;
            let ok = self.s.compress_stream(
                op,
                &mut avail_in,
                input,
                &mut in_off,
                &mut avail_out,
                &mut out[start..],
                &mut out_off,
                &mut total,
                &mut |_, _, _, _| (),
            );
            out.truncate(start + out_off);
            if !ok {
                return Err(EncodeError::Brotli);
            }
            let done = match flush {
                Flush::Finish => self.s.is_finished(),
                Flush::None | Flush::Sync => avail_in == 0 && !self.s.has_more_output(),
            };
            if done {
                return Ok(());
            }
            if out_off == 0 && avail_in == before {
                return Err(EncodeError::Stalled);
            }
        }
    }
}
