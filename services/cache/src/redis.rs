//! Shared store: entries live in Redis so that several cache replicas serve
//! one set of entries.
//!
//! Each entry is one Redis string written with `SET key value PX ttl`, so
//! Redis owns the clock: it never returns a key past its PX deadline (it
//! checks on every access) and drops expired keys itself, which is why
//! [`Store::purge_expired`] has nothing to do here. One string per entry
//! keeps a write atomic (no MULTI for a hash plus PEXPIRE) and a read one
//! round trip. The value frames the content type in front of the body:
//!
//! ```text
//! [0xCA][version=1][content-type length: u16 big-endian][content type][body]
//! ```
//!
//! A zero length means "no content type". Keys are namespaced under
//! [`KEY_PREFIX`]. `/stats` reports the Redis server's numbers (DBSIZE, used
//! memory, expired and evicted keys), so the Redis database should be
//! dedicated to the cache; its memory bound is Redis's own `maxmemory`.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::store::{Entry, Key, Store, StoreError, Usage};

/// Namespace for our keys inside the Redis database.
pub const KEY_PREFIX: &[u8] = b"sluice-cache:";

const MAGIC: u8 = 0xCA;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4;

/// A connect attempt or a command that takes longer than this fails, so a
/// dead Redis turns into 503s and a failed readiness check, not hung requests.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts (at startup, and per reconnect) before giving up.
const CONNECT_RETRIES: usize = 2;
/// Cap on the wait between attempts, in milliseconds. The library's default
/// backoff (factor 100 on a 1 s base) would wait minutes between attempts,
/// keeping replicas unready long after Redis is back.
const MAX_RETRY_DELAY_MS: u64 = 500;

pub struct RedisStore {
    /// Multiplexed and cheap to clone: one TCP connection shared by all
    /// requests, reconnected in the background after a failure.
    conn: ConnectionManager,
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_factor(2)
            .set_max_delay(MAX_RETRY_DELAY_MS);
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self { conn })
    }
}

fn redis_key(key: &Key) -> Vec<u8> {
    let mut k = Vec::with_capacity(KEY_PREFIX.len() + key.len());
    k.extend_from_slice(KEY_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

fn encode(entry: &Entry) -> Bytes {
    let content_type = entry
        .content_type
        .as_ref()
        .map_or(&[][..], |v| v.as_bytes());
    // A header value longer than 64 KiB cannot arrive through hyper's
    // default header limits; if one ever did, drop it rather than truncate.
    let content_type = if content_type.len() > usize::from(u16::MAX) {
        &[][..]
    } else {
        content_type
    };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + content_type.len() + entry.body.len());
    buf.put_u8(MAGIC);
    buf.put_u8(VERSION);
    buf.put_u16(content_type.len() as u16);
    buf.put_slice(content_type);
    buf.put_slice(&entry.body);
    buf.freeze()
}

fn decode(value: Bytes) -> Result<Entry, StoreError> {
    let [magic, version, hi, lo] = *value
        .first_chunk::<HEADER_LEN>()
        .ok_or(StoreError::Corrupt("value shorter than its header"))?;
    if magic != MAGIC || version != VERSION {
        return Err(StoreError::Corrupt("unknown value framing"));
    }
    let ct_len = usize::from(u16::from_be_bytes([hi, lo]));
    let body_start = HEADER_LEN + ct_len;
    if value.len() < body_start {
        return Err(StoreError::Corrupt("content type runs past the value"));
    }
    let content_type = if ct_len == 0 {
        None
    } else {
        let raw = value.slice(HEADER_LEN..body_start);
        Some(
            HeaderValue::from_maybe_shared(raw)
                .map_err(|_| StoreError::Corrupt("content type is not a header value"))?,
        )
    };
    Ok(Entry {
        body: value.slice(body_start..),
        content_type,
    })
}

/// Reads `name:value` from an `INFO` reply; absent fields count as zero.
fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(field, _)| *field == name)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(redis_key(key))
            .query_async(&mut conn)
            .await?;
        value.map(|v| decode(Bytes::from(v))).transpose()
    }

    async fn put(&self, key: Key, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        // PX is milliseconds; a sub-millisecond TTL still expires (after 1 ms).
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(redis_key(&key))
            .arg(encode(&entry).as_ref())
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("DEL")
            .arg(redis_key(key))
            .query_async(&mut conn)
            .await?;
        Ok(removed > 0)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        // Redis expires keys itself (lazily on access and in its active
        // expiry cycle); there is nothing for a replica to sweep.
        Ok(0)
    }

    async fn usage(&self) -> Result<Usage, StoreError> {
        let mut conn = self.conn.clone();
        let (entries, stats, memory): (u64, String, String) = redis::pipe()
            .cmd("DBSIZE")
            .cmd("INFO")
            .arg("stats")
            .cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        Ok(Usage {
            entries,
            bytes: info_field(&memory, "used_memory"),
            evictions: info_field(&stats, "evicted_keys"),
            expirations: info_field(&stats, "expired_keys"),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let with = Entry {
            body: Bytes::from_static(b"{\"a\":1}"),
            content_type: Some(HeaderValue::from_static("application/json")),
        };
        assert_eq!(decode(encode(&with)).unwrap(), with);
        let without = Entry {
            body: Bytes::new(),
            content_type: None,
        };
        assert_eq!(decode(encode(&without)).unwrap(), without);
    }

    #[test]
    fn foreign_values_are_corrupt_not_panics() {
        for bad in [
            &b""[..],
            b"\xca",
            b"plain old string",
            b"\xca\x01\x00\x09short",
            b"\xca\x02\x00\x00body",
            b"\xca\x01\x00\x01\nbody",
        ] {
            let err = decode(Bytes::from_static(bad)).unwrap_err();
            assert!(!err.is_unavailable(), "{bad:?}");
        }
    }

    #[test]
    fn info_fields_parse() {
        let info = "# Stats\r\nexpired_keys:12\r\nevicted_keys:3\r\n";
        assert_eq!(info_field(info, "expired_keys"), 12);
        assert_eq!(info_field(info, "evicted_keys"), 3);
        assert_eq!(info_field(info, "missing"), 0);
    }

    #[test]
    fn keys_are_namespaced() {
        assert_eq!(redis_key(&Key::new(&b"a b"[..])), b"sluice-cache:a b");
    }
}
