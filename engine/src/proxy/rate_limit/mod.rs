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
use crate::config::{ClientPrefix, Config, RateKey, RateLimitConfig};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Requests this limit refused (`sluice_rate_limited_total`); kept
    /// across a reload with the limit. `Relaxed`: a statistic.
    pub limited: AtomicU64,
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
            limited: AtomicU64::new(0),
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
            RateKey::Client(prefix) => {
                let net = ClientNet::of(req.client, *prefix);
                let key = match net.addr {
                    IpAddr::V4(a) => t.hash(0, &a.octets()),
                    IpAddr::V6(a) => t.hash(0, &a.octets()),
                };
                t.take(key, rate, burst, now, || {
                    global.then(|| net.to_string().into_bytes().into())
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
            l.check(req, now)
                .inspect_err(|_| _ = l.limited.fetch_add(1, Ordering::Relaxed))?;
        }
        Ok(())
    }
}

/// A client's network: its address with the bits past the prefix length
/// cleared (an IPv4-mapped IPv6 address counts as the IPv4 one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClientNet {
    addr: IpAddr,
    /// The prefix length; the full one (32 or 128) for a single address.
    len: u8,
}

impl ClientNet {
    fn of(ip: IpAddr, prefix: ClientPrefix) -> ClientNet {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let len = prefix.v4.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V4((u32::from(a) & mask).into()),
                    len,
                }
            }
            IpAddr::V6(a) => {
                let len = prefix.v6.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V6((u128::from(a) & mask).into()),
                    len,
                }
            }
        }
    }
}

/// The global bucket's name: the address alone for a full prefix (as
/// before prefixes existed, so Redis keys stay), else `network/len`.
impl std::fmt::Display for ClientNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.len == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
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
    use super::{ClientNet, header_key_name};
    use crate::config::ClientPrefix;
    use std::net::IpAddr;

    fn net(ip: &str, v4: u8, v6: u8) -> String {
        let ip: IpAddr = ip.parse().expect("ip");
        ClientNet::of(ip, ClientPrefix { v4, v6 }).to_string()
    }

    #[test]
    fn a_client_is_its_network_at_the_prefix_length() {
        // One IPv6 host picks any address of its /64: one bucket.
        assert_eq!(net("2001:db8:1:2:aaaa::1", 32, 64), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:bbbb::9", 32, 64), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:3::1", 32, 64), "2001:db8:1:3::/64");
        assert_eq!(net("2001:db8:1:2::1", 32, 128), "2001:db8:1:2::1");
        assert_eq!(net("2001:db8:1:2::1", 32, 1), "::/1");
        assert_eq!(net("192.0.2.77", 32, 64), "192.0.2.77");
        assert_eq!(net("192.0.2.77", 24, 64), "192.0.2.0/24");
        assert_eq!(net("192.0.2.77", 1, 64), "128.0.0.0/1");
        // An IPv4 client on a dual-stack socket is an IPv4 client.
        assert_eq!(net("::ffff:192.0.2.77", 32, 64), "192.0.2.77");
    }

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
