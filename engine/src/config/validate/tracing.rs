//! `[tracing]`: trace context propagation and the OTLP exporter's settings
//! (what `observe::trace` and `observe::otlp` run on).

use super::Validator;
use crate::config::file::TracingFile;
use crate::config::{ConfigError, ListenerConfig, OtlpConfig, TracingConfig, defaults};
use toml::Spanned;

impl Validator<'_> {
    pub(super) fn tracing(
        &self,
        t: TracingFile,
        listeners: &[ListenerConfig],
    ) -> Result<TracingConfig, ConfigError> {
        let sample_ratio = match t.sample_ratio {
            None => defaults::TRACE_SAMPLE_RATIO,
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                return Err(ConfigError::Ratio {
                    at: self.at(r.span(), "tracing.sample_ratio"),
                });
            }
        };
        let bounded = |v: Option<Spanned<usize>>, name: &str, default: usize| match v {
            None => Ok(default),
            Some(v) if (1..=defaults::TRACE_MAX_BOUND).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(ConfigError::OutOfRange {
                at: self.at(v.span(), format_args!("tracing.{name}")),
                min: 1,
                max: defaults::TRACE_MAX_BOUND as u64,
            }),
        };
        let batch_size = bounded(t.batch_size, "batch_size", defaults::TRACE_BATCH_SIZE)?;
        let max_queue = bounded(t.max_queue, "max_queue", defaults::TRACE_MAX_QUEUE)?;
        let batch_interval = self.duration(
            t.batch_interval,
            "tracing.batch_interval",
            defaults::TRACE_BATCH_INTERVAL,
        )?;
        let export_timeout = self.duration(
            t.export_timeout,
            "tracing.export_timeout",
            defaults::TRACE_EXPORT_TIMEOUT,
        )?;
        let text = |v: Option<Spanned<String>>, name: &str| match v {
            Some(v) if v.get_ref().trim().is_empty() => Err(ConfigError::Empty {
                at: self.at(v.span(), format_args!("tracing.{name}")),
            }),
            v => Ok(v.map(Spanned::into_inner)),
        };
        let service_name = text(t.service_name, "service_name")?
            .unwrap_or_else(|| defaults::TRACE_SERVICE_NAME.to_owned());
        let service_instance_id = text(t.service_instance_id, "service_instance_id")?
            .unwrap_or_else(|| default_instance_id(listeners));
        let otlp = match t.otlp_endpoint {
            None => None,
            Some(e) => {
                let (authority, prefix) =
                    parse_endpoint(e.get_ref()).ok_or_else(|| ConfigError::OtlpEndpoint {
                        at: self.at(e.span(), "tracing.otlp_endpoint"),
                        value: e.get_ref().clone(),
                    })?;
                Some(OtlpConfig {
                    authority,
                    path: format!("{prefix}/v1/traces"),
                    service_name,
                    service_instance_id,
                    batch_size,
                    batch_interval,
                    max_queue,
                    export_timeout,
                })
            }
        };
        Ok(TracingConfig {
            enabled: t.enabled.unwrap_or(true),
            otlp,
            sample_ratio,
        })
    }
}

/// `http://host:port[/prefix]` → (`host:port`, `/prefix` without a trailing
/// slash). Plain HTTP only: the receiver is a local collector or sidecar.
fn parse_endpoint(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix("http://")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let uri: http::Uri = s.parse().ok()?;
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || authority.contains('@') || uri.query().is_some() || prefix.contains('#') {
        return None;
    }
    Some((
        authority.to_owned(),
        prefix.trim_end_matches('/').to_owned(),
    ))
}

/// `service.instance.id` when none is set: the host name and the first
/// listener's port, which tells replicas on one host apart.
fn default_instance_id(listeners: &[ListenerConfig]) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    match listeners.first() {
        Some(l) => format!("{host}:{}", l.address.port()),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;
    use crate::config::validate::parse;
    use std::path::Path;

    #[test]
    fn endpoints() {
        let ok = |s: &str| parse_endpoint(s).expect(s);
        assert_eq!(
            ok("http://127.0.0.1:4318"),
            ("127.0.0.1:4318".into(), "".into())
        );
        assert_eq!(ok("http://otel:4318/"), ("otel:4318".into(), "".into()));
        assert_eq!(
            ok("http://[::1]:4318/otlp/"),
            ("[::1]:4318".into(), "/otlp".into())
        );
        for bad in [
            "https://otel:4318",
            "otel:4318",
            "http://otel",
            "http://otel:0",
            "http://:4318",
            "http://u@otel:4318",
            "http://otel:4318/?x=1",
            "http://otel:99999",
        ] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_table_and_its_errors() {
        let base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[upstream.default]\nbackends = [\"127.0.0.1:9000\"]\n";
        let c = parse(base, Path::new("t.toml")).expect("valid");
        assert!(c.tracing.enabled && c.tracing.otlp.is_none());
        assert_eq!(c.tracing.sample_ratio, 1.0);
        let c = parse(
            &format!("{base}[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/x\"\nsample_ratio = 0.25\nbatch_size = 10\nmax_queue = 20\nbatch_interval = \"50ms\"\nservice_name = \"edge\"\n"),
            Path::new("t.toml"),
        )
        .expect("valid");
        let o = c.tracing.otlp.expect("otlp");
        assert_eq!(
            (o.authority.as_str(), o.path.as_str()),
            ("127.0.0.1:4318", "/x/v1/traces")
        );
        assert_eq!(
            (o.batch_size, o.max_queue, o.service_name.as_str()),
            (10, 20, "edge")
        );
        assert!(
            o.service_instance_id.ends_with(":8080"),
            "{}",
            o.service_instance_id
        );
        assert_eq!(c.tracing.sample_ratio, 0.25);
        for (bad, field) in [
            ("sample_ratio = 1.5", "tracing.sample_ratio"),
            ("sample_ratio = -0.1", "tracing.sample_ratio"),
            ("batch_size = 0", "tracing.batch_size"),
            ("max_queue = 2000000", "tracing.max_queue"),
            ("otlp_endpoint = \"https://x:1\"", "tracing.otlp_endpoint"),
            ("batch_interval = \"0s\"", "tracing.batch_interval"),
            ("service_name = \" \"", "tracing.service_name"),
        ] {
            let e =
                parse(&format!("{base}[tracing]\n{bad}\n"), Path::new("t.toml")).expect_err(bad);
            assert!(e.to_string().contains(field), "{bad}: {e}");
        }
    }
}
