//! Stage: `server::conn` picked HTTP/1.1 → **`server::h1`** runs the
//! connection with the `http1` codec: read a head ([`request`]) → call the
//! service with a streaming body ([`body`]) → write the response ([`write`])
//! → next request. A head it refuses is answered by [`respond`] like any
//! other error.
//!
//! One task owns the IO and drives everything by polling: the service future,
//! the request body (read only when the service asks for it), the response
//! body and the end-of-connection watch. Requests are answered strictly in
//! order; pipelined heads wait in the read buffer until the current response
//! is out.
//!
//! # Memory while idle
//! An idle keep-alive connection costs its task, its socket and a waiter on
//! the worker's [`IdleClock`]: no buffer and no timer. [`serve`] (and, for
//! plain connections, `server::conn::PlainConn`, whose task is smaller
//! still) alternates two states. *Idle* waits for bytes (read into a stack
//! buffer, so that a heap buffer exists only once bytes arrive) or for the
//! clock to say the keep-alive deadline passed or drain began. *Busy* is one
//! box per busy period ([`busy`]; for a client that does not pipeline, per
//! request): the buffers, the head timer, the service's future and the
//! response, all of which go away when the connection is idle again. Kept
//! inline, they would make every idle connection's task as large as the
//! whole proxy path's state.

use crate::config::Limits;
use crate::error::{BoxError, ErrorKind, ProxyError};
use crate::http1::body::{self, BodySender, RequestBody, Want};
use crate::http1::decode::{BodyError, Decoded, Decoder};
use crate::http1::framing::{Framing, response_framing};
use crate::http1::request::{self, ParseError, RequestHead};
use crate::http1::upgrade::{self, Upgraded};
use crate::http1::write::{self, ConnHeader, WriteBuf};
use crate::interim::{InterimQueue, InterimReceiver};
use crate::proxy::respond;
use crate::server::idle::IdleClock;
use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// The first read of an idle connection goes here (on the stack), so that
/// no heap buffer is held while waiting.
const IDLE_READ: usize = 4 * 1024;
/// The smallest heap read buffer; it doubles up to `max_header_bytes`.
const HEAD_INITIAL: usize = 1024;
/// Read size while a request body streams.
const BODY_READ: usize = 16 * 1024;
/// An unread request body up to this size is read and thrown away to keep
/// the connection; a larger one closes it.
const DISCARD_MAX: u64 = 64 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What a connection needs to know, fixed per worker.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub limits: Limits,
    /// Time allowed for a whole request head; also the keep-alive idle limit.
    pub header_timeout: Duration,
}

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection I/O failed")]
    Io(#[from] io::Error),
    #[error("refused request head: {0}")]
    Parse(#[from] ParseError),
    #[error("request head not received in time")]
    HeadTimeout,
    #[error("client went away before the response")]
    ClientGone,
    #[error("response body failed")]
    ResponseBody(#[source] BoxError),
    #[error("response body length differs from its content-length")]
    LengthMismatch,
}

impl ConnError {
    /// The error the client is answered with before the connection closes,
    /// if it is one the client can still be told about.
    pub fn refusal(&self) -> Option<ProxyError> {
        match self {
            ConnError::Parse(p) => Some(ProxyError::from(*p)),
            ConnError::HeadTimeout => Some(ProxyError::new(ErrorKind::ClientTimeout)),
            _ => None,
        }
    }

    /// Ends that are the client's doing or normal wear, not worth a warning.
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            ConnError::Io(_) | ConnError::Parse(_) | ConnError::HeadTimeout | ConnError::ClientGone
        )
    }
}

/// A `101 Switching Protocols` that is out: the IO goes to the service.
/// [`serve`] only borrows the IO, so its owner hands it over.
pub struct Upgrade {
    pending: upgrade::Pending,
    /// Bytes the client sent after the request head.
    rest: BytesMut,
}

