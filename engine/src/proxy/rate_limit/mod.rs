//! Request rate limits (stage 2 of `proxy`, once the route is known): each
//! `[[rate_limit]]` whose host and path match takes a token from its key's
//! bucket ([`bucket`]); the first empty one answers 429 with `Retry-After`.
//! A limit that passed keeps the token it gave even when a later one
//! refuses (as nginx's `limit_req` does).
//!
//! Buckets are shared by all workers, in tables of independently locked
//! shards ([`table`]) with a cap on their keys. A `global` limit's buckets
//! are also synced with other replicas through Redis ([`global`]), off the
//! request path.

pub mod bucket;
pub mod global;
pub mod table;

use super::route::HostMatch;
use crate::config::{Config, RateKey, RateLimitConfig};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use table::Table;
use tokio::time::Instant;

/// One configured limit and its buckets.
#[derive(Debug)]
pub struct Limit {
    pub config: RateLimitConfig,
    /// `config.host` as routes match hosts.
    host: HostMatch,
    pub table: Table,
}

/// What a request offers as keys.
pub struct Request<'a> {
    /// As the client sent it (any case, maybe with a port).
    pub host: Option<&'a str>,
    pub path: &'a str,
    /// The matched route's index.
    pub route: usize,
    pub client: IpAddr,
    pub headers: &'a HeaderMap,
}

impl Limit {
    fn new(config: RateLimitConfig) -> Limit {
        let host = HostMatch::new(config.host.as_deref());
        Limit {
            table: Table::new(config.max_keys),
            host,
            config,
        }
    }

    fn applies(&self, req: &Request<'_>) -> bool {
        if let Some(p) = &self.config.path
            && !req.path.starts_with(p.as_str())
        {
            return false;
        }
        self.host
            .matches(req.host.map(super::route::normalize_host))
    }

    /// Takes a token for `req`; `Ok` also when the limit does not apply.
    fn check(&self, req: &Request<'_>, now: Instant) -> Result<(), Duration> {
        if !self.applies(req) {
            return Ok(());
        }
        let c = &self.config;
        let (rate, burst) = (c.rate, f64::from(c.burst));
        let global = c.global;
        let t = &self.table;
        match &c.key {
            RateKey::Client => {
                let ip = req.client;
                let key = match ip {
                    IpAddr::V4(a) => t.hash(0, &a.octets()),
                    IpAddr::V6(a) => t.hash(0, &a.octets()),
                };
                t.take(key, rate, burst, now, || {
                    global.then(|| ip.to_string().into_bytes().into())
                })
            }
            RateKey::Route => {
                let route = req.route;
                let key = t.hash(1, &route.to_le_bytes());
                t.take(key, rate, burst, now, || {
                    global.then(|| route.to_string().into_bytes().into())
                })
            }
            RateKey::Header(name) => {
                // No header: this rule does not apply (documented).
                let Some(v) = req.headers.get(name) else {
                    return Ok(());
                };
                let key = t.hash(2, v.as_bytes());
                t.take(key, rate, burst, now, || {
                    global.then(|| header_key_name(v.as_bytes()))
                })
            }
        }
    }
}

/// Every configured limit, in config order.
#[derive(Debug, Default)]
pub struct RateLimits {
    pub limits: Vec<Arc<Limit>>,
    /// The global sync's counters (zero without global limits).
    pub sync: global::Sync,
}

impl RateLimits {
    /// The limits of `config`; one unchanged since `previous` (same name
    /// and settings) keeps its buckets across a reload.
    pub fn new(config: &Config, previous: Option<&RateLimits>) -> RateLimits {
        let limits = config
            .rate_limits
            .iter()
            .map(|c| {
                previous
                    .and_then(|p| p.limits.iter().find(|l| l.config == *c))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Limit::new(c.clone())))
            })
            .collect();
        RateLimits {
            limits,
            sync: global::Sync::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Takes a token from every limit that applies; the wait until the
    /// refusing bucket has one otherwise.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Duration> {
        let now = Instant::now();
        for l in &self.limits {
            l.check(req, now)?;
        }
        Ok(())
    }
}

/// The name of a header value's global bucket (kept in the table entry and
/// in the Redis key): the value itself when short and printable, so an
/// operator can read it in Redis; else `sha256:` and its digest in hex, so
/// a header value of up to `limits.max_header_bytes` costs 71 bytes per key
/// here and in every sync, not its own length.
fn header_key_name(value: &[u8]) -> Box<[u8]> {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    const SHORT: usize = 64;
    if value.len() <= SHORT && value.iter().all(|b| b.is_ascii_graphic()) {
        return value.into();
    }
    let mut name = String::with_capacity(7 + 64);
    name.push_str("sha256:");
    for b in Sha256::digest(value) {
        let _ = write!(name, "{b:02x}");
    }
    name.into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::header_key_name;

    #[test]
    fn a_header_value_names_its_bucket_in_bounded_bytes() {
        assert_eq!(&*header_key_name(b"tenant-42"), b"tenant-42");
        let long = vec![b'a'; 32 * 1024];
        let name = header_key_name(&long);
        assert_eq!(name.len(), 7 + 64);
        assert!(name.starts_with(b"sha256:"));
        // Stable across processes (the replicas must agree), and distinct.
        assert_eq!(name, header_key_name(&long));
        assert_ne!(name, header_key_name(&long[1..]));
        // Not printable: hashed too (a Redis key stays plain text).
        assert!(header_key_name(b"a b").starts_with(b"sha256:"));
    }
}
