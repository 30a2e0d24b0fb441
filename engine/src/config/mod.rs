//! Configuration in three stages: the TOML file model ([`file`]), validation
//! ([`validate`], with the value grammars of [`values`] and the errors of
//! [`error`]; the PEM files it names are read and checked by [`pem`]) and
//! the runtime model below, which is all the hot path sees.
//!
//! Precedence: built-in defaults ([`defaults`]) < config file <
//! `SLUICE_<SECTION>__<KEY>` variables ([`env`]) < command-line flags (and
//! their own `SLUICE_*` variables).

pub mod access_log;
pub mod defaults;
pub mod env;
pub mod error;
pub mod file;
mod observe;
pub mod pem;
mod rate_limit;
mod sticky;
mod tls;
pub mod validate;
pub mod values;

use crate::addr::{BackendAddr, Cidr};
use crate::balance::Policy;
use crate::proxy::compress::Encoding;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use access_log::{AccessLogConfig, LogFormat, ShipConfig};
pub use error::{At, ConfigError};
pub use observe::{MetricsConfig, OtlpConfig, TracingConfig};
pub use rate_limit::{ClientPrefix, GlobalLimits, RateKey, RateLimitConfig};
pub use sticky::{SameSite, Secret, StickyConfig};
pub use tls::{ClientAuth, ClientCert, UpstreamTls, UpstreamVerify};

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub workers: usize,
    pub runtime: RuntimeShape,
    pub listeners: Vec<ListenerConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub forwarding: Forwarding,
    pub routes: Vec<RouteConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    /// `None`: no access log.
    pub access_log: Option<AccessLogConfig>,
    /// `None`: the host name and the first listener's bound port, set at start.
    pub instance_id: Option<String>,
    /// The response header naming this instance; `None`: not sent.
    pub instance_header: Option<http::HeaderName>,
    pub admin: Option<AdminConfig>,
    pub compression: Compression,
    /// Token-bucket request limits, checked in this order.
    pub rate_limits: Vec<RateLimitConfig>,
    /// Where `global` rate limits share their counts.
    pub global_limits: Option<GlobalLimits>,
    /// `[metrics]`: the counters behind the admin API's `/metrics`.
    pub metrics: MetricsConfig,
    pub tracing: TracingConfig,
    /// `[upgrade]`: handing the listening sockets to a successor process.
    pub upgrade: UpgradeConfig,
    /// The file this config came from, read again on reload.
    pub source: Option<PathBuf>,
}

/// `[upgrade]` (`lifecycle::handover`): where a running proxy waits for a
/// successor (`sluice --takeover`) to ask for its listening sockets. Read at
/// start only; a reload keeps the socket the process started with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// An absolute path for a Unix socket; `None`: no handover.
    pub socket: Option<PathBuf>,
}

/// The admin API and its trust boundary (`admin::guard` enforces it).
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// `Authorization: Bearer TOKEN` on everything but the probes.
    pub token: Option<String>,
    pub state_file: Option<PathBuf>,
    /// Lowercase host names the API answers to besides its own address,
    /// `localhost` and loopback IPs (a DNS-rebinding page sends its own name).
    pub allowed_hosts: Vec<String>,
    /// Lowercase `scheme://host[:port]` browser origins allowed to call;
    /// none by default (the API serves no pages).
    pub allowed_origins: Vec<String>,
    /// Peers that may change state (POST, DELETE, `/register`).
    pub allowed_sources: Vec<Cidr>,
}

impl AdminConfig {
    /// The API on `address` with the defaults: no token, no state file,
    /// no extra hosts or origins, changes from loopback only.
    pub fn new(address: SocketAddr) -> AdminConfig {
        AdminConfig {
            address,
            token: None,
            state_file: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_sources: Cidr::LOOPBACK.to_vec(),
        }
    }
}

/// Active health checks of a group. They speak the group's protocol
/// (HTTP/1.1, h2c, or h2 over TLS) on a fresh connection.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub interval: Duration,
    /// For the whole check: connect, TLS, answer, and the body when read.
    pub timeout: Duration,
    pub path: String,
    /// `GET` or `HEAD`.
    pub method: http::Method,
    /// The `Host`/`:authority` to send; `None` sends the backend's address.
    pub host: Option<String>,
    /// Healthy statuses; empty means any 2xx or 3xx.
    pub expect: Vec<u16>,
    /// Text the body must contain within its first
    /// [`defaults::HEALTH_MAX_BODY`] bytes; `None` reads no body.
    pub expect_body: Option<String>,
    pub rise: u32,
    pub fall: u32,
}