impl Upgrade {
    pub fn hand_over<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // If the service dropped its `OnUpgrade`, nobody wants the IO.
        let _ = self
            .pending
            .send(Upgraded::new(Box::new(io), self.rest.freeze()));
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves, the connection must
/// close (it is shut down), the drain completes, or a request upgrades it.
/// `initial` are bytes already read from `io` (the preface sniff); it is
/// left empty. (A reference: a value would stay in the task all along.)
///
/// A function returning an `async` block rather than an `async fn`: an
/// `async fn` keeps each argument twice in its future (as given, and as the
/// body's binding), and this future is in every idle TLS connection's task.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn serve<I, S, F, B>(
    io: &mut I,
    initial: &mut BytesMut,
    settings: &Settings,
    interim: &InterimQueue,
    mut service: S,
    idle: &IdleClock,
) -> impl Future<Output = Result<Option<Upgrade>, ConnError>>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    async move {
        loop {
            // The keep-alive limit and the head's budget are one deadline.
            let deadline = Instant::now() + settings.header_timeout;
            if initial.is_empty() {
                match idle.wait(deadline, |cx| read_idle(io, cx)).await {
                    Ok(Ok(got)) if !got.is_empty() => *initial = got,
                    Ok(Err(e)) => return Err(e.into()),
                    // EOF, idle past the deadline, or drain: close quietly.
                    Ok(Ok(_)) | Err(_) => break,
                }
            }
            let rbuf = std::mem::take(initial);
            match Box::pin(busy(
                io,
                rbuf,
                settings,
                interim,
                &mut service,
                deadline,
                idle,
            ))
            .await?
            {
                Busy::Idle => {}
                Busy::Closed => return Ok(None),
                Busy::Upgrade(u) => return Ok(Some(u)),
            }
        }
        // Out of the loop, so that nothing of it stays in the future here.
        let _ = io.shutdown().await;
        Ok(None)
    }
}

/// Reads what an idle connection received into a buffer of its own size;
/// empty at EOF.
pub(crate) fn read_idle<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
) -> Poll<io::Result<BytesMut>> {
    // Uninitialised: zeroing 4 KiB per request showed in callgrind.
    let mut stack = [const { std::mem::MaybeUninit::<u8>::uninit() }; IDLE_READ];
    let mut rb = ReadBuf::uninit(&mut stack);
    ready!(Pin::new(io).poll_read(cx, &mut rb))?;
    let got = rb.filled();
    let mut buf = BytesMut::new();
    if !got.is_empty() {
        buf.reserve(got.len().max(HEAD_INITIAL));
        buf.extend_from_slice(got);
    }
    Poll::Ready(Ok(buf))
}

/// One busy period: answers requests while bytes of one are buffered in
/// `rbuf` (at least the start of a head, due by `deadline`). Whoever waits
/// between busy periods (`serve`, or `server::conn` for plain connections)
/// boxes this future, so that what it holds is gone while idle.
pub fn busy<'a, I, S, F, B>(
    io: &'a mut I,
    rbuf: BytesMut,
    settings: &'a Settings,
    interim: &'a InterimQueue,
    service: &'a mut S,
    deadline: Instant,
    idle: &'a IdleClock,
) -> impl Future<Output = Result<Busy, ConnError>> + 'a
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = Response<B>> + 'a,
    B: Body<Data = Bytes> + 'a,
    B::Error: Into<BoxError>,
{
    let conn = Conn {
        io,
        rbuf,
        wbuf: WriteBuf::default(),
        settings,
        interim,
    };
    conn.busy(service, deadline, idle)
}

/// How a busy period left the connection.
pub enum Busy {
    /// Every byte read is answered: back to idle.
    Idle,
    /// Shut down (or the client is gone).
    Closed,
    Upgrade(Upgrade),
}

/// What the request said about its response and the connection.
#[derive(Clone, Copy)]
struct ReqInfo {
    head_request: bool,
    http10: bool,
    keep_alive: bool,
}

/// How an exchange left the connection.
enum Outcome {
    KeepAlive,
    Close,
    /// The 101 is out; the IO goes to the service.
    Upgrade(upgrade::Pending),
}

