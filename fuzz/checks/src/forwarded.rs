//! Target `forwarded`: `sluice::proxy::headers::inbound` as it builds the
//! client address chain, `X-Forwarded-For` and `Forwarded` (RFC 7239), from
//! the connection's address, the Host the client sent, and (behind a
//! trusted proxy) the chain the previous hop sent.
//!
//! Defends against: panics on any header bytes the `http` crate accepts; a
//! `Forwarded` field that is not RFC 7239 syntax as a whole (a strict parser
//! at the backend then rejects it or reads it differently from a lenient
//! one); a client that is not the last element of either chain, or one whose
//! element carries pairs it did not earn (a Host with `"`, `,`, `;`, `=` or
//! `\` must not add a pair or an element: header injection); a trusted
//! chain that is reordered or loses an element it sent in valid syntax; and
//! an untrusted client reaching the chain at all.
//!
//! The input drives trust, the scheme, the client address, the Host, and
//! the earlier `X-Forwarded-For` and `Forwarded` field lines (pieces from a
//! dictionary of quotes, commas, escapes and valid pairs, or raw bytes).

use arbitrary::{Result, Unstructured};
use http::header::{HeaderMap, HeaderValue};
use sluice::proxy::headers::{FORWARDED, Inbound, X_FORWARDED_FOR, inbound};
use std::net::IpAddr;

/// Pieces a hostile or sloppy previous hop (or client) puts in a chain.
const PIECES: &[&[u8]] = &[
    b"for=1.1.1.1",
    b"for=\"[2001:db8::1]:4711\"",
    b"for=unknown",
    b"for=_hidden",
    b"proto=https",
    b"host=\"a.example:8080\"",
    b"by=10.0.0.1",
    b"for=\"",
    b"\"",
    b"\\",
    b"\\\"",
    b",",
    b", ",
    b";",
    b"=",
    b" ",
    b"\t",
    b"for=\"a\\\"b\"",
    b"for=\"a,b\"",
    b"for=\"a;b\"",
    b"1.2.3.4",
    b"::1",
    b"unknown",
    b"\x80",
];

/// Hosts as a client may send them (the h1 parser lets these through).
const HOSTS: &[&[u8]] = &[
    b"example.com",
    b"example.com:8080",
    b"[::1]:443",
    b"a\"b",
    b"a,for=6.6.6.6",
    b"a;for=6.6.6.6",
    b"a\\",
    b"a b",
    b"",
    b"\"quoted\"",
    b"caf\xc3\xa9.example",
];

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let _ = one(&mut Unstructured::new(data));
}

fn field(u: &mut Unstructured<'_>, dict: &[&[u8]], max: usize) -> Result<Option<HeaderValue>> {
    let mut bytes = Vec::new();
    for _ in 0..u.int_in_range(1..=max)? {
        if u.ratio(3, 4)? {
            bytes.extend_from_slice(u.choose(dict)?);
        } else {
            let len = u.int_in_range(0..=8)?;
            bytes.extend_from_slice(u.bytes(len)?);
        }
    }
    Ok(HeaderValue::from_bytes(&bytes).ok())
}

