//! `[upstream.NAME.sticky]`: the sticky cookie's name, key and attributes
//! (what `upstream::sticky` signs and `proxy::sticky` sets). Everything a
//! browser would silently refuse is refused here instead.

use super::Validator;
use super::*;
use crate::config::file::StickyFile;
use crate::config::values::read_token;
use crate::config::{SameSite, Secret, StickyConfig};

impl Validator<'_> {
    pub(super) fn sticky(&self, group: &str, s: StickyFile) -> Result<StickyConfig, ConfigError> {
        let field = format!("{group}.sticky");
        let cookie_span = s.cookie.as_ref().map_or(0..0, |c| c.span());
        let cookie = match s.cookie {
            None => defaults::STICKY_COOKIE.to_owned(),
            Some(c) if cookie_name_ok(c.get_ref()) => c.into_inner(),
            Some(c) => {
                return Err(ConfigError::CookieName {
                    at: self.at(c.span(), format_args!("{field}.cookie")),
                    value: c.into_inner(),
                });
            }
        };
        let secret = match (s.secret, s.secret_file) {
            (Some(_), Some(file)) => {
                return Err(ConfigError::SecretTwice {
                    at: self.at(file.span(), format_args!("{field}.secret_file")),
                });
            }
            (Some(v), None) => Some((v.get_ref().clone(), v.span(), "secret")),
            (None, Some(file)) => {
                let text = read_token(Path::new(file.get_ref())).map_err(|source| {
                    ConfigError::TokenFile {
                        at: self.at(file.span(), format_args!("{field}.secret_file")),
                        source,
                    }
                })?;
                Some((text, file.span(), "secret_file"))
            }
            (None, None) => None,
        };
        let secret = match secret {
            None => None,
            Some((text, span, key)) if text.len() < defaults::STICKY_MIN_SECRET => {
                return Err(ConfigError::ShortSecret {
                    at: self.at(span, format_args!("{field}.{key}")),
                    min: defaults::STICKY_MIN_SECRET,
                });
            }
            Some((text, _, _)) => Some(Secret(text.into_bytes())),
        };
        let path = match s.path {
            None => defaults::STICKY_PATH.to_owned(),
            Some(p) if cookie_path_ok(p.get_ref()) => p.into_inner(),
            Some(p) => {
                return Err(ConfigError::CookiePath {
                    at: self.at(p.span(), format_args!("{field}.path")),
                    value: p.into_inner(),
                });
            }
        };
        let secure = s.secure.unwrap_or(false);
        let same_site = match &s.same_site {
            None => SameSite::Lax,
            Some(v) => match v.get_ref().to_ascii_lowercase().as_str() {
                "lax" => SameSite::Lax,
                "strict" => SameSite::Strict,
                "none" if secure => SameSite::None,
                "none" => {
                    return Err(ConfigError::SameSiteNone {
                        at: self.at(v.span(), format_args!("{field}.same_site")),
                    });
                }
                _ => {
                    return Err(ConfigError::SameSite {
                        at: self.at(v.span(), format_args!("{field}.same_site")),
                        value: v.get_ref().clone(),
                    });
                }
            },
        };
        // RFC 6265bis §4.1.3: the browser keeps such a cookie only when it is
        // Secure (and, for __Host-, has Path=/ and no Domain, which we never set).
        for prefix in ["__Secure-", "__Host-"] {
            let needs_root = prefix == "__Host-" && path != "/";
            if cookie.starts_with(prefix) && (!secure || needs_root) {
                return Err(ConfigError::CookiePrefix {
                    at: self.at(cookie_span.clone(), format_args!("{field}.cookie")),
                    prefix,
                });
            }
        }
        let max_age = match s.max_age {
            None => None,
            Some(v) => {
                let d = self.duration(Some(v), &format!("{field}.max_age"), Duration::ZERO)?;
                // Max-Age counts whole seconds: round up, so "500ms" is 1.
                Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
            }
        };
        Ok(StickyConfig {
            cookie,
            secret,
            same_site,
            max_age,
            path,
            http_only: s.http_only.unwrap_or(true),
            secure,
        })
    }
}

