//! `GET /metrics`: everything read at scrape time and encoded in the
//! OpenMetrics text format (which Prometheus reads) through
//! prometheus-client's [`Collector`]. The request path's counters
//! (`super::stats`) are read here with relaxed loads; the backends' states,
//! in-flight counts, queues, pools and listeners are read from where they
//! live, so nothing is counted twice and nothing is kept for the scrape.

use super::histogram::Histogram;
use super::stats::CLASSES;
use crate::proxy::compress::Encoding;
use crate::server::conn_limit::ConnLimiter;
use crate::state::State;
use crate::upstream::member::MemberState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The answer's `Content-Type`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The states `sluice_backend_state` has a series for, each 1 or 0.
const STATES: [(MemberState, &str); 5] = [
    (MemberState::Healthy, "healthy"),
    (MemberState::Unhealthy, "unhealthy"),
    (MemberState::Draining, "draining"),
    (MemberState::Ejected, "ejected"),
    (MemberState::HalfOpen, "half-open"),
];

/// A running listener as the scrape sees it.
#[derive(Debug)]
pub struct Listener {
    pub address: String,
    pub tls: bool,
    pub limiter: Arc<ConnLimiter>,
}

/// What one scrape reads.
#[derive(Debug)]
struct Scrape {
    state: Arc<State>,
    listeners: Vec<Listener>,
}

/// The exposition of `state` and `listeners`.
pub fn render(state: Arc<State>, listeners: Vec<Listener>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { state, listeners }));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A label value escaped as the text format wants (`\\`, `\"`, `\n`):
/// prometheus-client writes values as given, and group and rate limit
/// names are whatever TOML allows.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// One family: its descriptor, then a series per label set.
fn family<'a, V>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    ty: MetricType,
    series: impl IntoIterator<Item = (Labels<'a>, V)>,
    mut each: impl FnMut(&mut MetricEncoder<'_>, V) -> fmt::Result,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in series {
        if labels.is_empty() {
            each(&mut m, v)?;
        } else {
            let labels: Vec<_> = labels.iter().map(|&(k, v)| (k, Escaped(v))).collect();
            each(&mut m.encode_family(&labels)?, v)?;
        }
    }
    Ok(())
}

/// One series per content coding, labelled `algorithm` (`gzip`, `br`, `zstd`).
fn per_encoding(counts: &[AtomicU64; 3]) -> impl Iterator<Item = (Labels<'static>, u64)> + '_ {
    Encoding::ALL.into_iter().map(|e| {
        (
            vec![("algorithm", e.token())],
            counts[e.index()].load(Ordering::Relaxed),
        )
    })
}

fn counters<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Counter, series, |m, v| {
        m.encode_counter::<NoLabelSet, _, u64>(&v, None)
    })
}

fn gauges<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Gauge, series, |m, v| {
        m.encode_gauge(&v)
    })
}

fn histograms<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, &'a Histogram)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Histogram, series, |m, h| {
        let r = h.read();
        m.encode_histogram::<NoLabelSet>(r.sum_seconds, r.count, &r.buckets, None)
    })
}

