//! Header rewriting between hops (RFC 9110 §7.6). Pure functions, headers in
//! and headers out, so that they can be fuzzed and tested byte for byte.

use crate::addr::ClientStrings;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Hop-by-hop headers that are always removed (RFC 9110 §7.6.1, plus the
/// legacy `Keep-Alive` and `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers, including every header `Connection` names.
/// `TE` survives only as `trailers` (gRPC needs it end to end). Returns the
/// `Upgrade` value when the message asks to upgrade and `keep_upgrade` is set,
/// so the caller can put it back on the next hop.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> Option<HeaderValue> {
    // Fast path: one pass over the names instead of eight hash lookups; most
    // requests and responses carry no hop-by-hop header at all.
    if !headers.keys().any(is_hop_by_hop) {
        return None;
    }
    let mut upgrade = None;
    if headers.contains_key(header::CONNECTION) {
        let mut asks_upgrade = false;
        // Collect first: the names borrow from the map we are about to change.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            // Bytes, not `to_str`: a value with obs-text must not hide the
            // names beside it (found by fuzz/header_rewrite).
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|t| {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"upgrade") {
                    asks_upgrade = true;
                }
                HeaderName::from_bytes(t).ok()
            })
            .collect();
        if asks_upgrade && keep_upgrade {
            upgrade = headers.get(header::UPGRADE).cloned();
        }
        for name in named {
            // Never let `Connection` strip end-to-end framing or routing
            // headers. TE is hop-by-hop anyway and handled below; RFC 9110
            // §10.1.4 has clients name it in Connection, which must not cost
            // the `trailers` that gRPC needs.
            if name != header::HOST && name != header::CONTENT_LENGTH && name != header::TE {
                headers.remove(&name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(te) = headers.remove(header::TE)
        && te.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.trim()
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        })
    {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    upgrade
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// What the proxy knows about a request when rewriting its headers.
pub struct Inbound<'a> {
    pub client: &'a ClientStrings,
    /// `http` or `https`: the scheme the client used to reach us.
    pub proto: &'static str,
    /// The host the client asked for (Host header or :authority).
    pub host: Option<&'a HeaderValue>,
    /// Keep what earlier proxies said (only behind a trusted proxy).
    pub trust_forwarded: bool,
    /// `Via` value for this hop, e.g. `1.1 sluice`.
    pub via: &'a HeaderValue,
    /// The field naming a verified client certificate, and this
    /// connection's value for it (`server::client_cert`), if any.
    pub client_cert_header: &'a HeaderName,
    pub client_cert: Option<&'a HeaderValue>,
}

/// The request stage: hop-by-hop fields stripped, [`inbound`] applied,
/// `Expect` dropped, and `Connection: upgrade` put back for an upgrade the
/// client asked for (`keep_upgrade`).
pub fn for_upstream(headers: &mut HeaderMap, ctx: &Inbound<'_>, keep_upgrade: bool) {
    let upgrade = strip_hop_by_hop(headers, keep_upgrade);
    inbound(headers, ctx);
    // The downstream connection (hyper's HTTP/2 or `server::h1`) answers
    // `Expect: 100-continue` itself when the body is first read, which is
    // once the backend connection is ready.
    headers.remove(header::EXPECT);
    if let Some(u) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, u);
    }
}

