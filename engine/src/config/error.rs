//! Why a configuration was rejected: one [`ConfigError`] variant per rule,
//! each naming where the bad value was given ([`At`]: file, line, column and
//! field path, or the command-line flag), so `sluice check` prints
//! `file:line:col: field: problem`. The small value parsers shared with the
//! flags and the admin API have their own typed errors below.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a rejected value was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// A value in the config file, with the path of its field
    /// (`listener[1].address`, `upstream.api.balance`).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
    },
    /// A command-line flag (`--listen`, `--lb`).
    Flag(&'static str),
    /// A `SLUICE_<SECTION>__<KEY>` variable (`config::env`), with the
    /// field it set or one inside it.
    Env { var: String, field: String },
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::File {
                path,
                line,
                column,
                field,
            } => write!(f, "{}:{line}:{column}: {field}", path.display()),
            At::Flag(flag) => f.write_str(flag),
            At::Env { var, field } => write!(f, "environment {var}: {field}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML: there is no field to name, only the place. (The toml
    /// errors are boxed: they are large, and this is the cold edge.)
    #[error("{}:{line}:{column}: {}", path.display(), source.message())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// TOML, but a value of the wrong type, an unknown key or a missing one.
    #[error("{at}: {}", source.message())]
    Shape {
        at: At,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{at}: must be between {min} and {max}")]
    OutOfRange { at: At, min: u64, max: u64 },
    /// `max_queue` or `queue_timeout` in a group without a request limit:
    /// nothing would ever wait.
    #[error("{at}: needs max_requests_per_backend (without a limit nothing ever queues)")]
    NeedsLimit { at: At },
    /// A retry status outside 500..=599 (or 429): only a failed answer is
    /// worth another backend.
    #[error("{at}: {status} is not a status worth retrying (429 or 500..=599)")]
    RetryStatus { at: At, status: u16 },
    /// Not an HTTP method token.
    #[error("{at}: {method:?} is not an HTTP method")]
    Method { at: At, method: String },
    /// `retry_methods` and `retry_non_idempotent = true` say the same thing twice.
    #[error("{at}: give retry_methods or retry_non_idempotent, not both")]
    RetryMethodsTwice { at: At },
    /// `backoff_max` below `backoff_base`.
    #[error("{at}: must be at least backoff_base")]
    BackoffOrder { at: At },
    /// A budget ratio that is not a number from 0 to 10.
    #[error("{at}: must be a number from 0 to 10")]
    BudgetRatio { at: At },
    /// A list longer than its documented cap (`defaults::MAX_GROUP_BACKENDS`).
    #[error("{at}: {count} entries; at most {max} are allowed")]
    TooMany { at: At, count: usize, max: usize },
    #[error("{at}: must be positive")]
    NotPositive { at: At },
    #[error("{at}: {source}")]
    Address {
        at: At,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("{at}: no such file: {}", file.display())]
    NoSuchFile { at: At, file: PathBuf },
    /// A certificate, key or CA file the proxy could not serve with (read
    /// as TLS setup will read it: not PEM, no certificate or key, a key
    /// that does not match its certificate). Boxed: it is large, and this
    /// is the cold edge.
    #[error("{at}: {source}")]
    Pem {
        at: At,
        #[source]
        source: Box<super::pem::PemError>,
    },
    /// Neither a DNS name nor an IP address, so no certificate can match it.
    #[error("{at}: {name:?} is not a DNS name or an IP address")]
    ServerName { at: At, name: String },
    #[error("{at}: at least one [[listener]] is required")]
    NoListener { at: At },
    /// Two listeners on one address would each bind it (port 0 aside: each
    /// of those gets its own ephemeral port).
    #[error("{at}: {address} is already the address of listener[{first}]")]
    DuplicateListener {
        at: At,
        address: SocketAddr,
        first: usize,
    },
    /// Sharing a port with other processes is what SO_REUSEPORT does.
    #[error("{at}: share_port = true needs reuse_port = true")]
    ShareWithoutReusePort { at: At },
    #[error("{at}: {source}")]
    Duration {
        at: At,
        #[source]
        source: DurationError,
    },
    #[error("{at}: {source}")]
    Policy {
        at: At,
        #[source]
        source: UnknownPolicy,
    },
    #[error("{at}: unknown protocol {value:?}; expected http1, h2c or h2")]
    Protocol { at: At, value: String },
    #[error("{at}: {source}")]
    Runtime {
        at: At,
        #[source]
        source: UnknownRuntime,
    },
    #[error("{at}: {source}")]
    HostPort {
        at: At,
        #[source]
        source: HostPortError,
    },
    #[error("{at}: must start with '/'")]
    RelativePath { at: At },
    #[error("{at}: expected a host name or *.domain")]
    RouteHost { at: At },
    #[error("{at}: unknown check method {value:?}; expected GET or HEAD")]
    HealthMethod { at: At, value: String },
    #[error("{at}: {value:?} is not a host name (with an optional :port)")]
    HealthHost { at: At, value: String },
    /// Empty, longer than the part of the body a check reads, or asked of
    /// a `HEAD` check, which gets no body.
    #[error("{at}: {reason}")]
    ExpectBody { at: At, reason: &'static str },
    #[error("{at}: no upstream named {name:?}")]
    UnknownUpstream { at: At, name: String },
    #[error("{at}: {pattern:?} is not type/subtype, type/*, */* or a +suffix such as +json")]
    MediaType { at: At, pattern: String },
    #[error("{at}: unknown algorithm {value:?}; expected gzip, br or zstd")]
    Algorithm { at: At, value: String },
    #[error("{at}: {value:?} is listed twice")]
    AlgorithmTwice { at: At, value: String },
    #[error("{at}: list at least one algorithm (or set enabled = false)")]
    NoAlgorithm { at: At },
    #[error("{at}: {source}")]
    Cidr {
        at: At,
        #[source]
        source: CidrError,
    },
    #[error("{at}: give token or token_file, not both")]
    TokenTwice { at: At },
    /// Two ways to trust a backend's certificate, which would contradict
    /// each other (`ca_file`, `pinned_cert`, `insecure_skip_verify`).
    #[error(
        "{at}: give one of ca_file, pinned_cert or insecure_skip_verify = true, not {other} as well"
    )]
    TlsTrustTwice { at: At, other: &'static str },
    #[error("{at}: client_cert and client_key go together")]
    ClientCertHalf { at: At },
    #[error("{at}: unknown value {value:?}; expected require or request")]
    ClientAuth { at: At, value: String },
    /// `client_auth` without the CA to verify with, or client
    /// certificates on a listener without TLS.
    #[error("{at}: needs {what}")]
    ClientAuthNeeds { at: At, what: &'static str },
    #[error("{at}: unknown PROXY protocol setting {value:?}; expected {expected}")]
    ProxyProtocol {
        at: At,
        value: String,
        expected: &'static str,
    },
    /// `proxy_protocol` without trusted sources, or trusted sources
    /// without `proxy_protocol`.
    #[error("{at}: {reason}")]
    ProxyProtocolTrusted { at: At, reason: &'static str },
    #[error("{at}: {value:?} is not a header field name")]
    HeaderName { at: At, value: String },
    /// An upstream TLS setting on a group that does not use TLS.
    #[error("{at}: needs tls = true (or protocol = \"h2\")")]
    TlsKeyWithoutTls { at: At },
    #[error("{at}: {source}")]
    TokenFile {
        at: At,
        #[source]
        source: TokenFileError,
    },
    #[error("{at}: give secret or secret_file, not both")]
    SecretTwice { at: At },
    /// A sticky secret short enough to guess from a cookie.
    #[error("{at}: must be at least {min} bytes (e.g. the output of `openssl rand -hex 32`)")]
    ShortSecret { at: At, min: usize },
    #[error(
        "{at}: {value:?} is not a cookie name; expected 1 to 256 letters, digits or !#$%&'*+-.^_`|~"
    )]
    CookieName { at: At, value: String },
    #[error(
        "{at}: {value:?} is not a cookie path; expected '/' then up to 255 visible characters but ';'"
    )]
    CookiePath { at: At, value: String },
    #[error("{at}: unknown value {value:?}; expected lax, strict or none")]
    SameSite { at: At, value: String },
    /// Browsers drop a `SameSite=None` cookie that is not `Secure`.
    #[error(
        "{at}: same_site = \"none\" needs secure = true (browsers drop a SameSite=None cookie without Secure)"
    )]
    SameSiteNone { at: At },
    /// A `__Secure-` or `__Host-` name the browser would refuse (RFC 6265bis §4.1.3).
    #[error("{at}: a cookie named {prefix}… needs secure = true{}", if *.prefix == "__Host-" { " and path = \"/\"" } else { "" })]
    CookiePrefix { at: At, prefix: &'static str },
    #[error("{at}: {value:?} is not a host name")]
    AllowedHost { at: At, value: String },
    #[error("{at}: {value:?} is not an origin; expected scheme://host or scheme://host:port")]
    AllowedOrigin { at: At, value: String },
    /// A backend no one can listen on, or this proxy itself (boxed: two
    /// addresses, at the cold edge).
    #[error("{at}: {source}")]
    Backend {
        at: At,
        #[source]
        source: Box<crate::addr::BadBackend>,
    },
    #[error("{at}: {value:?} is not a rate limit key; expected client, route or header:NAME")]
    RateKey { at: At, value: String },
    #[error("{at}: ipv4_prefix and ipv6_prefix apply to key = \"client\" only")]
    PrefixWithoutClientKey { at: At },
    #[error("{at}: a rate_limit named {name:?} comes earlier")]
    DuplicateRateLimit { at: At, name: String },
    #[error("{at}: global = true needs a [global_limits] table with the Redis address")]
    GlobalWithoutRedis { at: At },
    #[error("{at}: {value:?} is not a Redis URL; expected redis://host:port[/db]")]
    RedisUrl { at: At, value: String },
    #[error("{at}: {value:?} is not an OTLP/HTTP endpoint; expected http://host:port[/prefix]")]
    OtlpEndpoint { at: At, value: String },
    #[error("{at}: must be a number from 0 to 1")]
    Ratio { at: At },
    #[error("{at}: must not be empty")]
    Empty { at: At },
    #[error("{at}: unknown value {value:?}; expected refuse or backlog")]
    OnLimit { at: At, value: String },
    /// `[upgrade] socket` (or `--upgrade-socket`) is not a usable Unix socket path.
    #[error("{at}: {value:?}: {problem}")]
    UpgradeSocket {
        at: At,
        value: String,
        problem: &'static str,
    },
    /// An access log or instance setting (`config::access_log`).
    #[error("{at}: {value:?}: {problem}")]
    Observe {
        at: At,
        value: String,
        problem: &'static str,
    },
    #[error(
        "{at}: {value:?} is not a route name; expected 1 to 128 printable ASCII characters, the first not '_'"
    )]
    RouteName { at: At, value: String },
    #[error("--backend and --lb need a group named \"default\" in the config")]
    NoDefaultGroup,
    #[error("nothing to do: give --config FILE, or --listen ADDR with --backend ADDR")]
    NothingToDo,
    /// A `SLUICE_<SECTION>__<KEY>` variable that names no settable key.
    #[error("environment {var}: {problem}")]
    Env {
        var: String,
        problem: super::env::EnvError,
    },
}