/// A backend as the scrape reads it.
struct BackendRow<'a> {
    group: &'a str,
    address: String,
    backend: Arc<crate::upstream::Backend>,
    state: MemberState,
    /// HTTP/1.1 connections idle in the pools, and HTTP/2 connections up.
    idle: usize,
    h2: usize,
    http2: bool,
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let state = &self.state;
        let m = &state.metrics;
        let p = &m.process;
        gauges(
            &mut enc,
            "sluice_build_info",
            "The running build: always 1, its version as a label",
            [(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        gauges(
            &mut enc,
            "sluice_process_start_time_seconds",
            "When the proxy started, in seconds since the Unix epoch",
            [(vec![], p.started_unix)],
        )?;

        // Requests, by route.
        let routes = m.routes();
        histograms(
            &mut enc,
            "sluice_http_request_duration_seconds",
            "Requests from head to the end of the response body, by method, route and status class",
            routes.iter().flat_map(|r| {
                r.durations().map(|(method, class, h)| {
                    (
                        vec![
                            ("method", method),
                            ("route", r.name.as_str()),
                            ("status_class", class),
                        ],
                        h,
                    )
                })
            }),
        )?;
        counters(
            &mut enc,
            "sluice_route_request_bytes",
            "Request body bytes received from clients, by route",
            routes.iter().map(|r| {
                (
                    vec![("route", r.name.as_str())],
                    r.bytes_in.load(Ordering::Relaxed),
                )
            }),
        )?;
        counters(
            &mut enc,
            "sluice_route_response_bytes",
            "Response body bytes sent to clients (after compression), by route",
            routes.iter().map(|r| {
                (
                    vec![("route", r.name.as_str())],
                    r.bytes_out.load(Ordering::Relaxed),
                )
            }),
        )?;

        // Upstream groups.
        histograms(
            &mut enc,
            "sluice_upstream_connect_duration_seconds",
            "A try's connection checkout (near 0 when pooled), by group",
            m.groups()
                .iter()
                .map(|g| (vec![("group", g.name.as_str())], &g.connect)),
        )?;
        histograms(
            &mut enc,
            "sluice_upstream_header_duration_seconds",
            "From the request sent to the backend's response head (time to first byte), by group",
            m.groups()
                .iter()
                .map(|g| (vec![("group", g.name.as_str())], &g.header)),
        )?;
        counters(
            &mut enc,
            "sluice_retries",
            "Retries sent to another backend, by group",
            state
                .groups
                .iter()
                .map(|g| (vec![("group", g.name.as_str())], g.retry_budget.retries())),
        )?;
        counters(
            &mut enc,
            "sluice_retry_budget_exhausted",
            "Retries the group's retry budget refused",
            state
                .groups
                .iter()
                .map(|g| (vec![("group", g.name.as_str())], g.retry_budget.exhausted())),
        )?;
        gauges(
            &mut enc,
            "sluice_queue_depth",
            "Requests waiting for a backend below max_requests_per_backend, by group",
            state.groups.iter().filter_map(|g| {
                let l = g.limit.as_ref()?;
                Some((
                    vec![("group", g.name.as_str())],
                    l.queue.stats().queued as f64,
                ))
            }),
        )?;

        // Backends.
        let rows = self.backends();
        gauges(
            &mut enc,
            "sluice_backend_state",
            "1 for the backend's state in its group's state machine, 0 for the others",
            rows.iter().flat_map(|r| {
                STATES.iter().map(move |(s, name)| {
                    (
                        vec![
                            ("group", r.group),
                            ("backend", r.address.as_str()),
                            ("state", *name),
                        ],
                        if r.state == *s { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        gauges(
            &mut enc,
            "sluice_backend_in_flight",
            "Requests sent to the backend and not finished",
            rows.iter()
                .map(|r| (backend_labels(r), f64::from(r.backend.in_flight()))),
        )?;
        counters(
            &mut enc,
            "sluice_backend_requests",
            "Requests whose last try the backend served, by status class",
            rows.iter().flat_map(|r| {
                CLASSES.iter().enumerate().map(move |(i, class)| {
                    let mut l = backend_labels(r);
                    l.push(("status_class", class));
                    (l, r.backend.stats.requests(i))
                })
            }),
        )?;
        counters(
            &mut enc,
            "sluice_backend_request_bytes",
            "Request body bytes of the requests the backend served",
            rows.iter().map(|r| {
                (
                    backend_labels(r),
                    r.backend.stats.bytes_in.load(Ordering::Relaxed),
                )
            }),
        )?;
        counters(
            &mut enc,
            "sluice_backend_response_bytes",
            "Response body bytes sent to clients for the backend's responses",
            rows.iter().map(|r| {
                (
                    backend_labels(r),
                    r.backend.stats.bytes_out.load(Ordering::Relaxed),
                )
            }),
        )?;
        gauges(
            &mut enc,
            "sluice_upstream_pool_connections",
            "Upstream connections: idle HTTP/1.1 ones in the pools, and in use (HTTP/1.1: requests in flight, each holding one; HTTP/2: shared connections up)",
            rows.iter().flat_map(|r| {
                let in_use = if r.http2 {
                    r.h2
                } else {
                    r.backend.in_flight() as usize
                };
                [("idle", r.idle), ("in_use", in_use)].map(|(s, n)| {
                    let mut l = backend_labels(r);
                    l.push(("state", s));
                    (l, n as f64)
                })
            }),
        )?;

        // Client connections.
        gauges(
            &mut enc,
            "sluice_client_connections",
            "Client connections open now, by listener and protocol",
            self.listeners.iter().flat_map(|l| {
                let tls = if l.tls { "true" } else { "false" };
                let h2 = l.limiter.open_h2();
                let h1 = l.limiter.open().saturating_sub(h2);
                [("h1", h1), ("h2", h2)].map(|(proto, n)| {
                    (
                        vec![
                            ("listener", l.address.as_str()),
                            ("protocol", proto),
                            ("tls", tls),
                        ],
                        n as f64,
                    )
                })
            }),
        )?;
        counters(
            &mut enc,
            "sluice_client_connections_accepted",
            "Client connections accepted and served, by listener",
            self.listeners
                .iter()
                .map(|l| (vec![("listener", l.address.as_str())], l.limiter.accepted())),
        )?;
        counters(
            &mut enc,
            "sluice_client_connections_refused",
            "Client connections closed at once by max_connections or max_connections_per_client",
            self.listeners
                .iter()
                .map(|l| (vec![("listener", l.address.as_str())], l.limiter.refused())),
        )?;
        counters(
            &mut enc,
            "sluice_proxy_protocol_refused",
            "Connections closed for their PROXY protocol header, by listener and reason",
            self.listeners
                .iter()
                .filter(|l| l.limiter.proxy_protocol().is_some())
                .flat_map(|l| {
                    l.limiter.proxy_refusals().map(|(reason, n)| {
                        let labels = vec![("listener", l.address.as_str()), ("reason", reason)];
                        (labels, n)
                    })
                }),
        )?;

        // Refusals and the rest.
        counters(
            &mut enc,
            "sluice_rate_limited",
            "Requests refused with 429 by each [[rate_limit]]",
            state.rate_limits.limits.iter().map(|l| {
                (
                    vec![("limit", l.config.name.as_str())],
                    l.limited.load(Ordering::Relaxed),
                )
            }),
        )?;
        counters(
            &mut enc,
            "sluice_proxy_errors",
            "Responses the proxy made itself, by their x-sluice-error reason",
            p.reasons().map(|(r, n)| (vec![("reason", r)], n)),
        )?;
        counters(
            &mut enc,
            "sluice_compression_input_bytes",
            "Response body bytes compressed, by coding",
            per_encoding(&p.compress_in),
        )?;
        counters(
            &mut enc,
            "sluice_compression_output_bytes",
            "Compressed bytes sent for them, by coding",
            per_encoding(&p.compress_out),
        )?;
        counters(
            &mut enc,
            "sluice_access_log_dropped",
            "Access log lines dropped because the log's queue was full",
            [(vec![], access_log_dropped(state))],
        )?;
        Ok(())
    }
}

/// The access log's drop counter (`observe::access_log::Counters`), kept
/// across reloads with the log; 0 without an access log.
fn access_log_dropped(state: &State) -> u64 {
    state.access_log.as_ref().map_or(0, |l| {
        l.counters
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    })
}

fn backend_labels<'a>(r: &'a BackendRow<'_>) -> Labels<'a> {
    vec![("group", r.group), ("backend", r.address.as_str())]
}

impl Scrape {
    /// Every member of every group, with its pooled connections.
    fn backends(&self) -> Vec<BackendRow<'_>> {
        let mut pooled: HashMap<u64, (usize, usize)> = HashMap::new();
        for pool in self.state.metrics.process.pools() {
            pool.count_connections(|id, idle, h2| {
                let e = pooled.entry(id).or_default();
                e.0 += idle;
                e.1 += h2;
            });
        }
        let mut rows = Vec::new();
        for g in &self.state.groups {
            let http2 = g.protocol != crate::config::UpstreamProtocol::Http1;
            for (backend, state) in g.member_states() {
                let (idle, h2) = pooled.get(&backend.id).copied().unwrap_or_default();
                rows.push(BackendRow {
                    group: &g.name,
                    address: backend.addr.to_string(),
                    backend,
                    state,
                    idle,
                    h2,
                    http2,
                });
            }
        }
        rows
    }
}
