//! What the services say about themselves: `GET /stats` of `sluice-cache`
//! and `sluice-log`, parsed with serde (unknown fields ignored), and fetched
//! with the bench's own probe.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::probe;

/// `GET /stats` of `sluice-log` (unknown fields such as `ready` ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogStats {
    pub received: u64,
    pub written: u64,
    pub late: u64,
    pub batches: u64,
    pub fsyncs: u64,
    pub recovered: u64,
    pub rejected: u64,
    pub buffered: u64,
}

/// `GET /stats` of `sluice-cache` (`store` ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
}

fn parse_json<T: for<'de> Deserialize<'de>>(what: &'static str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Parse {
        what,
        detail: format!("{e}: {}", String::from_utf8_lossy(body)),
    })
}

pub fn parse_log_stats(body: &[u8]) -> Result<LogStats> {
    parse_json("sluice-log /stats", body)
}

pub fn parse_cache_stats(body: &[u8]) -> Result<CacheStats> {
    parse_json("sluice-cache /stats", body)
}

/// The body of `GET path`, which must answer 200.
pub fn get_ok(addr: SocketAddr, path: &str) -> Result<Vec<u8>> {
    let r = probe::get(addr, path, &[])?;
    if r.status != 200 {
        return Err(Error::Tool {
            tool: format!("GET {path}"),
            detail: format!("status {}", r.status),
        });
    }
    Ok(r.body)
}

pub fn log_stats(addr: SocketAddr) -> Result<LogStats> {
    parse_log_stats(&get_ok(addr, "/stats")?)
}

pub fn cache_stats(addr: SocketAddr) -> Result<CacheStats> {
    parse_cache_stats(&get_ok(addr, "/stats")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stats_json() {
        // As sluice-log's GET /stats sends it (with the extra `ready`).
        let body = br#"{"received":1200,"written":1100,"late":3,"batches":12,"fsyncs":5,"recovered":0,"rejected":1,"buffered":100,"ready":true}"#;
        let s = parse_log_stats(body).unwrap();
        assert_eq!(
            s,
            LogStats {
                received: 1200,
                written: 1100,
                late: 3,
                batches: 12,
                fsyncs: 5,
                recovered: 0,
                rejected: 1,
                buffered: 100,
            }
        );
        assert!(parse_log_stats(br#"{"received":1}"#).is_err());
        assert!(parse_log_stats(b"not json").is_err());
    }

    #[test]
    fn cache_stats_json() {
        let body = br#"{"store":"memory","entries":10000,"bytes":10485760,"hits":5,"misses":0,"evictions":0,"expirations":0}"#;
        let s = parse_cache_stats(body).unwrap();
        assert_eq!((s.entries, s.hits, s.misses), (10000, 5, 0));
        assert!(parse_cache_stats(br#"{"entries":-1}"#).is_err());
    }
}