impl ConfigError {
    /// Where the rejected value was given; `None` when no one value is to
    /// blame (an unreadable file, text that is not TOML, a flag combination).
    pub fn at(&self) -> Option<&At> {
        match self {
            ConfigError::Read { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::NoDefaultGroup
            | ConfigError::NothingToDo
            | ConfigError::Env { .. } => None,
            ConfigError::Shape { at, .. }
            | ConfigError::OutOfRange { at, .. }
            | ConfigError::NeedsLimit { at }
            | ConfigError::RetryStatus { at, .. }
            | ConfigError::Method { at, .. }
            | ConfigError::RetryMethodsTwice { at }
            | ConfigError::BackoffOrder { at }
            | ConfigError::BudgetRatio { at }
            | ConfigError::TooMany { at, .. }
            | ConfigError::NotPositive { at }
            | ConfigError::Address { at, .. }
            | ConfigError::NoSuchFile { at, .. }
            | ConfigError::Pem { at, .. }
            | ConfigError::ServerName { at, .. }
            | ConfigError::TlsTrustTwice { at, .. }
            | ConfigError::ClientCertHalf { at }
            | ConfigError::ClientAuth { at, .. }
            | ConfigError::ClientAuthNeeds { at, .. }
            | ConfigError::ProxyProtocol { at, .. }
            | ConfigError::ProxyProtocolTrusted { at, .. }
            | ConfigError::HeaderName { at, .. }
            | ConfigError::TlsKeyWithoutTls { at }
            | ConfigError::NoListener { at }
            | ConfigError::DuplicateListener { at, .. }
            | ConfigError::ShareWithoutReusePort { at }
            | ConfigError::Duration { at, .. }
            | ConfigError::Policy { at, .. }
            | ConfigError::Protocol { at, .. }
            | ConfigError::Runtime { at, .. }
            | ConfigError::HostPort { at, .. }
            | ConfigError::RelativePath { at }
            | ConfigError::RouteHost { at }
            | ConfigError::RouteName { at, .. }
            | ConfigError::HealthMethod { at, .. }
            | ConfigError::HealthHost { at, .. }
            | ConfigError::ExpectBody { at, .. }
            | ConfigError::UnknownUpstream { at, .. }
            | ConfigError::MediaType { at, .. }
            | ConfigError::Algorithm { at, .. }
            | ConfigError::AlgorithmTwice { at, .. }
            | ConfigError::NoAlgorithm { at }
            | ConfigError::RateKey { at, .. }
            | ConfigError::DuplicateRateLimit { at, .. }
            | ConfigError::GlobalWithoutRedis { at }
            | ConfigError::PrefixWithoutClientKey { at }
            | ConfigError::RedisUrl { at, .. }
            | ConfigError::OtlpEndpoint { at, .. }
            | ConfigError::Ratio { at }
            | ConfigError::Empty { at }
            | ConfigError::OnLimit { at, .. }
            | ConfigError::Cidr { at, .. }
            | ConfigError::TokenTwice { at }
            | ConfigError::TokenFile { at, .. }
            | ConfigError::SecretTwice { at }
            | ConfigError::ShortSecret { at, .. }
            | ConfigError::CookieName { at, .. }
            | ConfigError::CookiePath { at, .. }
            | ConfigError::SameSite { at, .. }
            | ConfigError::SameSiteNone { at }
            | ConfigError::CookiePrefix { at, .. }
            | ConfigError::AllowedHost { at, .. }
            | ConfigError::AllowedOrigin { at, .. }
            | ConfigError::Observe { at, .. }
            | ConfigError::UpgradeSocket { at, .. }
            | ConfigError::Backend { at, .. } => Some(at),
        }
    }

    /// The 1-based line and column in the config file, for errors in it.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match (self, self.at()) {
            (ConfigError::Syntax { line, column, .. }, _)
            | (_, Some(At::File { line, column, .. })) => Some((*line, *column)),
            _ => None,
        }
    }
}

