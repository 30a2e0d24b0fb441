//! Clients. [`RawConn`] writes exact bytes and parses what comes back by hand
//! (byte-exact, pipelining and smuggling tests, where a real client would
//! refuse to send the request at all). [`H1`] and [`H2`] are hyper's
//! connection-level clients over plain TCP, h2c or TLS.

use super::origin::Body;
use super::{BoxError, STEP, within};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Polls until `addr` accepts a TCP connection (or fails after [`STEP`]).
pub async fn wait_ready(addr: SocketAddr) {
    within(&format!("{addr} to accept connections"), async {
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A parsed HTTP/1.1 response, with the head kept verbatim.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head exactly as received, status line to the blank line.
    pub head: String,
    /// Header fields in wire order, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field line named `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// A TCP connection that sends exact bytes and reads raw responses.
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    eof: bool,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = within("raw connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawConn {
            stream,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within("raw write", self.stream.write_all(bytes))
            .await
            .expect("write");
    }

    /// Reads more bytes; false at EOF. A reset counts as EOF: a server that
    /// closes with unread input resets, but what it sent first still counts.
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        match within("raw read", self.stream.read_buf(&mut self.buf)).await {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(_) => true,
        }
    }

    /// Reads one response head (for a 101, where the bytes after it are the tunnel).
    pub async fn read_head(&mut self) -> RawResponse {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(
                self.fill().await,
                "connection closed before a full response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = self.buf.split_to(end);
        let head = String::from_utf8(head.to_vec()).expect("utf-8 head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            head,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads one complete response (Content-Length, chunked, or until close).
    pub async fn read_response(&mut self) -> RawResponse {
        let mut resp = self.read_head().await;
        let bodiless = resp.status < 200 || resp.status == 204 || resp.status == 304;
        if bodiless {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            resp.body = self.read_chunked().await;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            resp.body = self.read_exact(len).await;
        } else {
            resp.body = self.read_to_eof().await;
        }
        resp
    }

    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "connection closed mid-body");
        }
        self.buf.split_to(n).to_vec()
    }

    async fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i + 2);
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            assert!(self.fill().await, "connection closed mid-chunk");
        }
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                // Trailer section, up to the empty line.
                while !self.read_line().await.is_empty() {}
                return body;
            }
            body.extend(self.read_exact(size).await);
            let crlf = self.read_exact(2).await;
            assert_eq!(crlf, b"\r\n", "chunk not followed by CRLF");
        }
    }

    /// Everything until the peer closes.
    pub async fn read_to_eof(&mut self) -> Vec<u8> {
        while self.fill().await {}
        self.buf.split().to_vec()
    }

    pub fn into_stream(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }
}

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

/// Reads a response to its end, trailers included.
pub async fn collect(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let collected = within("response body", body.collect())
        .await
        .expect("response body");
    let trailers = collected.trailers().cloned();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// An HTTP/1.1 client connection (hyper's conn API; keep-alive).
pub struct H1 {
    sender: http1::SendRequest<Body>,
}

impl H1 {
    pub async fn connect(addr: SocketAddr) -> H1 {
        let tcp = within("h1 connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        H1::handshake(TokioIo::new(tcp)).await
    }

    pub async fn handshake<T>(io: T) -> H1
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = within("h1 handshake", http1::handshake(io))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        H1 { sender }
    }

    /// Sends a request and returns the response head (the body streams).
    pub async fn send(&mut self, req: Request<Body>) -> Response<Incoming> {
        within("h1 ready", self.sender.ready())
            .await
            .expect("h1 connection ready");
        within("h1 response", self.sender.send_request(req))
            .await
            .expect("h1 response")
    }

    /// `GET path` with `Host: test.local`, collected.
    pub async fn get(&mut self, path: &str) -> Reply {
        let req = Request::get(path)
            .header("host", "test.local")
            .body(super::origin::reply::empty())
            .expect("request");
        collect(self.send(req).await).await
    }
}

/// An HTTP/2 client connection (h2c by prior knowledge, or over TLS).
#[derive(Clone)]
pub struct H2 {
    sender: http2::SendRequest<Body>,
}

impl H2 {
    /// HTTP/2 with prior knowledge over plain TCP.
    pub async fn connect_h2c(addr: SocketAddr) -> H2 {
        let tcp = within("h2c connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        H2::handshake(TokioIo::new(tcp)).await
    }

    pub async fn handshake<T>(io: T) -> H2
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = within("h2 handshake", http2::handshake(TokioExecutor::new(), io))
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        H2 { sender }
    }

    pub async fn send(&mut self, req: Request<Body>) -> Response<Incoming> {
        within("h2 ready", self.sender.ready())
            .await
            .expect("h2 connection ready");
        within("h2 response", self.sender.send_request(req))
            .await
            .expect("h2 response")
    }

    /// `GET http://test.local<path>`, collected.
    pub async fn get(&mut self, path: &str) -> Reply {
        let req = Request::get(format!("http://test.local{path}"))
            .body(super::origin::reply::empty())
            .expect("request");
        collect(self.send(req).await).await
    }
}

/// Opens TLS to `addr` as `server_name`, offering `alpn`, trusting only the
/// test CA in `config`. Returns the stream and the negotiated protocol.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>), BoxError> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr)).await??;
    tls_connect_over(tcp, config, server_name).await
}

/// [`tls_connect`] on a connection already open (after a PROXY header,
/// for one).
pub async fn tls_connect_over(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>), BoxError> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())?;
    let tls = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await??;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    Ok((tls, alpn))
}
