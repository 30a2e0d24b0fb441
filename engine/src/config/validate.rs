//! `FileConfig` → [`Config`]: every rule is checked here, once, and a failure
//! names the file, line, column, field and problem.

use super::file::{BackendFile, CompressionFile, FileConfig};
use super::*;
use crate::balance::{HashOn, Policy};
use std::fmt;
use std::net::ToSocketAddrs;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {problem}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        problem: String,
    },
    #[error("{path}:{line}:{column}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        problem: String,
    },
    #[error("{field}: {problem}")]
    Flag { field: String, problem: String },
}

/// Parses and validates `text`, read from `path` (used only in messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            problem: e.message().to_owned(),
        }
    })?;
    Validator { text, path }.config(file)
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    fn err(
        &self,
        span: Range<usize>,
        field: impl fmt::Display,
        problem: impl fmt::Display,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }

    fn config(&self, f: FileConfig) -> Result<Config, ConfigError> {
        let workers = match f.workers {
            Some(w) if *w.get_ref() == 0 || *w.get_ref() > 1024 => {
                return Err(self.err(w.span(), "workers", "must be between 1 and 1024"));
            }
            Some(w) => w.into_inner(),
            None => default_workers(),
        };

        let mut listeners = Vec::with_capacity(f.listener.len());
        for (i, l) in f.listener.into_iter().enumerate() {
            let field = format!("listener[{i}]");
            let address = l
                .address
                .get_ref()
                .parse::<SocketAddr>()
                .map_err(|e| self.err(l.address.span(), format!("{field}.address"), e))?;
            let backlog = match l.backlog {
                Some(b) if *b.get_ref() <= 0 => {
                    return Err(self.err(b.span(), format!("{field}.backlog"), "must be positive"));
                }
                Some(b) => b.into_inner(),
                None => defaults::BACKLOG,
            };
            let mut tls = Vec::with_capacity(l.tls.len());
            for (j, c) in l.tls.into_iter().enumerate() {
                for (name, value) in [("cert", &c.cert), ("key", &c.key)] {
                    if !Path::new(value.get_ref()).is_file() {
                        return Err(self.err(
                            value.span(),
                            format!("{field}.tls[{j}].{name}"),
                            format_args!("no such file: {}", value.get_ref()),
                        ));
                    }
                }
                tls.push(CertConfig {
                    cert: c.cert.into_inner().into(),
                    key: c.key.into_inner().into(),
                    server_names: c
                        .server_names
                        .iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                });
            }
            listeners.push(ListenerConfig {
                address,
                reuse_port: l.reuse_port.unwrap_or(true),
                backlog,
                tls,
            });
        }
        if listeners.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.to_owned(),
                line: 1,
                column: 1,
                field: "listener".into(),
                problem: "at least one [[listener]] is required".into(),
            });
        }

        let d = Limits::default();
        let limits = Limits {
            max_header_bytes: self.bounded(
                f.limits.max_header_bytes,
                "limits.max_header_bytes",
                8192,
                1 << 20,
                d.max_header_bytes,
            )?,
            max_headers: self.bounded(
                f.limits.max_headers,
                "limits.max_headers",
                1,
                10_000,
                d.max_headers,
            )?,
            max_uri_bytes: self.bounded(
                f.limits.max_uri_bytes,
                "limits.max_uri_bytes",
                16,
                1 << 20,
                d.max_uri_bytes,
            )?,
            h2_max_concurrent_streams: self.bounded(
                f.limits.h2_max_concurrent_streams,
                "limits.h2_max_concurrent_streams",
                1,
                1 << 20,
                d.h2_max_concurrent_streams,
            )?,
        };

        let t = Timeouts::default();
        let ft = f.timeouts;
        let timeouts = Timeouts {
            client_header: self.duration(
                ft.client_header,
                "timeouts.client_header",
                t.client_header,
            )?,
            client_idle: self.duration(ft.client_idle, "timeouts.client_idle", t.client_idle)?,
            upstream_connect: self.duration(
                ft.upstream_connect,
                "timeouts.upstream_connect",
                t.upstream_connect,
            )?,
            upstream_response: self.duration(
                ft.upstream_response,
                "timeouts.upstream_response",
                t.upstream_response,
            )?,
            upstream_idle: self.duration(
                ft.upstream_idle,
                "timeouts.upstream_idle",
                t.upstream_idle,
            )?,
            shutdown_grace: self.duration(
                ft.shutdown_grace,
                "timeouts.shutdown_grace",
                t.shutdown_grace,
            )?,
        };

        let mut upstreams = Vec::with_capacity(f.upstream.len());
        for (name, u) in f.upstream {
            let field = format!("upstream.{name}");
            let policy = match &u.balance {
                Some(b) => Policy::parse(b.get_ref())
                    .map_err(|p| self.err(b.span(), format!("{field}.balance"), p))?,
                None => Policy::RoundRobin,
            };
            let protocol = match &u.protocol {
                None => UpstreamProtocol::Http1,
                Some(p) => match p.get_ref().as_str() {
                    "http1" | "http/1.1" => UpstreamProtocol::Http1,
                    "h2c" => UpstreamProtocol::H2c,
                    "h2" => UpstreamProtocol::H2,
                    other => {
                        return Err(self.err(
                            p.span(),
                            format!("{field}.protocol"),
                            format_args!("unknown protocol {other:?}; expected http1, h2c or h2"),
                        ));
                    }
                },
            };
            let tls = if u.tls || protocol == UpstreamProtocol::H2 {
                if let Some(ca) = &u.ca_file
                    && !Path::new(ca.get_ref()).is_file()
                {
                    return Err(self.err(
                        ca.span(),
                        format!("{field}.ca_file"),
                        format_args!("no such file: {}", ca.get_ref()),
                    ));
                }
                Some(UpstreamTls {
                    ca_file: u.ca_file.map(|c| c.into_inner().into()),
                    server_name: u.server_name.map(Spanned::into_inner),
                })
            } else {
                None
            };
            let (list, span) = match &u.backends {
                Some(b) => (b.get_ref().as_slice(), b.span()),
                None => (&[][..], 0..0),
            };
            let mut backends = Vec::with_capacity(list.len());
            let mut dns = Vec::new();
            for (i, b) in list.iter().enumerate() {
                let (addr, weight) = match b {
                    BackendFile::Address(a) => (a, 1),
                    BackendFile::Full(t) => (&t.address, t.weight),
                };
                let bfield = format!("{field}.backends[{i}]");
                if weight == 0 || weight > 10_000 {
                    return Err(self.err(
                        span.clone(),
                        &bfield,
                        "weight must be between 1 and 10000",
                    ));
                }
                match addr.parse::<SocketAddr>() {
                    Ok(a) => backends.push((BackendAddr(a), weight)),
                    // A name: resolved now and again on an interval (discovery).
                    Err(_) => {
                        let (host, port) = split_host_port(addr)
                            .map_err(|p| self.err(span.clone(), &bfield, p))?;
                        dns.push(DnsBackend { host, port, weight });
                    }
                }
            }
            let health = match u.health {
                None => None,
                Some(h) => {
                    let path = match h.path {
                        Some(p) if !p.get_ref().starts_with('/') => {
                            return Err(self.err(
                                p.span(),
                                format!("{field}.health.path"),
                                "must start with '/'",
                            ));
                        }
                        Some(p) => p.into_inner(),
                        None => defaults::HEALTH_PATH.to_owned(),
                    };
                    Some(HealthCheck {
                        interval: self.duration(
                            h.interval,
                            &format!("{field}.health.interval"),
                            defaults::HEALTH_INTERVAL,
                        )?,
                        timeout: self.duration(
                            h.timeout,
                            &format!("{field}.health.timeout"),
                            defaults::HEALTH_TIMEOUT,
                        )?,
                        path,
                        expect: h.expect.unwrap_or_default(),
                        rise: h.rise.unwrap_or(defaults::HEALTH_RISE).max(1),
                        fall: h.fall.unwrap_or(defaults::HEALTH_FALL).max(1),
                    })
                }
            };
            let passive = match u.passive {
                None => Passive::default(),
                Some(p) => Passive {
                    failures: p.failures.unwrap_or(defaults::PASSIVE_FAILURES),
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
                },
            };
            upstreams.push(UpstreamConfig {
                name,
                health,
                passive,
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
            });
        }

        let mut routes = Vec::with_capacity(f.route.len());
        for (i, r) in f.route.into_iter().enumerate() {
            let field = format!("route[{i}]");
            let upstream = upstreams
                .iter()
                .position(|u| u.name == *r.upstream.get_ref())
                .ok_or_else(|| {
                    self.err(
                        r.upstream.span(),
                        format!("{field}.upstream"),
                        format_args!("no upstream named {:?}", r.upstream.get_ref()),
                    )
                })?;
            let host = match r.host {
                Some(h) => {
                    let v = h.get_ref().to_ascii_lowercase();
                    let bare = v.strip_prefix("*.").unwrap_or(&v);
                    if bare.is_empty() || bare.contains(['*', '/', ' ']) {
                        return Err(self.err(
                            h.span(),
                            format!("{field}.host"),
                            "expected a host name or *.domain",
                        ));
                    }
                    Some(v)
                }
                None => None,
            };
            let path = match r.path {
                Some(p) if !p.get_ref().starts_with('/') => {
                    return Err(self.err(p.span(), format!("{field}.path"), "must start with '/'"));
                }
                Some(p) => p.into_inner(),
                None => "/".to_owned(),
            };
            routes.push(RouteConfig {
                host,
                path,
                upstream,
                compress: r.compress,
            });
        }
        if routes.is_empty() && upstreams.len() == 1 {
            // One group and no routes: everything goes to it.
            routes.push(RouteConfig {
                host: None,
                path: "/".into(),
                upstream: 0,
                compress: None,
            });
        }

        let admin = match f.admin {
            None => None,
            Some(a) => Some(AdminConfig {
                address: a
                    .address
                    .get_ref()
                    .parse()
                    .map_err(|e| self.err(a.address.span(), "admin.address", e))?,
                token: a.token.filter(|t| !t.is_empty()),
                state_file: a.state_file.map(PathBuf::from),
            }),
        };

        let runtime = match &f.runtime {
            None => RuntimeShape::ThreadPerCore,
            Some(r) => {
                RuntimeShape::parse(r.get_ref()).map_err(|p| self.err(r.span(), "runtime", p))?
            }
        };

        Ok(Config {
            workers,
            runtime,
            listeners,
            limits,
            timeouts,
            forwarding: Forwarding {
                trust_forwarded_headers: f.forwarding.trust_forwarded_headers,
                via: f
                    .forwarding
                    .via
                    .unwrap_or_else(|| defaults::VIA_NAME.to_owned()),
            },
            routes,
            upstreams,
            access_log: f.access_log,
            admin,
            compression: self.compression(f.compression)?,
            source: Some(self.path.to_owned()),
        })
    }

    fn compression(&self, c: CompressionFile) -> Result<Compression, ConfigError> {
        let d = Compression::default();
        let types = match c.types {
            None => d.types,
            Some(t) => {
                let span = t.span();
                let mut types = Vec::with_capacity(t.get_ref().len());
                for (i, ty) in t.into_inner().into_iter().enumerate() {
                    let ty = ty.trim().to_ascii_lowercase();
                    if !media_pattern_ok(&ty) {
                        return Err(self.err(
                            span,
                            format_args!("compression.types[{i}]"),
                            format_args!(
                                "{ty:?} is not type/subtype, type/*, */* or a +suffix such as +json"
                            ),
                        ));
                    }
                    types.push(ty);
                }
                types
            }
        };
        Ok(Compression {
            enabled: c.enabled.unwrap_or(d.enabled),
            level: self.bounded(c.level, "compression.level", 1, 9, d.level)?,
            min_length: self.bounded(
                c.min_length,
                "compression.min_length",
                0,
                1 << 40,
                d.min_length,
            )?,
            types,
        })
    }

    fn bounded<T: PartialOrd + Copy + fmt::Display>(
        &self,
        v: Option<Spanned<T>>,
        field: &str,
        min: T,
        max: T,
        default: T,
    ) -> Result<T, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() < min || *v.get_ref() > max => Err(self.err(
                v.span(),
                field,
                format_args!("must be between {min} and {max}"),
            )),
            Some(v) => Ok(v.into_inner()),
        }
    }

    fn duration(
        &self,
        v: Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => parse_duration(v.get_ref()).map_err(|p| self.err(v.span(), field, p)),
        }
    }
}

