//! Target `header_rewrite`: `sluice::proxy::headers::{strip_hop_by_hop,
//! inbound, outbound}`, the rewrite every request and response passes.
//!
//! Defends against: hop-by-hop headers leaking to the next hop (Connection,
//! Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade,
//! Proxy-Authenticate, Proxy-Authorization, and every field Connection
//! names, except Host and Content-Length which Connection may not strip);
//! `TE` surviving as anything but `trailers`; end-to-end headers being
//! changed; a client forging its place in X-Forwarded-For (the list must end
//! with the real client address) or breaking the Forwarded syntax (RFC 7239:
//! our element is `pair *(";" pair)`, each value a token or a quoted-string);
//! and panics on any header bytes the `http` crate accepts.
//!
//! The input drives a header map (names and values from a dictionary of the
//! interesting ones, or raw bytes; invalid ones are skipped), the client
//! address, the Host, trust and the Via value.

use arbitrary::{Result, Unstructured};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sluice::proxy::headers::{
    FORWARDED, Inbound, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, inbound, outbound,
    strip_hop_by_hop,
};

const NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "via",
    "x-secret",
    "cookie",
    "accept-encoding",
];

const VALUES: &[&[u8]] = &[
    b"close",
    b"keep-alive",
    b"Upgrade",
    b"upgrade, x-secret",
    b"keep-alive, x-secret",
    b"te, host, content-length",
    b" , ,x-secret ,",
    b"x-secret, \x80",
    b"trailers",
    b"TRAILERS;q=1, gzip",
    b"gzip, deflate;q=0.5",
    b"websocket",
    b"chunked",
    b"1.1.1.1",
    b"2.2.2.2, 3.3.3.3",
    b"for=1.1.1.1;proto=https",
    b"for=\"[::1]\"",
    b"example.com",
    b"example.com:8080",
    b"[::1]:443",
    b"",
];

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let _ = one(&mut Unstructured::new(data));
}

fn name(u: &mut Unstructured<'_>) -> Result<Option<HeaderName>> {
    Ok(if u.ratio(3, 4)? {
        Some(HeaderName::from_static(u.choose(NAMES)?))
    } else {
        let len = u.int_in_range(0..=16)?;
        HeaderName::from_bytes(u.bytes(len)?).ok()
    })
}

fn value(u: &mut Unstructured<'_>) -> Result<Option<HeaderValue>> {
    let bytes: Vec<u8> = match u.int_in_range(0..=3)? {
        0 | 1 => u.choose(VALUES)?.to_vec(),
        // A list of field names, as Connection carries.
        2 => {
            let n = u.int_in_range(1..=4)?;
            let mut v = Vec::new();
            for i in 0..n {
                if i > 0 {
                    v.extend_from_slice(if u.arbitrary()? { b", " } else { b"," });
                }
                v.extend_from_slice(u.choose(NAMES)?.as_bytes());
            }
            v
        }
        _ => {
            let len = u.int_in_range(0..=40)?;
            u.bytes(len)?.to_vec()
        }
    };
    Ok(HeaderValue::from_bytes(&bytes).ok())
}

