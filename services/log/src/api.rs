//! HTTP stage: routes a request to ingest, query, health or stats, and turns
//! every [`Error`] into a response in one place ([`error_response`]).
//!
//! | route              | answer                                              |
//! |--------------------|-----------------------------------------------------|
//! | `POST /`           | 200 `{"accepted":n}` once durable; 400/413/503      |
//! | `GET /logs?...`    | 200 JSON array ordered by time; 400 on bad params   |
//! | `GET /ping`        | 200 always (liveness)                               |
//! | `GET /ready`       | 200 once recovered and the WAL is writable, else 503|
//! | `GET /stats`       | 200 counters                                        |
//! | `GET /metrics`     | 200 Prometheus exposition ([`crate::stats`])        |

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::json;
use time::OffsetDateTime;

use sluice_service_common::Reservation;

use crate::App;
use crate::entry::{self, JsonEntry};
use crate::error::{Error, Unavailable};
use crate::query::{self, Query};

/// What a request asks for, decided from method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ingest,
    Logs,
    Ping,
    Ready,
    Stats,
    Metrics,
}

impl Route {
    pub fn of(method: &Method, path: &str) -> Result<Route, Error> {
        let (route, allowed) = match path {
            "/" => (Route::Ingest, Method::POST),
            "/logs" => (Route::Logs, Method::GET),
            "/ping" => (Route::Ping, Method::GET),
            "/ready" => (Route::Ready, Method::GET),
            "/stats" => (Route::Stats, Method::GET),
            "/metrics" => (Route::Metrics, Method::GET),
            _ => return Err(Error::NotFound),
        };
        if *method == allowed || (allowed == Method::GET && *method == Method::HEAD) {
            Ok(route)
        } else {
            Err(Error::MethodNotAllowed)
        }
    }
}

pub type Body = Full<Bytes>;

/// Bodies up to this size are parsed on the async worker; larger ones in
/// `spawn_blocking` (parsing runs at roughly 100 MB/s, so ~1 ms here).
const PARSE_INLINE_MAX: usize = 128 << 10;

/// Entry point for every request. Never fails: errors become responses.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let route = Route::of(req.method(), req.uri().path());
    let result = match route {
        Ok(Route::Ingest) => ingest(&app, req).await,
        Ok(Route::Logs) => logs(&app, req.uri().query()).await,
        Ok(Route::Ping) => Ok(text(StatusCode::OK, "pong\n")),
        Ok(Route::Ready) => Ok(ready(&app)),
        Ok(Route::Stats) => Ok(stats(&app)),
        Ok(Route::Metrics) => Ok(metrics(&app)),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_response(&app, &e))
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

/// The only place an [`Error`] becomes a response.
fn error_response(app: &App, e: &Error) -> Response<Body> {
    let status = e.status();
    if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
        app.stats.add_rejected();
    }
    if status.is_server_error() {
        tracing::warn!(error = %e, "request failed");
    }
    let body = match e.entry_error() {
        Some(ee) => json!({
            "error": e.to_string(),
            "index": ee.index,
            "field": ee.field.as_str(),
        }),
        None => json!({ "error": e.to_string() }),
    };
    json_response(status, &body)
}

async fn ingest(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let wal = app.wal()?;
    let limit = app.config.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    // Held until the batch is committed: the body, then its parsed entries.
    // Without a Content-Length the largest allowed body is reserved.
    let mut reserved = Reservation::default();
    if !app
        .uploads
        .reserve(&mut reserved, declared.unwrap_or(limit as u64))
    {
        return Err(Error::Busy);
    }
    let timeout = app.config.body_timeout;
    let collected = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect())
        .await
        .map_err(|_| Error::BodyTimeout(timeout))?;
    let body = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            // `Limited` fails with either the transport's error or its own
            // `LengthLimitError`.
            debug_assert!(e.is::<hyper::Error>() || e.is::<LengthLimitError>());
            return Err(match e.downcast::<hyper::Error>() {
                Ok(h) => Error::Body(*h),
                Err(_) => Error::BodyTooLarge { limit },
            });
        }
    };
    // Validation of the whole batch happens before anything reaches the WAL.
    // Big bodies are parsed off the async workers so they cannot stall them.
    let entries = if body.len() > PARSE_INLINE_MAX {
        tokio::task::spawn_blocking(move || entry::parse_body(&body))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??
    } else {
        entry::parse_body(&body)?
    };
    entry::check_future_skew(
        &entries,
        OffsetDateTime::now_utc(),
        app.config.max_future_skew,
    )?;
    let n = entries.len();
    if n > 0 {
        wal.commit(entries).await?;
    }
    Ok(json_response(StatusCode::OK, &json!({ "accepted": n })))
}

async fn logs(app: &Arc<App>, raw_query: Option<&str>) -> Result<Response<Body>, Error> {
    let q = Query::parse(raw_query)?;
    let app = app.clone();
    let entries = tokio::task::spawn_blocking(move || {
        query::run(
            &app.config.dir,
            app.config.format,
            app.config.keep_files,
            &app.pending,
            &q,
        )
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let out: Vec<JsonEntry> = entries.iter().map(JsonEntry::from).collect();
    Ok(json_response(StatusCode::OK, &out))
}

fn ready(app: &App) -> Response<Body> {
    match app.readiness() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(Unavailable::Recovering) => text(StatusCode::SERVICE_UNAVAILABLE, "recovering\n"),
        Err(Unavailable::WalFailed) => text(StatusCode::SERVICE_UNAVAILABLE, "wal failed\n"),
        Err(Unavailable::ShuttingDown) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// The request histogram's `route` names, in [`route_index`]'s order.
pub const ROUTES: [&str; 6] = ["ingest", "logs", "ping", "ready", "stats", "metrics"];

/// The index in [`ROUTES`] of a path, whatever the method (past the end:
/// unmatched).
pub fn route_index(path: &str) -> usize {
    match path {
        "/" => 0,
        "/logs" => 1,
        "/ping" => 2,
        "/ready" => 3,
        "/stats" => 4,
        "/metrics" => 5,
        _ => ROUTES.len(),
    }
}

fn metrics(app: &App) -> Response<Body> {
    let (buffered, buffered_bytes) = {
        let p = app.pending.lock();
        (p.buffer.len(), p.buffer.bytes())
    };
    app.stats.set_buffer(buffered, buffered_bytes);
    sluice_service_common::metrics::response(&app.metrics)
}

fn stats(app: &App) -> Response<Body> {
    let (buffered, buffered_bytes) = {
        let p = app.pending.lock();
        (p.buffer.len(), p.buffer.bytes())
    };
    let mut v =
        serde_json::to_value(app.stats.snapshot(buffered, buffered_bytes)).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ready".into(), json!(app.ready.load(Ordering::Acquire)));
    }
    json_response(StatusCode::OK, &v)
}