/// `type/subtype`, `type/*`, `*/*` or `+suffix`, in token characters.
fn media_pattern_ok(p: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if let Some(suffix) = p.strip_prefix('+') {
        return token(suffix);
    }
    match p.split_once('/') {
        Some(("*", "*")) => true,
        Some((t, "*")) => token(t),
        Some((t, s)) => token(t) && token(s),
        None => false,
    }
}

/// The number of cores, which is what one worker per core wants.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses `250ms`, `10s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}; expected e.g. 500ms, 10s, 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?}; expected ms, s, m or h"
            ));
        }
    };
    if d.is_zero() {
        return Err("duration must be greater than zero".into());
    }
    Ok(d)
}

/// Splits `host:port` for a backend given by name.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{s:?}: invalid port"))?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        return Err(format!("{s:?}: invalid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Resolves `host:port` once (re-resolution is the discovery task's job).
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr:?} resolves to no address"))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl HashOn {
    fn parse(s: &str) -> Option<HashOn> {
        match s.split_once(':') {
            Some(("header", name)) if !name.is_empty() => {
                http::HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .map(HashOn::Header)
            }
            Some(("cookie", name)) if !name.is_empty() => Some(HashOn::Cookie(name.to_owned())),
            None if s == "client" => Some(HashOn::Client),
            _ => None,
        }
    }
}