/// An RFC 6265 `token` (RFC 9110 §5.6.2) of at most `STICKY_MAX_ATTR` bytes.
fn cookie_name_ok(name: &str) -> bool {
    (1..=defaults::STICKY_MAX_ATTR).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 `path-value`: any CHAR but controls and `;`; absolute, bounded.
fn cookie_path_ok(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= defaults::STICKY_MAX_ATTR
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sticky: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[[route]]\nupstream = \"api\"\n\n\
             [upstream.api]\nbackends = [\"127.0.0.1:9001\"]\n[upstream.api.sticky]\n{sticky}\n"
        );
        parse(&text, Path::new("test.toml"))
    }

    fn field(e: &ConfigError) -> String {
        match e.at() {
            Some(At::File { field, .. }) => field.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn no_sticky_table_means_no_stickiness() {
        let text = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[upstream.default]\nbackends = [\"127.0.0.1:9001\"]\n";
        let c = parse(text, Path::new("test.toml")).expect("valid");
        assert!(c.upstreams[0].sticky.is_none());
    }

    #[test]
    fn an_empty_table_takes_every_default() {
        let c = check("").expect("valid");
        let s = c.upstreams[0].sticky.as_ref().expect("sticky");
        assert_eq!(s.cookie, "sluice_sticky");
        assert!(s.secret.is_none(), "the per-process key");
        assert_eq!(s.same_site, SameSite::Lax);
        assert_eq!(s.max_age, None, "a session cookie");
        assert_eq!(s.path, "/");
        assert!(s.http_only);
        assert!(!s.secure, "Secure only on TLS listeners");
    }

    #[test]
    fn every_key() {
        let c = check(
            "cookie = \"srv\"\nsecret = \"0123456789abcdef0123\"\nsame_site = \"None\"\n\
             max_age = \"1500ms\"\npath = \"/app\"\nhttp_only = false\nsecure = true\n",
        )
        .expect("valid");
        let s = c.upstreams[0].sticky.as_ref().expect("sticky");
        assert_eq!(s.cookie, "srv");
        assert_eq!(
            s.secret.as_ref().map(|k| k.0.as_slice()),
            Some(&b"0123456789abcdef0123"[..])
        );
        assert_eq!(s.same_site, SameSite::None);
        assert_eq!(s.max_age, Some(2), "rounded up to whole seconds");
        assert_eq!(s.path, "/app");
        assert!(!s.http_only);
        assert!(s.secure);
        assert_eq!(
            format!("{:?}", s.secret),
            "Some(Secret(..))",
            "never printed"
        );
    }

    #[test]
    fn a_secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sticky.key");
        std::fs::write(&path, "  fedcba9876543210fedcba\n").expect("write");
        let c = check(&format!("secret_file = {:?}\n", path.display().to_string())).expect("valid");
        let s = c.upstreams[0].sticky.as_ref().expect("sticky");
        assert_eq!(
            s.secret.as_ref().map(|k| k.0.as_slice()),
            Some(&b"fedcba9876543210fedcba"[..])
        );
    }

    #[test]
    fn mistakes_are_refused_naming_the_field() {
        for (sticky, at, says) in [
            (
                "cookie = \"a b\"",
                "upstream.api.sticky.cookie",
                "not a cookie name",
            ),
            (
                "cookie = \"\"",
                "upstream.api.sticky.cookie",
                "not a cookie name",
            ),
            (
                "cookie = \"a;b\"",
                "upstream.api.sticky.cookie",
                "not a cookie name",
            ),
            (
                "secret = \"short\"",
                "upstream.api.sticky.secret",
                "at least 16 bytes",
            ),
            (
                "secret = \"0123456789abcdef\"\nsecret_file = \"/x\"",
                "upstream.api.sticky.secret_file",
                "not both",
            ),
            (
                "secret_file = \"/no/such/sluice/key\"",
                "upstream.api.sticky.secret_file",
                "cannot read",
            ),
            (
                "same_site = \"loose\"",
                "upstream.api.sticky.same_site",
                "expected lax",
            ),
            (
                "same_site = \"none\"",
                "upstream.api.sticky.same_site",
                "needs secure = true",
            ),
            (
                "path = \"app\"",
                "upstream.api.sticky.path",
                "not a cookie path",
            ),
            (
                "path = \"/a;b\"",
                "upstream.api.sticky.path",
                "not a cookie path",
            ),
            (
                "max_age = \"0s\"",
                "upstream.api.sticky.max_age",
                "greater than zero",
            ),
            (
                "max_age = \"forever\"",
                "upstream.api.sticky.max_age",
                "invalid duration",
            ),
            (
                "cookie = \"__Host-s\"\nsecure = true\npath = \"/a\"",
                "upstream.api.sticky.cookie",
                "needs secure = true and path = \"/\"",
            ),
            (
                "cookie = \"__Secure-s\"",
                "upstream.api.sticky.cookie",
                "needs secure = true",
            ),
            ("bogus = 1", "upstream.api.sticky", "unknown field"),
        ] {
            let e = check(sticky).expect_err(sticky);
            let text = e.to_string();
            assert!(
                field(&e).starts_with(at),
                "{sticky}: {} ({text})",
                field(&e)
            );
            assert!(text.contains(says), "{sticky}: {text}");
        }
        check("cookie = \"__Host-s\"\nsecure = true").expect("a __Host- cookie done right");
    }
}
