//! `[[rate_limit]]` and `[global_limits]` (`proxy::rate_limit`).

use super::defaults;
use std::time::Duration;

/// What a rate limit's buckets are keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    /// The client's network: its IP address cut to a prefix length.
    Client(ClientPrefix),
    /// The matched route: one bucket per route.
    Route,
    /// A request header's value; requests without it are not limited by
    /// this rule.
    Header(http::HeaderName),
}

/// How much of a client's address names its bucket: one host commonly
/// holds a whole IPv6 /64 (SLAAC, privacy addresses), so a bucket per /128
/// would be a bucket per request for a client that rotates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientPrefix {
    /// 1 ..= 32; default 32 (one bucket per address).
    pub v4: u8,
    /// 1 ..= 128; default 64 (one bucket per /64).
    pub v6: u8,
}

impl Default for ClientPrefix {
    fn default() -> ClientPrefix {
        ClientPrefix {
            v4: defaults::RATE_LIMIT_IPV4_PREFIX,
            v6: defaults::RATE_LIMIT_IPV6_PREFIX,
        }
    }
}

/// One `[[rate_limit]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    pub name: String,
    pub key: RateKey,
    /// Tokens per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: u32,
    /// Lowercase exact host or `*.suffix`; `None` matches every host.
    pub host: Option<String>,
    /// Path prefix; `None` matches every path.
    pub path: Option<String>,
    /// Synced through [`Config::global_limits`].
    pub global: bool,
    /// Most keys remembered; beyond it idle, then oldest, keys are dropped.
    pub max_keys: usize,
}

/// The Redis that global rate limits sync through (`proxy::rate_limit::global`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalLimits {
    pub redis: String,
    /// How often each replica sends what it took and learns the shared level.
    pub sync_interval: Duration,
    /// Longest wait for Redis on one sync; past it the replica runs on local limits.
    pub timeout: Duration,
}