impl RuntimeShape {
    pub fn parse(s: &str) -> Result<RuntimeShape, String> {
        match s {
            "thread-per-core" => Ok(RuntimeShape::ThreadPerCore),
            "work-stealing" => Ok(RuntimeShape::WorkStealing),
            _ => Err(format!(
                "unknown runtime {s:?}; expected thread-per-core or work-stealing"
            )),
        }
    }
}

impl Policy {
    /// Parses the `balance` value (also used by `--lb`).
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "round-robin" | "rr" => Ok(Policy::RoundRobin),
            "least-conn" | "least-outstanding" => Ok(Policy::LeastConn),
            "p2c" => Ok(Policy::P2c),
            _ => s
                .strip_prefix("hash:")
                .and_then(HashOn::parse)
                .map(Policy::Hash)
                .ok_or_else(|| {
                    format!("unknown policy {s:?}; expected round-robin, least-conn, p2c, hash:header:NAME, hash:cookie:NAME or hash:client")
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("test.toml"))
    }

    const GOOD: &str = r#"
workers = 2
[[listener]]
address = "127.0.0.1:8080"

[[route]]
host = "*.example.com"
path = "/api"
upstream = "api"

[[route]]
upstream = "web"

[upstream.api]
backends = ["127.0.0.1:9001", { address = "127.0.0.1:9002", weight = 3 }]
balance = "hash:header:x-user"

[upstream.web]
backends = ["127.0.0.1:9003"]
protocol = "h2c"

[timeouts]
upstream_connect = "250ms"
"#;