/// The request for the service, the exchange's view of its body, a pending
/// upgrade, and what the head said about the response.
fn request(
    head: RequestHead,
    limits: &Limits,
    interim: &InterimQueue,
) -> (
    Request<RequestBody>,
    Exchange,
    Option<upgrade::Pending>,
    ReqInfo,
) {
    let info = ReqInfo {
        head_request: head.method == Method::HEAD,
        http10: head.version == Version::HTTP_10,
        keep_alive: head.keep_alive,
    };
    // Trailers get the same budget as a head.
    let decoder = Decoder::new(head.framing, limits.max_header_bytes);
    let (sender, body) = match body::channel(decoder) {
        Some((s, b)) => (Some(s), b),
        None => (None, RequestBody::empty()),
    };
    let mut req = Request::new(body);
    *req.method_mut() = head.method;
    *req.uri_mut() = head.uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;
    let upgrade = head.upgrade.then(|| {
        let (tx, on) = upgrade::pending();
        req.extensions_mut().insert(on);
        tx
    });
    // No 1xx to an HTTP/1.0 client (RFC 9110 §15.2).
    let interim = (head.version == Version::HTTP_11).then(|| interim.open());
    let ex = Exchange {
        interim,
        cont: if head.expect_continue && sender.is_some() {
            Continue::Owed
        } else {
            Continue::Done
        },
        body: sender.map_or(ReqBody::Done, ReqBody::Reading),
    };
    (req, ex, upgrade, info)
}

/// A busy connection: it exists from the first byte of a request to the
/// end of its response (of the last pipelined one), inside one box.
struct Conn<'a, I> {
    io: &'a mut I,
    /// Bytes read and not yet consumed: a partial head, body bytes, or
    /// pipelined requests.
    rbuf: BytesMut,
    wbuf: WriteBuf,
    settings: &'a Settings,
    /// The connection's 1xx queue, opened per HTTP/1.1 request.
    interim: &'a InterimQueue,
}

/// One request/response exchange's view of the request body.
struct Exchange {
    body: ReqBody,
    cont: Continue,
    /// 1xx responses from the backend, written before the final one.
    interim: Option<InterimReceiver>,
}

