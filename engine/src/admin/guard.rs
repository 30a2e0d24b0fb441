//! The admin API's trust boundary, checked before any endpoint runs. Being
//! bound to loopback is not enough: a browser on this host can reach
//! loopback, so a web page could otherwise reconfigure the proxy.
//!
//! In order, each refusal with its status (`super::error`):
//! 1. `Host` (every endpoint): the admin listener's own address (the IP the
//!    client connected to), `localhost`, a loopback IP, or a name in
//!    `admin.allowed_hosts`; only the host is compared, not the port.
//!    Anything else is DNS rebinding: 421. No `Host`: 400.
//! 2. `Origin` (every endpoint): present and not in `admin.allowed_origins`
//!    (empty by default: the API serves no pages): 403. Without an
//!    `Origin`, `Sec-Fetch-Site: cross-site` or `same-site` (a no-cors GET
//!    from another page): 403, except a top-level navigation to the status
//!    page (`Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`): a link
//!    from an operators' wiki opens a constant page that changes nothing
//!    (framing it stays refused: its destination is not `document`).
//! 3. A change (any method but GET and HEAD, and `/register` or
//!    `/unregister` by any method) from a peer outside
//!    `admin.allowed_sources` (loopback by default): 403.
//! 4. The bearer token, when one is set, on everything but the probes
//!    (`GET /healthz`, `GET /readyz`) and the status page (`GET /status`,
//!    `GET /`: a constant with no data; its script sends the token): 401.
//! 5. A change that carries a body or a `Content-Type` must say
//!    `application/json`: 415. A form or `text/plain` POST is what a page
//!    can send cross-site without a CORS preflight.

use super::error::AdminError;
use crate::config::AdminConfig;
use http::{HeaderMap, Method, Request, header};
use http_body::Body;
use std::net::{IpAddr, SocketAddr};

/// The two ends of one admin connection.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// The caller.
    pub peer: SocketAddr,
    /// The address the caller connected to (one of ours; with a wildcard
    /// bind, the interface it came in on).
    pub local: SocketAddr,
}

/// Checks 1–5 of the module doc for `req`.
pub fn check<B: Body>(admin: &AdminConfig, conn: Conn, req: &Request<B>) -> Result<(), AdminError> {
    host(admin, conn, req)?;
    let page = req.method() == Method::GET && matches!(req.uri().path(), "/status" | "/");
    origin(admin, req.headers(), page)?;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    // `GET /register?port=N` is the classic registration call (kept for the
    // clients that speak it): a change all the same, so it is held to the
    // source allowlist. A page's `<img>` sending it is stopped by check 2 in
    // browsers that send Fetch Metadata, and in every browser by a token.
    // Classified as the router routes it: `/register/` and `//register`
    // reach the same endpoint.
    let registers = matches!(
        super::segments(req.uri().path()).as_slice(),
        ["register" | "unregister"]
    );
    if changes || registers {
        source(admin, conn.peer.ip())?;
    }
    let probe = req.method() == Method::GET && matches!(req.uri().path(), "/healthz" | "/readyz");
    if let Some(token) = admin.token.as_deref()
        && !probe
        && !page
    {
        bearer(req.headers(), token)?;
    }
    if changes {
        json_only(req)?;
    }
    Ok(())
}

fn host<B>(admin: &AdminConfig, conn: Conn, req: &Request<B>) -> Result<(), AdminError> {
    // An absolute-form target's authority is the host (RFC 9112 §3.2.2).
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => req
            .headers()
            .get(header::HOST)
            .ok_or(AdminError::MissingHost)?
            .to_str()
            .map_err(|_| AdminError::MisdirectedHost("(not text)".into()))?
            .to_owned(),
    };
    let name = host_part(&raw).to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let ok = match name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name)
        .parse::<IpAddr>()
    {
        // An IP cannot be rebound: it is checked to be ours all the same.
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback()
                || ip == conn.local.ip().to_canonical()
                || ip == admin.address.ip().to_canonical()
        }
        Err(_) => name == "localhost" || admin.allowed_hosts.iter().any(|h| h == name),
    };
    if ok {
        Ok(())
    } else {
        Err(AdminError::MisdirectedHost(raw))
    }
}

