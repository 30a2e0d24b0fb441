//! `[route.retry]` and `[upstream.NAME.retry_budget]`: what a route may send
//! again, and what caps a group's retries (see `proxy::retry`).

use super::Validator;
use super::*;
use crate::config::file::{RetryBudgetFile, RetryFile};

impl Validator<'_> {
    pub(super) fn retry(&self, route: &str, r: RetryFile) -> Result<RetryPolicy, ConfigError> {
        let field = format!("{route}.retry");
        let d = RetryPolicy::default();
        let mut statuses = d.statuses;
        if let Some(list) = r.statuses {
            statuses = Vec::with_capacity(list.len());
            for (i, s) in list.into_iter().enumerate() {
                let status = *s.get_ref();
                if status != 429 && !(500..=599).contains(&status) {
                    return Err(ConfigError::RetryStatus {
                        at: self.at(s.span(), format_args!("{field}.statuses[{i}]")),
                        status,
                    });
                }
                statuses.push(status);
            }
        }
        let methods = match (r.retry_methods, r.retry_non_idempotent) {
            (Some(_), Some(all)) if *all.get_ref() => {
                return Err(ConfigError::RetryMethodsTwice {
                    at: self.at(all.span(), format_args!("{field}.retry_non_idempotent")),
                });
            }
            (Some(list), _) => {
                let mut methods = Vec::with_capacity(list.get_ref().len());
                for (i, m) in list.into_inner().into_iter().enumerate() {
                    let name = m.get_ref().trim().to_ascii_uppercase();
                    let method = http::Method::from_bytes(name.as_bytes()).map_err(|_| {
                        ConfigError::Method {
                            at: self.at(m.span(), format_args!("{field}.retry_methods[{i}]")),
                            method: m.get_ref().clone(),
                        }
                    })?;
                    methods.push(method);
                }
                RetryMethods::Listed(methods)
            }
            (None, Some(all)) if *all.get_ref() => RetryMethods::All,
            (None, _) => RetryMethods::Idempotent,
        };
        let backoff_base = self.duration(
            r.backoff_base,
            &format!("{field}.backoff_base"),
            d.backoff_base,
        )?;
        let max_span = r.backoff_max.as_ref().map(|m| m.span());
        let backoff_max = self.duration(
            r.backoff_max,
            &format!("{field}.backoff_max"),
            d.backoff_max.max(backoff_base),
        )?;
        if backoff_max < backoff_base {
            return Err(ConfigError::BackoffOrder {
                at: self.at(
                    max_span.unwrap_or(0..0),
                    format_args!("{field}.backoff_max"),
                ),
            });
        }
        Ok(RetryPolicy {
            attempts: self.bounded(
                r.attempts,
                &format!("{field}.attempts"),
                1,
                defaults::MAX_RETRY_ATTEMPTS,
                d.attempts,
            )?,
            per_try_timeout: r
                .per_try_timeout
                .map(|t| self.duration(Some(t), &format!("{field}.per_try_timeout"), d.backoff_max))
                .transpose()?,
            statuses,
            backoff_base,
            backoff_max,
            methods,
            replay_buffer: self.bounded(
                r.replay_buffer,
                &format!("{field}.replay_buffer"),
                0,
                defaults::MAX_RETRY_REPLAY_BUFFER,
                d.replay_buffer,
            )?,
        })
    }

    pub(super) fn retry_budget(
        &self,
        group: &str,
        b: RetryBudgetFile,
    ) -> Result<RetryBudgetConfig, ConfigError> {
        let field = format!("{group}.retry_budget");
        let d = RetryBudgetConfig::default();
        let ratio = match b.ratio {
            Some(r) if !(0.0..=10.0).contains(r.get_ref()) => {
                return Err(ConfigError::BudgetRatio {
                    at: self.at(r.span(), format_args!("{field}.ratio")),
                });
            }
            Some(r) => r.into_inner(),
            None => d.ratio,
        };
        let ttl_span = b.ttl.as_ref().map(|t| t.span());
        let ttl = self.duration(b.ttl, &format!("{field}.ttl"), d.ttl)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(ConfigError::OutOfRange {
                at: self.at(ttl_span.unwrap_or(0..0), format_args!("{field}.ttl")),
                min: 1,
                max: 60,
            });
        }
        Ok(RetryBudgetConfig {
            ratio,
            min_per_second: self.bounded(
                b.min_per_second,
                &format!("{field}.min_per_second"),
                0,
                1_000_000,
                d.min_per_second,
            )?,
            ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra_route: &str, extra_upstream: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[[route]]\nupstream = \"api\"\n{extra_route}\n\
             [upstream.api]\nbackends = [\"127.0.0.1:9001\"]\n{extra_upstream}\n"
        );
        parse(&text, Path::new("test.toml"))
    }

    fn field(e: &ConfigError) -> String {
        match e.at() {
            Some(At::File { field, line, .. }) => format!("{line}:{field}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn no_retry_section_means_no_policy_and_the_default_budget() {
        let c = check("", "").expect("valid");
        assert_eq!(c.routes[0].retry, None);
        assert_eq!(c.upstreams[0].retry_budget, RetryBudgetConfig::default());
    }

    #[test]
    fn a_retry_section_with_its_defaults_and_every_key() {
        let c = check("[route.retry]\n", "").expect("valid");
        assert_eq!(c.routes[0].retry.as_deref(), Some(&RetryPolicy::default()));
        let c = check(
            "[route.retry]\nattempts = 3\nper_try_timeout = \"2s\"\nstatuses = [503, 429]\n\
             backoff_base = \"10ms\"\nbackoff_max = \"1s\"\nretry_methods = [\"get\", \"POST\"]\n\
             replay_buffer = 1024\n",
            "[upstream.api.retry_budget]\nratio = 0.5\nmin_per_second = 3\nttl = \"20s\"\n",
        )
        .expect("valid");
        let p = c.routes[0].retry.as_deref().expect("a policy");
        assert_eq!(p.attempts, 3);
        assert_eq!(p.per_try_timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.statuses, [503, 429]);
        assert_eq!(p.backoff_max, Duration::from_secs(1));
        assert_eq!(
            p.methods,
            RetryMethods::Listed(vec![http::Method::GET, http::Method::POST])
        );
        assert_eq!(p.replay_buffer, 1024);
        let b = c.upstreams[0].retry_budget;
        assert_eq!((b.ratio, b.min_per_second, b.ttl.as_secs()), (0.5, 3, 20));
        let c = check("[route.retry]\nretry_non_idempotent = true\n", "").expect("valid");
        assert_eq!(
            c.routes[0].retry.as_deref().map(|p| &p.methods),
            Some(&RetryMethods::All)
        );
    }

    #[test]
    fn bad_retry_values_name_their_field() {
        let cases = [
            (
                "[route.retry]\nattempts = 0\n",
                "",
                "7:route[0].retry.attempts",
            ),
            (
                "[route.retry]\nattempts = 11\n",
                "",
                "7:route[0].retry.attempts",
            ),
            (
                "[route.retry]\nstatuses = [503, 404]\n",
                "",
                "7:route[0].retry.statuses[1]",
            ),
            (
                "[route.retry]\nretry_methods = [\"GET\"]\nretry_non_idempotent = true\n",
                "",
                "8:route[0].retry.retry_non_idempotent",
            ),
            (
                "[route.retry]\nretry_methods = [\"G T\"]\n",
                "",
                "7:route[0].retry.retry_methods[0]",
            ),
            (
                "[route.retry]\nbackoff_base = \"1s\"\nbackoff_max = \"10ms\"\n",
                "",
                "8:route[0].retry.backoff_max",
            ),
            (
                "[route.retry]\nper_try_timeout = \"0s\"\n",
                "",
                "7:route[0].retry.per_try_timeout",
            ),
            (
                "[route.retry]\nreplay_buffer = 16777217\n",
                "",
                "7:route[0].retry.replay_buffer",
            ),
            (
                "[route.retry]\nattempt = 2\n",
                "",
                "7:route[0].retry.attempt",
            ),
            (
                "",
                "[upstream.api.retry_budget]\nratio = 11.0\n",
                "10:upstream.api.retry_budget.ratio",
            ),
            (
                "",
                "[upstream.api.retry_budget]\nttl = \"61s\"\n",
                "10:upstream.api.retry_budget.ttl",
            ),
        ];
        for (route, upstream, at) in cases {
            let e = check(route, upstream).expect_err(at);
            assert_eq!(field(&e), at, "{e}");
        }
    }
}
