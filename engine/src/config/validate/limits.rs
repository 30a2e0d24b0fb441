//! `[[rate_limit]]`, `[global_limits]` and a listener's connection limits
//! (what `proxy::rate_limit` and `server::conn_limit` enforce).

use super::Validator;
use crate::config::file::{GlobalLimitsFile, RateLimitFile};
use crate::config::{
    ConfigError, ConnLimit, GlobalLimits, OnLimit, RateKey, RateLimitConfig, defaults,
};
use toml::Spanned;

impl Validator<'_> {
    pub(super) fn rate_limits(
        &self,
        list: Vec<RateLimitFile>,
        have_redis: bool,
    ) -> Result<Vec<RateLimitConfig>, ConfigError> {
        let mut out: Vec<RateLimitConfig> = Vec::with_capacity(list.len());
        for (i, r) in list.into_iter().enumerate() {
            let field = format!("rate_limit[{i}]");
            let name = r.name.get_ref().clone();
            if out.iter().any(|o| o.name == name) {
                return Err(ConfigError::DuplicateRateLimit {
                    at: self.at(r.name.span(), format_args!("{field}.name")),
                    name,
                });
            }
            let mut key = parse_key(r.key.get_ref()).ok_or_else(|| ConfigError::RateKey {
                at: self.at(r.key.span(), format_args!("{field}.key")),
                value: r.key.get_ref().clone(),
            })?;
            match &mut key {
                RateKey::Client(prefix) => {
                    prefix.v4 = self.bounded(
                        r.ipv4_prefix,
                        &format!("{field}.ipv4_prefix"),
                        1,
                        32,
                        defaults::RATE_LIMIT_IPV4_PREFIX,
                    )?;
                    prefix.v6 = self.bounded(
                        r.ipv6_prefix,
                        &format!("{field}.ipv6_prefix"),
                        1,
                        128,
                        defaults::RATE_LIMIT_IPV6_PREFIX,
                    )?;
                }
                _ => {
                    if let Some(p) = r.ipv4_prefix.as_ref().or(r.ipv6_prefix.as_ref()) {
                        return Err(ConfigError::PrefixWithoutClientKey {
                            at: self.at(p.span(), format_args!("{field}.ipv4_prefix")),
                        });
                    }
                }
            }
            let rate = *r.rate.get_ref();
            // A token per 1000 s at the slowest; a million per second at most.
            if !(0.001..=1e6).contains(&rate) {
                return Err(ConfigError::OutOfRange {
                    at: self.at(r.rate.span(), format_args!("{field}.rate")),
                    min: 0,
                    max: 1_000_000,
                });
            }
            let burst = self.bounded(
                r.burst,
                &format!("{field}.burst"),
                1,
                1 << 24,
                (rate.ceil() as u32).max(1),
            )?;
            let host = self.host_pattern(r.host, &field)?;
            let path = self.path_prefix(r.path, &field)?;
            if r.global && !have_redis {
                return Err(ConfigError::GlobalWithoutRedis {
                    at: self.at(r.name.span(), format_args!("{field}.global")),
                });
            }
            let max_keys = self.bounded(
                r.max_keys,
                &format!("{field}.max_keys"),
                1,
                defaults::RATE_LIMIT_MAX_KEYS_CAP,
                defaults::RATE_LIMIT_MAX_KEYS,
            )?;
            out.push(RateLimitConfig {
                name,
                key,
                rate,
                burst,
                host,
                path,
                global: r.global,
                max_keys,
            });
        }
        Ok(out)
    }

    pub(super) fn global_limits(&self, g: GlobalLimitsFile) -> Result<GlobalLimits, ConfigError> {
        let url = g.redis.get_ref();
        let ok = url
            .strip_prefix("redis://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
        if !ok {
            return Err(ConfigError::RedisUrl {
                at: self.at(g.redis.span(), "global_limits.redis"),
                value: url.clone(),
            });
        }
        Ok(GlobalLimits {
            redis: url.clone(),
            sync_interval: self.duration(
                g.sync_interval,
                "global_limits.sync_interval",
                defaults::GLOBAL_SYNC_INTERVAL,
            )?,
            timeout: self.duration(
                g.timeout,
                "global_limits.timeout",
                defaults::GLOBAL_SYNC_TIMEOUT,
            )?,
        })
    }

    pub(super) fn conn_limit(
        &self,
        field: &str,
        max: Option<Spanned<usize>>,
        per_client: Option<Spanned<usize>>,
        on_limit: Option<Spanned<String>>,
    ) -> Result<ConnLimit, ConfigError> {
        let positive = |v: Option<Spanned<usize>>, name: &str| match v {
            Some(v) if *v.get_ref() == 0 => Err(ConfigError::NotPositive {
                at: self.at(v.span(), format_args!("{field}.{name}")),
            }),
            v => Ok(v.map(Spanned::into_inner)),
        };
        let on_limit = match on_limit {
            None => OnLimit::Refuse,
            Some(v) => match v.get_ref().as_str() {
                "refuse" => OnLimit::Refuse,
                "backlog" => OnLimit::Backlog,
                other => {
                    return Err(ConfigError::OnLimit {
                        at: self.at(v.span(), format_args!("{field}.on_limit")),
                        value: other.to_owned(),
                    });
                }
            },
        };
        Ok(ConnLimit {
            max_connections: positive(max, "max_connections")?,
            max_connections_per_client: positive(per_client, "max_connections_per_client")?,
            on_limit,
        })
    }
}

