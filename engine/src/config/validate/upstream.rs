//! `[upstream.NAME]`: a group's backends (with the caps on weight and
//! group size), policy, health checks, passive health and upstream TLS.

use super::Validator;
use super::*;
use crate::balance::Policy;
use crate::config::file::{BackendFile, PassiveFile, UpstreamFile};
use crate::config::values::split_host_port;

impl Validator<'_> {
    pub(super) fn upstream(
        &self,
        name: String,
        u: UpstreamFile,
        own: &[SocketAddr],
        backend_header: bool,
    ) -> Result<UpstreamConfig, ConfigError> {
        let field = format!("upstream.{name}");
        let policy = match &u.balance {
            Some(b) => Policy::parse(b.get_ref()).map_err(|source| ConfigError::Policy {
                at: self.at(b.span(), format!("{field}.balance")),
                source,
            })?,
            None => Policy::RoundRobin,
        };
        let protocol = match &u.protocol {
            None => UpstreamProtocol::Http1,
            Some(p) => match p.get_ref().as_str() {
                "http1" | "http/1.1" => UpstreamProtocol::Http1,
                "h2c" => UpstreamProtocol::H2c,
                "h2" => UpstreamProtocol::H2,
                other => {
                    return Err(ConfigError::Protocol {
                        at: self.at(p.span(), format!("{field}.protocol")),
                        value: other.to_owned(),
                    });
                }
            },
        };
        let tls = self.upstream_tls(&field, &u, protocol)?;
        let (list, span) = match &u.backends {
            Some(b) => (b.get_ref().as_slice(), b.span()),
            None => (&[][..], 0..0),
        };
        if list.len() > defaults::MAX_GROUP_BACKENDS {
            return Err(ConfigError::TooMany {
                at: self.at(span, format!("{field}.backends")),
                count: list.len(),
                max: defaults::MAX_GROUP_BACKENDS,
            });
        }
        let mut backends = Vec::with_capacity(list.len());
        let mut dns = Vec::new();
        for (i, b) in list.iter().enumerate() {
            let (addr, weight) = match b {
                BackendFile::Address(a) => (a, 1),
                BackendFile::Full(t) => (&t.address, t.weight),
            };
            let bfield = format!("{field}.backends[{i}]");
            if weight == 0 || weight > defaults::MAX_WEIGHT {
                return Err(ConfigError::OutOfRange {
                    at: self.at(span.clone(), format!("{bfield}.weight")),
                    min: 1,
                    max: defaults::MAX_WEIGHT.into(),
                });
            }
            match addr.parse::<SocketAddr>() {
                Ok(a) => {
                    let a =
                        BackendAddr::checked(a, own).map_err(|source| ConfigError::Backend {
                            at: self.at(span.clone(), &bfield),
                            source: Box::new(source),
                        })?;
                    backends.push((a, weight));
                }
                // A name: resolved now and again on an interval (discovery).
                Err(_) => {
                    let (host, port) =
                        split_host_port(addr).map_err(|source| ConfigError::HostPort {
                            at: self.at(span.clone(), &bfield),
                            source,
                        })?;
                    dns.push(DnsBackend { host, port, weight });
                }
            }
        }
        let (health, heartbeat) = self.health(&field, u.health)?;
        let passive = match u.passive {
            None => Passive::default(),
            Some(p) => self.passive(p, &field)?,
        };
        // "0s" turns slow start off (other durations refuse zero).
        let slow_start = match u.slow_start {
            None => defaults::SLOW_START,
            Some(v) => match crate::config::values::parse_duration(v.get_ref()) {
                Err(crate::config::error::DurationError::Zero) => Duration::ZERO,
                _ => self.duration(
                    Some(v),
                    &format!("{field}.slow_start"),
                    defaults::SLOW_START,
                )?,
            },
        };
        let retry_budget = match u.retry_budget {
            None => RetryBudgetConfig::default(),
            Some(b) => self.retry_budget(&field, b)?,
        };
        let sticky = match u.sticky {
            None => None,
            Some(s) => Some(self.sticky(&field, s)?),
        };
        let limit = self.limit(
            &field,
            u.max_requests_per_backend,
            u.max_queue,
            u.queue_timeout,
        )?;
        let proxy_protocol = self.proxy_protocol_out(&field, u.proxy_protocol)?;
        Ok(UpstreamConfig {
            proxy_protocol,
            sticky,
            limit,
            health,
            heartbeat,
            passive,
            retry_budget,
            slow_start,
            backend_header: u.backend_header.unwrap_or(backend_header),
            backends,
            dns,
            resolve_interval: self.duration(
                u.resolve_interval,
                &format!("{field}.resolve_interval"),
                defaults::RESOLVE_INTERVAL,
            )?,
            policy,
            protocol,
            tls,
            max_idle_per_backend: u
                .max_idle_per_backend
                .unwrap_or(defaults::MAX_IDLE_PER_BACKEND),
            name,
        })
    }

    /// `max_requests_per_backend`, `max_queue`, `queue_timeout`: the queue
    /// keys mean nothing without a limit, so they are refused alone.
    fn limit(
        &self,
        field: &str,
        per_backend: Option<Spanned<u32>>,
        max_queue: Option<Spanned<usize>>,
        timeout: Option<Spanned<String>>,
    ) -> Result<Option<LimitConfig>, ConfigError> {
        let limit = per_backend
            .as_ref()
            .map_or(defaults::MAX_REQUESTS_PER_BACKEND, |v| *v.get_ref());
        if limit > defaults::MAX_MAX_REQUESTS_PER_BACKEND {
            let span = per_backend.map(|v| v.span()).unwrap_or_default();
            return Err(ConfigError::OutOfRange {
                at: self.at(span, format!("{field}.max_requests_per_backend")),
                min: 0,
                max: defaults::MAX_MAX_REQUESTS_PER_BACKEND.into(),
            });
        }
        if limit == 0 {
            let orphan = max_queue
                .as_ref()
                .map(|v| (v.span(), "max_queue"))
                .or(timeout.as_ref().map(|v| (v.span(), "queue_timeout")));
            if let Some((span, key)) = orphan {
                return Err(ConfigError::NeedsLimit {
                    at: self.at(span, format!("{field}.{key}")),
                });
            }
            return Ok(None);
        }
        let max_queue_value = max_queue
            .as_ref()
            .map_or(defaults::MAX_QUEUE, |v| *v.get_ref());
        if max_queue_value > defaults::MAX_MAX_QUEUE {
            let span = max_queue.map(|v| v.span()).unwrap_or_default();
            return Err(ConfigError::OutOfRange {
                at: self.at(span, format!("{field}.max_queue")),
                min: 0,
                max: defaults::MAX_MAX_QUEUE as u64,
            });
        }
        Ok(Some(LimitConfig {
            per_backend: limit,
            max_queue: max_queue_value,
            queue_timeout: self.duration(
                timeout,
                &format!("{field}.queue_timeout"),
                defaults::QUEUE_TIMEOUT,
            )?,
        }))
    }

    /// `[upstream.NAME.passive]`: outlier detection and the breaker.
    fn passive(&self, p: PassiveFile, field: &str) -> Result<Passive, ConfigError> {
        let d = Passive::default();
        Ok(Passive {
            // `failures` is the old name; the new one wins when both are given.
            consecutive_5xx: p
                .consecutive_5xx
                .or(p.failures)
                .unwrap_or(d.consecutive_5xx),
            consecutive_gateway_errors: p
                .consecutive_gateway_errors
                .unwrap_or(d.consecutive_gateway_errors),
            consecutive_connect_failures: p
                .consecutive_connect_failures
                .unwrap_or(d.consecutive_connect_failures),
            error_rate_percent: p
                .error_rate_percent
                .unwrap_or(d.error_rate_percent)
                .min(100),
            error_rate_window: self.duration(
                p.error_rate_window,
                &format!("{field}.passive.error_rate_window"),
                d.error_rate_window,
            )?,
            error_rate_min_requests: p
                .error_rate_min_requests
                .unwrap_or(d.error_rate_min_requests)
                .max(1),
            ejection: self.duration(
                p.ejection,
                &format!("{field}.passive.ejection"),
                defaults::PASSIVE_EJECTION,
            )?,
            max_ejection: self.duration(
                p.max_ejection,
                &format!("{field}.passive.max_ejection"),
                defaults::PASSIVE_MAX_EJECTION,
            )?,
            max_ejected_percent: p
                .max_ejected_percent
                .unwrap_or(defaults::PASSIVE_MAX_EJECTED_PERCENT)
                .min(100),
            half_open_trials: p.half_open_trials.unwrap_or(d.half_open_trials).max(1),
            half_open_successes: p
                .half_open_successes
                .unwrap_or(d.half_open_successes)
                .max(1),
            half_open_timeout: self.duration(
                p.half_open_timeout,
                &format!("{field}.passive.half_open_timeout"),
                d.half_open_timeout,
            )?,
        })
    }
}

#[cfg(test)]
mod tests;
