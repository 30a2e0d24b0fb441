//! The client side of a case: raw HTTP/1 bytes, or HTTP/2 through the h2
//! crate. Nothing here panics on what a proxy answers: a response that does
//! not parse, a timeout or a reset is an observation, not a crash.

use super::case::{H2Request, Observed};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the client waits for any one read before it gives up.
pub const READ_WAIT: Duration = Duration::from_secs(5);
/// After the final response, how long the client waits to see whether the
/// proxy closes the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A raw HTTP/1 connection's reader.
struct Reader {
    stream: TcpStream,
    buf: BytesMut,
    eof: bool,
}

impl Reader {
    /// More bytes; false at EOF, a reset, or after `wait` without any.
    async fn fill(&mut self, wait: Duration) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        match tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0) | Err(_)) => {
                self.eof = true;
                Ok(false)
            }
            Ok(Ok(_)) => Ok(true),
            Err(_) => Err(format!("no bytes within {wait:?}")),
        }
    }

    /// One response head: status and fields. `None` if the connection ended
    /// before one.
    async fn head(&mut self) -> Result<Option<(u16, Vec<(String, String)>)>, String> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill(READ_WAIT).await? {
                return Ok(None);
            }
        };
        let head = self.buf.split_to(end);
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Some((status, headers)))
    }

    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            if !self.fill(READ_WAIT).await? {
                return Err("connection closed mid-body".into());
            }
        }
        Ok(self.buf.split_to(n).to_vec())
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i + 2);
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if !self.fill(READ_WAIT).await? {
                return Err("connection closed mid-chunk".into());
            }
        }
    }

    async fn chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(size).await?);
            if self.exact(2).await? != b"\r\n" {
                return Err("chunk not followed by CRLF".into());
            }
        }
    }

    async fn until_eof(&mut self) -> Result<Vec<u8>, String> {
        while self.fill(READ_WAIT).await? {}
        Ok(self.buf.split().to_vec())
    }
}

async fn connect(addr: SocketAddr, obs: &mut Observed) -> Option<Reader> {
    match tokio::time::timeout(READ_WAIT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Some(Reader {
            stream,
            buf: BytesMut::new(),
            eof: false,
        }),
        other => {
            obs.client_error = Some(format!("connect: {other:?}"));
            None
        }
    }
}

/// Sends `bytes` and reads interim responses and then one final response.
pub async fn h1(
    addr: SocketAddr,
    bytes: &[u8],
    head_request: bool,
    watch_close: bool,
    obs: &mut Observed,
) {
    let Some(mut r) = connect(addr, obs).await else {
        return;
    };
    if let Err(e) = r.stream.write_all(bytes).await {
        // A proxy may refuse and close before reading it all; read anyway.
        obs.client_error = Some(format!("write: {e}"));
    }
    if let Err(e) = h1_read(&mut r, head_request, obs).await {
        obs.client_error = Some(e);
    }
    if watch_close && !obs.closed {
        // Does the proxy close the connection now? Bytes count as open.
        obs.closed = r.buf.is_empty() && matches!(r.fill(CLOSE_WAIT).await, Ok(false));
    }
}

/// Each request once the response to the one before is in.
pub async fn h1_sequence(addr: SocketAddr, reqs: &[&[u8]], obs: &mut Observed) {
    let Some(mut r) = connect(addr, obs).await else {
        return;
    };
    for req in reqs {
        *obs = Observed {
            statuses: std::mem::take(&mut obs.statuses),
            ..Observed::default()
        };
        if r.stream.write_all(req).await.is_err() {
            obs.client_error = Some("the connection closed before the next request".into());
            obs.statuses.push(None);
            return;
        }
        if let Err(e) = h1_read(&mut r, false, obs).await {
            obs.client_error = Some(e);
        }
        obs.statuses.push(obs.status);
        if obs.status.is_none() {
            return;
        }
    }
}

