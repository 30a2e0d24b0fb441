//! `GET /status`: the admin API's one page, for people (what HAProxy's stats
//! page and Traefik's dashboard are to theirs). It lists every group and
//! backend with state, reason, in-flight requests, request rate, error rate
//! and latency, refreshed every second from `GET /backends`; the rates are
//! the deltas of the totals between two refreshes.
//!
//! The page is a constant: it carries no data and no secret, so the
//! [`super::guard`] serves it without the bearer token. Its script sends the
//! token the operator pastes (kept in the tab's `sessionStorage`) with each
//! fetch of `/backends`, which stays behind the token. It only reads: the
//! page changes nothing, so it needs no `allowed_origins` entry.
//!
//! One self-contained document (inline CSS and JS, no external resource,
//! works offline) under a strict Content-Security-Policy: the inline
//! `<style>` and `<script>` run by their SHA-256 only, nothing else loads,
//! fetches go to this origin only, and no other page may frame it. Data is
//! written with `textContent` only, and the CSP requires Trusted Types, so
//! a string from the JSON (a group name, a reason) can never become markup.

use super::AdminResponse;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The document, with `{{style}}` and `{{script}}` where the two below go.
const TEMPLATE: &str = include_str!("status_page/index.html");
const STYLE: &str = include_str!("status_page/style.css");
const SCRIPT: &str = include_str!("status_page/app.js");

/// The assembled page and its policy, built once on first use.
struct Page {
    html: Bytes,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| Page {
    html: Bytes::from(
        TEMPLATE
            .replace("{{style}}", STYLE)
            .replace("{{script}}", SCRIPT),
    ),
    csp: HeaderValue::try_from(policy(STYLE, SCRIPT))
        .unwrap_or(HeaderValue::from_static("default-src 'none'")),
});

/// The Content-Security-Policy for a page whose only inline style and
/// script are `style` and `script`.
fn policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'",
        sha256_source(script),
        sha256_source(style),
    )
}

/// A CSP hash source (`sha256-<base64>`) for an inline element's text.
fn sha256_source(text: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
}

/// Standard base64 with padding (RFC 4648 §4), for the 32-byte digests above.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /status`: the page, with headers that keep it an admin page: the
/// CSP, no framing (the CSP's `frame-ancestors` and, for older browsers,
/// `X-Frame-Options`), no sniffing, no referrer, no caching (an upgrade
/// serves its own page).
pub fn page() -> AdminResponse {
    let mut r = Response::new(Full::new(PAGE.html.clone()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, PAGE.csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// `GET /`: a browser pointed at the admin port lands on the page. The
/// location is relative so that it also works under a path prefix.
pub fn redirect() -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("status"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<tag>…</tag>` element in `html`.
    fn elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut found = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find(&format!("<{tag}")) {
            let after = &rest[i..];
            assert!(
                after.starts_with(&open),
                "a <{tag}> with attributes: {}",
                &after[..after.len().min(60)]
            );
            let body = &after[open.len()..];
            let end = body.find(&close).expect("closed");
            found.push(&body[..end]);
            rest = &body[end..];
        }
        found
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        // SHA-256 of "" as CSP writes it (`openssl dgst -sha256 -binary | base64`).
        assert_eq!(
            sha256_source(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_and_script() {
        let r = page();
        let html = std::str::from_utf8(&PAGE.html).expect("utf-8");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        let scripts = elements(html, "script");
        let styles = elements(html, "style");
        assert_eq!(scripts, [SCRIPT], "one inline script, no src");
        assert_eq!(styles, [STYLE], "one inline style");
        assert!(csp.contains(&format!("script-src '{}';", sha256_source(SCRIPT))));
        assert!(csp.contains(&format!("style-src '{}';", sha256_source(STYLE))));
        for directive in [
            "default-src 'none'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn the_page_has_no_markup_the_policy_would_block_or_the_data_could_reach() {
        let html = std::str::from_utf8(&PAGE.html).expect("utf-8");
        assert!(!html.contains("{{"), "a placeholder left in the page");
        assert!(
            html.contains(r#"<meta name="viewport""#),
            "readable on a phone"
        );
        let lower = TEMPLATE.to_ascii_lowercase();
        // Inline handlers and style attributes would need 'unsafe-hashes',
        // and a remote resource would not load offline.
        for banned in [" style=", "src=", "href=", "http://", "https://"] {
            assert!(!lower.contains(banned), "{banned:?} in the template");
        }
        let handler = lower
            .split(|c: char| c.is_whitespace() || c == '<')
            .find(|w| w.starts_with("on") && w.contains('='));
        assert_eq!(handler, None, "an inline event handler");
        // Data reaches the DOM through textContent only.
        for sink in [
            "innerhtml",
            "outerhtml",
            "insertadjacenthtml",
            "document.write",
            "eval(",
        ] {
            assert!(
                !SCRIPT.to_ascii_lowercase().contains(sink),
                "{sink} in the script"
            );
        }
    }

    #[test]
    fn the_root_redirects_to_the_page() {
        let r = redirect();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[header::LOCATION], "status");
    }
}
