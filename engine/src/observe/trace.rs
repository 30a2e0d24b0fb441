//! W3C Trace Context on the request path. [`Tracer::start`] runs first in
//! `proxy::handle`: it reads the client's `traceparent` (strictly, with
//! `sluice_tracecontext`; an invalid one starts a new trace, never a 400),
//! keeps a valid and bounded `tracestate` (else drops it), and sets the
//! `traceparent` the backend gets. The [`Span`] rides in the request's
//! [`Exchange`]; [`Tracer::finish`] runs when the exchange does (the
//! response body sent or given up) and hands the span to the exporter
//! ([`super::otlp`]).
//!
//! The proxy is a span of its own only when it exports spans: the backend
//! then gets the same trace id and flags with the proxy's span id as its
//! parent. Without an exporter, a valid `traceparent` passes unchanged (a
//! parent that no collector ever receives would break the trace's tree),
//! and a request without one gets a new trace.

use super::Exchange;
use super::otlp::{Exporter, SpanRecord};
use crate::config::TracingConfig;
use crate::state::State;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use sluice_tracecontext::{FLAG_SAMPLED, SpanId, TraceId, TraceParent, tracestate_ok};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const TRACEPARENT: HeaderName = HeaderName::from_static(sluice_tracecontext::TRACEPARENT);
pub const TRACESTATE: HeaderName = HeaderName::from_static(sluice_tracecontext::TRACESTATE);

/// Longest `url.path` and `server.address` kept in a span, in bytes: a
/// queued span's size is bounded whatever the request limits are.
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// Counts of spans that did not reach the receiver, for the rate-limited
/// warnings here and in `otlp`, and for `/metrics` (`observe::trace::stats`).
///
/// # Concurrency
/// Each field is a monotonic counter: `Relaxed` adds from any worker or the
/// exporter task, `Relaxed` loads at scrape time; no other memory depends
/// on them.
#[derive(Debug, Default)]
pub struct TraceStats {
    /// Spans dropped because the export queue was full.
    pub dropped: AtomicU64,
    /// Spans the receiver accepted (a 2xx to their export request).
    pub exported: AtomicU64,
    /// Export requests that failed: no connection, timeout or a non-2xx.
    pub export_failures: AtomicU64,
    /// Spans in those failed requests.
    pub lost: AtomicU64,
}

static STATS: TraceStats = TraceStats {
    dropped: AtomicU64::new(0),
    exported: AtomicU64::new(0),
    export_failures: AtomicU64::new(0),
    lost: AtomicU64::new(0),
};

/// The process's span export counters (they outlive reloads and exporters).
pub fn stats() -> &'static TraceStats {
    &STATS
}

impl TraceStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// `[tracing]` as the request path runs it; one per [`State`].
#[derive(Debug)]
pub struct Tracer {
    enabled: bool,
    sample_ratio: f64,
    /// Shared with the next state when a reload keeps `[tracing]` as it
    /// was, so one exporter task serves the whole process.
    exporter: Option<Arc<Exporter>>,
}

/// A span being recorded: sampled, with an exporter to take it.
#[derive(Debug)]
pub struct Span {
    ctx: TraceParent,
    /// The client's span, if it sent a valid `traceparent`.
    parent: Option<SpanId>,
    tracestate: String,
}

impl Span {
    pub fn trace_id(&self) -> TraceId {
        self.ctx.trace_id
    }
}

impl Tracer {
    /// Builds the tracer for a new state; the exporter (and its task) of
    /// `previous` is kept when the export settings did not change. Outside
    /// a tokio runtime (config checks), there is no exporter.
    pub fn new(config: &TracingConfig, previous: Option<&Tracer>) -> Tracer {
        let exporter = config.otlp.as_ref().and_then(|otlp| {
            match previous.and_then(|p| p.exporter.as_ref()) {
                Some(e) if e.config() == otlp => Some(e.clone()),
                _ => Exporter::spawn(otlp).map(Arc::new),
            }
        });
        Tracer {
            enabled: config.enabled,
            sample_ratio: config.sample_ratio,
            exporter,
        }
    }

    /// Reads the client's trace context and sets the backend's; a span to
    /// [`finish`](Tracer::finish) when this request is sampled and spans
    /// are exported.
    pub fn start<B>(&self, req: &mut Request<B>) -> Option<Span> {
        if !self.enabled {
            return None;
        }
        let headers = req.headers_mut();
        let parent = only(headers, &TRACEPARENT).and_then(|v| TraceParent::parse(v.as_bytes()));
        // A tracestate belongs to its traceparent (W3C §3.3): without a
        // valid parent, or out of bounds, it goes.
        let keep_state = parent.is_some()
            && tracestate_ok(headers.get_all(&TRACESTATE).iter().map(|v| v.as_bytes()));
        if !keep_state {
            headers.remove(&TRACESTATE);
        }
        let sampled = |p: Option<TraceParent>| match p {
            Some(p) => p.sampled(),
            None => self.sample_ratio >= 1.0 || fastrand::f64() < self.sample_ratio,
        };
        if self.exporter.is_none() {
            if parent.is_none() {
                let root = TraceParent::new_root(sampled(None));
                headers.insert(TRACEPARENT, header_value(&root));
            }
            return None;
        }
        let own = SpanId::random();
        let ctx = match parent {
            Some(p) => p.child(own),
            None => TraceParent {
                trace_id: TraceId::random(),
                parent_id: own,
                flags: if sampled(None) { FLAG_SAMPLED } else { 0 },
            },
        };
        headers.insert(TRACEPARENT, header_value(&ctx));
        if !ctx.sampled() {
            return None;
        }
        let tracestate = headers
            .get_all(&TRACESTATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Some(Span {
            ctx,
            parent: parent.map(|p| p.parent_id),
            tracestate,
        })
    }

    /// Hands the finished exchange's span to the exporter (never waits: a
    /// full queue drops it and counts).
    pub fn finish(&self, span: &Span, e: &Exchange, state: &State) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let route = e.trail.route().and_then(|i| state.config.routes.get(i));
        let name = match &route {
            Some(r) => format!("{} {}", e.method, r.path),
            None => e.method.to_string(),
        };
        let host = e
            .uri
            .host()
            .or_else(|| {
                e.host
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .map(strip_port)
            })
            .unwrap_or_default();
        exporter.push(SpanRecord {
            trace_id: span.ctx.trace_id,
            span_id: span.ctx.parent_id,
            parent: span.parent,
            flags: span.ctx.flags,
            tracestate: span.tracestate.clone(),
            name,
            start: e.started_wall,
            end: e.started_wall + e.duration,
            method: e.method.clone(),
            path: bounded(e.uri.path()),
            host: bounded(host),
            version: e.version,
            status: e.status,
            route: route.map(|r| match &r.host {
                Some(h) => format!("{h}{}", r.path),
                None => r.path.clone(),
            }),
            upstream: route
                .and_then(|r| state.config.upstreams.get(r.upstream))
                .map(|u| u.name.clone()),
            backend: e.trail.backend().map(|b| b.addr.0.to_string()),
        });
    }
}

/// The header's one value; none when absent or repeated (two
/// `traceparent`s cannot both be the parent).
fn only<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

fn header_value(tp: &TraceParent) -> HeaderValue {
    HeaderValue::from_bytes(&tp.encode())
        .expect("lowercase hex and dashes are a valid header value")
}

fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// At most [`MAX_ATTRIBUTE_BYTES`], cut on a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_ATTRIBUTE_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests;