/// The head; the body once a `100 Continue` arrives; then the final response.
pub async fn h1_continue(addr: SocketAddr, head: &[u8], body: &[u8], obs: &mut Observed) {
    let Some(mut r) = connect(addr, obs).await else {
        return;
    };
    if let Err(e) = r.stream.write_all(head).await {
        obs.client_error = Some(format!("write: {e}"));
        return;
    }
    match r.head().await {
        Ok(Some((100, _))) => {
            obs.interim.push(100);
            if let Err(e) = r.stream.write_all(body).await {
                obs.client_error = Some(format!("write: {e}"));
            }
        }
        Ok(Some((status, headers))) => {
            // A final answer without the body: keep it as the observation.
            obs.status = Some(status);
            obs.headers = headers;
            return;
        }
        Ok(None) => {
            obs.closed = true;
            return;
        }
        Err(e) => {
            obs.client_error = Some(format!("waiting for 100 Continue: {e}"));
            return;
        }
    }
    if let Err(e) = h1_read(&mut r, false, obs).await {
        obs.client_error = Some(e);
    }
}

async fn h1_read(r: &mut Reader, head_request: bool, obs: &mut Observed) -> Result<(), String> {
    let (status, headers) = loop {
        match r.head().await? {
            None => {
                obs.closed = true;
                return Ok(());
            }
            Some((s, _)) if (100..200).contains(&s) && s != 101 => obs.interim.push(s),
            Some(final_head) => break final_head,
        }
    };
    obs.status = Some(status);
    obs.headers = headers;
    let bodiless = head_request || status == 204 || status == 304 || status == 101;
    if !bodiless {
        obs.body = if obs
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            r.chunked().await?
        } else if let Some(len) = obs.header("content-length") {
            let len = len
                .parse()
                .map_err(|_| format!("bad content-length {len:?}"))?;
            r.exact(len).await?
        } else {
            obs.closed = true;
            return r.until_eof().await.map(|b| obs.body = b);
        };
    }
    // A close already seen while reading counts.
    obs.closed = r.eof;
    Ok(())
}

/// Sends `req` over h2c through the h2 crate and reads the response.
pub async fn h2(addr: SocketAddr, req: &H2Request, obs: &mut Observed) {
    if let Err(e) = tokio::time::timeout(READ_WAIT * 2, h2_send(addr, req, obs))
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
    {
        obs.h2_error = Some(e);
    }
}

async fn h2_send(addr: SocketAddr, req: &H2Request, obs: &mut Observed) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let mut client = client.ready().await.map_err(|e| format!("ready: {e}"))?;
        let mut builder = http::Request::builder().method(req.method).uri(req.uri);
        for (k, v) in req.headers {
            builder = builder.header(*k, *v);
        }
        if let Some(p) = req.protocol {
            builder = builder.extension(h2::ext::Protocol::from(p));
        }
        let request = builder.body(()).map_err(|e| format!("request: {e}"))?;
        let end = req.body.is_empty() && req.protocol.is_none();
        let (mut resp, mut send) = client
            .send_request(request, end)
            .map_err(|e| format!("send: {e}"))?;
        if !req.body.is_empty() {
            send.send_data(Bytes::from_static(req.body), req.protocol.is_none())
                .map_err(|e| format!("send data: {e}"))?;
        }
        while let Some(info) = std::future::poll_fn(|cx| resp.poll_informational(cx)).await {
            let info = info.map_err(|e| format!("interim: {e}"))?;
            obs.interim.push(info.status().as_u16());
        }
        let resp = resp.await.map_err(|e| format!("response: {e}"))?;
        obs.status = Some(resp.status().as_u16());
        obs.headers = header_list(resp.headers());
        if req.protocol.is_some() {
            // A tunnel: the head is the answer; end our side.
            let _ = send.send_data(Bytes::new(), true);
            return Ok(());
        }
        let mut body = resp.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("body: {e}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            obs.body.extend_from_slice(&chunk);
        }
        Ok(())
    }
    .await;
    conn_task.abort();
    result
}

pub fn header_list(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
