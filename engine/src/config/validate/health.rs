//! `[upstream.NAME.health]`: active checks of every member, or (absent)
//! the default heartbeat of registered members, or (`enabled = false`) none.

use super::Validator;
use super::*;
use crate::config::file::HealthFile;
use crate::config::values::host_name_ok;

/// What a group checks: `(health, heartbeat)` as in [`UpstreamConfig`].
pub(super) type Checks = (Option<HealthCheck>, Option<HealthCheck>);

impl Validator<'_> {
    pub(super) fn health(&self, field: &str, h: Option<HealthFile>) -> Result<Checks, ConfigError> {
        let Some(h) = h else {
            return Ok((None, Some(HealthCheck::default())));
        };
        let field = format!("{field}.health");
        let path = match h.path {
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(ConfigError::RelativePath {
                    at: self.at(p.span(), format!("{field}.path")),
                });
            }
            Some(p) => p.into_inner(),
            None => defaults::HEALTH_PATH.to_owned(),
        };
        let method = match &h.method {
            None => http::Method::GET,
            Some(m) => match m.get_ref().as_str() {
                "GET" => http::Method::GET,
                "HEAD" => http::Method::HEAD,
                other => {
                    return Err(ConfigError::HealthMethod {
                        at: self.at(m.span(), format!("{field}.method")),
                        value: other.to_owned(),
                    });
                }
            },
        };
        let host = match h.host {
            Some(v) if !host_ok(v.get_ref()) => {
                return Err(ConfigError::HealthHost {
                    at: self.at(v.span(), format!("{field}.host")),
                    value: v.into_inner(),
                });
            }
            v => v.map(Spanned::into_inner),
        };
        let expect_body = match h.expect_body {
            None => None,
            Some(b) => {
                let reason = if b.get_ref().is_empty() {
                    Some("must not be empty")
                } else if b.get_ref().len() > defaults::HEALTH_MAX_BODY {
                    Some("longer than the 64 KiB of body a check reads")
                } else if method == http::Method::HEAD {
                    Some("a HEAD check gets no body; use method = \"GET\"")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(ConfigError::ExpectBody {
                        at: self.at(b.span(), format!("{field}.expect_body")),
                        reason,
                    });
                }
                Some(b.into_inner())
            }
        };
        let check = HealthCheck {
            interval: self.duration(
                h.interval,
                &format!("{field}.interval"),
                defaults::HEALTH_INTERVAL,
            )?,
            timeout: self.duration(
                h.timeout,
                &format!("{field}.timeout"),
                defaults::HEALTH_TIMEOUT,
            )?,
            path,
            method,
            host,
            expect: h.expect.unwrap_or_default(),
            expect_body,
            rise: h.rise.unwrap_or(defaults::HEALTH_RISE).max(1),
            fall: h.fall.unwrap_or(defaults::HEALTH_FALL).max(1),
        };
        if h.enabled == Some(false) {
            // Validated all the same, so turning it back on cannot fail.
            return Ok((None, None));
        }
        Ok((Some(check), None))
    }
}

/// A host name or IP literal, with an optional port: what `Host` carries.
fn host_ok(v: &str) -> bool {
    let Ok(a) = v.parse::<http::uri::Authority>() else {
        return false;
    };
    !v.contains('@') && !v.ends_with(':') && (a.host().starts_with('[') || host_name_ok(a.host()))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn group(health: &str) -> Result<crate::config::UpstreamConfig, String> {
        let text = format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.g]\nbackends = [\"127.0.0.1:9\"]\n{health}"
        );
        parse(&text, Path::new("test.toml"))
            .map(|mut c| c.upstreams.remove(0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_health_section_only_registered_backends_get_the_heartbeat() {
        let g = group("").unwrap();
        assert!(g.health.is_none());
        let hb = g.heartbeat.expect("heartbeat");
        assert_eq!((hb.path.as_str(), hb.rise, hb.fall), ("/ping", 2, 3));
        assert_eq!(hb.method, http::Method::GET);
    }

    #[test]
    fn a_health_section_checks_every_backend_and_enabled_false_none() {
        let g = group(
            "[upstream.g.health]\npath = \"/status\"\nmethod = \"GET\"\nhost = \"api.internal:8080\"\nexpect_body = \"ok\"\n",
        )
        .unwrap();
        let hc = g.health.expect("health");
        assert!(g.heartbeat.is_none());
        assert_eq!(hc.expect_body.as_deref(), Some("ok"));
        assert_eq!(hc.host.as_deref(), Some("api.internal:8080"));

        let g = group("[upstream.g.health]\nenabled = false\n").unwrap();
        assert!(g.health.is_none() && g.heartbeat.is_none());
    }

    #[test]
    fn bad_check_settings_name_their_line_and_field() {
        for (health, want) in [
            (
                "method = \"POST\"",
                "test.toml:6:10: upstream.g.health.method: unknown check method \"POST\"",
            ),
            (
                "host = \"a b\"",
                "test.toml:6:8: upstream.g.health.host: \"a b\" is not a host name",
            ),
            (
                "expect_body = \"\"",
                "test.toml:6:15: upstream.g.health.expect_body: must not be empty",
            ),
            (
                "method = \"HEAD\"\nexpect_body = \"ok\"",
                "test.toml:7:15: upstream.g.health.expect_body: a HEAD check gets no body",
            ),
        ] {
            let err = group(&format!("[upstream.g.health]\n{health}\n")).unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
        let long = "x".repeat(64 * 1024 + 1);
        let err = group(&format!("[upstream.g.health]\nexpect_body = \"{long}\"\n")).unwrap_err();
        assert!(err.contains("longer than the 64 KiB"), "{err}");
    }
}
