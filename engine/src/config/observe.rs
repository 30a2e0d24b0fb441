//! What the proxy reports: `[metrics]` and `[tracing]` (`crate::observe`);
//! the access log's settings are in `config::access_log`.

use super::defaults;
use std::time::Duration;

/// `[metrics]` (see `observe::metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Count each request at its finish; off, `/metrics` still shows what
    /// is read at scrape time (backends, pools, connections) but no
    /// request's counts.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig { enabled: true }
    }
}

/// `[tracing]`: W3C trace context and OTLP span export (`observe::trace`).
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// Read `traceparent`/`tracestate` and send them on; off leaves both
    /// headers as the client sent them.
    pub enabled: bool,
    /// Where spans go; `None`: the proxy is no span and exports nothing.
    pub otlp: Option<OtlpConfig>,
    /// Share of new traces sampled (a parent's sampled flag wins).
    pub sample_ratio: f64,
}

/// Where and how spans are exported (`observe::otlp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `host:port` of the receiver, as given.
    pub authority: String,
    /// `/prefix/v1/traces`.
    pub path: String,
    pub service_name: String,
    pub service_instance_id: String,
    pub batch_size: usize,
    pub batch_interval: Duration,
    pub max_queue: usize,
    pub export_timeout: Duration,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enabled: true,
            otlp: None,
            sample_ratio: defaults::TRACE_SAMPLE_RATIO,
        }
    }
}
