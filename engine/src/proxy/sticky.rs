//! Sticky sessions on the request path, for groups with
//! `[upstream.NAME.sticky]` (others never come here): at stage 3, [`take`]
//! reads the client's cookie, strips it from the request (the backend never
//! sees it; the client's other cookies go on byte for byte) and names the
//! backend it points to if that backend is in the group's snapshot; the
//! pick, admission (`Backend::begin` in `retry::connect`) and retries then
//! run as for any request. At stage 7, [`answer`] gives a fresh cookie
//! only when the backend that answered is not the one the client's cookie
//! named (none, forged, stale, or left for another): HAProxy's `insert
//! indirect nocache`, Envoy's stateful session.
//!
//! Bounded: the Cookie header is scanned in place, without allocating, and
//! at most [`MAX_CHECKED`] of our cookies are verified (an HMAC each), so a
//! header full of forged copies costs no more than four.

use crate::upstream::sticky::{Sticky, VALUE_LEN};
use crate::upstream::{Backend, Group};
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// The most of our cookies one request has verified. A browser sends
/// several only when cookies of the same name were set for different
/// paths or domains; past these, the group's policy picks.
pub const MAX_CHECKED: usize = 4;

/// The backend the client's sticky cookie names, if it verifies and that
/// backend is in the group's current snapshot; every copy of the cookie is
/// removed from `headers` either way.
pub fn take(s: &Sticky, group: &Group, headers: &mut HeaderMap) -> Option<Arc<Backend>> {
    let name = s.cookie.as_bytes();
    let mut present = false;
    let mut checked = 0;
    let mut found = None;
    for v in headers.get_all(COOKIE) {
        for value in values_named(v.as_bytes(), name) {
            present = true;
            if found.is_some() || checked == MAX_CHECKED {
                continue;
            }
            if value.len() == VALUE_LEN {
                checked += 1;
            }
            if let Some(id) = s.verify(value) {
                let snap = group.load();
                found = snap.sticky.as_ref().and_then(|t| t.get(id)).cloned();
            }
        }
    }
    if present {
        strip(headers, name);
    }
    found
}

/// After the response head: a `Set-Cookie` naming `answered` unless the
/// client's cookie already named it (`kept`, its id). With the cookie goes
/// `Cache-Control: private` unless the response already keeps shared
/// caches out (HAProxy's `nocache`): a cache must not hand one client's
/// cookie to everyone. `tls`: the client's connection is TLS.
pub fn answer(
    s: &Sticky,
    kept: Option<u64>,
    answered: &Backend,
    tls: bool,
    headers: &mut HeaderMap,
) {
    if kept == Some(answered.id) {
        return;
    }
    headers.append(SET_COOKIE, s.set_cookie(answered.addr, tls));
    let private = headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|d| {
            let name = d.split(|&b| b == b'=').next().unwrap_or_default();
            let name = name.trim_ascii();
            name.eq_ignore_ascii_case(b"private") || name.eq_ignore_ascii_case(b"no-store")
        })
    });
    if !private {
        headers.append(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

/// The values of the `name=value` pairs called `name` in one Cookie line
/// (RFC 6265 §5.4: pairs split by `;`, optional whitespace around them,
/// a value optionally in double quotes). Names are case-sensitive.
fn values_named<'a>(line: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    line.split(|&b| b == b';').filter_map(move |pair| {
        let (n, v) = split_pair(pair)?;
        (n == name).then(|| {
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v)
        })
    })
}

fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = pair.iter().position(|&b| b == b'=')?;
    Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
}

/// Removes every `name=…` pair from the Cookie lines, keeping the other
/// pairs' bytes as they were; a line left empty is dropped. Only called
/// when there is one to remove: the lines are rebuilt (in their order).
fn strip(headers: &mut HeaderMap, name: &[u8]) {
    let lines: Vec<HeaderValue> = match headers.entry(COOKIE) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    for line in lines {
        match without(line.as_bytes(), name) {
            None => {
                headers.append(COOKIE, line);
            }
            Some(rest) if rest.is_empty() => {}
            // Fewer bytes of a valid value: still valid.
            Some(rest) => {
                if let Ok(v) = HeaderValue::from_bytes(&rest) {
                    headers.append(COOKIE, v);
                }
            }
        }
    }
}

/// One Cookie line without its `name=…` pairs; `None` if it has none.
fn without(line: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let ours = |pair: &[u8]| split_pair(pair).is_some_and(|(n, _)| n == name);
    if !line.split(|&b| b == b';').any(ours) {
        return None;
    }
    let mut out = Vec::with_capacity(line.len());
    let kept = line
        .split(|&b| b == b';')
        .filter(|p| !ours(p) && !p.trim_ascii().is_empty());
    for pair in kept {
        if out.is_empty() {
            // The first pair kept loses the space that followed a removed
            // one (an HTTP/2 field value must not start with whitespace,
            // RFC 9113 §8.2.1; RFC 6265 trims it from the pair anyway).
            out.extend_from_slice(pair.trim_ascii_start());
        } else {
            out.push(b';');
            out.extend_from_slice(pair);
        }
    }
    // Nor end with it: the space before a removed last pair goes too.
    let end = out.trim_ascii_end().len();
    out.truncate(end);
    Some(out)
}

#[cfg(test)]
mod tests;