/// `host` of `host:port`, `[v6]` of `[v6]:port`.
fn host_part(authority: &str) -> &str {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    match authority.rsplit_once(':') {
        Some((h, _)) => h,
        None => authority,
    }
}

/// Check 2; `page`: the request is a GET of the status page.
fn origin(admin: &AdminConfig, headers: &HeaderMap, page: bool) -> Result<(), AdminError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
        return if admin.allowed_origins.contains(&origin) {
            Ok(())
        } else {
            Err(AdminError::CrossOrigin(origin))
        };
    }
    let is = |name: &str, value: &[u8]| headers.get(name).is_some_and(|v| v.as_bytes() == value);
    if page && is("sec-fetch-mode", b"navigate") && is("sec-fetch-dest", b"document") {
        return Ok(());
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(site @ (b"cross-site" | b"same-site")) => Err(AdminError::CrossSite(
            String::from_utf8_lossy(site).into_owned(),
        )),
        _ => Ok(()),
    }
}

fn source(admin: &AdminConfig, peer: IpAddr) -> Result<(), AdminError> {
    if admin.allowed_sources.iter().any(|c| c.contains(peer)) {
        Ok(())
    } else {
        Err(AdminError::Source(peer.to_canonical()))
    }
}

fn bearer(headers: &HeaderMap, token: &str) -> Result<(), AdminError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(AdminError::Unauthorized),
    }
}

/// Compares a presented token with the expected one in time that depends
/// only on the expected token's length, so neither the matching prefix nor
/// the expected length leaks through timing.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    diff == 0
}

