//! Settings: flags and environment variables (clap) → validated [`Config`].
//!
//! Precedence: a flag beats its `SLUICE_CACHE_*` environment variable, which
//! beats the documented default. `main` validates before binding any socket
//! and exits 64 (EX_USAGE) on a bad setting; `run()` only ever sees a
//! validated `Config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use sluice_service_common::LogFormat;
pub use sluice_service_common::serve::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};
use sluice_service_common::{ServerTls, TlsError};

/// Listen address when neither `--listen` nor `SLUICE_CACHE_LISTEN` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Memory bound of the in-process store: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Largest body one entry may have: 1 MiB. Larger uploads get 413.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;
/// Entry bodies being received or stored at once, in bytes: 64 MiB.
/// Uploads past it get 503.
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// How often expired entries are swept from the in-process store.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Where entries live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process (moka), bounded by `max_bytes`.
    Memory,
    /// In a Redis server shared by all replicas, e.g. `redis://127.0.0.1:6379`.
    Redis(String),
}

impl FromStr for StoreConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if s == "memory" {
            return Ok(Self::Memory);
        }
        let url = url::Url::parse(s).map_err(|source| ConfigError::StoreUrl {
            given: s.to_owned(),
            source,
        })?;
        match url.scheme() {
            "redis" => Ok(Self::Redis(s.to_owned())),
            _ => Err(ConfigError::StoreScheme {
                given: s.to_owned(),
            }),
        }
    }
}

/// The validated runtime settings of the service (everything but the socket).
#[derive(Clone, Debug)]
pub struct Config {
    pub store: StoreConfig,
    /// Memory bound of the in-process store, in bytes (see `memory::weight`).
    pub max_bytes: u64,
    /// Largest accepted entry body, in bytes.
    pub max_entry_bytes: u64,
    pub purge_interval: Duration,
    /// How long a client has to send each request head.
    pub header_timeout: Duration,
    /// How long a client has to send a whole entry body (408 after).
    pub body_timeout: Duration,
    /// Bytes of entry bodies in flight at once (503 past it).
    pub max_inflight_body_bytes: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// HTTPS with this certificate (`--tls-cert`, `--tls-key`); `None`:
    /// plain HTTP.
    pub tls: Option<ServerTls>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::Memory,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
        }
    }
}

