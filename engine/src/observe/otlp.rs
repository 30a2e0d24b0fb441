//! OTLP span export over HTTP/protobuf (`POST <endpoint>/v1/traces`,
//! `application/x-protobuf`), off the request path: [`Exporter::push`]
//! puts a finished span in a bounded queue without waiting, and one task
//! batches the queue into export requests. A full queue drops new spans; a
//! receiver that is down, slow or answers an error loses that batch. Both
//! are counted in [`super::trace::stats`] and warned about at most once per
//! [`WARN_EVERY`]; neither ever blocks a request or grows memory past the
//! queue (`max_queue` spans of bounded size) and one batch.
//!
//! The messages are `opentelemetry-proto`'s prost types, generated from the
//! official `.proto` files by the OpenTelemetry project.

use super::trace::{TraceStats, stats};
use crate::config::OtlpConfig;
use bytes::Bytes;
use http::{Method, Request, Version, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};
use prost::Message;
use sluice_tracecontext::{SpanId, TraceId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Least time between two warnings of one kind (dropped, failed).
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Most bytes of an export response read (a partial-success message is
/// small; the rest is not needed).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A finished span as the request path leaves it: plain values, turned
/// into protobuf by the exporter task.
#[derive(Debug)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub flags: u8,
    pub tracestate: String,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub method: Method,
    pub path: String,
    pub host: String,
    pub version: Version,
    pub status: u16,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub backend: Option<String>,
}

/// The queue into the exporter task; the task ends (after sending what is
/// queued) when the last `Exporter` is dropped.
#[derive(Debug)]
pub struct Exporter {
    tx: mpsc::Sender<SpanRecord>,
    config: OtlpConfig,
}

impl Exporter {
    /// Starts the export task on the current tokio runtime; `None` outside
    /// one.
    pub fn spawn(config: &OtlpConfig) -> Option<Exporter> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to export spans from; spans are not exported");
            return None;
        };
        let (tx, rx) = mpsc::channel(config.max_queue);
        rt.spawn(run(rx, config.clone()));
        Some(Exporter {
            tx,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Queues a span; drops and counts it when the queue is full.
    pub fn push(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            TraceStats::add(&stats().dropped, 1);
            if DROP_WARNING.due() {
                tracing::warn!(
                    dropped_total = stats().dropped.load(Ordering::Relaxed),
                    "span export queue full; spans dropped"
                );
            }
        }
    }
}

/// Warns at most once per [`WARN_EVERY`].
///
/// # Concurrency
/// `last` holds the last warning's time in seconds since the Unix epoch; a
/// compare-exchange picks one warner per window, and a lost race only means
/// no second warning: `Relaxed` suffices.
struct RateLimited {
    last: AtomicU64,
}

static DROP_WARNING: RateLimited = RateLimited {
    last: AtomicU64::new(0),
};
static FAIL_WARNING: RateLimited = RateLimited {
    last: AtomicU64::new(0),
};

impl RateLimited {
    fn due(&self) -> bool {
        let now = unix(SystemTime::now()) / 1_000_000_000;
        let last = self.last.load(Ordering::Relaxed);
        now >= last + WARN_EVERY.as_secs()
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The export task: waits for a span, collects up to `batch_size` of them
/// for at most `batch_interval`, sends them, and again, until the queue is
/// closed and empty.
async fn run(mut rx: mpsc::Receiver<SpanRecord>, config: OtlpConfig) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    let mut batch = Vec::with_capacity(config.batch_size);
    loop {
        if rx.recv_many(&mut batch, config.batch_size).await == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + config.batch_interval;
        while batch.len() < config.batch_size {
            let room = config.batch_size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = batch.len() as u64;
        let body = encode(&config, batch.drain(..)).encode_to_vec();
        let sent = tokio::time::timeout(config.export_timeout, send(&mut conn, &config, body));
        let outcome = match sent.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExportError::Timeout),
        };
        match outcome {
            Ok(()) => TraceStats::add(&stats().exported, n),
            Err(e) => {
                conn = None;
                TraceStats::add(&stats().export_failures, 1);
                TraceStats::add(&stats().lost, n);
                if FAIL_WARNING.due() {
                    tracing::warn!(
                        endpoint = %config.authority,
                        error = %e,
                        lost_total = stats().lost.load(Ordering::Relaxed),
                        "span export failed; spans lost"
                    );
                }
            }
        }
    }
}

/// Why one export request failed.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
    #[error("the receiver answered {0}")]
    Status(http::StatusCode),
    #[error("no answer within the export timeout")]
    Timeout,
}

/// One POST, on the kept connection when it is still open.
async fn send(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    config: &OtlpConfig,
    body: Vec<u8>,
) -> Result<(), ExportError> {
    let sender = match conn {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = TcpStream::connect(config.authority.as_str())
                .await
                .map_err(ExportError::Connect)?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(ExportError::Http)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            conn.insert(sender)
        }
    };
    sender.ready().await.map_err(ExportError::Http)?;
    let req = Request::post(config.path.as_str())
        .header(header::HOST, config.authority.as_str())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .expect("a POST with a validated path and authority is a valid request");
    let resp = sender.send_request(req).await.map_err(ExportError::Http)?;
    let status = resp.status();
    // Read (a bounded amount of) the answer so the connection can be reused.
    let _ = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await;
    if status.is_success() {
        Ok(())
    } else {
        Err(ExportError::Status(status))
    }
}

/// The export request for `spans`: one resource (this proxy), one scope.
fn encode(
    config: &OtlpConfig,
    spans: impl Iterator<Item = SpanRecord>,
) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            kv("service.name", config.service_name.clone()),
            kv("service.instance.id", config.service_instance_id.clone()),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "sluice".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans: spans.map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP `Span.flags`: the W3C trace flags in bits 0-7, bit 8 "has the
/// parent-is-remote bit", bit 9 "the parent is remote".
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn span(r: SpanRecord) -> Span {
    let mut attributes = vec![
        kv("http.request.method", r.method.as_str().to_owned()),
        kv("url.path", r.path),
        KeyValue {
            key: "http.response.status_code".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(i64::from(r.status))),
            }),
            ..Default::default()
        },
        kv("network.protocol.version", protocol(r.version).to_owned()),
    ];
    if !r.host.is_empty() {
        attributes.push(kv("server.address", r.host));
    }
    if let Some(route) = r.route {
        attributes.push(kv("sluice.route", route));
    }
    if let Some(u) = r.upstream {
        attributes.push(kv("sluice.upstream", u));
    }
    if let Some(b) = r.backend {
        attributes.push(kv("sluice.backend", b));
    }
    let status = (500..600).contains(&r.status).then(|| Status {
        code: StatusCode::Error as i32,
        message: String::new(),
    });
    Span {
        trace_id: r.trace_id.0.to_vec(),
        span_id: r.span_id.0.to_vec(),
        trace_state: r.tracestate,
        parent_span_id: r.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: u32::from(r.flags) | HAS_IS_REMOTE | if r.parent.is_some() { IS_REMOTE } else { 0 },
        name: r.name,
        kind: SpanKind::Server as i32,
        start_time_unix_nano: unix(r.start),
        end_time_unix_nano: unix(r.end),
        attributes,
        status,
        ..Default::default()
    }
}

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// `network.protocol.version` as OpenTelemetry writes it.
fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "",
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
