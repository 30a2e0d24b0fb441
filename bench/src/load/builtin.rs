//! The built-in generator: `connections` hyper HTTP/1.1 clients in a loop on
//! a current-thread runtime in this process.
//!
//! It exists so that the harness can be exercised (by `cargo test`, or on a
//! machine without wrk) with nothing installed. It is not a substitute for
//! wrk in a report: it costs more CPU per request, so the report names the
//! generator beside every figure.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{LoadResult, LoadSpec, percentile};
use crate::error::{Error, IoContext, Result};

/// Per-connection tallies, merged at the end.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// Splits `http://host:port/path` into the address and path.
pub fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| Error::Parse {
        what: "url",
        detail: format!("builtin generator speaks plain http only: {url}"),
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    Ok((authority.to_string(), path.to_string()))
}

pub fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let (authority, path) = split_url(&spec.url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "building builtin generator runtime".to_string())?;
    let start = Instant::now();
    let deadline = start + spec.duration;
    let tallies = rt.block_on(async {
        let mut tasks = Vec::with_capacity(spec.connections);
        for _ in 0..spec.connections.max(1) {
            let (authority, path) = (authority.clone(), path.clone());
            let (close, coding) = (spec.close, spec.accept_encoding);
            tasks.push(tokio::spawn(async move {
                client_loop(&authority, &path, close, coding, deadline).await
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    for t in tallies {
        lat.extend(t.latencies_us);
        errors += t.errors;
    }
    lat.sort_unstable();
    let requests = lat.len() as u64;
    Ok(LoadResult {
        requests,
        duration_s: elapsed,
        rps: requests as f64 / elapsed.max(1e-9),
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
        p999_us: percentile(&lat, 99.9),
        errors,
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(authority: &str) -> Option<Sender> {
    let stream = TcpStream::connect(authority).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn client_loop(
    authority: &str,
    path: &str,
    close: bool,
    coding: Option<&'static str>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let mut s = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(authority).await {
                Some(s) => s,
                None => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut req = http::Request::builder()
            .uri(path)
            .header(http::header::HOST, authority);
        if close {
            req = req.header(http::header::CONNECTION, "close");
        }
        if let Some(coding) = coding {
            req = req.header(http::header::ACCEPT_ENCODING, coding);
        }
        let Ok(req) = req.body(Empty::new()) else {
            tally.errors += 1;
            break;
        };
        if s.ready().await.is_err() {
            tally.errors += 1;
            continue;
        }
        match s.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success() || resp.status().is_redirection();
                match resp.into_body().collect().await {
                    Ok(_) if ok => {
                        let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        tally.latencies_us.push(us.max(1));
                    }
                    _ => tally.errors += 1,
                }
            }
            Err(_) => tally.errors += 1,
        }
        if !close {
            sender = Some(s);
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/1k").unwrap(),
            ("127.0.0.1:8080".into(), "/1k".into())
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), "/".into())
        );
        assert!(split_url("https://x/").is_err());
    }
}