/// Rewrites a client's request headers for the backend.
pub fn inbound(headers: &mut HeaderMap, ctx: &Inbound<'_>) {
    // Only we say what certificate a client showed: a client's own claim
    // is removed, unless an earlier proxy we trust made it.
    match ctx.client_cert {
        Some(v) => {
            headers.insert(ctx.client_cert_header.clone(), v.clone());
        }
        None if !ctx.trust_forwarded => {
            headers.remove(ctx.client_cert_header);
        }
        None => {}
    }

    // X-Forwarded-For: append the client to the list, or start a new one.
    let prior_xff = ctx.trust_forwarded && headers.contains_key(&X_FORWARDED_FOR);
    if prior_xff {
        let list = join(
            headers.get_all(&X_FORWARDED_FOR),
            ctx.client.ip.to_str().unwrap_or(""),
        );
        set(headers, X_FORWARDED_FOR, list);
    } else {
        headers.insert(X_FORWARDED_FOR, ctx.client.ip.clone());
    }

    if !ctx.trust_forwarded || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(ctx.proto));
    }
    if !ctx.trust_forwarded || !headers.contains_key(&X_FORWARDED_HOST) {
        match ctx.host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }

    // Forwarded (RFC 7239): same trust rule; IPv6 is quoted and bracketed.
    let host = ctx
        .host
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_token(h));
    let mut element = String::with_capacity(
        ctx.client.forwarded_for.len() + 7 + ctx.proto.len() + host.map_or(0, |h| h.len() + 8),
    );
    element.push_str(&ctx.client.forwarded_for);
    element.push_str(";proto=");
    element.push_str(ctx.proto);
    if let Some(host) = host {
        element.push_str(";host=");
        // `:` and `[]` are not token characters: a port or an IPv6 literal
        // is a quoted-string (RFC 7239 §4; found by fuzz/header_rewrite).
        if host.contains([':', '[', ']']) {
            element.push('"');
            element.push_str(host);
            element.push('"');
        } else {
            element.push_str(host);
        }
    }
    if ctx.trust_forwarded && headers.contains_key(&FORWARDED) {
        // Only the lines that are RFC 7239: after an open quote, our element
        // would be inside the previous hop's value, and the backend would not
        // see the client (found by fuzz/forwarded).
        let valid = headers
            .get_all(&FORWARDED)
            .iter()
            .filter(|v| is_forwarded_list(v.as_bytes()));
        let list = join(valid, &element);
        set(headers, FORWARDED, list);
    } else {
        set(headers, FORWARDED, element);
    }

    append_via(headers, ctx.via);
}

/// `a, b` from every line of a list header, then `last`.
fn join<'a>(values: impl IntoIterator<Item = &'a HeaderValue>, last: &str) -> String {
    let mut out = String::new();
    for v in values {
        if let Ok(s) = v.to_str() {
            out.push_str(s.trim());
            out.push_str(", ");
        }
    }
    out.push_str(last);
    out
}

/// RFC 9113 §8.2.3: HTTP/2 lets a client split Cookie into one field line
/// per crumb; "these MUST be concatenated into a single byte string using
/// the two-octet delimiter of 0x3b, 0x20 (the ASCII string \"; \") before
/// being passed into a non-HTTP/2 context, such as an HTTP/1.1 connection".
pub fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (crumbs.next(), crumbs.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for c in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(c.as_bytes());
    }
    // Joined from valid values with a valid separator: always valid.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        headers.insert(header::COOKIE, v);
    }
}

/// Rewrites a backend's response headers for the client.
pub fn outbound(headers: &mut HeaderMap, via: &HeaderValue) {
    append_via(headers, via);
}

fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    headers.append(header::VIA, via.clone());
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    // Built from an IP address and header values that were already valid.
    // `Bytes::from(String)` takes the buffer over: no second allocation or copy.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name, v);
    } else {
        headers.remove(name);
    }
}

