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
        let backoff_base =
            self.duration(r.backoff_base, &format!("{field}.backoff_base"), d.backoff_base)?;
        let max_span = r.backoff_max.as_ref().map(|m| m.span());
        let backoff_max = self.duration(
            r.backoff_max,
            &format!("{field}.backoff_max"),
            d.backoff_max.max(backoff_base),
        )?;
        if backoff_max < backoff_base {
            return Err(ConfigError::BackoffOrder {
                at: self.at(max_span.unwrap_or(0..0), format_args!("{field}.backoff_max")),
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