fn json_only<B: Body>(req: &Request<B>) -> Result<(), AdminError> {
    match req.headers().get(header::CONTENT_TYPE) {
        Some(ct) => {
            let ct = String::from_utf8_lossy(ct.as_bytes());
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(AdminError::NotJson {
                    got: Some(ct.into_owned()),
                })
            }
        }
        None if req.body().is_end_stream() => Ok(()),
        None => Err(AdminError::NotJson { got: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn conn() -> Conn {
        Conn {
            peer: ([127, 0, 0, 1], 40000).into(),
            local: ([10, 0, 0, 5], 9090).into(),
        }
    }

    fn req(
        method: Method,
        headers: &[(&str, &str)],
        body: &'static str,
    ) -> Request<Full<bytes::Bytes>> {
        let mut b = Request::builder().method(method).uri("/backends");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    fn admin() -> AdminConfig {
        let mut a = AdminConfig::new(([0, 0, 0, 0], 9090).into());
        a.allowed_hosts = vec!["proxy.internal".into()];
        a.allowed_origins = vec!["https://ops.example.com".into()];
        a
    }

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:9090",
            "127.0.0.1:9090",
            "[::1]:9090",
            "10.0.0.5:9090",
            "proxy.internal",
            "localhost.",
        ] {
            let r = req(Method::GET, &[("host", ok)], "");
            assert!(check(&admin(), conn(), &r).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "10.0.0.6:9090",
            "localhost.evil.example",
        ] {
            let r = req(Method::GET, &[("host", bad)], "");
            assert!(
                matches!(
                    check(&admin(), conn(), &r),
                    Err(AdminError::MisdirectedHost(_))
                ),
                "{bad}"
            );
        }
        let r = req(Method::GET, &[], "");
        assert!(matches!(
            check(&admin(), conn(), &r),
            Err(AdminError::MissingHost)
        ));
    }

    #[test]
    fn origins_and_fetch_site() {
        let ok = req(
            Method::GET,
            &[("host", "localhost"), ("origin", "https://ops.example.com")],
            "",
        );
        assert!(check(&admin(), conn(), &ok).is_ok());
        for (k, v) in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let r = req(Method::GET, &[("host", "localhost"), (k, v)], "");
            assert_eq!(
                check(&admin(), conn(), &r).unwrap_err().status(),
                403,
                "{k}: {v}"
            );
        }
        let same = req(
            Method::GET,
            &[("host", "localhost"), ("sec-fetch-site", "none")],
            "",
        );
        assert!(check(&admin(), conn(), &same).is_ok());
    }

    #[test]
    fn changes_need_json_and_an_allowed_source() {
        let h = ("host", "localhost");
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(check(&admin(), conn(), &req(Method::POST, &[h, json], "{}")).is_ok());
        assert!(check(&admin(), conn(), &req(Method::POST, &[h], "")).is_ok());
        for r in [
            req(Method::POST, &[h, ("content-type", "text/plain")], "{}"),
            req(Method::POST, &[h], "{}"),
            req(
                Method::DELETE,
                &[h, ("content-type", "application/x-www-form-urlencoded")],
                "",
            ),
        ] {
            assert!(matches!(
                check(&admin(), conn(), &r),
                Err(AdminError::NotJson { .. })
            ));
        }
        let far = Conn {
            peer: ([10, 0, 0, 9], 1).into(),
            ..conn()
        };
        assert!(matches!(
            check(&admin(), far, &req(Method::POST, &[h, json], "{}")),
            Err(AdminError::Source(_))
        ));
        // Reading is not a change.
        assert!(check(&admin(), far, &req(Method::GET, &[h], "")).is_ok());
    }

    #[test]
    fn tokens() {
        let mut a = admin();
        a.token = Some("s3cret".into());
        let h = ("host", "localhost");
        for (auth, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("Bearer s3cre", false),
            ("Bearer s3cret2", false),
            ("Basic s3cret", false),
            ("s3cret", false),
        ] {
            let r = req(Method::GET, &[h, ("authorization", auth)], "");
            assert_eq!(check(&a, conn(), &r).is_ok(), ok, "{auth}");
        }
        assert!(check(&a, conn(), &req(Method::GET, &[h], "")).is_err());
        // The status page is a constant: served without the token (its
        // script sends one to /backends); a look-alike path is not.
        let at = |method: Method, path: &str| {
            let r = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost")
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            check(&a, conn(), &r).is_ok()
        };
        assert!(at(Method::GET, "/status"));
        assert!(at(Method::GET, "/"));
        assert!(at(Method::GET, "/healthz"));
        assert!(!at(Method::GET, "/status/x"));
        assert!(!at(Method::GET, "/backends"));
        assert!(!at(Method::POST, "/status"));
    }

    #[test]
    fn another_site_may_link_to_the_status_page_but_not_frame_or_fetch_it() {
        let at = |path: &str, headers: &[(&str, &str)]| {
            let mut r = Request::builder()
                .uri(path)
                .header("host", "localhost")
                .header("sec-fetch-site", "cross-site");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            check(
                &admin(),
                conn(),
                &r.body(Full::new(bytes::Bytes::new())).unwrap(),
            )
        };
        let link = [
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        assert!(at("/status", &link).is_ok());
        assert!(at("/", &link).is_ok());
        // The same navigation to anything else, a frame, or a fetch: 403.
        assert!(matches!(
            at("/backends", &link),
            Err(AdminError::CrossSite(_))
        ));
        assert!(matches!(
            at("/register?port=1", &link),
            Err(AdminError::CrossSite(_))
        ));
        let frame = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")];
        assert!(matches!(
            at("/status", &frame),
            Err(AdminError::CrossSite(_))
        ));
        let fetch = [("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "empty")];
        assert!(matches!(
            at("/status", &fetch),
            Err(AdminError::CrossSite(_))
        ));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