/// `client`, `route` or `header:NAME`.
fn parse_key(s: &str) -> Option<RateKey> {
    match s {
        "client" => Some(RateKey::Client(Default::default())),
        "route" => Some(RateKey::Route),
        _ => {
            let name = s.strip_prefix("header:")?;
            http::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(RateKey::Header)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, OnLimit, RateKey, validate::parse};
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = r#"
[[listener]]
address = "127.0.0.1:0"
max_connections = 1000
max_connections_per_client = 20
on_limit = "backlog"

[upstream.web]
backends = ["127.0.0.1:9003"]
"#;

    #[test]
    fn limits_parse_with_their_defaults() {
        let text = format!(
            r#"{BASE}
[global_limits]
redis = "redis://127.0.0.1:6379/0"
sync_interval = "50ms"

[[rate_limit]]
name = "per-client"
key = "client"
rate = 2.5
ipv6_prefix = 56

[[rate_limit]]
name = "api-keys"
key = "header:X-Api-Key"
rate = 100
burst = 200
host = "*.Example.com"
path = "/api"
global = true
max_keys = 10
"#
        );
        let c = parse(&text, Path::new("t.toml")).expect("valid");
        let l = c.listeners[0].conn_limit;
        assert_eq!(l.max_connections, Some(1000));
        assert_eq!(l.max_connections_per_client, Some(20));
        assert_eq!(l.on_limit, OnLimit::Backlog);
        let [a, b] = &c.rate_limits[..] else {
            panic!("two limits")
        };
        assert_eq!(
            (a.key.clone(), a.burst, a.global),
            (
                RateKey::Client(crate::config::ClientPrefix { v4: 32, v6: 56 }),
                3,
                false
            )
        );
        assert_eq!(a.max_keys, crate::config::defaults::RATE_LIMIT_MAX_KEYS);
        assert!(matches!(&b.key, RateKey::Header(h) if h == "x-api-key"));
        assert_eq!(b.host.as_deref(), Some("*.example.com"));
        assert_eq!((b.burst, b.max_keys, b.global), (200, 10, true));
        let g = c.global_limits.expect("global");
        assert_eq!(g.sync_interval, Duration::from_millis(50));
    }

    #[test]
    fn bad_limits_name_their_field() {
        let bad = |extra: &str, field: &str| {
            let err = parse(&format!("{BASE}\n{extra}"), Path::new("t.toml")).expect_err(extra);
            assert!(err.to_string().contains(field), "{err} should name {field}");
            err
        };
        bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"cookie\"\nrate = 1",
            "rate_limit[0].key",
        );
        bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"client\"\nrate = 0",
            "rate_limit[0].rate",
        );
        let e = bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"client\"\nrate = 1\nglobal = true",
            "rate_limit[0].global",
        );
        assert!(matches!(e, ConfigError::GlobalWithoutRedis { .. }));
        bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"client\"\nrate = 1\n[[rate_limit]]\nname = \"x\"\nkey = \"route\"\nrate = 1",
            "rate_limit[1].name",
        );
        bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"client\"\nrate = 1\nipv6_prefix = 129",
            "rate_limit[0].ipv6_prefix",
        );
        bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"client\"\nrate = 1\nipv4_prefix = 0",
            "rate_limit[0].ipv4_prefix",
        );
        let e = bad(
            "[[rate_limit]]\nname = \"x\"\nkey = \"route\"\nrate = 1\nipv6_prefix = 48",
            "rate_limit[0]",
        );
        assert!(matches!(e, ConfigError::PrefixWithoutClientKey { .. }));
        bad(
            "[global_limits]\nredis = \"127.0.0.1:6379\"",
            "global_limits.redis",
        );
        let text = BASE.replace("\"backlog\"", "\"drop\"");
        let err = parse(&text, Path::new("t.toml")).expect_err("on_limit");
        assert!(err.to_string().contains("listener[0].on_limit"), "{err}");
        let text = BASE.replace("= 1000", "= 0");
        let err = parse(&text, Path::new("t.toml")).expect_err("zero");
        assert!(
            err.to_string().contains("listener[0].max_connections"),
            "{err}"
        );
    }
}
