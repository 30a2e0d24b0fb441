//! `access_log` and the instance identity: the file shape, the runtime
//! model and their validation (`observe::access_log` writes the lines).
//!
//! `access_log = true` (the old switch, and `--access-log`) still parses:
//! JSON lines to stdout. `[access_log]` sets the format, the file and the
//! queue, and `[access_log.ship]` sends the entries to the log service.

use super::defaults;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// `access_log = true|false` or an `[access_log]` table.
#[derive(Debug)]
pub enum AccessLogFile {
    Switch(bool),
    /// Boxed: large, and read once.
    Table(Box<AccessLogTable>),
}

/// By hand, not `untagged`: the table is read from the TOML deserializer
/// itself, so its `Spanned` values keep their place in the file and its
/// errors name their key.
impl<'de> Deserialize<'de> for AccessLogFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AccessLogFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or an [access_log] table")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<AccessLogFile, E> {
                Ok(AccessLogFile::Switch(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AccessLogFile, A::Error> {
                AccessLogTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| AccessLogFile::Table(Box::new(t)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogTable {
    /// Default true: a table alone turns the log on.
    pub enabled: Option<bool>,
    /// `json` (default) or `combined`.
    pub format: Option<Spanned<String>>,
    /// A file, opened for append and reopened on reload (SIGHUP); default stdout.
    pub path: Option<Spanned<String>>,
    /// Lines waiting for the writer; more are dropped and counted.
    pub queue: Option<Spanned<usize>>,
    pub ship: Option<ShipFile>,
}

/// `[access_log.ship]`: batches of entries to the log service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipFile {
    /// `http://host:port/path` (the log service ingests on `/`).
    pub url: Spanned<String>,
    /// Most entries in one POST.
    pub batch: Option<Spanned<usize>>,
    /// Longest an entry waits for its batch to fill.
    pub interval: Option<Spanned<String>>,
    /// Entries waiting for the shipper; more are dropped and counted.
    pub queue: Option<Spanned<usize>>,
    /// Batches kept for retry while the service fails; the oldest goes first.
    pub pending: Option<Spanned<usize>>,
    /// The entries' `source`; default the instance id.
    pub source: Option<Spanned<String>>,
}

/// One line's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Apache/nginx combined, then `key=value` extras.
    Combined,
}

/// A validated access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub format: LogFormat,
    /// `None`: stdout.
    pub path: Option<PathBuf>,
    pub queue: usize,
    pub ship: Option<ShipConfig>,
}

impl Default for AccessLogConfig {
    /// What `access_log = true` and `--access-log` mean: JSON lines to stdout.
    fn default() -> AccessLogConfig {
        AccessLogConfig {
            format: LogFormat::Json,
            path: None,
            queue: defaults::ACCESS_LOG_QUEUE,
            ship: None,
        }
    }
}

/// Where and how entries are shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipConfig {
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    pub path: String,
    pub batch: usize,
    pub interval: Duration,
    pub queue: usize,
    pub pending: usize,
    /// `None`: the instance id.
    pub source: Option<String>,
}

/// An instance id goes into a header value and every log line: printable
/// ASCII without quotes, backslashes or `;` (the log service's separator).
pub fn instance_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';'))
}
