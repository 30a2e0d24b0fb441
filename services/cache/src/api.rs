//! The HTTP API: route a request, parse its inputs, call the [`Store`],
//! shape the response. Every failure is an [`ApiError`] turned into a
//! response in exactly one place ([`Api::handle`]).
//!
//! | method + path                     | does                                   |
//! |-----------------------------------|----------------------------------------|
//! | `GET /?key=K`                     | 200 + stored body and Content-Type, or 404 |
//! | `POST`/`PUT /?key=K`              | store the body for `Cache-Control: max-age=N` (or `maxage=N`) |
//! | `DELETE /?key=K`, `GET`/`POST /invalidate?key=K` | remove (200 either way) |
//! | `POST /purge`                     | remove expired entries now; `{"purged":N}` |
//! | `GET /stats`                      | JSON counters                          |
//! | `GET /ping`, `GET /ready`         | liveness; readiness (503 if the store does not answer) |
//! | `GET /metrics`                    | Prometheus exposition ([`crate::metrics`]) |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use sluice_service_common::{BodyBudget, Reservation};

use crate::error::ApiError;
use crate::metrics::CacheMetrics;
use crate::parse;
use crate::store::{Entry, Store};

/// Content type replayed for entries stored without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// `/ready` reports 503 when the store takes longer than this to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub type Body = Full<Bytes>;

/// One per server, shared by every connection task through an `Arc`.
pub struct Api<S> {
    store: Arc<S>,
    max_entry_bytes: u64,
    /// How long a client has to send a whole entry body.
    body_timeout: Duration,
    /// Bytes of entry bodies being received or stored right now.
    uploads: BodyBudget,
    /// Hits and misses (this replica's own counts: with Redis, the store's
    /// numbers are global but these are per replica) and `GET /metrics`.
    metrics: CacheMetrics,
}

#[derive(serde::Serialize)]
struct Stats {
    store: &'static str,
    entries: u64,
    bytes: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

impl<S: Store> Api<S> {
    pub fn new(store: Arc<S>, limits: &crate::Config, metrics: CacheMetrics) -> Self {
        Self {
            store,
            max_entry_bytes: limits.max_entry_bytes,
            body_timeout: limits.body_timeout,
            uploads: BodyBudget::new(limits.max_inflight_body_bytes),
            metrics,
        }
    }

    /// Answers one request; never fails (errors become 4xx/5xx responses).
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        // Both clones are cheap (standard methods are inline, a `Uri` shares
        // its bytes); they only feed the log line.
        let method = request.method().clone();
        let uri = request.uri().clone();
        let path = uri.path();
        match self.route(request).await {
            Ok(response) => {
                tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
                response
            }
            Err(error) => {
                let status = error.status().as_u16();
                if error.is_client_error() {
                    tracing::debug!(%method, %path, status, error = %error, "request rejected");
                } else {
                    tracing::warn!(%method, %path, status, error = &error as &dyn std::error::Error, "request failed");
                }
                error.to_response()
            }
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let method = request.method().as_str();
        match request.uri().path() {
            "/" => match method {
                "GET" | "HEAD" => self.get(&request).await,
                "POST" | "PUT" => self.put(request).await,
                "DELETE" => self.invalidate(&request).await,
                _ => Err(ApiError::Method {
                    allow: "GET, HEAD, POST, PUT, DELETE",
                }),
            },
            "/invalidate" => match method {
                "GET" | "POST" | "DELETE" => self.invalidate(&request).await,
                _ => Err(ApiError::Method {
                    allow: "GET, POST, DELETE",
                }),
            },
            "/purge" => match method {
                "POST" => self.purge().await,
                _ => Err(ApiError::Method { allow: "POST" }),
            },
            "/stats" => match method {
                "GET" | "HEAD" => self.stats().await,
                _ => Err(ApiError::Method { allow: "GET, HEAD" }),
            },
            "/ping" => match method {
                "GET" | "HEAD" => Ok(text(StatusCode::OK, "pong")),
                _ => Err(ApiError::Method { allow: "GET, HEAD" }),
            },
            "/ready" => match method {
                "GET" | "HEAD" => Ok(self.ready().await),
                _ => Err(ApiError::Method { allow: "GET, HEAD" }),
            },
            "/metrics" => match method {
                "GET" | "HEAD" => Ok(self.scrape().await),
                _ => Err(ApiError::Method { allow: "GET, HEAD" }),
            },
            _ => Err(ApiError::NoRoute),
        }
    }

