//! What a sticky cookie says and how the proxy knows it wrote it
//! (`[upstream.NAME.sticky]`; the request side is `proxy::sticky`).
//!
//! The value is 48 hex digits: an 8-byte backend id, then a 16-byte tag.
//! - The id is HMAC-SHA256(key, group, backend address), cut to 8 bytes: the
//!   same backend gets the same id in every replica that shares the key, and
//!   without the key it says nothing about the address (an unkeyed hash of
//!   `10.x.y.z:port` could be reversed by trying the 2⁴⁰ candidates, as
//!   Traefik's FNV hash can; Envoy's is the address in base64).
//! - The tag is HMAC-SHA256(key, group, id), cut to 16 bytes and checked in
//!   constant time before the id is looked up: a forged or edited cookie,
//!   or one from another group, is refused without telling why.
//!
//! Each group's snapshot carries a [`Table`] from id to backend, built with
//! the snapshot off the hot path (one HMAC per backend), so a request looks
//! its cookie up without a lock; a backend out of rotation is simply absent.

use super::backend::Backend;
use crate::addr::BackendAddr;
use crate::config::{SameSite, StickyConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

type HmacSha256 = Hmac<Sha256>;

const ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Length of a cookie value: the id and the tag in hex.
pub const VALUE_LEN: usize = 2 * (ID_LEN + TAG_LEN);

/// A group's sticky cookie: its name, its key and the attributes of the
/// `Set-Cookie` that gives it.
pub struct Sticky {
    pub cookie: String,
    /// Keyed and fed the domain and group once; cloned for each use (a
    /// clone copies the hash state, it does not key again).
    id_mac: HmacSha256,
    tag_mac: HmacSha256,
    /// `; Path=…; Max-Age=…; HttpOnly; SameSite=…`, and the same with
    /// `; Secure` (every listener when `secure = true`, else TLS ones).
    attrs: String,
    attrs_secure: String,
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sticky")
            .field("cookie", &self.cookie)
            .field("attrs", &self.attrs)
            .finish_non_exhaustive()
    }
}

impl Sticky {
    /// The cookie of group `group`; without a configured secret, the
    /// process's random key (which only fails if the OS has no randomness).
    pub fn new(group: &str, c: &StickyConfig) -> std::io::Result<Sticky> {
        let key: &[u8] = match &c.secret {
            Some(s) => &s.0,
            None => process_key()?,
        };
        let keyed = |domain: &[u8]| {
            // HMAC takes a key of any length; this cannot fail.
            let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
            m.update(domain);
            m.update(&(group.len() as u64).to_be_bytes());
            m.update(group.as_bytes());
            m
        };
        let mut attrs = format!("; Path={}", c.path);
        if let Some(secs) = c.max_age {
            attrs.push_str(&format!("; Max-Age={secs}"));
        }
        if c.http_only {
            attrs.push_str("; HttpOnly");
        }
        attrs.push_str(match c.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
        let attrs_secure = format!("{attrs}; Secure");
        Ok(Sticky {
            cookie: c.cookie.clone(),
            id_mac: keyed(b"sluice sticky id\0"),
            tag_mac: keyed(b"sluice sticky tag\0"),
            attrs: if c.secure {
                attrs_secure.clone()
            } else {
                attrs
            },
            attrs_secure,
        })
    }

    /// The id of the backend at `addr`.
    pub fn id(&self, addr: BackendAddr) -> u64 {
        let mut m = self.id_mac.clone();
        m.update(addr.to_string().as_bytes());
        let out = m.finalize().into_bytes();
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&out[..ID_LEN]);
        u64::from_be_bytes(id)
    }

    fn tag(&self, id: u64) -> HmacSha256 {
        let mut m = self.tag_mac.clone();
        m.update(&id.to_be_bytes());
        m
    }

    /// The cookie value naming the backend at `addr`.
    pub fn value(&self, addr: BackendAddr) -> [u8; VALUE_LEN] {
        let id = self.id(addr);
        let tag = self.tag(id).finalize().into_bytes();
        let mut raw = [0; ID_LEN + TAG_LEN];
        raw[..ID_LEN].copy_from_slice(&id.to_be_bytes());
        raw[ID_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        let mut out = [0; VALUE_LEN];
        for (pair, b) in out.chunks_exact_mut(2).zip(raw) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        out
    }

    /// The backend id a cookie value carries, if this group's key made it.
    /// Anything but 48 hex digits costs no HMAC.
    pub fn verify(&self, value: &[u8]) -> Option<u64> {
        if value.len() != VALUE_LEN {
            return None;
        }
        let mut raw = [0u8; ID_LEN + TAG_LEN];
        for (b, pair) in raw.iter_mut().zip(value.chunks_exact(2)) {
            *b = (unhex(pair[0])? << 4) | unhex(pair[1])?;
        }
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&raw[..ID_LEN]);
        let id = u64::from_be_bytes(id);
        // Constant time: how much of a forged tag was right stays unknown.
        self.tag(id).verify_truncated_left(&raw[ID_LEN..]).ok()?;
        Some(id)
    }

    /// A whole `Set-Cookie` value naming the backend at `addr`; `tls` when
    /// the client's connection is TLS (the cookie is then `Secure`).
    pub fn set_cookie(&self, addr: BackendAddr, tls: bool) -> http::HeaderValue {
        let attrs = if tls { &self.attrs_secure } else { &self.attrs };
        let value = self.value(addr);
        let mut line = Vec::with_capacity(self.cookie.len() + 1 + VALUE_LEN + attrs.len());
        line.extend_from_slice(self.cookie.as_bytes());
        line.push(b'=');
        line.extend_from_slice(&value);
        line.extend_from_slice(attrs.as_bytes());
        // Validation allows only visible ASCII in the name and path.
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(line))
            .expect("a cookie line of visible ASCII")
    }

    /// The id → backend table of a snapshot's `backends` (closed and
    /// half-open: `Backend::begin` still bounds a half-open one's trials).
    pub fn table<'a>(&self, backends: impl Iterator<Item = &'a Arc<Backend>>) -> Table {
        Table(backends.map(|b| (self.id(b.addr), b.clone())).collect())
    }
}