/// A `Forwarded` field line in RFC 7239 §4 syntax, visible ASCII only:
/// `1#forwarded-element`, an element `[pair] *(";" [pair])` with at least
/// one pair, a pair `token "=" (token / quoted-string)`, OWS only around
/// the commas.
fn is_forwarded_list(v: &[u8]) -> bool {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let text = |b: &u8| *b == b'\t' || (b' '..=b'~').contains(b);
    let ows = |i: &mut usize| {
        while matches!(v.get(*i), Some(b' ' | b'\t')) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while v.get(*i).is_some_and(tchar) {
            *i += 1;
        }
        *i > start
    };
    let (mut i, mut pairs) = (0, 0);
    loop {
        ows(&mut i);
        loop {
            if v.get(i).is_some_and(tchar) {
                token(&mut i);
                if v.get(i) != Some(&b'=') {
                    return false;
                }
                i += 1;
                if v.get(i) == Some(&b'"') {
                    i += 1;
                    loop {
                        match v.get(i) {
                            Some(b'"') => break,
                            Some(b'\\') if v.get(i + 1).is_some_and(text) => i += 2,
                            Some(b) if *b != b'\\' && text(b) => i += 1,
                            _ => return false,
                        }
                    }
                    i += 1;
                } else if !token(&mut i) {
                    return false;
                }
                pairs += 1;
            }
            if v.get(i) != Some(&b';') {
                break;
            }
            i += 1;
        }
        ows(&mut i);
        match v.get(i) {
            None => return pairs > 0,
            Some(b',') => i += 1,
            Some(_) => return false,
        }
    }
}