impl Default for HealthCheck {
    /// The heartbeat: `GET /ping` every 2 s, any 2xx/3xx, rise 2, fall 3.
    fn default() -> Self {
        HealthCheck {
            interval: defaults::HEALTH_INTERVAL,
            timeout: defaults::HEALTH_TIMEOUT,
            path: defaults::HEALTH_PATH.to_owned(),
            method: http::Method::GET,
            host: None,
            expect: Vec::new(),
            expect_body: None,
            rise: defaults::HEALTH_RISE,
            fall: defaults::HEALTH_FALL,
        }
    }
}

/// Passive checks and the breaker: what ejects a backend (outlier
/// detection), for how long, and how it comes back (`upstream::breaker`).
/// Every threshold at 0 turns its detector off.
#[derive(Clone, Copy, Debug)]
pub struct Passive {
    /// Consecutive 5xx or backend-side errors (the file's old `failures`).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 (ours included).
    pub consecutive_gateway_errors: u32,
    /// Consecutive failed connects.
    pub consecutive_connect_failures: u32,
    /// Failures as a share of requests over `error_rate_window`, at least
    /// `error_rate_min_requests` of them.
    pub error_rate_percent: u8,
    pub error_rate_window: Duration,
    pub error_rate_min_requests: u32,
    /// The first cool-down; it doubles on each opening.
    pub ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_percent: u8,
    /// Trial requests at once while half-open.
    pub half_open_trials: u32,
    /// Successful trials that close the breaker.
    pub half_open_successes: u32,
    /// A trial unfinished after this long counts as failed (re-opens).
    pub half_open_timeout: Duration,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            consecutive_5xx: defaults::PASSIVE_CONSECUTIVE_5XX,
            consecutive_gateway_errors: defaults::PASSIVE_CONSECUTIVE_GATEWAY_ERRORS,
            consecutive_connect_failures: defaults::PASSIVE_CONSECUTIVE_CONNECT_FAILURES,
            error_rate_percent: defaults::PASSIVE_ERROR_RATE_PERCENT,
            error_rate_window: defaults::PASSIVE_ERROR_RATE_WINDOW,
            error_rate_min_requests: defaults::PASSIVE_ERROR_RATE_MIN_REQUESTS,
            ejection: defaults::PASSIVE_EJECTION,
            max_ejection: defaults::PASSIVE_MAX_EJECTION,
            max_ejected_percent: defaults::PASSIVE_MAX_EJECTED_PERCENT,
            half_open_trials: defaults::HALF_OPEN_TRIALS,
            half_open_successes: defaults::HALF_OPEN_SUCCESSES,
            half_open_timeout: defaults::HALF_OPEN_TIMEOUT,
        }
    }
}

/// How workers map onto tokio runtimes (perf/ compares the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeShape {
    /// One single-threaded runtime per worker, each with its own
    /// SO_REUSEPORT socket and pool: no cross-thread handoff (nginx's shape).
    ThreadPerCore,
    /// One multi-threaded work-stealing runtime with `workers` threads.
    WorkStealing,
}

#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// One SO_REUSEPORT socket per worker runtime (else one socket, cloned).
    pub reuse_port: bool,
    /// Join other processes' SO_REUSEPORT sockets on this address instead
    /// of failing with "address in use" (see `server::listener`).
    pub share_port: bool,
    pub backlog: i32,
    pub tls: Vec<CertConfig>,
    /// Client certificates asked of TLS clients (`server::tls`).
    pub client_auth: Option<ClientAuth>,
    /// Connection limits (`server::conn_limit`).
    pub conn_limit: ConnLimit,
    /// The PROXY protocol header every connection must start with, and
    /// from whom (`server::proxy_protocol`); `None`: no header.
    pub proxy_protocol: Option<crate::server::proxy_protocol::accept::Policy>,
}

/// A listener's connection limits; none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnLimit {
    /// Open connections of the listener, all workers together.
    pub max_connections: Option<usize>,
    /// Open connections from one client IP address.
    pub max_connections_per_client: Option<usize>,
    pub on_limit: OnLimit,
}

/// What happens to a connection beyond a limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnLimit {
    /// Accepted and closed at once.
    #[default]
    Refuse,
    /// Left in the kernel's accept queue until a connection closes (for
    /// `max_connections`; a client's address is only known once accepted,
    /// so the per-client limit always refuses).
    Backlog,
}

#[derive(Clone, Debug)]
pub struct CertConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    /// Largest request body in bytes; 0 = no limit.
    pub max_request_body: u64,
    /// Slowest average upload in bytes per second of client time; 0 = off
    /// (`defaults::MIN_BODY_RATE`).
    pub min_body_rate: u32,
    /// Client time before `min_body_rate` applies.
    pub min_body_rate_grace: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub client_header: Duration,
    pub client_idle: Duration,
    /// Between two reads of a request body (`defaults::CLIENT_BODY_TIMEOUT`).
    pub client_body: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    /// Between two reads of a response body (`defaults::UPSTREAM_BODY_TIMEOUT`).
    pub upstream_body: Duration,
    pub upstream_idle: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug)]
