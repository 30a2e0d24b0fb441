//! Host and path → upstream group. Routes are compiled and ordered once at
//! config time (most specific host first, then longest path prefix), so a
//! lookup is a short scan with no allocation.

use crate::config::{RetryPolicy, RouteConfig};
use std::sync::Arc;
use std::time::Duration;

/// A configured host: routes and rate limits match requests with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`: any subdomain, not the apex.
    Suffix(String),
    Any,
}

impl HostMatch {
    /// `None` (any host), `name` or `*.domain`.
    pub(crate) fn new(host: Option<&str>) -> HostMatch {
        match host {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
                None => HostMatch::Exact(h.to_ascii_lowercase()),
            },
        }
    }

    /// Whether `host` (already through [`normalize_host`]) matches.
    pub(crate) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(e), Some(h)) => h.eq_ignore_ascii_case(e),
            (HostMatch::Suffix(s), Some(h)) => {
                h.len() > s.len()
                    && h.is_char_boundary(h.len() - s.len())
                    && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            (_, None) => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Route {
    host: HostMatch,
    prefix: String,
    /// Its place in the config (what `rate_limit` keys `route` by).
    index: usize,
    group: usize,
    compress: Option<bool>,
    retry: Option<Arc<RetryPolicy>>,
    max_request_body: Option<u64>,
    timeout: Option<Duration>,
}

/// What a request's route decides: its group, its compression switch, its
/// retry policy, its body size limit and its deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteMatch<'a> {
    /// The route's index in the config.
    pub index: usize,
    pub group: usize,
    /// `None`: the global `compression.enabled` applies.
    pub compress: Option<bool>,
    /// `None`: only the two safe retries (`proxy::retry`).
    pub retry: Option<&'a RetryPolicy>,
    /// `None`: the global `limits.max_request_body` applies.
    pub max_request_body: Option<u64>,
    /// The request's deadline to its response head; `None`: none.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(configs: &[RouteConfig]) -> Router {
        let mut routes: Vec<Route> = configs
            .iter()
            .enumerate()
            .map(|(index, r)| Route {
                index,
                host: HostMatch::new(r.host.as_deref()),
                prefix: r.path.clone(),
                group: r.upstream,
                compress: r.compress,
                retry: r.retry.clone(),
                max_request_body: r.max_request_body,
                timeout: r.timeout,
            })
            .collect();
        let rank = |h: &HostMatch| match h {
            HostMatch::Exact(_) => (2, 0),
            HostMatch::Suffix(s) => (1, s.len()),
            HostMatch::Any => (0, 0),
        };
        // Stable sort: among equals, the first in the file wins.
        routes.sort_by(|a, b| {
            rank(&b.host)
                .cmp(&rank(&a.host))
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        Router { routes }
    }

    /// The group for `host` (as sent: any case, maybe with a port) and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.lookup(host, path).map(|r| r.group)
    }

    /// The matching route's group and per-route settings. `path` is in
    /// `proxy::path::normalize`'s form, as the configured prefixes are.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<RouteMatch<'_>> {
        let host = host.map(normalize_host);
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && path.starts_with(r.prefix.as_str()))
            .map(|r| RouteMatch {
                index: r.index,
                group: r.group,
                compress: r.compress,
                retry: r.retry.as_deref(),
                max_request_body: r.max_request_body,
                timeout: r.timeout,
            })
    }
}

/// Strips the port and a trailing dot: `Example.com.:8080` → `Example.com`.
pub(crate) fn normalize_host(host: &str) -> &str {
    let h = if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        host.find(']').map_or(host, |i| &host[..=i])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h.strip_suffix('.').unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(Option<&str>, &str, usize)]) -> Router {
        Router::new(
            &routes
                .iter()
                .map(|(h, p, u)| RouteConfig {
                    name: None,
                    host: h.map(str::to_owned),
                    path: (*p).to_owned(),
                    upstream: *u,
                    compress: None,
                    retry: None,
                    max_request_body: None,
                    timeout: None,
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn longest_prefix_and_most_specific_host_win() {
        let r = router(&[
            (None, "/", 0),
            (None, "/api", 1),
            (None, "/api/v2", 2),
            (Some("*.example.com"), "/", 3),
            (Some("shop.example.com"), "/", 4),
        ]);
        assert_eq!(r.find(Some("other.org"), "/x"), Some(0));
        assert_eq!(r.find(Some("other.org"), "/api/v1"), Some(1));
        assert_eq!(r.find(Some("other.org"), "/api/v2/x"), Some(2));
        assert_eq!(r.find(Some("a.example.com"), "/api"), Some(3));
        assert_eq!(r.find(Some("A.B.Example.COM:8443"), "/"), Some(3));
        assert_eq!(r.find(Some("shop.example.com."), "/"), Some(4));
        assert_eq!(
            r.find(Some("example.com"), "/"),
            Some(0),
            "wildcard does not match the apex"
        );
    }

    #[test]
    fn no_match_is_none() {
        let r = router(&[(Some("a.com"), "/", 0), (None, "/api", 1)]);
        assert_eq!(r.find(Some("b.com"), "/"), None);
        assert_eq!(r.find(None, "/"), None);
        assert_eq!(r.find(None, "/api"), Some(1));
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("x.org."), "x.org");
        assert_eq!(normalize_host("x.org:1"), "x.org");
    }
}