    async fn get(&self, request: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let key = parse::key(request.uri().query())?;
        let Some(entry) = self.store.get(&key).await? else {
            self.metrics.misses.inc();
            return Err(ApiError::NotFound);
        };
        self.metrics.hits.inc();
        let content_type = entry
            .content_type
            .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
        let mut response = Response::new(Full::new(entry.body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        Ok(response)
    }

    /// Validates key and TTL before reading the body, so a bad request is
    /// rejected without buffering anything and nothing is stored.
    async fn put(&self, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let key = parse::key(request.uri().query())?;
        let ttl = parse::max_age(request.headers())?;
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        // Held until the entry is stored (the store copies it once more).
        let mut reserved = Reservation::default();
        let body = tokio::time::timeout(
            self.body_timeout,
            read_body(request, self.max_entry_bytes, &self.uploads, &mut reserved),
        )
        .await
        .map_err(|_| ApiError::BodyTimeout(self.body_timeout))??;
        if ttl.is_zero() {
            // Already stale: storing it would only serve nothing; make sure
            // no older value outlives the client's intent either.
            self.store.remove(&key).await?;
            return Ok(text(StatusCode::OK, "not stored: max-age=0"));
        }
        let entry = Entry { body, content_type };
        self.store.put(key, entry, ttl).await?;
        Ok(text(StatusCode::OK, "stored"))
    }

    /// Idempotent: 200 whether or not the key was present.
    async fn invalidate(&self, request: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let key = parse::key(request.uri().query())?;
        let removed = self.store.remove(&key).await?;
        Ok(text(
            StatusCode::OK,
            if removed { "removed" } else { "not present" },
        ))
    }

    async fn purge(&self) -> Result<Response<Body>, ApiError> {
        let purged = self.store.purge_expired().await?;
        Ok(json(&serde_json::json!({ "purged": purged })))
    }

    async fn stats(&self) -> Result<Response<Body>, ApiError> {
        let usage = self.store.usage().await?;
        Ok(json(&Stats {
            store: self.store.kind(),
            entries: usage.entries,
            bytes: usage.bytes,
            hits: self.metrics.hits.get(),
            misses: self.metrics.misses.get(),
            evictions: usage.evictions,
            expirations: usage.expirations,
        }))
    }

    /// The store's numbers are read now (bounded by the readiness
    /// timeout: a dead Redis makes `cache_store_up` 0, not a hung scrape).
    async fn scrape(&self) -> Response<Body> {
        let usage = match tokio::time::timeout(READY_TIMEOUT, self.store.usage()).await {
            Ok(Ok(usage)) => Some(usage),
            Ok(Err(error)) => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "store usage for /metrics"
                );
                None
            }
            Err(_) => None,
        };
        self.metrics.scrape(usage)
    }

    async fn ready(&self) -> Response<Body> {
        match tokio::time::timeout(READY_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready"),
            Ok(Err(error)) => {
                tracing::warn!(error = &error as &dyn std::error::Error, "store not ready");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: store unavailable",
                )
            }
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: store timed out",
            ),
        }
    }
}

/// Reads the whole body, failing with 413 as soon as it is known to exceed
/// `limit`: up front from `Content-Length`, else while streaming.
///
/// The result is one allocation of exactly the body's length, and hyper's
/// read buffers are let go frame by frame: with a `Content-Length` each
/// frame is copied into a buffer of that size as it comes; a chunked body's
/// frames are kept and joined once at the end (a buffer grown by doubling
/// would allocate up to twice what is stored).
///
/// Every byte is reserved in `uploads` (into `reserved`) before it is
/// buffered: all of a `Content-Length` up front, a chunked body frame by
/// frame; when the budget cannot cover it, the request fails with 503.
async fn read_body(
    request: Request<Incoming>,
    limit: u64,
    uploads: &BodyBudget,
    reserved: &mut Reservation,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::TooLarge { limit };
    let declared = content_length(request.headers());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    if !uploads.reserve(reserved, declared.unwrap_or(0)) {
        return Err(ApiError::Busy);
    }
    let mut body = request.into_body();
    // `declared <= limit` here, and `limit` is bounded by the memory bound.
    let mut exact = Vec::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
    let mut frames: Vec<Bytes> = Vec::new();
    let mut length: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ApiError::Body)?;
        if let Ok(data) = frame.into_data() {
            length += data.len() as u64;
            if length > limit {
                return Err(too_large);
            }
            if declared.is_some() {
                exact.extend_from_slice(&data);
            } else if uploads.reserve(reserved, data.len() as u64) {
                frames.push(data);
            } else {
                return Err(ApiError::Busy);
            }
        }
    }
    if declared.is_some() || frames.is_empty() {
        return Ok(Bytes::from(exact));
    }
    let mut joined = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    for frame in &frames {
        joined.extend_from_slice(frame);
    }
    Ok(Bytes::from(joined))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    // Serialising our own plain structs cannot fail; an empty object would
    // still be valid JSON if it somehow did.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