enum ReqBody {
    /// Read to its end (or there was none).
    Done,
    Reading(BodySender),
    /// The service dropped it before its end: the rest is to be discarded.
    Unwanted(BodySender),
    /// Broken framing or IO: the connection cannot be reused.
    Broken,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// `Expect: 100-continue` and the service has not read the body yet.
    Owed,
    /// Sent, not needed, or too late (the final response started).
    Done,
    /// The final response went out first; the client may or may not send
    /// the body, so the connection cannot be reused unless it did.
    Skipped,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<'_, I> {
    /// Answers requests while bytes of one are buffered; the first head is
    /// due by `deadline`.
    async fn busy<S, F, B>(
        mut self,
        service: &mut S,
        mut deadline: Instant,
        idle: &IdleClock,
    ) -> Result<Busy, ConnError>
    where
        S: FnMut(Request<RequestBody>) -> F,
        F: Future<Output = Response<B>>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            let head = match self.read_head(deadline).await {
                Ok(Some(head)) => head,
                Ok(None) => return self.close().await,
                Err(e) => {
                    if let Some(refusal) = e.refusal() {
                        // Best effort: the client may already be gone.
                        let _ = self.write_refusal(&refusal).await;
                    }
                    return Err(e);
                }
            };
            // A function, so that the head is gone from this future's state
            // while the exchange runs.
            let (req, ex, upgrade, info) = request(head, &self.settings.limits, self.interim);
            match self.exchange(service(req), ex, upgrade, info, idle).await? {
                // Pipelined bytes: the next head is already (partly) here.
                Outcome::KeepAlive if !self.rbuf.is_empty() => {}
                Outcome::KeepAlive => return Ok(Busy::Idle),
                Outcome::Close => return self.close().await,
                Outcome::Upgrade(pending) => {
                    return Ok(Busy::Upgrade(Upgrade {
                        pending,
                        rest: self.rbuf,
                    }));
                }
            }
            deadline = Instant::now() + self.settings.header_timeout;
        }
    }

    /// One request's service call and response, up to the point where the
    /// next head may be read.
    async fn exchange<F, B>(
        &mut self,
        service: F,
        mut ex: Exchange,
        upgrade: Option<upgrade::Pending>,
        info: ReqInfo,
        idle: &IdleClock,
    ) -> Result<Outcome, ConnError>
    where
        F: Future<Output = Response<B>>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let resp = self.drive_service(pin!(service), &mut ex).await?;
        // After a 408 the rest of the request may still be on its way: the
        // connection closes (RFC 9110 §15.5.9) instead of reading it as heads.
        let keep_alive =
            info.keep_alive && !idle.is_draining() && resp.status() != StatusCode::REQUEST_TIMEOUT;

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(upgrade) = upgrade
        {
            let (parts, _) = resp.into_parts();
            write::encode_head(
                &mut self.wbuf.buf,
                parts.status,
                &parts.headers,
                Framing::None,
                ConnHeader::AsIs,
            );
            self.flush().await?;
            return Ok(Outcome::Upgrade(upgrade));
        }
        // Resolves the service's `OnUpgrade`, if any, to an error.
        drop(upgrade);

        let keep = self
            .write_response(resp, info.head_request, info.http10, keep_alive, &mut ex)
            .await?;
        Ok(if keep && self.finish_body(&mut ex).await {
            Outcome::KeepAlive
        } else {
            Outcome::Close
        })
    }

    /// The next request head, due by `deadline`; `None` when the client
    /// left first. The timer is armed only if the head is not all here.
    async fn read_head(&mut self, deadline: Instant) -> Result<Option<RequestHead>, ConnError> {
        let mut timeout = pin!(tokio::time::sleep_until(deadline));
        loop {
            if !self.rbuf.is_empty()
                && let Some(head) = request::parse(&mut self.rbuf, &self.settings.limits)?
            {
                return Ok(Some(head));
            }
            let n = tokio::select! {
                biased;
                r = poll_fn(|cx| self.poll_read(cx, HEAD_INITIAL)) => r?,
                _ = &mut timeout => {
                    let timed_out = !self.rbuf.is_empty();
                    return if timed_out { Err(ConnError::HeadTimeout) } else { Ok(None) };
                }
            };
            if n == 0 {
                // EOF, mid-head or not: nobody is left to answer.
                return Ok(None);
            }
        }
    }

    /// Reads into `rbuf` with at least `min_spare` room; `Ok(0)` is EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>, min_spare: usize) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() == 0 {
            // All consumed and no room left: read like an idle connection.
            self.rbuf = ready!(read_idle(&mut *self.io, cx))?;
            return Poll::Ready(Ok(self.rbuf.len()));
        }
        let len = self.rbuf.len();
        if self.rbuf.capacity() - len < min_spare / 2 {
            // Doubles while a head grows; `parse` bounds it by `max_header_bytes`.
            self.rbuf.reserve(len.max(min_spare));
        }
        // Reads into the spare capacity without zeroing it first (tokio-util
        // does the uninitialised-memory bookkeeping): zeroing cost a memset
        // of the whole spare buffer per read (perf/findings, callgrind).
        tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.rbuf)
    }

    /// Polls the service while feeding its request body; errors if the
    /// client goes away first (which cancels the service).
    async fn drive_service<F: Future + Unpin>(
        &mut self,
        mut fut: F,
        ex: &mut Exchange,
    ) -> Result<F::Output, ConnError> {
        poll_fn(|cx| {
            let done = Pin::new(&mut fut).poll(cx);
            // Before the final response: the backend sent its 1xx first, and
            // they may all have come in one read with it.
            self.poll_interim(cx, ex);
            if let Poll::Ready(out) = done {
                return Poll::Ready(Ok(out));
            }
            // With the body read (or unwanted), watch for the client leaving.
            // A broken body is left to the service: it holds the error.
            if self.poll_body(cx, ex).is_ready()
                && matches!(ex.body, ReqBody::Done | ReqBody::Unwanted(_))
                && self.poll_client_gone(cx).is_ready()
            {
                return Poll::Ready(Err(ConnError::ClientGone));
            }
            Poll::Pending
        })
        .await
    }

    /// Ready when the client closed (EOF or error). Bytes that arrive
    /// meanwhile (pipelined requests) are kept, up to a head's budget.
    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.rbuf.len() < self.settings.limits.max_header_bytes {
            match ready!(self.poll_read(cx, HEAD_INITIAL)) {
                Ok(0) | Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
        Poll::Pending
    }
}

mod request_body;
mod response;
#[cfg(test)]
mod tests;