    #[test]
    fn a_good_file_validates() {
        let c = check(GOOD).expect("valid");
        assert_eq!(c.workers, 2);
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.routes[0].host.as_deref(), Some("*.example.com"));
        assert_eq!(c.timeouts.upstream_connect, Duration::from_millis(250));
        let api = &c.upstreams[c.routes[0].upstream];
        assert_eq!(api.backends[1].1, 3);
        assert!(matches!(api.policy, Policy::Hash(HashOn::Header(_))));
        assert_eq!(
            c.upstreams[c.routes[1].upstream].protocol,
            UpstreamProtocol::H2c
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\nbogus = 1\n";
        let err = check(text).unwrap_err().to_string();
        assert!(err.starts_with("test.toml:3:"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_name_line_field_and_problem() {
        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [\"127.0.0.1:2\"]\nbalance = \"fastest\"\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:5:11: upstream.a.balance: unknown policy"),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"nope\"\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:2:11: listener[0].address"),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[[route]]\nupstream = \"missing\"\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.contains("4:12: route[0].upstream: no upstream named \"missing\""),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[timeouts]\nupstream_connect = \"3 parsecs\"\n";
        assert!(
            check(text)
                .unwrap_err()
                .to_string()
                .contains("timeouts.upstream_connect")
        );
    }

    #[test]
    fn compression_defaults_and_route_switch() {
        let c = check(GOOD).expect("valid");
        assert!(!c.compression.enabled, "off unless asked");
        assert_eq!(c.compression.level, 1);
        assert_eq!(c.compression.min_length, 1024);
        assert!(c.compression.types.iter().any(|t| t == "text/*"));
        assert_eq!(c.routes[0].compress, None);

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\nenabled = true\nlevel = 6\nmin_length = 0\ntypes = [\"Text/HTML\", \"+json\", \"application/*\"]\n[upstream.a]\nbackends = [\"127.0.0.1:2\"]\n[[route]]\nupstream = \"a\"\ncompress = false\n";
        let c = check(text).expect("valid");
        assert!(c.compression.enabled);
        assert_eq!(c.compression.level, 6);
        assert_eq!(c.compression.min_length, 0);
        assert_eq!(c.compression.types, ["text/html", "+json", "application/*"]);
        assert_eq!(c.routes[0].compress, Some(false));
    }

    #[test]
    fn bad_compression_values_name_their_line() {
        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\nlevel = 10\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:4:9: compression.level: must be between 1 and 9"),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\ntypes = [\"text/html\", \"json\"]\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:4:9: compression.types[1]: \"json\" is not"),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\ngzip = true\n";
        let err = check(text).unwrap_err().to_string();
        assert!(err.starts_with("test.toml:4:"), "{err}");
        assert!(err.contains("gzip"), "{err}");
    }

    #[test]
    fn media_patterns() {
        for ok in [
            "text/html",
            "text/*",
            "*/*",
            "+json",
            "application/vnd.api+json",
        ] {
            assert!(media_pattern_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "json",
            "+",
            "text/",
            "/html",
            "*/html",
            "text/ html",
            "text/h;x",
        ] {
            assert!(!media_pattern_ok(bad), "{bad}");
        }
    }

    #[test]
    fn the_shipped_example_validates() {
        let text = include_str!("../../examples/sluice.toml");
        let c = check(text).expect("engine/examples/sluice.toml must stay valid");
        assert!(c.admin.is_some());
        let api = c
            .upstreams
            .iter()
            .find(|u| u.name == "api")
            .expect("api group");
        assert_eq!(api.health.as_ref().map(|h| h.fall), Some(3));
        assert_eq!(api.passive.failures, 5);
    }

    #[test]
    fn a_listener_is_required() {
        assert!(check("").unwrap_err().to_string().contains("[[listener]]"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