fn one(u: &mut Unstructured<'_>) -> Result<()> {
    let trust: bool = u.arbitrary()?;
    let proto = if u.arbitrary()? { "https" } else { "http" };
    let (ip, client) = crate::client(u)?;
    let host = if u.arbitrary()? {
        field(u, HOSTS, 2)?
    } else {
        None
    };
    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let name = if u.arbitrary()? {
            X_FORWARDED_FOR
        } else {
            FORWARDED
        };
        if let Some(v) = field(u, PIECES, 6)? {
            headers.append(name, v);
        }
    }
    let before = headers.clone();
    let via = HeaderValue::from_static("1.1 sluice");
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

    // X-Forwarded-For: one line, the client last; before it, what a trusted
    // hop sent (its ASCII lines), and nothing from an untrusted one.
    let xff: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
    assert_eq!(xff.len(), 1, "one X-Forwarded-For line: {xff:?}");
    let items: Vec<&str> = xff[0]
        .to_str()
        .expect("ASCII")
        .split(',')
        .map(str::trim)
        .collect();
    let ip_text = ip.to_string();
    assert_eq!(items.last(), Some(&ip_text.as_str()), "client not last");
    if trust {
        let prior: Vec<&str> = before
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        assert_eq!(
            &items[..items.len() - 1],
            &prior[..],
            "trusted chain changed"
        );
    } else {
        assert_eq!(items, [ip_text.as_str()]);
    }

    // Forwarded: one line, RFC 7239 as a whole.
    let fwd: Vec<_> = headers.get_all(FORWARDED).iter().collect();
    assert_eq!(fwd.len(), 1, "one Forwarded line: {fwd:?}");
    let elements = parse_forwarded(fwd[0].as_bytes())
        .unwrap_or_else(|| panic!("Forwarded {:?} is not RFC 7239", fwd[0]));
    let (ours, earlier) = elements.split_last().expect("at least our element");

    // Ours names the client and the scheme, and the Host only as itself.
    let node = match ip {
        IpAddr::V4(_) => ip_text.clone(),
        IpAddr::V6(_) => format!("[{ip_text}]"),
    };
    let mut want: Vec<(String, Vec<u8>)> = vec![
        ("for".into(), node.into_bytes()),
        ("proto".into(), proto.as_bytes().to_vec()),
    ];
    if let Some(h) = ours.iter().find(|(k, _)| k == "host") {
        assert_eq!(Some(&h.1[..]), host.as_ref().map(HeaderValue::as_bytes));
        want.push(h.clone());
    }
    assert_eq!(ours, &want, "our element");

    // Earlier elements: exactly the trusted hop's, when it sent valid lines.
    // (A line with obs-text is dropped too: ours are ASCII.)
    let prior: Vec<Element> = before
        .get_all(FORWARDED)
        .iter()
        .filter(|v| v.to_str().is_ok())
        .filter_map(|v| parse_forwarded(v.as_bytes()))
        .flatten()
        .collect();
    if trust {
        assert_eq!(earlier, &prior[..], "trusted Forwarded chain changed");
    } else {
        assert!(earlier.is_empty(), "an untrusted chain was kept");
    }
    Ok(())
}

/// One `forwarded-element`: its pairs, names lowercased, values unquoted.
type Element = Vec<(String, Vec<u8>)>;

/// RFC 7239 §4 with RFC 9110's list rule: `Forwarded = 1#forwarded-element`,
/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
/// `forwarded-pair = token "=" value`, `value = token / quoted-string`.
/// Elements are separated by `OWS "," OWS`; none is empty here (empty list
/// items are dropped, as the list rule allows). `None` if not that syntax.
pub fn parse_forwarded(s: &[u8]) -> Option<Vec<Element>> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut out: Vec<Element> = Vec::new();
    let mut element: Element = Vec::new();
    let mut i = 0;
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && tchar(s[*i]) {
            *i += 1;
        }
        (*i > start).then(|| &s[start..*i])
    };
    // No OWS around `;` and `=` (RFC 7239 §4), only around `,`.
    let mut after_semicolon = false;
    loop {
        while !after_semicolon && i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        // An element may end with `;`, and OWS may follow it before a comma.
        if after_semicolon && matches!(s.get(i), Some(b' ' | b'\t')) {
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            if i < s.len() && s[i] != b',' {
                return None;
            }
        }
        after_semicolon = false;
        if i < s.len() && s[i] != b',' && s[i] != b';' {
            let name = token(&mut i)?;
            if s.get(i) != Some(&b'=') {
                return None;
            }
            i += 1;
            let value = if s.get(i) == Some(&b'"') {
                i += 1;
                let mut v = Vec::new();
                loop {
                    match *s.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            let c = *s.get(i + 1)?;
                            if c != b'\t' && !(0x20..=0x7e).contains(&c) && c < 0x80 {
                                return None;
                            }
                            v.push(c);
                            i += 2;
                        }
                        c if c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80 => {
                            v.push(c);
                            i += 1;
                        }
                        _ => return None,
                    }
                }
                i += 1;
                v
            } else {
                token(&mut i)?.to_vec()
            };
            let name = String::from_utf8(name.to_ascii_lowercase()).ok()?;
            element.push((name, value));
        }
        match s.get(i) {
            Some(b';') => {
                i += 1;
                after_semicolon = true;
            }
            Some(b',') | None => {
                if !element.is_empty() {
                    out.push(std::mem::take(&mut element));
                }
                if i >= s.len() {
                    break;
                }
                i += 1;
            }
            Some(b' ' | b'\t') => {
                // OWS is allowed only before a comma (or the end).
                while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                    i += 1;
                }
                if i < s.len() && s[i] != b',' {
                    return None;
                }
            }
            Some(_) => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}