fn one(u: &mut Unstructured<'_>) -> Result<()> {
    let keep_upgrade: bool = u.arbitrary()?;
    let trust: bool = u.arbitrary()?;
    let proto = if u.arbitrary()? { "https" } else { "http" };
    let (ip, client) = crate::client(u)?;
    let host = if u.arbitrary()? { value(u)? } else { None };
    let via = value(u)?.unwrap_or(HeaderValue::from_static("1.1 sluice"));

    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=24)? {
        if let (Some(n), Some(v)) = (name(u)?, value(u)?) {
            headers.append(n, v);
        }
    }
    let original = headers.clone();

    // --- strip_hop_by_hop against a byte-wise reference.
    let upgrade = strip_hop_by_hop(&mut headers, keep_upgrade);
    let mut named: Vec<HeaderName> = Vec::new();
    let mut asks_upgrade = false;
    for v in original.get_all(header::CONNECTION) {
        for t in v.as_bytes().split(|&b| b == b',') {
            let t = t.trim_ascii();
            asks_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
            if let Ok(n) = HeaderName::from_bytes(t) {
                named.push(n);
            }
        }
    }
    for n in HOP_BY_HOP {
        assert!(!headers.contains_key(*n), "{n} survived: {headers:?}");
    }
    for n in &named {
        if n != header::HOST && n != header::CONTENT_LENGTH && n != header::TE {
            assert!(!headers.contains_key(n), "{n} named by Connection survived");
        }
    }
    let te: Vec<_> = headers.get_all(header::TE).iter().collect();
    assert!(te.is_empty() || te == ["trailers"], "TE: {te:?}");
    // Everything else is end to end: untouched, in order.
    for n in original.keys() {
        let hop = HOP_BY_HOP.contains(&n.as_str())
            || n == header::TE
            || (named.contains(n) && n != header::HOST && n != header::CONTENT_LENGTH);
        if !hop {
            assert!(
                original.get_all(n).iter().eq(headers.get_all(n).iter()),
                "end-to-end {n} changed"
            );
        }
    }
    assert!(headers.keys().all(|n| original.contains_key(n)));
    match upgrade {
        Some(v) => {
            assert!(keep_upgrade && asks_upgrade);
            assert_eq!(Some(&v), original.get(header::UPGRADE));
        }
        None => assert!(
            !(keep_upgrade && asks_upgrade && original.contains_key(header::UPGRADE)),
            "Connection: upgrade with Upgrade not reported"
        ),
    }

    // --- inbound: the forwarding headers.
    let before = headers.clone();
    let via_count = before.get_all(header::VIA).iter().count();
    let xfcc = sluice::config::defaults::CLIENT_CERT_HEADER;
    let ctx = Inbound {
        client: &client,
        proto,
        host: host.as_ref(),
        trust_forwarded: trust,
        via: &via,
        client_cert_header: &xfcc,
        client_cert: None,
    };
    inbound(&mut headers, &ctx);
    let ip_text = ip.to_string();

    let xff: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
    assert_eq!(xff.len(), 1, "one X-Forwarded-For line: {xff:?}");
    let xff = xff[0].to_str().expect("X-Forwarded-For is ASCII");
    let last = xff.rsplit(',').next().unwrap_or_default().trim();
    assert_eq!(
        last, ip_text,
        "X-Forwarded-For {xff:?} must end with the client"
    );
    if !trust {
        assert_eq!(xff, ip_text);
    }

    let xfp: Vec<_> = headers.get_all(&X_FORWARDED_PROTO).iter().collect();
    if trust && before.contains_key(&X_FORWARDED_PROTO) {
        assert!(xfp.iter().eq(before.get_all(&X_FORWARDED_PROTO).iter()));
    } else {
        assert_eq!(xfp, [proto]);
    }
    if !(trust && before.contains_key(&X_FORWARDED_HOST)) {
        assert_eq!(headers.get(&X_FORWARDED_HOST), host.as_ref());
        assert!(headers.get_all(&X_FORWARDED_HOST).iter().count() <= 1);
    }

    let fwd: Vec<_> = headers.get_all(&FORWARDED).iter().collect();
    assert_eq!(fwd.len(), 1, "one Forwarded line: {fwd:?}");
    let fwd = fwd[0].to_str().expect("Forwarded is ASCII");
    // Ours is the last element; earlier ones came from a trusted proxy.
    let ours = if trust && before.contains_key(&FORWARDED) {
        fwd.rsplit(", ").next().unwrap_or_default()
    } else {
        fwd
    };
    assert!(forwarded_element_ok(ours), "Forwarded element {ours:?}");
    assert!(
        ours.starts_with(&client.forwarded_for),
        "Forwarded {ours:?} must name the client"
    );
    assert!(ours.contains(&format!(";proto={proto}")));

    let vias: Vec<_> = headers.get_all(header::VIA).iter().collect();
    assert_eq!(vias.len(), via_count + 1);
    assert_eq!(vias.last(), Some(&&via));

    // --- outbound: Via appended, nothing else touched.
    let mut response = original.clone();
    outbound(&mut response, &via);
    assert_eq!(
        response.get_all(header::VIA).iter().count(),
        original.get_all(header::VIA).iter().count() + 1
    );
    assert_eq!(response.len(), original.len() + 1);
    Ok(())
}

/// RFC 7239 §4: `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
/// `forwarded-pair = token "=" value`, `value = token / quoted-string`.
fn forwarded_element_ok(s: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let token = |t: &str| !t.is_empty() && t.bytes().all(tchar);
    let quoted = |q: &str| {
        let Some(inner) = q.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
            return false;
        };
        let mut escaped = false;
        for b in inner.bytes() {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                return false;
            }
        }
        !escaped
    };
    // A quoted-string may hold `;`: split only outside quotes.
    let mut pairs = Vec::new();
    let (mut start, mut in_quote, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b';' if !in_quote => {
                pairs.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pairs.push(&s[start..]);
    !in_quote
        && pairs.iter().all(|p| match p.split_once('=') {
            Some((k, v)) => token(k) && (token(v) || quoted(v)),
            None => false,
        })
}
