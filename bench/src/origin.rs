//! The fixed-response origin behind every proxy under test.
//!
//! It must cost as little CPU as possible so that the proxy is the only thing
//! being measured: bodies are built once and shared as `Bytes`, there is no
//! routing table beyond a `match` on the path, and it runs on a
//! `current_thread` runtime (one core, the generator's core).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body of `/tiny`: 13 bytes.
pub const TINY: &[u8] = b"Hello, world!";

/// Every path the origin serves, with its body and content type.
#[derive(Clone)]
pub struct Bodies {
    tiny: Bytes,
    one_k: Bytes,
    sixty_four_k: Bytes,
    json_64k: Bytes,
}

impl Bodies {
    pub fn new() -> Self {
        Self {
            tiny: Bytes::from_static(TINY),
            one_k: Bytes::from(vec![b'a'; 1024]),
            sixty_four_k: Bytes::from(pseudo_random(64 * 1024)),
            json_64k: Bytes::from(json_like(64 * 1024)),
        }
    }

    /// The body and content type for `path`, or `None` for a 404.
    pub fn get(&self, path: &str) -> Option<(Bytes, &'static str)> {
        match path {
            "/tiny" | "/ping" | "/" => Some((self.tiny.clone(), "text/plain")),
            "/1k" => Some((self.one_k.clone(), "text/plain")),
            "/64k" => Some((self.sixty_four_k.clone(), "application/octet-stream")),
            "/json64k" => Some((self.json_64k.clone(), "application/json")),
            _ => None,
        }
    }
}

impl Default for Bodies {
    fn default() -> Self {
        Self::new()
    }
}

/// Incompressible bytes (an xorshift stream mapped to printable ASCII), so
/// that a proxy that compresses by accident gains nothing on `/64k`.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect()
}

/// A JSON array of records with repeated keys and varied values: it
/// compresses like a real API response (about 8:1 at gzip level 1, as
/// nginx does on the reference body), not
/// like a run of one byte.
pub fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 256);
    out.push('[');
    let mut i: u64 = 0;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < len - 160 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"score\":{},\"active\":{},\"tags\":[\"t{}\",\"t{}\"],\"note\":\"item {} of the list\"}}",
            x % 100,
            x % 10,
            x.is_multiple_of(3),
            (x >> 20) % 8,
            (x >> 30) % 8,
            i
        ));
        i += 1;
    }
    out.push(']');
    while out.len() < len {
        out.push(' ');
    }
    out.truncate(len);
    out.into_bytes()
}

fn respond(bodies: &Bodies, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match bodies.get(req.uri().path()) {
        Some((body, content_type)) => {
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        None => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    }
}

/// Serves HTTP/1.1 keep-alive on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let bodies = Bodies::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let bodies = bodies.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = respond(&bodies, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_advertised_sizes() {
        let b = Bodies::new();
        assert_eq!(b.get("/tiny").unwrap().0.len(), 13);
        assert_eq!(b.get("/1k").unwrap().0.len(), 1024);
        assert_eq!(b.get("/64k").unwrap().0.len(), 65536);
        let (json, ct) = b.get("/json64k").unwrap();
        assert_eq!(json.len(), 65536);
        assert_eq!(ct, "application/json");
        assert!(json.starts_with(b"[{\"id\":0,"));
        assert!(b.get("/nope").is_none());
    }
}
