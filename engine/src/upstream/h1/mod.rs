//! Our HTTP/1.1 client: `proxy::forward` → **`upstream::h1`** → the backend.
//!
//! Why not hyper's client here: hyper runs every connection as a task of its
//! own and passes each request and response through a channel to it, which
//! costs a task switch and its wakeups per request, and an idle pooled
//! connection holds that task and its buffers. Here the request's own task
//! drives the socket, like nginx's upstream module:
//!
//! ```text
//! exchange: encode the head (http1::write) → write it and stream the body while
//!           watching for the response → parse the response head (http1::response; 1xx → crate::interim)
//!   → ResponseBody: decode frames from the read buffer as the client takes
//!     them (http1::decode) → at the body's end, back to the pool
//! ```
//!
//! An idle connection in the pool is only its socket and read buffer; a
//! backend that closed it is noticed by a non-blocking read at checkout
//! ([`H1Conn::is_idle_alive`]) or by the pool's reaper.

use crate::body::{BackendClock, Phase, ReqBody};
use crate::error::{BoxError, ErrorKind, ProxyError, Retry, Side};
use crate::http1::decode::{BodyError, Decoded, Decoder};
use crate::http1::framing::{Framing, request_framing};
use crate::http1::response::{self, ResponseHead};
use crate::http1::upgrade::Upgraded;
use crate::http1::write::{self, WriteBuf};
use crate::interim::InterimQueue;
use crate::upstream::connect::UpstreamIo;
use crate::upstream::pool::Pool;
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, request};
use http_body::{Body, Frame, SizeHint};
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Read buffer size for a response head (and the start of its body).
const HEAD_READ: usize = 4 * 1024;
/// A pooled connection keeps a read buffer up to this size.
const IDLE_KEEP: usize = 2 * HEAD_READ;
/// Read size while a response body streams.
const BODY_READ: usize = 32 * 1024;
/// Trailers of a chunked response get the same budget as a response head.
const MAX_TRAILER_BYTES: usize = response::MAX_RESPONSE_HEAD;

/// One keep-alive connection to a backend.
#[derive(Debug)]
pub struct H1Conn {
    io: UpstreamIo,
    /// Bytes read and not consumed. Kept across requests (at most
    /// `IDLE_KEEP`) so that its allocation is reused; empty while idle.
    rbuf: BytesMut,
}

