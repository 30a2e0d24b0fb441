//! Reading on a busy HTTP/1.1 connection: the request body moved to the
//! service as it asks for it (`100 Continue` first when owed), and after
//! the response what the service left of it, read and thrown away so that
//! the next head can be read (or the connection is not reused).

use super::*;

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<'_, I> {
    /// Moves request body frames from the client to the service as the
    /// service asks for them. Ready when there is nothing more to move.
    pub(super) fn poll_body(&mut self, cx: &mut Context<'_>, ex: &mut Exchange) -> Poll<()> {
        loop {
            let ReqBody::Reading(sender) = &mut ex.body else {
                return Poll::Ready(());
            };
            match ready!(sender.poll_want(cx)) {
                Want::Frame => {}
                Want::Dropped => {
                    if let ReqBody::Reading(s) = std::mem::replace(&mut ex.body, ReqBody::Done) {
                        ex.body = ReqBody::Unwanted(s);
                    }
                    return Poll::Ready(());
                }
            }
            if ex.cont == Continue::Owed {
                self.wbuf.buf.extend_from_slice(CONTINUE);
                ex.cont = Continue::Done;
            }
            let step = sender.decoder.decode(&mut self.rbuf);
            match step {
                Ok(Decoded::Frame(f)) => {
                    sender.send(Ok(f));
                    if sender.is_finished() {
                        ex.body = ReqBody::Done;
                    }
                }
                Ok(Decoded::End) => {
                    sender.finish();
                    ex.body = ReqBody::Done;
                }
                Ok(Decoded::NeedMore) => {
                    // A `100 Continue` (or response bytes) must be out before
                    // we wait on the client.
                    let read = match ready!(self.wbuf.poll_flush(&mut *self.io, cx)) {
                        Ok(()) => ready!(self.poll_read(cx, BODY_READ)),
                        Err(e) => Err(e),
                    };
                    let err = match read {
                        Ok(0) => BodyError::Incomplete,
                        Ok(_) => continue,
                        Err(_) => BodyError::Io,
                    };
                    sender.send(Err(err));
                    ex.body = ReqBody::Broken;
                }
                Err(e) => {
                    sender.send(Err(e));
                    ex.body = ReqBody::Broken;
                }
            }
        }
    }

    /// After the response: the request body must be consumed before the
    /// next head can be read. `false` if the connection cannot be reused.
    pub(super) async fn finish_body(&mut self, ex: &mut Exchange) -> bool {
        let mut sender = match std::mem::replace(&mut ex.body, ReqBody::Done) {
            ReqBody::Done => return true,
            ReqBody::Broken => return false,
            ReqBody::Reading(s) | ReqBody::Unwanted(s) => s,
        };
        // The service is done with it (or will get an error if it still
        // holds it): take the decoder and throw the rest away.
        let mut decoder = std::mem::replace(&mut sender.decoder, Decoder::new(Framing::None, 0));
        drop(sender);
        if decoder.remaining().is_some_and(|n| n > DISCARD_MAX) {
            return false;
        }
        let mut discarded = 0u64;
        let limit = self.settings.header_timeout;
        let discard = poll_fn(|cx| {
            loop {
                match decoder.decode(&mut self.rbuf) {
                    Ok(Decoded::End) => return Poll::Ready(true),
                    Ok(Decoded::Frame(f)) => {
                        discarded += f.data_ref().map_or(0, |d| d.len() as u64);
                        if discarded > DISCARD_MAX {
                            return Poll::Ready(false);
                        }
                    }
                    Ok(Decoded::NeedMore) => match ready!(self.poll_read(cx, BODY_READ)) {
                        Ok(0) | Err(_) => return Poll::Ready(false),
                        Ok(_) => {}
                    },
                    Err(_) => return Poll::Ready(false),
                }
            }
        });
        tokio::time::timeout(limit, discard).await.unwrap_or(false)
    }
}