pub struct Forwarding {
    pub trust_forwarded_headers: bool,
    pub via: String,
    /// The field that tells backends about a client's verified certificate
    /// (`proxy::headers`); removed from what clients send.
    pub client_cert_header: http::HeaderName,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// The `route` label of its metrics; `None`: host and path as given
    /// (`observe::metrics::route_name`).
    pub name: Option<String>,
    pub host: Option<String>,
    pub path: String,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Overrides [`Compression::enabled`] for this route.
    pub compress: Option<bool>,
    /// `[route.retry]`: `None` keeps the two safe retries only (`proxy::retry`).
    pub retry: Option<Arc<RetryPolicy>>,
    /// Overrides [`Limits::max_request_body`] for this route (0 = no limit).
    pub max_request_body: Option<u64>,
    /// The request's deadline, from routing to the response head.
    pub timeout: Option<Duration>,
}

/// How a route retries a failed attempt on another backend (`proxy::retry`).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 turns retries off).
    pub attempts: u32,
    /// Each try's limit from the start of its connect to the response head;
    /// `None`: only `timeouts.upstream_response` applies.
    pub per_try_timeout: Option<Duration>,
    /// Response statuses that count as a failed try.
    pub statuses: Vec<u16>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub methods: RetryMethods,
    /// Request body bytes kept for a replay; past it the request is not retried.
    pub replay_buffer: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: defaults::RETRY_ATTEMPTS,
            per_try_timeout: None,
            statuses: defaults::RETRY_STATUSES.to_vec(),
            backoff_base: defaults::RETRY_BACKOFF_BASE,
            backoff_max: defaults::RETRY_BACKOFF_MAX,
            methods: RetryMethods::Idempotent,
            replay_buffer: defaults::RETRY_REPLAY_BUFFER,
        }
    }
}

/// Which requests a route may send twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryMethods {
    /// RFC 9110 §9.2.2's idempotent methods (the default).
    Idempotent,
    /// Exactly these (`retry_methods`).
    Listed(Vec<http::Method>),
    /// Every method (`retry_non_idempotent = true`).
    All,
}

/// A group's retry budget (Linkerd's): retries stay under `ratio` of the
/// requests of the last `ttl`, plus `min_per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudgetConfig {
    pub ratio: f64,
    pub min_per_second: u32,
    pub ttl: Duration,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: defaults::RETRY_BUDGET_RATIO,
            min_per_second: defaults::RETRY_BUDGET_MIN_PER_SECOND,
            ttl: defaults::RETRY_BUDGET_TTL,
        }
    }
}