impl Config {
    pub fn validate(self) -> Result<Self, ConfigError> {
        if self.max_bytes == 0 {
            return Err(ConfigError::Zero("max-bytes"));
        }
        if self.max_entry_bytes == 0 {
            return Err(ConfigError::Zero("max-entry-bytes"));
        }
        if self.purge_interval.is_zero() {
            return Err(ConfigError::Zero("purge-interval"));
        }
        if self.header_timeout.is_zero() {
            return Err(ConfigError::Zero("header-timeout"));
        }
        if self.body_timeout.is_zero() {
            return Err(ConfigError::Zero("body-timeout"));
        }
        // A body of the largest allowed size must fit the upload budget.
        if self.max_entry_bytes > self.max_inflight_body_bytes {
            return Err(ConfigError::EntryOverInflight {
                entry: self.max_entry_bytes,
                inflight: self.max_inflight_body_bytes,
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Zero("max-connections"));
        }
        // An entry bigger than the whole bound could never be admitted.
        if self.store == StoreConfig::Memory && self.max_entry_bytes > self.max_bytes {
            return Err(ConfigError::EntryOverBound {
                entry: self.max_entry_bytes,
                bound: self.max_bytes,
            });
        }
        Ok(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--store {given:?} is neither `memory` nor a URL")]
    StoreUrl {
        given: String,
        #[source]
        source: url::ParseError,
    },
    #[error("--store {given:?}: only `memory` and redis:// are supported")]
    StoreScheme { given: String },
    #[error("--{0} must be greater than zero")]
    Zero(&'static str),
    #[error("--max-entry-bytes ({entry}) exceeds --max-bytes ({bound})")]
    EntryOverBound { entry: u64, bound: u64 },
    #[error("--max-entry-bytes ({entry}) exceeds --max-inflight-body-bytes ({inflight})")]
    EntryOverInflight { entry: u64, inflight: u64 },
    #[error("--tls-cert/--tls-key cannot be used")]
    Tls(#[source] TlsError),
}

/// Command line of the `sluice-cache` binary.
#[derive(Debug, clap::Parser)]
#[command(name = "sluice-cache", version, about = "Sluice cache service")]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_CACHE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// `memory`, or `redis://host:port[/db]` to share entries between replicas.
    #[arg(long, env = "SLUICE_CACHE_STORE", default_value = "memory")]
    pub store: StoreConfig,
    /// Memory bound of the in-process store: bytes, or with KiB/MiB/GiB.
    #[arg(long, env = "SLUICE_CACHE_MAX_BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    pub max_bytes: u64,
    /// Largest entry body accepted (larger gets 413): bytes, or with KiB/MiB/GiB.
    #[arg(long, env = "SLUICE_CACHE_MAX_ENTRY_BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_entry_bytes: u64,
    /// How often expired entries are purged: e.g. 500ms, 1s, 2m (bare number: seconds).
    #[arg(long, env = "SLUICE_CACHE_PURGE_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub purge_interval: Duration,
    /// How long a client has to send each request head (and to start one on
    /// an idle connection) before it is closed, e.g. `10s`, `500ms`.
    #[arg(long, env = "SLUICE_CACHE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a client has to send a whole entry body once its head is
    /// in; slower gets 408.
    #[arg(long, env = "SLUICE_CACHE_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Entry bodies being received or stored at once, over every
    /// connection (uploads past it get 503): bytes, or with KiB/MiB/GiB.
    #[arg(long, env = "SLUICE_CACHE_MAX_INFLIGHT_BODY_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub max_inflight_body_bytes: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "SLUICE_CACHE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Serve HTTPS (h2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain, leaf first; needs --tls-key. Read at start only.
    #[arg(long, env = "SLUICE_CACHE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_CACHE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log line format. The level filter comes from RUST_LOG (default: info).
    #[arg(long, env = "SLUICE_CACHE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Cli {
    /// Validates the settings into the runtime config.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config {
            store: self.store.clone(),
            max_bytes: self.max_bytes,
            max_entry_bytes: self.max_entry_bytes,
            purge_interval: self.purge_interval,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_inflight_body_bytes: self.max_inflight_body_bytes,
            max_connections: self.max_connections,
            tls: ServerTls::from_flags(self.tls_cert.as_deref(), self.tls_key.as_deref())
                .map_err(ConfigError::Tls)?,
        }
        .validate()
    }
}

/// `1048576`, `512KiB`, `64MiB`, `1GiB` (binary units, case-insensitive).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The services' one duration grammar (`sluice_service_common::duration`).
pub use sluice_service_common::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("64mib"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("12TB").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
        assert!(parse_bytes("18446744073709551615GiB").is_err());
    }

    #[test]
    fn stores() {
        assert_eq!(
            "memory".parse::<StoreConfig>().unwrap(),
            StoreConfig::Memory
        );
        assert_eq!(
            "redis://127.0.0.1:6379".parse::<StoreConfig>().unwrap(),
            StoreConfig::Redis("redis://127.0.0.1:6379".into())
        );
        assert!(matches!(
            "http://x".parse::<StoreConfig>(),
            Err(ConfigError::StoreScheme { .. })
        ));
        assert!(matches!(
            "memcache".parse::<StoreConfig>(),
            Err(ConfigError::StoreUrl { .. })
        ));
    }

    #[test]
    fn flags_and_validation() {
        let cli = Cli::try_parse_from([
            "sluice-cache",
            "--listen",
            "127.0.0.1:0",
            "--max-bytes",
            "1MiB",
            "--max-entry-bytes",
            "4KiB",
            "--purge-interval",
            "100ms",
            "--header-timeout",
            "750ms",
            "--max-connections",
            "7",
        ])
        .unwrap();
        let config = cli.config().unwrap();
        assert_eq!(config.max_bytes, 1 << 20);
        assert_eq!(config.max_entry_bytes, 4 << 10);
        assert_eq!(config.purge_interval, Duration::from_millis(100));
        assert_eq!(config.header_timeout, Duration::from_millis(750));
        assert_eq!(config.max_connections, 7);

        let too_big = Cli::try_parse_from([
            "sluice-cache",
            "--max-bytes",
            "1KiB",
            "--max-entry-bytes",
            "2KiB",
        ])
        .unwrap();
        assert!(matches!(
            too_big.config(),
            Err(ConfigError::EntryOverBound { .. })
        ));
        for zero in [
            ["--purge-interval", "0s"],
            ["--header-timeout", "0s"],
            ["--body-timeout", "0s"],
            ["--max-connections", "0"],
        ] {
            let cli = Cli::try_parse_from(["sluice-cache", zero[0], zero[1]]).unwrap();
            assert!(
                matches!(cli.config(), Err(ConfigError::Zero(_))),
                "{zero:?}"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }
}