/// RFC 7230 token characters, plus `:` and `[` `]` for host:port.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::ClientAddr;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookie_crumbs_become_one_line_joined_with_semicolon_space() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookie_crumbs(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2; c=3");
        let mut one = map(&[("cookie", "a=1")]);
        join_cookie_crumbs(&mut one);
        assert_eq!(one["cookie"], "a=1");
    }

    fn client() -> &'static ClientStrings {
        // Tests only: initialised once by whichever test thread comes first.
        static C: std::sync::OnceLock<ClientStrings> = std::sync::OnceLock::new();
        C.get_or_init(|| ClientStrings::new(ClientAddr(([10, 1, 2, 3], 5555).into())))
    }

    static XFCC: HeaderName = crate::config::defaults::CLIENT_CERT_HEADER;

    fn ctx<'a>(trust: bool, host: Option<&'a HeaderValue>, via: &'a HeaderValue) -> Inbound<'a> {
        Inbound {
            client: client(),
            proto: "http",
            host,
            trust_forwarded: trust,
            via,
            client_cert_header: &XFCC,
            client_cert: None,
        }
    }

    #[test]
    fn only_the_proxy_says_what_certificate_a_client_showed() {
        let via = HeaderValue::from_static("1.1 sluice");
        let forged = || map(&[("x-forwarded-client-cert", "Hash=forged")]);
        // No certificate: the client's claim goes.
        let mut h = forged();
        inbound(&mut h, &ctx(false, None, &via));
        assert!(!h.contains_key("x-forwarded-client-cert"));
        // Behind a trusted proxy, its claim stays.
        let mut h = forged();
        inbound(&mut h, &ctx(true, None, &via));
        assert_eq!(h["x-forwarded-client-cert"], "Hash=forged");
        // A verified certificate replaces any claim, trusted or not.
        let ours = HeaderValue::from_static("Hash=00;Subject=\"CN=a\"");
        for trust in [false, true] {
            let mut h = forged();
            let c = Inbound {
                client_cert: Some(&ours),
                ..ctx(trust, None, &via)
            };
            inbound(&mut h, &c);
            assert_eq!(h.get_all("x-forwarded-client-cert").iter().count(), 1);
            assert_eq!(h["x-forwarded-client-cert"], ours);
        }
    }

    #[test]
    fn every_hop_by_hop_header_is_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic abc"),
            ("x-secret", "1"),
            ("x-kept", "yes"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h, true), None);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn connection_with_obs_text_still_strips_the_names_it_lists() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-secret, caf\xe9").unwrap(),
        );
        h.append("x-secret", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn te_trailers_survives() {
        let mut h = map(&[("te", "trailers, deflate;q=0.5")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn te_trailers_survives_being_named_in_connection() {
        let mut h = map(&[("connection", "TE"), ("te", "trailers")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
        assert!(!h.contains_key("connection"));
        let mut h = map(&[("connection", "te, close"), ("te", "gzip")]);
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("te"));
    }

    #[test]
    fn connection_cannot_strip_host_or_length() {
        let mut h = map(&[
            ("connection", "host, content-length"),
            ("host", "a"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["host"], "a");
        assert_eq!(h["content-length"], "3");
    }

    #[test]
    fn upgrade_is_reported_when_asked_for() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(strip_hop_by_hop(&mut h, true).unwrap(), "websocket");
        assert!(!h.contains_key("upgrade"));
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let via = HeaderValue::from_static("1.1 sluice");
        let host = HeaderValue::from_static("example.com");
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        inbound(&mut h, &ctx(false, Some(&host), &via));
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["forwarded"], "for=10.1.2.3;proto=http;host=example.com");
        assert_eq!(h["via"], "1.1 sluice");
    }

    #[test]
    fn trusted_forwarded_headers_are_appended_to() {
        let via = HeaderValue::from_static("1.1 sluice");
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.1.1.1"),
            ("via", "1.0 fred"),
        ]);
        inbound(&mut h, &ctx(true, None, &via));
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=1.1.1.1, for=10.1.2.3;proto=http");
        let vias: Vec<_> = h.get_all("via").iter().collect();
        assert_eq!(vias, ["1.0 fred", "1.1 sluice"]);
    }

    #[test]
    fn trusted_forwarded_lines_that_are_not_rfc_7239_are_dropped() {
        let via = HeaderValue::from_static("1.1 sluice");
        let mut h = map(&[
            ("forwarded", "for=1.1.1.1;proto=https"),
            // An open quote: appended to, it would swallow our element.
            ("forwarded", "for=\"6.6.6.6, "),
            ("forwarded", "for=unknown \\, by=x"),
            (
                "forwarded",
                "for=\"[2001:db8::1]:80\", for=_a;by=\"a\\\"b\"",
            ),
        ]);
        inbound(&mut h, &ctx(true, None, &via));
        assert_eq!(
            h["forwarded"],
            "for=1.1.1.1;proto=https, for=\"[2001:db8::1]:80\", for=_a;by=\"a\\\"b\", \
             for=10.1.2.3;proto=http"
        );
        for bad in [
            "",
            " , ",
            "for",
            "for=",
            "for=a; by=b",
            "for=a b",
            "for=\"a\\\"",
            ";",
        ] {
            assert!(!is_forwarded_list(bad.as_bytes()), "{bad:?}");
        }
        for good in ["for=a", "for=a;;by=b , for=\"\"", "for=a;", ", for=a ,"] {
            assert!(is_forwarded_list(good.as_bytes()), "{good:?}");
        }
    }

    #[test]
    fn forwarded_host_with_port_or_ipv6_is_quoted() {
        let via = HeaderValue::from_static("1.1 sluice");
        for (host, want) in [
            (
                "example.com:8080",
                "for=10.1.2.3;proto=http;host=\"example.com:8080\"",
            ),
            ("[::1]:443", "for=10.1.2.3;proto=http;host=\"[::1]:443\""),
            ("example.com", "for=10.1.2.3;proto=http;host=example.com"),
        ] {
            let host = HeaderValue::from_static(host);
            let mut h = HeaderMap::new();
            inbound(&mut h, &ctx(false, Some(&host), &via));
            assert_eq!(h["forwarded"], want);
        }
    }

    #[test]
    fn ipv6_clients_are_quoted_in_forwarded() {
        let via = HeaderValue::from_static("2 sluice");
        let mut h = HeaderMap::new();
        let strings = ClientStrings::new(ClientAddr("[::1]:80".parse().unwrap()));
        let c = Inbound {
            client: &strings,
            proto: "https",
            host: None,
            trust_forwarded: false,
            via: &via,
            client_cert_header: &XFCC,
            client_cert: None,
        };
        inbound(&mut h, &c);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
    }
}