/// gzip, brotli and zstd for responses; what is compressed and when is
/// `proxy::compress`.
#[derive(Clone, Debug)]
pub struct Compression {
    /// For routes without their own switch.
    pub enabled: bool,
    /// Codings offered, most preferred first; never empty, no repeats.
    pub algorithms: Vec<Encoding>,
    /// gzip: 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// Brotli quality, 0 to 11.
    pub brotli_level: u32,
    /// Brotli window log (memory per stream), 10 to 24.
    pub brotli_window_log: u32,
    /// zstd level, 1 to 19.
    pub zstd_level: i32,
    /// zstd window log (memory per stream), 10 to 23.
    pub zstd_window_log: u32,
    /// Responses with a known length below this are left alone.
    pub min_length: u64,
    /// Lowercase `type/sub`, `type/*`, `*/*` or `+suffix` patterns.
    pub types: Vec<String>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: defaults::COMPRESSION_ENABLED,
            algorithms: defaults::COMPRESSION_ALGORITHMS
                .iter()
                .filter_map(|t| Encoding::from_token(t))
                .collect(),
            level: defaults::COMPRESSION_LEVEL,
            brotli_level: defaults::COMPRESSION_BROTLI_LEVEL,
            brotli_window_log: defaults::COMPRESSION_BROTLI_WINDOW_LOG,
            zstd_level: defaults::COMPRESSION_ZSTD_LEVEL,
            zstd_window_log: defaults::COMPRESSION_ZSTD_WINDOW_LOG,
            min_length: defaults::COMPRESSION_MIN_LENGTH,
            types: defaults::COMPRESSION_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
    /// HTTP/2 negotiated by ALPN over TLS.
    H2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsBackend {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub name: String,
    /// Backends given as IP:port.
    pub backends: Vec<(BackendAddr, u32)>,
    /// Backends given by name: every address the name resolves to is a
    /// backend, re-resolved every `resolve_interval` (DNS discovery).
    pub dns: Vec<DnsBackend>,
    pub resolve_interval: Duration,
    pub policy: Policy,
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTls>,
    pub max_idle_per_backend: usize,
    /// The PROXY header sent first on every connection to the group's
    /// backends (`upstream::proxy_header`); such connections are never
    /// pooled (a header describes one client connection).
    pub proxy_protocol: Option<crate::upstream::proxy_header::SendVersion>,
    /// Active checks of every member (`[health]`).
    pub health: Option<HealthCheck>,
    /// Checks of registered members (admin API, state file) when `health`
    /// is `None`: the default heartbeat, unless `health.enabled = false`.
    /// A backend that registers itself is expected to answer `/ping`, and
    /// nobody watches it otherwise; config backends stay unchecked unless
    /// the group asks, as before.
    pub heartbeat: Option<HealthCheck>,
    pub passive: Passive,
    /// Caps the retries of every route to this group.
    pub retry_budget: RetryBudgetConfig,
    /// Ramp of a returning or new backend's weight; zero is off (`upstream::slow_start`).
    pub slow_start: Duration,
    /// Name the chosen backend in `X-Sluice-Backend` on responses.
    pub backend_header: bool,
    /// Sticky sessions by cookie (`[upstream.NAME.sticky]`); none by default.
    pub sticky: Option<StickyConfig>,
    /// Requests per backend at most, and the queue for the rest; `None`:
    /// no limit (`upstream::queue`).
    pub limit: Option<LimitConfig>,
}

/// `max_requests_per_backend` and its queue (`upstream::queue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    /// At least 1.
    pub per_backend: u32,
    /// 0: a request that finds every backend full is refused at once.
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            max_uri_bytes: defaults::MAX_URI_BYTES,
            h2_max_concurrent_streams: defaults::H2_MAX_CONCURRENT_STREAMS,
            max_request_body: defaults::MAX_REQUEST_BODY,
            min_body_rate: defaults::MIN_BODY_RATE,
            min_body_rate_grace: defaults::MIN_BODY_RATE_GRACE,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            client_header: defaults::CLIENT_HEADER_TIMEOUT,
            client_idle: defaults::CLIENT_IDLE_TIMEOUT,
            client_body: defaults::CLIENT_BODY_TIMEOUT,
            upstream_connect: defaults::UPSTREAM_CONNECT_TIMEOUT,
            upstream_response: defaults::UPSTREAM_RESPONSE_TIMEOUT,
            upstream_body: defaults::UPSTREAM_BODY_TIMEOUT,
            upstream_idle: defaults::UPSTREAM_IDLE_TIMEOUT,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
        }
    }
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            trust_forwarded_headers: false,
            via: defaults::VIA_NAME.to_owned(),
            client_cert_header: defaults::CLIENT_CERT_HEADER,
        }
    }
}

impl Config {
    /// A config with one plain listener and one upstream group of `backends`,
    /// routed for every host and path: what the quick flags and tests build on.
    pub fn simple(listen: SocketAddr, backends: &[SocketAddr]) -> Config {
        Config {
            workers: 1,
            runtime: RuntimeShape::ThreadPerCore,
            listeners: vec![ListenerConfig {
                address: listen,
                reuse_port: true,
                share_port: false,
                backlog: defaults::BACKLOG,
                tls: Vec::new(),
                client_auth: None,
                proxy_protocol: None,
                conn_limit: ConnLimit::default(),
            }],
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            forwarding: Forwarding::default(),
            routes: vec![RouteConfig {
                name: None,
                host: None,
                path: "/".to_owned(),
                upstream: 0,
                compress: None,
                retry: None,
                max_request_body: None,
                timeout: None,
            }],
            upstreams: vec![UpstreamConfig {
                name: defaults::DEFAULT_GROUP.to_owned(),
                backends: backends.iter().map(|a| (BackendAddr(*a), 1)).collect(),
                dns: Vec::new(),
                resolve_interval: defaults::RESOLVE_INTERVAL,
                policy: Policy::RoundRobin,
                protocol: UpstreamProtocol::Http1,
                tls: None,
                max_idle_per_backend: defaults::MAX_IDLE_PER_BACKEND,
                proxy_protocol: None,
                health: None,
                heartbeat: Some(HealthCheck::default()),
                passive: Passive::default(),
                retry_budget: RetryBudgetConfig::default(),
                slow_start: defaults::SLOW_START,
                backend_header: false,
                sticky: None,
                limit: None,
            }],
            access_log: None,
            instance_id: None,
            instance_header: Some(http::HeaderName::from_static(defaults::INSTANCE_HEADER)),
            metrics: MetricsConfig::default(),
            admin: None,
            compression: Compression::default(),
            rate_limits: Vec::new(),
            global_limits: None,
            tracing: TracingConfig::default(),
            upgrade: UpgradeConfig::default(),
            source: None,
        }
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        validate::parse(&text, path)
    }

    /// As [`Config::load`], with the environment's overlay applied to the
    /// file before validation.
    pub fn load_with_env(path: &Path, env: &env::EnvOverlay) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        validate::parse_layered(&text, path, env)
    }
}
