//! Writing on a busy HTTP/1.1 connection: the backend's 1xx responses
//! (`crate::interim`), the service's response (head, then the body with its
//! framing, while the request body may still be read), a refusal made by
//! `proxy::respond`, flushes, and the close.

use super::*;

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<'_, I> {
    /// Writes the 1xx responses the backend sent so far. A failed write is
    /// left for the final response to find.
    ///
    /// A client that does not read must not make the proxy hold the heads:
    /// while the write buffer is full they stay in the queue, which takes at
    /// most `interim::MAX_QUEUED` (the backend's further 1xx are dropped).
    pub(super) fn poll_interim(&mut self, cx: &mut Context<'_>, ex: &mut Exchange) {
        let Some(rx) = &mut ex.interim else {
            return;
        };
        let mut queued = false;
        loop {
            if self.wbuf.is_full() {
                let _ = self.wbuf.poll_flush(&mut *self.io, cx);
                if self.wbuf.is_full() {
                    // Woken by the socket (or the deferred flush) to go on.
                    return;
                }
            }
            let Poll::Ready(Some(mut i)) = rx.poll_recv(cx) else {
                break;
            };
            crate::proxy::headers::strip_hop_by_hop(&mut i.headers, false);
            write::encode_head(
                &mut self.wbuf.buf,
                i.status,
                &i.headers,
                Framing::None,
                ConnHeader::AsIs,
            );
            queued = true;
        }
        if queued {
            let _ = self.wbuf.poll_flush(&mut *self.io, cx);
        }
    }

    /// Writes the response; `Ok(true)` if the connection may be reused.
    pub(super) async fn write_response<B>(
        &mut self,
        resp: Response<B>,
        head_request: bool,
        http10: bool,
        keep_alive: bool,
        ex: &mut Exchange,
    ) -> Result<bool, ConnError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = resp.into_parts();
        let framing = response_framing(head_request, parts.status, &body.size_hint(), http10);
        if ex.cont == Continue::Owed {
            ex.cont = Continue::Skipped;
        }
        let keep = keep_alive && framing != Framing::Close && ex.cont != Continue::Skipped;
        let conn_header = match (keep, http10) {
            (false, _) => ConnHeader::Close,
            (true, true) => ConnHeader::KeepAlive,
            (true, false) => ConnHeader::AsIs,
        };
        write::encode_head(
            &mut self.wbuf.buf,
            parts.status,
            &parts.headers,
            framing,
            conn_header,
        );
        drop(parts);
        if framing == Framing::None {
            drop(body);
            self.flush_while_reading(ex).await?;
            return Ok(keep);
        }
        let mut body = pin!(body);
        let mut written = 0u64;
        let mut ended = false;
        poll_fn(|cx| {
            loop {
                let _ = self.poll_body(cx, ex);
                if self.wbuf.is_full() || (ended && !self.wbuf.is_empty()) {
                    ready!(self.wbuf.poll_flush(&mut *self.io, cx))?;
                }
                if ended {
                    ready!(Pin::new(&mut *self.io).poll_flush(cx))?;
                    return Poll::Ready(Ok(()));
                }
                let frame = match body.as_mut().poll_frame(cx) {
                    Poll::Pending => {
                        if self.wbuf.is_empty() {
                            return Poll::Pending;
                        }
                        ready!(self.wbuf.poll_flush(&mut *self.io, cx))?;
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(ConnError::ResponseBody(e.into())));
                    }
                    Poll::Ready(None) => None,
                    Poll::Ready(Some(Ok(frame))) => Some(frame),
                };
                match frame.map(|f| f.into_data()) {
                    Some(Ok(data)) => {
                        written += data.len() as u64;
                        if matches!(framing, Framing::Length(n) if written > n) {
                            return Poll::Ready(Err(ConnError::LengthMismatch));
                        }
                        self.wbuf.push_data(framing, data);
                        if !body.is_end_stream() {
                            continue;
                        }
                    }
                    // Trailers only exist on the wire for chunked bodies.
                    Some(Err(frame)) => {
                        if let (Framing::Chunked, Ok(t)) = (framing, frame.into_trailers()) {
                            write::encode_chunked_end(&mut self.wbuf.buf, Some(&t));
                            ended = true;
                        }
                        continue;
                    }
                    None => {}
                }
                if matches!(framing, Framing::Length(n) if written != n) {
                    return Poll::Ready(Err(ConnError::LengthMismatch));
                }
                if framing == Framing::Chunked {
                    self.wbuf.push_chunked_end();
                }
                ended = true;
            }
        })
        .await?;
        Ok(keep)
    }

    /// Flushes `wbuf` while still feeding the request body.
    async fn flush_while_reading(&mut self, ex: &mut Exchange) -> io::Result<()> {
        poll_fn(|cx| {
            let _ = self.poll_body(cx, ex);
            ready!(self.wbuf.poll_flush(&mut *self.io, cx))?;
            Pin::new(&mut *self.io).poll_flush(cx)
        })
        .await
    }

    pub(super) async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.wbuf.poll_flush(&mut *self.io, cx)).await?;
        self.io.flush().await
    }

    /// A response the connection makes itself (a refused head or a
    /// timeout), made by `proxy::respond` like every error response; then
    /// the connection closes.
    pub(super) async fn write_refusal(&mut self, err: &ProxyError) -> io::Result<()> {
        let (status, headers, body) = respond::error_parts(err);
        write::encode_head(
            &mut self.wbuf.buf,
            status,
            &headers,
            Framing::Length(body.len() as u64),
            ConnHeader::Close,
        );
        self.wbuf.buf.extend_from_slice(&body);
        self.flush().await?;
        self.io.shutdown().await
    }

    pub(super) async fn close(mut self) -> Result<Busy, ConnError> {
        self.flush().await?;
        // The peer may have gone already; that is how most connections end.
        let _ = self.io.shutdown().await;
        Ok(Busy::Closed)
    }
}
