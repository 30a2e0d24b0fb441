//! The response body of an HTTP/1.1 exchange: decoded from the connection's
//! read buffer as the client takes it, and the connection's way back to the
//! pool at its end ([`Return`]).

use super::*;
/// Where a connection goes when its response has been read to its end.
#[derive(Debug)]
pub struct Return {
    pub pool: Arc<Pool>,
    pub backend: u64,
    pub max_idle: usize,
}

/// Why a response body could not be read to its end. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyReadError {
    #[error("backend closed the connection before the end of the body")]
    Closed,
    #[error("backend connection failed while sending the body: {0:?}")]
    Io(io::ErrorKind),
    #[error("invalid body from the backend: {0}")]
    Framing(BodyError),
}

/// A backend's response body, read from its connection as the client takes
/// it. The connection goes back to the pool at the body's end if it can
/// carry another request; dropped early, it is closed.
#[derive(Debug)]
pub struct ResponseBody {
    /// `None` once the body is over (returned, closed or failed).
    conn: Option<H1Conn>,
    reading: Decoder,
    reusable: bool,
    back: Option<Return>,
    /// The rest of the request body, when the backend answered before it
    /// was all sent: it goes on streaming while the response is read.
    upload: Option<Box<Upload>>,
    /// That rest failed on the client's side (with this kind): the backend
    /// may wait for bytes that never come, and is not to blame.
    upload_failed: Option<ErrorKind>,
}

impl ResponseBody {
    /// The response: the answer's head, and the body that follows it on `conn`.
    pub fn response(conn: H1Conn, answer: Answer, back: Return) -> http::Response<ResponseBody> {
        let Answer { head, upload } = answer;
        let reading = Decoder::new(head.framing, MAX_TRAILER_BYTES);
        let mut body = ResponseBody {
            conn: Some(conn),
            reading,
            reusable: head.reusable,
            back: Some(back),
            upload,
            upload_failed: None,
        };
        if head.status != StatusCode::SWITCHING_PROTOCOLS && body.reading.is_done() {
            body.finish();
        }
        let mut resp = http::Response::new(body);
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        resp
    }

    /// Who has the next move in sending the request (see [`Phase`]): the
    /// client while the rest of its body is awaited, else the backend.
    /// What the response body's stall clock reads (`proxy::body`).
    pub fn upload_phase(&self) -> Phase {
        match (&self.upload, self.upload_failed) {
            (Some(up), _) => up.phase(),
            (None, Some(kind)) => Phase::Failed(kind),
            (None, None) => Phase::Sent,
        }
    }

    /// The connection after a 101 (for the tunnel); `None` if already gone.
    pub fn into_upgraded(mut self) -> Option<Upgraded> {
        self.back = None;
        self.upload = None;
        self.conn.take().map(H1Conn::into_upgraded)
    }

    /// The body is over: the connection goes back if it is clean.
    fn finish(&mut self) {
        let (Some(mut conn), Some(back)) = (self.conn.take(), self.back.take()) else {
            return;
        };
        // Bytes past the body are a backend bug; never hand them to the next
        // request. A request body not all sent leaves the backend mid-message.
        let upload = self.upload.take();
        if self.reusable && conn.rbuf.is_empty() && upload.is_none() {
            // Small responses keep their buffer (a malloc per request cost
            // 450 instructions); one a large body grew is let go, so an idle
            // connection holds at most a few KiB.
            if conn.rbuf.capacity() > IDLE_KEEP {
                conn.rbuf = BytesMut::new();
            }
            back.pool.put_h1(back.backend, conn, back.max_idle);
        } else {
            conn.rbuf.clear();
        }
    }

    fn fail(&mut self, e: BodyReadError) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        self.conn = None;
        self.back = None;
        self.upload = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        let this = &mut *self;
        if let (Some(up), Some(conn)) = (&mut this.upload, &mut this.conn)
            && let Poll::Ready(sent) = up.poll_send(cx, &mut conn.io)
        {
            // All sent, or it never will be (the client's body or the write
            // broke): either way the response can still be read.
            if let Err(e) = &sent {
                this.upload_failed = Some(crate::http1::decode::client_body_kind(&**e));
            }
            if sent.is_err() || up.write_error.is_some() {
                this.reusable = false;
            }
            this.upload = None;
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.reading.decode(&mut conn.rbuf) {
                Ok(Decoded::Frame(f)) => {
                    if this.reading.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(f)));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return this.fail(BodyReadError::Framing(e)),
            }
            match ready!(conn.poll_read_more(cx, BODY_READ)) {
                Ok(0) => {
                    if this.reading.ends_at_close() {
                        this.conn = None;
                        this.back = None;
                        this.upload = None;
                        return Poll::Ready(None);
                    }
                    return this.fail(BodyReadError::Closed);
                }
                Ok(_) => {}
                Err(e) => return this.fail(BodyReadError::Io(e.kind())),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.reading.remaining() {
            Some(n) if self.conn.is_some() => SizeHint::with_exact(n),
            Some(_) => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}
