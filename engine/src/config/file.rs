//! The TOML file as written by people: serde model, `deny_unknown_fields`,
//! spans kept on every value that validation may reject so errors name a line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Worker threads, each with its own runtime, listeners and pools.
    pub workers: Option<Spanned<usize>>,
    /// `thread-per-core` (default) or `work-stealing`.
    pub runtime: Option<Spanned<String>>,
    #[serde(default)]
    pub listener: Vec<ListenerFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default)]
    pub forwarding: ForwardingFile,
    #[serde(default)]
    pub route: Vec<RouteFile>,
    #[serde(default)]
    pub upstream: BTreeMap<String, UpstreamFile>,
    /// `true`, or an `[access_log]` table (`config::access_log`).
    pub access_log: Option<super::access_log::AccessLogFile>,
    /// This proxy's name on responses and in log lines; default host:port.
    pub instance_id: Option<Spanned<String>>,
    /// The response header that carries it; `""` turns it off.
    pub instance_header: Option<Spanned<String>>,
    pub admin: Option<AdminFile>,
    #[serde(default)]
    pub compression: CompressionFile,
    /// Token-bucket request limits (`proxy::rate_limit`), checked in order.
    #[serde(default)]
    pub rate_limit: Vec<RateLimitFile>,
    /// Where `global = true` limits share their counts.
    pub global_limits: Option<GlobalLimitsFile>,
    #[serde(default)]
    pub metrics: MetricsFile,
    /// W3C trace context and OTLP span export (`observe::trace`).
    #[serde(default)]
    pub tracing: TracingFile,
    /// Socket handover to a successor process (`lifecycle::handover`).
    #[serde(default)]
    pub upgrade: UpgradeFile,
}

/// `[upgrade]`: zero-downtime upgrade of the proxy itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeFile {
    /// The Unix socket a successor (`sluice --takeover`) connects to.
    pub socket: Option<Spanned<String>>,
}

/// `[metrics]`: Prometheus counters for `GET /metrics` on the admin listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Count each request (default true).
    pub enabled: Option<bool>,
}

/// `[tracing]`: trace context propagation and span export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    /// Read and send `traceparent`/`tracestate` (default true).
    pub enabled: Option<bool>,
    /// `http://host:port[/prefix]`; spans go to `<endpoint>/v1/traces`.
    pub otlp_endpoint: Option<Spanned<String>>,
    /// Share of new traces sampled, 0 to 1.
    pub sample_ratio: Option<Spanned<f64>>,
    pub service_name: Option<Spanned<String>>,
    pub service_instance_id: Option<Spanned<String>>,
    pub batch_size: Option<Spanned<usize>>,
    pub batch_interval: Option<Spanned<String>>,
    pub max_queue: Option<Spanned<usize>>,
    pub export_timeout: Option<Spanned<String>>,
}

/// `[[rate_limit]]`: one token bucket per key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: Spanned<String>,
    /// `client`, `route` or `header:NAME`.
    pub key: Spanned<String>,
    /// Tokens per second (fractions allowed).
    pub rate: Spanned<f64>,
    /// Bucket size; default: the rate rounded up.
    pub burst: Option<Spanned<u32>>,
    /// Only requests for this host (exact or `*.suffix`).
    pub host: Option<Spanned<String>>,
    /// Only requests under this path prefix.
    pub path: Option<Spanned<String>>,
    /// Share the counts with other replicas through `[global_limits]`.
    #[serde(default)]
    pub global: bool,
    /// Most keys remembered (memory bound).
    pub max_keys: Option<Spanned<usize>>,
    /// `key = "client"` only: prefix lengths that name a client's bucket.
    pub ipv4_prefix: Option<Spanned<u8>>,
    pub ipv6_prefix: Option<Spanned<u8>>,
}

