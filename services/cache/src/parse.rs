//! Wire parsing of a request's inputs: the `key` query parameter and the
//! `Cache-Control` TTL. Pure functions over borrowed data, fully unit tested.

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;
use percent_encoding::percent_decode;

use crate::error::{KeyError, MaxAgeError};
use crate::store::Key;

/// Longest accepted key, in decoded bytes.
pub const MAX_KEY_BYTES: usize = 4096;

/// Longest accepted TTL: ten years. Also keeps `Instant + ttl` and Redis's
/// millisecond `PX` far from overflow.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Extracts and decodes `key` from a query string.
///
/// Decoding is `application/x-www-form-urlencoded` (what Go's
/// `url.QueryEscape` and browsers produce): `+` is a space and `%XX` a byte.
/// The result is bytes, not text, so any encoded byte string is a distinct key.
pub fn key(query: Option<&str>) -> Result<Key, KeyError> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "key" {
            continue;
        }
        if found.is_some() {
            return Err(KeyError::Repeated);
        }
        found = Some(value);
    }
    let raw = found.ok_or(KeyError::Missing)?;
    let plus_as_space: Vec<u8> = raw
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&plus_as_space).collect();
    if decoded.is_empty() {
        return Err(KeyError::Empty);
    }
    if decoded.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong { max: MAX_KEY_BYTES });
    }
    Ok(Key::new(decoded))
}

/// The TTL from `Cache-Control`: `max-age=N`, or the older `maxage=N`, in
/// any of the header's comma-separated directives (other directives are
/// ignored). The same value given twice is fine; two different ones are not.
pub fn max_age(headers: &HeaderMap) -> Result<Duration, MaxAgeError> {
    let mut values = headers.get_all(CACHE_CONTROL).iter().peekable();
    if values.peek().is_none() {
        return Err(MaxAgeError::MissingHeader);
    }
    let mut found: Option<u64> = None;
    for value in values {
        let text = value.to_str().map_err(|_| MaxAgeError::Malformed)?;
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim())),
                None => (directive, None),
            };
            if !(name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("maxage")) {
                continue;
            }
            let seconds = seconds(arg.ok_or(MaxAgeError::Malformed)?)?;
            match found {
                Some(previous) if previous != seconds => return Err(MaxAgeError::Conflicting),
                _ => found = Some(seconds),
            }
        }
    }
    found.map(Duration::from_secs).ok_or(MaxAgeError::NoMaxAge)
}

/// Delta-seconds (RFC 9111 §1.2.2): digits only, optionally quoted.
fn seconds(arg: &str) -> Result<u64, MaxAgeError> {
    let digits = arg
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MaxAgeError::Malformed);
    }
    let too_large = MaxAgeError::TooLarge { max: MAX_TTL_SECS };
    let value: u64 = digits.parse().map_err(|_| too_large)?;
    if value > MAX_TTL_SECS {
        return Err(too_large);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn key_is_form_decoded_bytes() {
        assert_eq!(key(Some("key=a%20b+c")).unwrap().as_bytes(), b"a b c");
        assert_eq!(key(Some("x=1&key=%2B%26%3D")).unwrap().as_bytes(), b"+&=");
        assert_eq!(key(Some("key=%FF%00")).unwrap().as_bytes(), &[0xff, 0x00]);
        assert_eq!(
            key(Some("key=/posts/1?page=2")).unwrap().as_bytes(),
            b"/posts/1?page=2"
        );
    }

    #[test]
    fn key_errors() {
        assert_eq!(key(None), Err(KeyError::Missing));
        assert_eq!(key(Some("")), Err(KeyError::Missing));
        assert_eq!(key(Some("keys=a")), Err(KeyError::Missing));
        assert_eq!(key(Some("key=")), Err(KeyError::Empty));
        assert_eq!(key(Some("key")), Err(KeyError::Empty));
        assert_eq!(key(Some("key=a&key=b")), Err(KeyError::Repeated));
        let long = format!("key={}", "a".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(
            key(Some(&long)),
            Err(KeyError::TooLong { max: MAX_KEY_BYTES })
        );
        let just_fits = format!("key={}", "a".repeat(MAX_KEY_BYTES));
        assert!(key(Some(&just_fits)).is_ok());
    }

    #[test]
    fn both_max_age_forms() {
        assert_eq!(max_age(&cc(&["max-age=60"])), Ok(Duration::from_secs(60)));
        assert_eq!(max_age(&cc(&["maxage=60"])), Ok(Duration::from_secs(60)));
        assert_eq!(max_age(&cc(&["Max-Age=5"])), Ok(Duration::from_secs(5)));
        assert_eq!(
            max_age(&cc(&["public, max-age = 7 , must-revalidate"])),
            Ok(Duration::from_secs(7))
        );
        assert_eq!(max_age(&cc(&["max-age=\"9\""])), Ok(Duration::from_secs(9)));
        assert_eq!(max_age(&cc(&["max-age=0"])), Ok(Duration::ZERO));
        assert_eq!(
            max_age(&cc(&["no-cache", "max-age=3"])),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            max_age(&cc(&["max-age=3, maxage=3"])),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn max_age_errors() {
        use MaxAgeError::*;
        assert_eq!(max_age(&HeaderMap::new()), Err(MissingHeader));
        assert_eq!(max_age(&cc(&["no-store"])), Err(NoMaxAge));
        assert_eq!(max_age(&cc(&[""])), Err(NoMaxAge));
        // s-maxage is a different directive, not a spelling of maxage.
        assert_eq!(max_age(&cc(&["s-maxage=5"])), Err(NoMaxAge));
        for bad in [
            "max-age",
            "max-age=",
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "maxage=1s",
            "max-age=+1",
            "max-age=\"\"",
        ] {
            assert_eq!(max_age(&cc(&[bad])), Err(Malformed), "{bad}");
        }
        let max = MAX_TTL_SECS;
        assert_eq!(
            max_age(&cc(&["max-age=99999999999999999999999"])),
            Err(TooLarge { max })
        );
        let over = HeaderValue::from_str(&format!("max-age={}", max + 1)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, over);
        assert_eq!(max_age(&headers), Err(TooLarge { max }));
        assert_eq!(max_age(&cc(&["max-age=1, maxage=2"])), Err(Conflicting));
    }

    #[test]
    fn non_ascii_cache_control_is_malformed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=\xff").unwrap(),
        );
        assert_eq!(max_age(&headers), Err(MaxAgeError::Malformed));
    }
}
