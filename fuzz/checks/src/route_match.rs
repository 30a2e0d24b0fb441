//! Target `route_match`: `sluice::proxy::route::Router::{find, lookup}`,
//! which turns the client's Host and path into an upstream group.
//!
//! Defends against: panics on hostile Host values (non-ASCII, multi-byte
//! characters at the wildcard boundary, IPv6 brackets, ports, trailing dots)
//! and routing drift: a request reaching a different upstream than the
//! documented rule says (most specific host first: exact, then the longest
//! `*.suffix`, then any; then the longest path prefix; the first in the file
//! among equals). The result is compared with a naive reference that scores
//! every route, written without the router's sort.
//!
//! The input drives a router of up to eight routes (from a dictionary of
//! hosts and paths, or raw strings) and one host/path pair; a fixed router
//! is checked with the same pair.

use arbitrary::{Result, Unstructured};
use sluice::config::RouteConfig;
use sluice::proxy::route::{RouteMatch, Router};

const HOSTS: &[&str] = &[
    "example.com",
    "Shop.Example.com",
    "*.example.com",
    "*.com",
    "*",
    "[::1]",
    "bücher.de",
    "*.bücher.de",
    "localhost",
];
const PATHS: &[&str] = &["", "/", "/api", "/api/", "/api/v2", "/static", "/ä"];
const REQUEST_HOSTS: &[&str] = &[
    "example.com",
    "EXAMPLE.com:8080",
    "a.example.com.",
    "a.b.example.com:443",
    "shop.example.com.:1",
    "[::1]:80",
    "[::1",
    "x.bücher.de",
    "xbücher.de",
    "ü.example.com",
    ".example.com",
    ":",
    "",
];
const REQUEST_PATHS: &[&str] = &["/", "/api", "/api/v2/x", "/apix", "/static/a.css", "*", ""];

fn fixed() -> Vec<RouteConfig> {
    let r = |host: Option<&str>, path: &str, upstream| RouteConfig {
        name: None,
        host: host.map(str::to_owned),
        path: path.to_owned(),
        upstream,
        compress: if upstream % 2 == 0 { None } else { Some(true) },
        retry: None,
        max_request_body: (upstream % 3 == 0).then_some(upstream as u64),
        timeout: None,
    };
    vec![
        r(None, "/", 0),
        r(None, "/api", 1),
        r(None, "/api/v2", 2),
        r(Some("*.example.com"), "/", 3),
        r(Some("shop.example.com"), "/", 4),
        r(Some("*.shop.example.com"), "/static", 5),
        r(Some("[::1]"), "/", 6),
        r(Some("*.bücher.de"), "/", 7),
    ]
}

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let _ = one(&mut Unstructured::new(data));
}

fn text<'a>(u: &mut Unstructured<'a>, dict: &[&'a str]) -> Result<String> {
    Ok(if u.ratio(2, 3)? {
        (*u.choose(dict)?).to_owned()
    } else {
        u.arbitrary::<String>()?
    })
}

fn one(u: &mut Unstructured<'_>) -> Result<()> {
    let mut configs = Vec::new();
    for i in 0..u.int_in_range(0..=8)? {
        configs.push(RouteConfig {
            name: None,
            host: if u.arbitrary()? {
                Some(text(u, HOSTS)?)
            } else {
                None
            },
            path: text(u, PATHS)?,
            upstream: i,
            compress: u.arbitrary()?,
            retry: None,
            max_request_body: u.arbitrary()?,
            timeout: None,
        });
    }
    let host = if u.ratio(9, 10)? {
        Some(text(u, REQUEST_HOSTS)?)
    } else {
        None
    };
    let path = text(u, REQUEST_PATHS)?;
    for configs in [configs, fixed()] {
        let router = Router::new(&configs);
        let got = router.lookup(host.as_deref(), &path);
        assert_eq!(got, reference(&configs, host.as_deref(), &path));
        assert_eq!(router.find(host.as_deref(), &path), got.map(|m| m.group));
    }
    Ok(())
}

/// Every route that matches, scored; the best score wins, then file order.
fn reference<'c>(
    configs: &'c [RouteConfig],
    host: Option<&str>,
    path: &str,
) -> Option<RouteMatch<'c>> {
    let host = host.map(|h| {
        let mut h = h.to_owned();
        if h.starts_with('[') {
            if let Some(end) = h.find(']') {
                h.truncate(end + 1);
            }
        } else if let Some(colon) = h.rfind(':') {
            h.truncate(colon);
        }
        if h.ends_with('.') {
            h.pop();
        }
        h.to_ascii_lowercase()
    });
    let mut best: Option<((u8, usize, usize), usize, &RouteConfig)> = None;
    for (i, r) in configs.iter().enumerate() {
        let host_score = match (&r.host, &host) {
            (None, _) => (0, 0),
            (Some(pattern), Some(h)) => {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix('*') {
                    Some(suffix) if h.len() > suffix.len() && h.ends_with(suffix) => {
                        (1, suffix.len())
                    }
                    Some(_) => continue,
                    None if *h == pattern => (2, 0),
                    None => continue,
                }
            }
            (Some(_), None) => continue,
        };
        if !path.starts_with(&r.path) {
            continue;
        }
        let score = (host_score.0, host_score.1, r.path.len());
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, i, r));
        }
    }
    best.map(|(_, index, r)| RouteMatch {
        index,
        group: r.upstream,
        compress: r.compress,
        retry: r.retry.as_deref(),
        max_request_body: r.max_request_body,
        timeout: r.timeout,
    })
}
