//! `X-Request-Id`: the client's, when it sent one that is safe to pass on
//! and to log, else one made here. Made ids are unique within this process
//! without a shared counter (a thread's number and its own count), and
//! differ between processes by a random prefix drawn at start.

use http::{HeaderMap, HeaderValue, header::HeaderName};
use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept (Heroku's and Envoy's practice: 200 is the most
/// either keeps; longer ones are replaced, not cut).
pub const MAX_LEN: usize = 200;

/// The request's id: the one `X-Request-Id` of `headers` if valid, else a
/// new one. A client id with any byte outside `[A-Za-z0-9._:+/=-]`, empty,
/// too long, or sent twice is replaced: it goes into log lines and other
/// services' headers, where quotes, spaces or control bytes could forge
/// fields.
pub fn take(headers: &HeaderMap) -> HeaderValue {
    let mut ids = headers.get_all(X_REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) if valid(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

pub fn valid(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'+' | b'/' | b'=' | b'-')
        })
}

/// Threads numbered in the order they make their first id.
///
/// # Concurrency
/// One `fetch_add` per thread, ever: `Relaxed`, only uniqueness matters.
static THREADS: AtomicU16 = AtomicU16::new(0);

thread_local! {
    /// This thread's number and the ids it made so far.
    static NEXT: Cell<(u16, u64)> = Cell::new((THREADS.fetch_add(1, Ordering::Relaxed), 0));
}

/// The process's random prefix, drawn once.
fn prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without the OS's randomness the ids are still unique in this
        // process; only the spread between processes is lost.
        getrandom::getrandom(&mut b).unwrap_or_else(|_| b = fastrand::u64(..).to_le_bytes());
        u64::from_le_bytes(b)
    })
}

/// 32 hex digits: the process prefix, the thread, its count (48 bits).
pub fn generate() -> HeaderValue {
    let (thread, n) = NEXT.with(|c| {
        let (t, n) = c.get();
        c.set((t, n.wrapping_add(1)));
        (t, n)
    });
    let mut out = [0u8; 32];
    hex(&mut out[..16], prefix());
    hex(&mut out[16..20], u64::from(thread));
    hex(&mut out[20..], n & 0xffff_ffff_ffff);
    HeaderValue::from_bytes(&out).expect("hex digits are a valid header value")
}

/// `v`'s low `out.len()` hex digits, most significant first.
fn hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_client_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z+/="));
        assert_eq!(take(&h), "abc-123_x.y:z+/=");
    }

    #[test]
    fn unsafe_long_empty_or_repeated_ids_are_replaced() {
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "a b", "a\"b", "a;b", "é", long.as_str()] {
            let mut h = HeaderMap::new();
            h.insert(
                X_REQUEST_ID,
                HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            );
            let id = take(&h);
            assert_ne!(id.as_bytes(), bad.as_bytes(), "{bad:?}");
            assert_eq!(id.len(), 32);
        }
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("one"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("two"));
        assert_eq!(take(&h).len(), 32);
        assert!(valid("a".repeat(MAX_LEN).as_bytes()));
    }

    #[test]
    fn made_ids_are_distinct_across_threads_and_hex() {
        let mut ids: Vec<String> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..1000)
                        .map(|_| generate().to_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
            })
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(
            ids.iter()
                .all(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