/// A snapshot's backends by sticky id: in rotation, or absent.
#[derive(Debug, Default)]
pub struct Table(HashMap<u64, Arc<Backend>>);

impl Table {
    pub fn get(&self, id: u64) -> Option<&Arc<Backend>> {
        self.0.get(&id)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase only: the proxy writes lowercase, and one spelling per value.
fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The key of groups without a `secret`: random, made once per process and
/// kept across reloads (so a reload does not move every client), never
/// shared with another process.
fn process_key() -> std::io::Result<&'static [u8]> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(k) = KEY.get() {
        return Ok(k);
    }
    let mut k = [0; 32];
    getrandom::getrandom(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(KEY.get_or_init(|| k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(secret: Option<&str>) -> StickyConfig {
        StickyConfig {
            cookie: "srv".to_owned(),
            secret: secret.map(|s| Secret(s.as_bytes().to_vec())),
            same_site: SameSite::Lax,
            max_age: None,
            path: "/".to_owned(),
            http_only: true,
            secure: false,
        }
    }

    fn addr(port: u16) -> BackendAddr {
        BackendAddr(([10, 0, 0, 1], port).into())
    }

    #[test]
    fn a_value_verifies_to_its_backend_and_hides_the_address() {
        let s = Sticky::new("api", &config(Some("0123456789abcdef"))).expect("key");
        let v = s.value(addr(80));
        assert_eq!(v.len(), 48);
        assert!(v.iter().all(|b| HEX.contains(b)), "hex only");
        assert_eq!(s.verify(&v), Some(s.id(addr(80))));
        assert_ne!(s.id(addr(80)), s.id(addr(81)));
        let text = std::str::from_utf8(&v).expect("ascii");
        assert!(!text.contains("0a000001") && !text.contains("10.0.0.1"));
    }

    #[test]
    fn a_tampered_truncated_or_foreign_value_is_refused() {
        let s = Sticky::new("api", &config(Some("0123456789abcdef"))).expect("key");
        let v = s.value(addr(80));
        for i in 0..VALUE_LEN {
            let mut bad = v;
            bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
            assert_eq!(s.verify(&bad), None, "byte {i} changed");
        }
        assert_eq!(s.verify(&v[..47]), None);
        assert_eq!(s.verify(&[v.as_slice(), b"0"].concat()), None);
        assert_eq!(s.verify(&v.to_ascii_uppercase()), None, "one spelling");
        assert_eq!(s.verify(b""), None);
        // Another key, or the same key in another group, made it.
        let other_key = Sticky::new("api", &config(Some("fedcba9876543210"))).expect("key");
        assert_eq!(other_key.verify(&v), None);
        let other_group = Sticky::new("web", &config(Some("0123456789abcdef"))).expect("key");
        assert_eq!(other_group.verify(&v), None);
    }

    #[test]
    fn replicas_sharing_a_secret_agree_and_the_process_key_is_one_per_process() {
        let a = Sticky::new("api", &config(Some("0123456789abcdef"))).expect("key");
        let b = Sticky::new("api", &config(Some("0123456789abcdef"))).expect("key");
        assert_eq!(a.value(addr(80)), b.value(addr(80)));
        // Without a secret: the same random key for every group of this
        // process (a reload keeps it), unlike any configured one.
        let r1 = Sticky::new("api", &config(None)).expect("key");
        let r2 = Sticky::new("api", &config(None)).expect("key");
        assert_eq!(r1.value(addr(80)), r2.value(addr(80)));
        assert_ne!(r1.value(addr(80)), a.value(addr(80)));
    }

    #[test]
    fn set_cookie_carries_the_attributes_and_secure_on_tls() {
        let mut c = config(Some("0123456789abcdef"));
        c.max_age = Some(3600);
        c.path = "/app".to_owned();
        let s = Sticky::new("api", &c).expect("key");
        let v = String::from_utf8(s.value(addr(80)).to_vec()).expect("ascii");
        assert_eq!(
            s.set_cookie(addr(80), false),
            format!("srv={v}; Path=/app; Max-Age=3600; HttpOnly; SameSite=Lax").as_str()
        );
        assert_eq!(
            s.set_cookie(addr(80), true),
            format!("srv={v}; Path=/app; Max-Age=3600; HttpOnly; SameSite=Lax; Secure").as_str()
        );
        c.secure = true;
        c.http_only = false;
        c.same_site = SameSite::None;
        c.max_age = None;
        let s = Sticky::new("api", &c).expect("key");
        assert_eq!(
            s.set_cookie(addr(80), false),
            format!("srv={v}; Path=/app; SameSite=None; Secure").as_str(),
            "secure = true: on plain listeners too"
        );
    }

    #[test]
    fn the_table_finds_its_backends_by_id() {
        let s = Sticky::new("api", &config(Some("0123456789abcdef"))).expect("key");
        let backends = crate::upstream::backend::test_backends(&[1, 1, 1]);
        let t = s.table(backends.iter());
        for b in &backends {
            assert_eq!(t.get(s.id(b.addr)).map(|x| x.id), Some(b.id));
        }
        assert!(t.get(s.id(addr(9))).is_none());
    }
}