/// `[global_limits]`: the Redis that global rate limits sync through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimitsFile {
    /// `redis://host:port[/db]`.
    pub redis: Spanned<String>,
    pub sync_interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// `[compression]`: gzip, brotli and zstd for responses (see `proxy::compress`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionFile {
    /// For every route without its own `compress` switch.
    pub enabled: Option<bool>,
    /// Codings offered (`gzip`, `br`, `zstd`), in the server's order of
    /// preference among equal q-values.
    pub algorithms: Option<Spanned<Vec<String>>>,
    /// gzip: 1 (fastest) to 9 (smallest).
    pub level: Option<Spanned<u32>>,
    /// Brotli quality, 0 to 11.
    pub brotli_level: Option<Spanned<u32>>,
    /// Brotli window, 2^N bytes per stream: 10 to 24.
    pub brotli_window_log: Option<Spanned<u32>>,
    /// zstd level, 1 to 19.
    pub zstd_level: Option<Spanned<i32>>,
    /// zstd window, 2^N bytes per stream: 10 to 23 (RFC 9659's 8 MiB).
    pub zstd_window_log: Option<Spanned<u32>>,
    /// Bytes; responses with a known shorter length are left alone.
    pub min_length: Option<Spanned<u64>>,
    /// `type/subtype`, `type/*`, `*/*` or a suffix such as `+json`.
    pub types: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Loopback by default: the admin API changes what the proxy routes to.
    pub address: Spanned<String>,
    /// When set, every admin request needs `Authorization: Bearer TOKEN`.
    pub token: Option<Spanned<String>>,
    /// The token read from this file instead (surrounding whitespace dropped).
    pub token_file: Option<Spanned<String>>,
    /// Registered backends are saved here and restored on start.
    pub state_file: Option<String>,
    /// Host names besides the listener's address, `localhost` and loopback IPs.
    pub allowed_hosts: Option<Spanned<Vec<String>>>,
    /// Browser origins (`https://ops.example.com`) allowed to call.
    pub allowed_origins: Option<Spanned<Vec<String>>>,
    /// CIDRs whose peers may change state; default loopback only.
    pub allowed_sources: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    /// `false` turns every active check of the group off, the default
    /// heartbeats of registered backends too.
    pub enabled: Option<bool>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    /// `GET` (default) or `HEAD`.
    pub method: Option<Spanned<String>>,
    /// The `Host` (HTTP/1.1) or `:authority` (HTTP/2) of checks; default the
    /// backend's address.
    pub host: Option<Spanned<String>>,
    /// Statuses that count as healthy (default: any 2xx or 3xx).
    pub expect: Option<Vec<u16>>,
    /// Text the start of the body must contain.
    pub expect_body: Option<Spanned<String>>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveFile {
    /// The old name of `consecutive_5xx`, still read.
    pub failures: Option<u32>,
    /// Consecutive 5xx or backend-side errors before ejection; 0 turns it off.
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub consecutive_connect_failures: Option<u32>,
    /// Eject when this share of requests failed over the window; 0 is off.
    pub error_rate_percent: Option<u8>,
    pub error_rate_window: Option<Spanned<String>>,
    pub error_rate_min_requests: Option<u32>,
    /// Trial requests at once while half-open, and the successes that close.
    pub half_open_trials: Option<u32>,
    pub half_open_successes: Option<u32>,
    /// A trial unfinished after this long counts as failed.
    pub half_open_timeout: Option<Spanned<String>>,
    /// First ejection period; it doubles on each repeated ejection.
    pub ejection: Option<Spanned<String>>,
    pub max_ejection: Option<Spanned<String>>,
    /// Never eject more than this share of a group's backends.
    pub max_ejected_percent: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub address: Spanned<String>,
    #[serde(default)]
    pub reuse_port: Option<bool>,
    /// Listen even where another process already listens with SO_REUSEPORT
    /// (the kernel then splits the connections); off, that is an error.
    pub share_port: Option<Spanned<bool>>,
    pub backlog: Option<Spanned<i32>>,
    /// TLS certificates; the listener speaks TLS when at least one is given.
    #[serde(default)]
    pub tls: Vec<CertFile>,
    /// Open connections at most (all workers together).
    pub max_connections: Option<Spanned<usize>>,
    /// Open connections per client address at most.
    pub max_connections_per_client: Option<Spanned<usize>>,
    /// `refuse` (default) or `backlog`.
    pub on_limit: Option<Spanned<String>>,
    /// CA certificates that client certificates are verified against.
    pub client_ca: Option<Spanned<String>>,
    /// `require` (default with `client_ca`) or `request`.
    pub client_auth: Option<Spanned<String>>,
    /// `off` (default), `v1`, `v2` or `any`: a PROXY protocol header
    /// starts every connection (`server::proxy_protocol`).
    pub proxy_protocol: Option<Spanned<String>>,
    /// CIDRs of the balancers that may send it; needed with `proxy_protocol`.
    pub proxy_protocol_trusted: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    /// SNI names this certificate answers for; the first certificate is the default.
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_header_bytes: Option<Spanned<usize>>,
    pub max_headers: Option<Spanned<usize>>,
    pub max_uri_bytes: Option<Spanned<usize>>,
    pub h2_max_concurrent_streams: Option<Spanned<u32>>,
    /// Bytes; 0 = no limit (the default).
    pub max_request_body: Option<Spanned<u64>>,
    /// Bytes per second of client time; 0 turns it off.
    pub min_body_rate: Option<Spanned<u32>>,
    pub min_body_rate_grace: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub client_header: Option<Spanned<String>>,
    pub client_idle: Option<Spanned<String>>,
    pub client_body: Option<Spanned<String>>,
    pub upstream_connect: Option<Spanned<String>>,
    pub upstream_response: Option<Spanned<String>>,
    pub upstream_body: Option<Spanned<String>>,
    pub upstream_idle: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingFile {
    /// Keep `X-Forwarded-*` and `Forwarded` from clients (only behind a trusted proxy).
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    pub via: Option<String>,
    /// `X-Sluice-Backend` naming the chosen backend, for every group.
    #[serde(default)]
    pub backend_header: bool,
    /// The field naming a client's verified certificate to backends.
    pub client_cert_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// The `route` label of its metrics; default: host and path as given.
    pub name: Option<Spanned<String>>,
    /// Exact host or `*.example.com`; absent matches every host.
    pub host: Option<Spanned<String>>,
    /// Path prefix; absent means `/`.
    pub path: Option<Spanned<String>>,
    pub upstream: Spanned<String>,
    /// Overrides `compression.enabled` for this route.
    pub compress: Option<bool>,
    /// Retries of a failed attempt on another backend; absent means none
    /// beyond the two safe ones.
    pub retry: Option<RetryFile>,
    /// Overrides `limits.max_request_body` for this route (0 = no limit).
    pub max_request_body: Option<Spanned<u64>>,
    /// From routing to the response head, whoever takes the time; then 504.
    pub timeout: Option<Spanned<String>>,
}

/// `[route.retry]` (see `proxy::retry`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Tries in all, the first included.
    pub attempts: Option<Spanned<u32>>,
    pub per_try_timeout: Option<Spanned<String>>,
    /// Statuses that count as a failed try (429 or 5xx).
    pub statuses: Option<Vec<Spanned<u16>>>,
    pub backoff_base: Option<Spanned<String>>,
    pub backoff_max: Option<Spanned<String>>,
    /// Methods that may be retried instead of the idempotent ones.
    pub retry_methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Retry every method (POST and PATCH included).
    pub retry_non_idempotent: Option<Spanned<bool>>,
    /// Request body bytes kept for a replay.
    pub replay_buffer: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Spanned as a whole: serde cannot keep spans inside an untagged enum.
    pub backends: Option<Spanned<Vec<BackendFile>>>,
    /// `round-robin`, `least-conn`, `p2c`, `hash:header:NAME`, `hash:cookie:NAME`, `hash:client`.
    pub balance: Option<Spanned<String>>,
    /// `http1` (default), `h2c`, or `h2` (HTTP/2 over TLS).
    pub protocol: Option<Spanned<String>>,
    /// Use TLS to the backends (implied by `protocol = "h2"`).
    #[serde(default)]
    pub tls: bool,
    /// Extra trust anchors beside the bundled roots.
    pub ca_file: Option<Spanned<String>>,
    /// Trust exactly these certificates (a self-signed backend's).
    pub pinned_cert: Option<Spanned<String>>,
    /// Accept any backend certificate (logged as a warning).
    pub insecure_skip_verify: Option<Spanned<bool>>,
    pub server_name: Option<Spanned<String>>,
    /// A client certificate chain and key for backends that require one.
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub max_idle_per_backend: Option<usize>,
    /// `off` (default), `v1` or `v2`: a PROXY header on every connection
    /// to the group's backends (`upstream::proxy_header`).
    pub proxy_protocol: Option<Spanned<String>>,
    /// How often backends given by name are resolved again.
    pub resolve_interval: Option<Spanned<String>>,
    /// Active health checks; absent means none.
    pub health: Option<HealthFile>,
    pub passive: Option<PassiveFile>,
    /// Ramp a returning or new backend's weight over this long ("0s": off).
    pub slow_start: Option<Spanned<String>>,
    /// `X-Sluice-Backend` on this group's responses (overrides `forwarding.backend_header`).
    pub backend_header: Option<bool>,
    pub retry_budget: Option<RetryBudgetFile>,
    pub sticky: Option<StickyFile>,
    /// Requests in flight to one backend at most; 0 (default): no limit.
    pub max_requests_per_backend: Option<Spanned<u32>>,
    /// Requests that wait for a slot when every backend is full; 0: none.
    pub max_queue: Option<Spanned<usize>>,
    /// The longest a request waits in that queue, then 503.
    pub queue_timeout: Option<Spanned<String>>,
}

/// `[upstream.NAME.sticky]`: a cookie keeps each client on its backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyFile {
    /// The cookie's name (default `sluice_sticky`).
    pub cookie: Option<Spanned<String>>,
    /// HMAC key, at least 16 bytes; or `secret_file`. Neither: a random
    /// key per process.
    pub secret: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    /// `lax` (default), `strict` or `none` (needs `secure = true`).
    pub same_site: Option<Spanned<String>>,
    /// Absent: a session cookie.
    pub max_age: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub http_only: Option<bool>,
    /// `Secure` on plain listeners too (TLS in front of the proxy).
    pub secure: Option<bool>,
}

/// `[upstream.NAME.retry_budget]`: what caps the retries of every route to
/// the group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetFile {
    /// Retries allowed per request of the last `ttl` (0.2: one in five).
    pub ratio: Option<Spanned<f64>>,
    /// Retries allowed per second whatever the traffic.
    pub min_per_second: Option<Spanned<u32>>,
    /// How long a request counts towards the budget (1s to 60s).
    pub ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BackendFile {
    Address(String),
    Full(BackendTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTable {
    pub address: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}