/// A duration that is not `250ms`, `10s`, `2m` or `1h`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}; expected e.g. 500ms, 10s, 2m")]
    Number(String),
    #[error("invalid duration unit in {0:?}; expected ms, s, m or h")]
    Unit(String),
    #[error("duration must be greater than zero")]
    Zero,
    /// Deadlines are `now + duration`: past this they would overflow.
    #[error("duration {0:?} is longer than the longest allowed, 365 days")]
    TooLong(String),
}

/// A backend name that is not `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("{0:?}: expected host:port")]
    NoPort(String),
    #[error("{0:?}: invalid port")]
    Port(String),
    #[error("{0:?}: invalid host name")]
    Host(String),
}

/// A source network that is not `IP/prefix` or a bare IP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?}: expected an IP address or IP/prefix, e.g. 10.0.0.0/8")]
    Syntax(String),
    #[error("{0:?}: bits are set past the prefix length (write the network address)")]
    HostBits(String),
}

/// An admin token file that gives no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no token", .0.display())]
    Empty(PathBuf),
}

/// A `host:port` that resolves to nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {addr:?}: {source}")]
    Lookup {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown policy {0:?}; expected round-robin, least-conn, p2c, hash:header:NAME, hash:cookie:NAME or hash:client"
)]
pub struct UnknownPolicy(pub String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime {0:?}; expected thread-per-core or work-stealing")]
pub struct UnknownRuntime(pub String);
