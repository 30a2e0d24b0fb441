//! Settings: flags and environment variables (clap), validated into the
//! runtime [`Config`]. Precedence: flag, then environment, then the
//! documented `DEFAULT_*`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use sluice_service_common::serve::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};

use sluice_service_common::{ServerTls, TlsError};

use crate::entry::Format;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";
/// How long an entry is held for late-arriving earlier entries.
pub const DEFAULT_REORDER_WINDOW: Duration = Duration::from_secs(2);
/// Output file size that triggers rotation.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
/// Rotated files kept (`app.log.1` .. `app.log.N`).
pub const DEFAULT_KEEP_FILES: usize = 5;
/// Request bodies being received, parsed or committed at once, in bytes;
/// past it, 503.
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: u64 = 64 << 20;
/// Largest accepted request body; larger gets 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
/// WAL segment size that starts a new segment.
pub const DEFAULT_WAL_SEGMENT_BYTES: u64 = 64 << 20;
/// Reorder buffer size above which the oldest entries are written before
/// their window has passed (by `order::entry_cost`, an estimate of heap use).
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 64 << 20;
/// How far ahead of the server's clock an entry's timestamp may be; further
/// gets 400. NTP keeps real clocks within milliseconds; five minutes is
/// Kerberos's classic skew allowance.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);
/// Longest accepted reorder window: entries are held in memory that long.
pub const MAX_REORDER_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Command line / environment model.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sluice-log",
    about = "Sluice log service: ordered, durable log ingestion"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LOG_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Data directory holding the WAL, the checkpoint and the log files.
    #[arg(long, env = "SLUICE_LOG_DIR", default_value = "data/log")]
    pub dir: PathBuf,
    /// Reorder window, e.g. `2s`, `500ms`, `1m`, `0`.
    #[arg(long, env = "SLUICE_LOG_REORDER_WINDOW", default_value = "2s", value_parser = parse_duration)]
    pub reorder_window: Duration,
    /// Output line format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = Format::Classic)]
    pub format: Format,
    /// Rotate `app.log` once it reaches this many bytes.
    #[arg(long, env = "SLUICE_LOG_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Rotated files to keep.
    #[arg(long, env = "SLUICE_LOG_KEEP_FILES", default_value_t = DEFAULT_KEEP_FILES)]
    pub keep_files: usize,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "SLUICE_LOG_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Cap on the reorder buffer in bytes: above it the oldest entries are
    /// written early, before their reorder window has passed.
    #[arg(long, env = "SLUICE_LOG_MAX_BUFFERED_BYTES", default_value_t = DEFAULT_MAX_BUFFERED_BYTES)]
    pub max_buffered_bytes: u64,
    /// Entries stamped further than this ahead of the server's clock are
    /// refused with 400, e.g. `5m`, `30s`, `0`.
    #[arg(long, env = "SLUICE_LOG_MAX_FUTURE_SKEW", default_value = "5m", value_parser = parse_duration)]
    pub max_future_skew: Duration,
    /// How long a client has to send each request head (and to start one on
    /// an idle connection) before it is closed, e.g. `10s`, `500ms`.
    #[arg(long, env = "SLUICE_LOG_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a client has to send a whole request body once its head is
    /// in; slower gets 408.
    #[arg(long, env = "SLUICE_LOG_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Request bodies in flight at once over every connection, in bytes
    /// (one without a Content-Length counts as --max-body-bytes); past it,
    /// 503.
    #[arg(long, env = "SLUICE_LOG_MAX_INFLIGHT_BODY_BYTES", default_value_t = DEFAULT_MAX_INFLIGHT_BODY_BYTES)]
    pub max_inflight_body_bytes: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "SLUICE_LOG_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Serve HTTPS (h2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain, leaf first; needs --tls-key. Read at start only.
    #[arg(long, env = "SLUICE_LOG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_LOG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Validated runtime settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub reorder_window: Duration,
    pub format: Format,
    pub max_file_bytes: u64,
    pub keep_files: usize,
    pub max_body_bytes: usize,
    pub max_buffered_bytes: u64,
    pub wal_segment_bytes: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_inflight_body_bytes: u64,
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_FUTURE_SKEW`] and `entry::check_future_skew`.
    pub max_future_skew: Duration,
    /// HTTPS with this certificate; `None`: plain HTTP.
    pub tls: Option<ServerTls>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--keep-files must be at least 1 (rotation recovery needs app.log.1)")]
    KeepFilesZero,
    #[error("--max-file-bytes must be positive")]
    MaxFileBytesZero,
    #[error("--max-body-bytes must be positive")]
    MaxBodyBytesZero,
    #[error("--max-buffered-bytes must be positive (use --reorder-window 0 to hold nothing)")]
    MaxBufferedBytesZero,
    #[error("--reorder-window must be at most 24h")]
    WindowTooLong,
    #[error("--header-timeout must be positive")]
    HeaderTimeoutZero,
    #[error("--max-body-bytes exceeds --max-inflight-body-bytes")]
    BodyOverInflight,
    #[error("--body-timeout must be positive")]
    BodyTimeoutZero,
    #[error("--max-connections must be positive")]
    MaxConnectionsZero,
    #[error("--tls-cert/--tls-key cannot be used")]
    Tls(#[source] TlsError),
}

impl Config {
    /// Defaults for everything but the data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            reorder_window: DEFAULT_REORDER_WINDOW,
            format: Format::Classic,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            keep_files: DEFAULT_KEEP_FILES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            wal_segment_bytes: DEFAULT_WAL_SEGMENT_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            tls: None,
        }
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.keep_files == 0 {
            return Err(ConfigError::KeepFilesZero);
        }
        if self.max_file_bytes == 0 {
            return Err(ConfigError::MaxFileBytesZero);
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::MaxBodyBytesZero);
        }
        if self.max_buffered_bytes == 0 {
            return Err(ConfigError::MaxBufferedBytesZero);
        }
        if self.reorder_window > MAX_REORDER_WINDOW {
            return Err(ConfigError::WindowTooLong);
        }
        if self.header_timeout.is_zero() {
            return Err(ConfigError::HeaderTimeoutZero);
        }
        if self.body_timeout.is_zero() {
            return Err(ConfigError::BodyTimeoutZero);
        }
        // The largest allowed body must fit the budget.
        if self.max_body_bytes as u64 > self.max_inflight_body_bytes {
            return Err(ConfigError::BodyOverInflight);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::MaxConnectionsZero);
        }
        Ok(self)
    }

    /// How often the flusher releases entries: a quarter window, within
    /// 5..100 ms.
    pub fn tick(&self) -> Duration {
        (self.reorder_window / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }
}

impl Args {
    /// The listen address and the validated config.
    pub fn validate(self) -> Result<(SocketAddr, Config), ConfigError> {
        let config = Config {
            dir: self.dir,
            reorder_window: self.reorder_window,
            format: self.format,
            max_file_bytes: self.max_file_bytes,
            keep_files: self.keep_files,
            max_body_bytes: self.max_body_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            wal_segment_bytes: DEFAULT_WAL_SEGMENT_BYTES,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_inflight_body_bytes: self.max_inflight_body_bytes,
            max_connections: self.max_connections,
            max_future_skew: self.max_future_skew,
            tls: ServerTls::from_flags(self.tls_cert.as_deref(), self.tls_key.as_deref())
                .map_err(ConfigError::Tls)?,
        }
        .validate()?;
        Ok((self.listen, config))
    }
}

/// The services' one duration grammar (`sluice_service_common::duration`).
pub use sluice_service_common::parse_duration;

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_validate_into_config() {
        let args = Args::try_parse_from([
            "sluice-log",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "/tmp/x",
            "--reorder-window",
            "250ms",
            "--format",
            "json",
            "--max-file-bytes",
            "1000",
            "--keep-files",
            "3",
            "--max-buffered-bytes",
            "4096",
            "--header-timeout",
            "750ms",
            "--max-connections",
            "7",
            "--max-future-skew",
            "30s",
        ])
        .unwrap();
        let (addr, c) = args.validate().unwrap();
        assert_eq!(addr.port(), 0);
        assert_eq!(c.reorder_window, Duration::from_millis(250));
        assert_eq!(c.format, Format::Json);
        assert_eq!((c.max_file_bytes, c.keep_files), (1000, 3));
        assert_eq!(c.max_buffered_bytes, 4096);
        assert_eq!(c.header_timeout, Duration::from_millis(750));
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.max_future_skew, Duration::from_secs(30));
        let zero = Args::try_parse_from(["sluice-log", "--header-timeout", "0s"]).unwrap();
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::HeaderTimeoutZero)
        ));
        let over = Args::try_parse_from([
            "sluice-log",
            "--max-body-bytes",
            "2000",
            "--max-inflight-body-bytes",
            "1000",
        ])
        .unwrap();
        assert!(matches!(
            over.validate(),
            Err(ConfigError::BodyOverInflight)
        ));
        let zero = Args::try_parse_from(["sluice-log", "--body-timeout", "0s"]).unwrap();
        assert!(matches!(zero.validate(), Err(ConfigError::BodyTimeoutZero)));
        let zero = Args::try_parse_from(["sluice-log", "--max-connections", "0"]).unwrap();
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::MaxConnectionsZero)
        ));
        assert_eq!(
            Config::new("/tmp/x").max_buffered_bytes,
            DEFAULT_MAX_BUFFERED_BYTES
        );
        let zero = Args::try_parse_from(["sluice-log", "--max-buffered-bytes", "0"]).unwrap();
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::MaxBufferedBytesZero)
        ));
        let bad = Args::try_parse_from(["sluice-log", "--keep-files", "0"]).unwrap();
        assert!(matches!(bad.validate(), Err(ConfigError::KeepFilesZero)));
    }
}
