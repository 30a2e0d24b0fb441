//! One active check of one backend, on a fresh connection, in the group's
//! protocol: HTTP/1.1 (plain or TLS), h2c with prior knowledge, or h2 over
//! TLS negotiated by ALPN. Healthy when the status is expected (any 2xx or
//! 3xx by default) and, with `expect_body`, the first
//! [`HEALTH_MAX_BODY`] bytes of the body contain the text. The detail
//! says exactly what failed: the connect or TLS error, the phase that timed
//! out, the status, or the missing text.

use crate::addr::BackendAddr;
use crate::config::defaults::HEALTH_MAX_BODY;
use crate::config::{HealthCheck, UpstreamProtocol};
use crate::upstream::connect::{self, TlsConnector, UpstreamIo};
use crate::upstream::proxy_header::{Header, SendVersion};
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::fmt;

/// Where a check was when it failed or ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connect,
    Handshake,
    Head,
    Body,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connecting",
            Phase::Handshake => "the HTTP/2 handshake",
            Phase::Head => "the response head",
            Phase::Body => "the body",
        })
    }
}

/// One check: `(healthy, what happened)`, bounded by `hc.timeout` in all.
pub async fn probe(
    addr: BackendAddr,
    hc: &HealthCheck,
    protocol: UpstreamProtocol,
    tls: Option<&TlsConnector>,
    proxy: Option<SendVersion>,
) -> (bool, String) {
    let mut phase = Phase::Connect;
    let checked = check(addr, hc, protocol, tls, proxy, &mut phase);
    let outcome = tokio::time::timeout(hc.timeout, checked).await;
    match outcome {
        Err(_) => (
            false,
            format!(
                "timed out after {}ms awaiting {phase}",
                hc.timeout.as_millis()
            ),
        ),
        Ok(Err(detail)) => (false, detail),
        Ok(Ok(detail)) => (true, detail),
    }
}

/// The check itself; `Err` carries the failure's detail. `phase` follows
/// its progress for the timeout's detail.
async fn check(
    addr: BackendAddr,
    hc: &HealthCheck,
    protocol: UpstreamProtocol,
    tls: Option<&TlsConnector>,
    proxy: Option<SendVersion>,
    phase: &mut Phase,
) -> Result<String, String> {
    // A check is the balancer's own connection: LOCAL / UNKNOWN.
    let header = proxy.map(Header::local);
    let io = connect::connect(addr, tls, hc.timeout, header.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let resp = match protocol {
        UpstreamProtocol::Http1 => {
            *phase = Phase::Head;
            send_h1(io, addr, hc).await?
        }
        UpstreamProtocol::H2 | UpstreamProtocol::H2c => {
            if protocol == UpstreamProtocol::H2 && !io.alpn_h2() {
                return Err("backend did not negotiate h2 by ALPN".to_owned());
            }
            *phase = Phase::Handshake;
            send_h2(io, addr, hc, tls.is_some(), phase).await?
        }
    };
    let status = resp.status().as_u16();
    let status_ok = if hc.expect.is_empty() {
        (200..400).contains(&status)
    } else {
        hc.expect.contains(&status)
    };
    if !status_ok {
        return Err(match hc.expect.as_slice() {
            [] => format!("status {status}, expected 2xx or 3xx"),
            list => format!("status {status}, expected one of {list:?}"),
        });
    }
    let Some(want) = &hc.expect_body else {
        return Ok(format!("status {status}"));
    };
    *phase = Phase::Body;
    if body_contains(resp.into_body(), want.as_bytes()).await? {
        Ok(format!("status {status}, body contains {want:?}"))
    } else {
        Err(format!(
            "status {status}, body did not contain {want:?} (in its first {} KiB)",
            HEALTH_MAX_BODY / 1024
        ))
    }
}

/// The check's request: `target` is the path (HTTP/1.1) or the absolute
/// URI that gives HTTP/2 its `:scheme` and `:authority`.
fn request(hc: &HealthCheck, target: &str) -> Result<Request<Empty<Bytes>>, String> {
    Request::builder()
        .method(hc.method.clone())
        .uri(target)
        .header(header::USER_AGENT, "sluice-health")
        .body(Empty::new())
        .map_err(|e| format!("invalid check request: {e}"))
}

fn authority(addr: BackendAddr, hc: &HealthCheck) -> String {
    hc.host.clone().unwrap_or_else(|| addr.to_string())
}

async fn send_h1(
    io: UpstreamIo,
    addr: BackendAddr,
    hc: &HealthCheck,
) -> Result<Response<Incoming>, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
    tokio::spawn(conn);
    let mut req = request(hc, &hc.path)?;
    let host = header::HeaderValue::try_from(authority(addr, hc))
        .map_err(|e| format!("invalid Host: {e}"))?;
    req.headers_mut().insert(header::HOST, host);
    req.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("no response: {e}"))
}

async fn send_h2(
    io: UpstreamIo,
    addr: BackendAddr,
    hc: &HealthCheck,
    tls: bool,
    phase: &mut Phase,
) -> Result<Response<Incoming>, String> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    // Ends when `sender` and the response are dropped, after the check.
    tokio::spawn(conn);
    *phase = Phase::Head;
    let scheme = if tls { "https" } else { "http" };
    let req = request(
        hc,
        &format!("{scheme}://{}{}", authority(addr, hc), hc.path),
    )?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("no response: {e}"))
}

/// Reads at most [`HEALTH_MAX_BODY`] bytes of `body`, stopping as soon as
/// they contain `want`.
async fn body_contains(mut body: Incoming, want: &[u8]) -> Result<bool, String> {
    if want.is_empty() {
        return Ok(true);
    }
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < HEALTH_MAX_BODY {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| format!("reading the body failed: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // Search only where a match could end in the new bytes.
        let from = seen.len().saturating_sub(want.len() - 1);
        let room = HEALTH_MAX_BODY - seen.len();
        seen.extend_from_slice(&data[..data.len().min(room)]);
        if contains(&seen[from..], want) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_text_across_the_whole_buffer() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"status: o", b"ok"));
        assert!(!contains(b"", b"ok"));
    }
}