impl H1Conn {
    pub fn new(io: UpstreamIo) -> H1Conn {
        H1Conn {
            io,
            rbuf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can take a request: the backend has not
    /// closed it and sent nothing unasked. Never waits: a read that would
    /// block means alive (and leaves tokio's readiness as it was).
    pub fn is_idle_alive(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        let mut rb = ReadBuf::uninit(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    }

    /// The raw connection after a 101, with any bytes read past its head.
    pub fn into_upgraded(self) -> Upgraded {
        Upgraded::new(Box::new(self.io), self.rbuf.freeze())
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < want / 4 {
            self.rbuf.reserve(want);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }
}

/// Why an exchange failed. Whether the request may go again is decided in
/// `proxy::retry` from the facts here: the error's [`Retry`] (the backend's
/// doing and not a byte sent: `NotSent`; sent, but nothing came back:
/// `MaybeSent`, e.g. the keep-alive race on a reused connection; else, a
/// response begun or the client's body failing, `Never`) and the body, if
/// it is untouched.
#[derive(Debug)]
pub struct Failed {
    pub error: ProxyError,
    /// The request body, untouched, when not a frame of it was taken.
    pub body: Option<ReqBody>,
}

/// A response head, and what is left of the request body to send.
#[derive(Debug)]
pub struct Answer {
    pub head: ResponseHead,
    /// Boxed: only a backend that answers before the body is all sent has one.
    upload: Option<Box<Upload>>,
}

/// Sends the request on `conn` and reads the response head. The request
/// body streams while the head is awaited, and goes on streaming with the
/// response body if the backend answers first (an echo does; so does a 413).
///
/// The backend gets `limit` for each stretch in which it has the next move
/// (taking the request, then answering it), else a 504; time spent waiting
/// on the client's body is not counted against it ([`BackendClock`]).
/// The backend's 1xx go to `interim` (the client connection's queue).
pub async fn exchange(
    conn: &mut H1Conn,
    parts: &request::Parts,
    body: ReqBody,
    limit: Duration,
    interim: Option<&InterimQueue>,
) -> Result<Answer, Failed> {
    let mut ex = Exchange {
        upload: Upload::new(parts, body),
        head_request: parts.method == Method::HEAD,
        received: false,
        interim,
    };
    let mut clock = pin!(BackendClock::new(limit));
    let head = poll_fn(|cx| {
        if let Poll::Ready(head) = ex.poll(cx, conn) {
            return Poll::Ready(head);
        }
        ready!(clock.as_mut().poll_expired(ex.upload.phase(), cx));
        // Nothing will be replayed after a wait this long.
        Poll::Ready(Err(Failed {
            error: ProxyError::new(ErrorKind::UpstreamTimeout),
            body: None,
        }))
    })
    .await?;
    let upload = ex.upload;
    Ok(Answer {
        head,
        upload: (!upload.is_done()).then(|| Box::new(upload)),
    })
}

enum Sending {
    /// Request body frames are still to come.
    Body(Framing),
    /// Everything is queued: write it out and flush.
    Flush,
    /// The request is out (or could not be written).
    Done,
}

/// The request on its way out: the head, then the body as it arrives.
struct Upload {
    sending: Sending,
    wbuf: WriteBuf,
    body: ReqBody,
    body_started: bool,
    /// Some request bytes reached the socket.
    wrote: bool,
    /// We waited on the client for more of a started body, and the backend
    /// has been sent nothing since: as far as it can tell, the client is
    /// still awaited (see [`Exchange::closed_kind`]).
    client_awaited: bool,
    /// A write failed; the backend may still have answered, so read on.
    write_error: Option<io::Error>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("done", &self.is_done())
            .field("wrote", &self.wrote)
            .finish_non_exhaustive()
    }
}

impl Upload {
    fn new(parts: &request::Parts, body: ReqBody) -> Upload {
        let exact = body.size_hint().exact();
        let framing = request_framing(&parts.method, &parts.headers, exact);
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut wbuf = WriteBuf::default();
        write::encode_request(
            &mut wbuf.buf,
            &parts.method,
            target,
            &parts.headers,
            framing,
        );
        Upload {
            sending: match framing {
                _ if body.is_end_stream() => Sending::Flush,
                Framing::None | Framing::Close => Sending::Flush,
                framing => Sending::Body(framing),
            },
            wbuf,
            body,
            body_started: false,
            wrote: false,
            client_awaited: false,
            write_error: None,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.sending, Sending::Done)
    }

    /// Who has the next move: the client when its body is awaited with
    /// nothing of ours left to write, else the backend.
    fn phase(&self) -> Phase {
        match self.sending {
            Sending::Done => Phase::Sent,
            Sending::Body(_) if self.wbuf.is_empty() && self.body.waits_on_client() => {
                Phase::Client
            }
            Sending::Body(_) | Sending::Flush => Phase::Sending,
        }
    }

    /// Moves the request out as far as it can go now. Ready once all of it
    /// is out or it could not be written (`write_error`); an error is the
    /// client's body breaking off.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut UpstreamIo,
    ) -> Poll<Result<(), BoxError>> {
        loop {
            match self.sending {
                Sending::Body(framing) => {
                    if self.wbuf.is_full() {
                        ready!(self.poll_write(cx, io));
                        continue;
                    }
                    match Pin::new(&mut self.body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            self.body_started = true;
                            match frame.into_data() {
                                Ok(data) => {
                                    self.wbuf.push_data(framing, data);
                                    if self.body.is_end_stream() {
                                        self.end_body(framing, None);
                                    }
                                }
                                Err(frame) => self.end_body(framing, frame.trailers_ref()),
                            }
                        }
                        Poll::Ready(None) => self.end_body(framing, None),
                        Poll::Ready(Some(Err(e))) => {
                            self.body_started = true;
                            self.sending = Sending::Done;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Pending => {
                            // Nothing more for now: write what is queued.
                            if self.wbuf.is_empty() {
                                self.client_awaited |=
                                    self.body_started && self.body.waits_on_client();
                                return Poll::Pending;
                            }
                            ready!(self.poll_write(cx, io));
                        }
                    }
                }
                Sending::Flush => {
                    ready!(self.poll_write(cx, io));
                    if matches!(self.sending, Sending::Flush) {
                        match ready!(Pin::new(&mut *io).poll_flush(cx)) {
                            Ok(()) => self.sending = Sending::Done,
                            Err(e) => self.write_failed(e),
                        }
                    }
                }
                Sending::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    /// The last chunk (and trailers) of a chunked body; a sized body just ends.
    fn end_body(&mut self, framing: Framing, trailers: Option<&http::HeaderMap>) {
        match (framing, trailers) {
            (Framing::Chunked, None) => self.wbuf.push_chunked_end(),
            // Trailers come in a frame of their own, after any held data was written.
            (Framing::Chunked, Some(t)) => write::encode_chunked_end(&mut self.wbuf.buf, Some(t)),
            _ => {}
        }
        self.sending = Sending::Flush;
    }

    /// Writes what is queued. Ready once the buffer is empty or the write
    /// failed (then reading goes on: the backend may have answered).
    fn poll_write(&mut self, cx: &mut Context<'_>, io: &mut UpstreamIo) -> Poll<()> {
        let before = self.wbuf.is_empty();
        match ready!(self.wbuf.poll_flush(io, cx)) {
            Ok(()) if !before => {
                self.wrote = true;
                self.client_awaited = false;
            }
            Ok(()) => {}
            // A write that fails leaves `client_awaited` as it was: the
            // failure shows a close that came before it.
            Err(e) => self.write_failed(e),
        }
        Poll::Ready(())
    }

    fn write_failed(&mut self, e: io::Error) {
        self.write_error = Some(e);
        self.wbuf = WriteBuf::default();
        self.sending = Sending::Done;
    }
}

struct Exchange<'a> {
    upload: Upload,
    head_request: bool,
    /// Some response bytes arrived.
    received: bool,
    /// Where 1xx responses go (an HTTP/1.1 client's connection).
    interim: Option<&'a InterimQueue>,
}

impl Exchange<'_> {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut H1Conn,
    ) -> Poll<Result<ResponseHead, Failed>> {
        // The backend's side first while it has had nothing since we waited
        // on the client: it may have acted meanwhile (a close, or an answer
        // to what it has), and the client's next bytes may wake us at the
        // same time. Else the write side: on a fresh request nothing can
        // have arrived.
        if self.upload.client_awaited
            && let Poll::Ready(answered) = self.poll_response(cx, conn)
        {
            return Poll::Ready(answered);
        }
        if !self.upload.is_done()
            && let Poll::Ready(Err(e)) = self.upload.poll_send(cx, &mut conn.io)
        {
            let kind = crate::http1::decode::client_body_kind(&*e);
            return Poll::Ready(Err(self.fail(kind, e)));
        }
        self.poll_response(cx, conn)
    }

    /// Reads (and parses) until the response head, passing 1xx on.
    fn poll_response(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut H1Conn,
    ) -> Poll<Result<ResponseHead, Failed>> {
        loop {
            if !conn.rbuf.is_empty() {
                match response::parse_response(&mut conn.rbuf, self.head_request) {
                    // Interim responses go to the client that can take them
                    // (crate::interim says which).
                    Ok(Some(h))
                        if h.status.is_informational()
                            && h.status != StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        if let Some(to) = &self.interim {
                            to.forward(h.status, h.headers);
                        }
                        continue;
                    }
                    Ok(Some(mut h)) => {
                        if self.upload.write_error.is_some() {
                            h.reusable = false;
                        }
                        return Poll::Ready(Ok(h));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(self.fail(e.kind(), e))),
                }
            }
            match ready!(conn.poll_read_more(cx, HEAD_READ)) {
                Ok(0) => {
                    let err: BoxError = match self.upload.write_error.take() {
                        Some(e) => e.into(),
                        None => "backend closed the connection before a response".into(),
                    };
                    return Poll::Ready(Err(self.fail(self.closed_kind(), err)));
                }
                Ok(_) => self.received = true,
                Err(e) if crate::upstream::connect::is_tls_alert(&e) => {
                    return Poll::Ready(Err(self.fail(ErrorKind::UpstreamTls, e)));
                }
                Err(e) => return Poll::Ready(Err(self.fail(self.closed_kind(), e))),
            }
        }
    }

    /// Who is to blame when the backend ends the connection before its
    /// answer: the backend, unless it had part of the body and was waiting,
    /// as we were, on the client for more (a backend giving up on a slow
    /// client). That holds until a byte more reaches it: the client's next
    /// bytes may arrive with its close (the write then fails, or the close
    /// is read after it; both are the close that came first). A body not
    /// yet started leaves it the backend's (and the keep-alive race's).
    fn closed_kind(&self) -> ErrorKind {
        if self.upload.client_awaited {
            ErrorKind::UpstreamClosedAwaitingClient
        } else {
            ErrorKind::UpstreamReset
        }
    }

    fn fail(&mut self, kind: ErrorKind, source: impl Into<BoxError>) -> Failed {
        let up = &mut self.upload;
        // Whether the body can go again is the body's to say (`failed.body`
        // here, `proxy::replay` for a route with retries): the error says
        // only whether the backend may have the request and answered nothing.
        let unanswered = !self.received && kind.side() == Side::Upstream;
        let retry = match (unanswered, up.wrote) {
            (true, false) => Retry::NotSent,
            (true, true) => Retry::MaybeSent,
            (false, _) => Retry::Never,
        };
        Failed {
            error: ProxyError::with_source(kind, source).retry(retry),
            body: (!up.body_started).then(|| std::mem::replace(&mut up.body, ReqBody::Empty)),
        }
    }
}

mod response_body;
pub use response_body::{BodyReadError, ResponseBody, Return};

#[cfg(test)]
mod tests;
