//! `access_log`, `[access_log.ship]`, `instance_id` and `instance_header`.

use super::Validator;
use crate::config::access_log::{
    AccessLogConfig, AccessLogFile, LogFormat, ShipConfig, ShipFile, instance_id_ok,
};
use crate::config::values::parse_duration;
use crate::config::{ConfigError, defaults};
use http::HeaderName;
use std::path::PathBuf;
use toml::Spanned;

impl Validator<'_> {
    pub(super) fn access_log(
        &self,
        f: Option<AccessLogFile>,
    ) -> Result<Option<AccessLogConfig>, ConfigError> {
        let t = match f {
            None | Some(AccessLogFile::Switch(false)) => return Ok(None),
            Some(AccessLogFile::Switch(true)) => return Ok(Some(AccessLogConfig::default())),
            Some(AccessLogFile::Table(t)) => t,
        };
        // A table turned off is still checked: turning it on must not fail.
        let enabled = t.enabled != Some(false);
        let format = match &t.format {
            None => LogFormat::Json,
            Some(v) => match v.get_ref().as_str() {
                "json" => LogFormat::Json,
                "combined" => LogFormat::Combined,
                other => {
                    return Err(self.observe(
                        v,
                        "access_log.format",
                        other,
                        "expected json or combined",
                    ));
                }
            },
        };
        let path = match t.path {
            Some(p) if p.get_ref().is_empty() || p.get_ref().contains('\0') => {
                return Err(self.observe(&p, "access_log.path", p.get_ref(), "not a file path"));
            }
            p => p.map(|p| PathBuf::from(p.into_inner())),
        };
        let log = AccessLogConfig {
            format,
            path,
            queue: self.bounded(
                t.queue,
                "access_log.queue",
                1,
                1 << 24,
                defaults::ACCESS_LOG_QUEUE,
            )?,
            ship: t.ship.map(|s| self.ship(s)).transpose()?,
        };
        Ok(enabled.then_some(log))
    }

    fn ship(&self, s: ShipFile) -> Result<ShipConfig, ConfigError> {
        let url = s.url.get_ref();
        let bad = || {
            self.observe(
                &s.url,
                "access_log.ship.url",
                url,
                "expected http://host:port/path",
            )
        };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let port_ok = authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        let clean = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !port_ok || !clean(authority) || !clean(path) || authority.contains('@') {
            return Err(bad());
        }
        let interval = match &s.interval {
            None => defaults::SHIP_INTERVAL,
            Some(v) => match parse_duration(v.get_ref()) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    return Err(ConfigError::NotPositive {
                        at: self.at(v.span(), "access_log.ship.interval"),
                    });
                }
                Err(source) => {
                    return Err(ConfigError::Duration {
                        at: self.at(v.span(), "access_log.ship.interval"),
                        source,
                    });
                }
            },
        };
        let source = match s.source {
            Some(v) if !instance_id_ok(v.get_ref()) => {
                return Err(self.observe(
                    &v,
                    "access_log.ship.source",
                    v.get_ref(),
                    "expected printable ASCII without quotes, backslash or ;",
                ));
            }
            v => v.map(Spanned::into_inner),
        };
        Ok(ShipConfig {
            authority: authority.to_owned(),
            path: path.to_owned(),
            batch: self.bounded(
                s.batch,
                "access_log.ship.batch",
                1,
                10_000,
                defaults::SHIP_BATCH,
            )?,
            interval,
            queue: self.bounded(
                s.queue,
                "access_log.ship.queue",
                1,
                1 << 24,
                defaults::ACCESS_LOG_QUEUE,
            )?,
            pending: self.bounded(
                s.pending,
                "access_log.ship.pending",
                1,
                1024,
                defaults::SHIP_PENDING,
            )?,
            source,
        })
    }

    /// `instance_id` and `instance_header`.
    pub(super) fn instance(
        &self,
        id: Option<Spanned<String>>,
        header: Option<Spanned<String>>,
    ) -> Result<(Option<String>, Option<HeaderName>), ConfigError> {
        let id = match id {
            Some(v) if !instance_id_ok(v.get_ref()) => {
                return Err(self.observe(
                    &v,
                    "instance_id",
                    v.get_ref(),
                    "expected printable ASCII without quotes, backslash or ;",
                ));
            }
            v => v.map(Spanned::into_inner),
        };
        let header = match header {
            None => Some(HeaderName::from_static(defaults::INSTANCE_HEADER)),
            Some(h) if h.get_ref().is_empty() => None,
            Some(h) => Some(HeaderName::from_bytes(h.get_ref().as_bytes()).map_err(|_| {
                self.observe(&h, "instance_header", h.get_ref(), "not a header name")
            })?),
        };
        Ok((id, header))
    }

    fn observe(
        &self,
        v: &Spanned<String>,
        field: &str,
        value: &str,
        problem: &'static str,
    ) -> ConfigError {
        ConfigError::Observe {
            at: self.at(v.span(), field),
            value: value.to_owned(),
            problem,
        }
    }
}
