//! `FileConfig` → [`Config`]: every rule is checked here, once, and a failure
//! names the file, line, column, field and problem.

use super::error::{At, DurationError, HostPortError, ResolveError, UnknownPolicy, UnknownRuntime};
use super::file::{
    BackendFile, CompressionFile, FileConfig, ListenerFile, RouteFile, UpstreamFile,
};
use super::*;
use crate::balance::{HashOn, Policy};
use std::fmt;
use std::net::ToSocketAddrs;
use std::ops::Range;
use toml::Spanned;

/// Parses and validates `text`, read from `path` (used only in messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            source: Box::new(e),
        }
    };
    let de = toml::Deserializer::parse(text).map_err(syntax)?;
    // The path of every key walked, so that a type error names its field.
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = field_path(e.path());
        let source = e.into_inner();
        let span = source.span().unwrap_or(0..0);
        ConfigError::Shape {
            at: at(text, path, span, field),
            source: Box::new(source),
        }
    })?;
    Validator { text, path }.config(file)
}

/// `listener[0].address`: serde's path without the wrapper keys that
/// `toml::Spanned` deserializes through.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

fn at(text: &str, path: &Path, span: Range<usize>, field: impl fmt::Display) -> At {
    let (line, column) = line_col(text, span.start);
    At::File {
        path: path.to_owned(),
        line,
        column,
        field: field.to_string(),
    }
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    /// Where the value at `span`, the field `field`, is in the file.
    fn at(&self, span: Range<usize>, field: impl fmt::Display) -> At {
        at(self.text, self.path, span, field)
    }

    fn config(&self, f: FileConfig) -> Result<Config, ConfigError> {
        let workers = match f.workers {
            Some(w) => self.bounded(Some(w), "workers", 1, 1024, 1)?,
            None => default_workers(),
        };
        let listeners = self.listeners(f.listener)?;

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
            upstreams.push(self.upstream(name, u)?);
        }

        let mut routes = Vec::with_capacity(f.route.len());
        for (i, r) in f.route.into_iter().enumerate() {
            routes.push(self.route(i, r, &upstreams)?);
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

        let admin =
            match f.admin {
                None => None,
                Some(a) => Some(AdminConfig {
                    address: a.address.get_ref().parse().map_err(|source| {
                        ConfigError::Address {
                            at: self.at(a.address.span(), "admin.address"),
                            source,
                        }
                    })?,
                    token: a.token.filter(|t| !t.is_empty()),
                    state_file: a.state_file.map(PathBuf::from),
                }),
            };

        let runtime = match &f.runtime {
            None => RuntimeShape::ThreadPerCore,
            Some(r) => RuntimeShape::parse(r.get_ref()).map_err(|source| ConfigError::Runtime {
                at: self.at(r.span(), "runtime"),
                source,
            })?,
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

    fn listeners(&self, list: Vec<ListenerFile>) -> Result<Vec<ListenerConfig>, ConfigError> {
        let mut listeners: Vec<ListenerConfig> = Vec::with_capacity(list.len());
        for (i, l) in list.into_iter().enumerate() {
            let field = format!("listener[{i}]");
            let address = l
                .address
                .get_ref()
                .parse::<SocketAddr>()
                .map_err(|source| ConfigError::Address {
                    at: self.at(l.address.span(), format!("{field}.address")),
                    source,
                })?;
            if let Some(first) = same_address(&listeners, address) {
                return Err(ConfigError::DuplicateListener {
                    at: self.at(l.address.span(), format!("{field}.address")),
                    address,
                    first,
                });
            }
            let backlog = match l.backlog {
                Some(b) if *b.get_ref() <= 0 => {
                    return Err(ConfigError::NotPositive {
                        at: self.at(b.span(), format!("{field}.backlog")),
                    });
                }
                Some(b) => b.into_inner(),
                None => defaults::BACKLOG,
            };
            let reuse_port = l.reuse_port.unwrap_or(true);
            let share_port = match l.share_port {
                Some(s) if *s.get_ref() && !reuse_port => {
                    return Err(ConfigError::ShareWithoutReusePort {
                        at: self.at(s.span(), format!("{field}.share_port")),
                    });
                }
                Some(s) => s.into_inner(),
                None => false,
            };
            let mut tls = Vec::with_capacity(l.tls.len());
            for (j, c) in l.tls.into_iter().enumerate() {
                for (name, value) in [("cert", &c.cert), ("key", &c.key)] {
                    self.existing_file(value, format_args!("{field}.tls[{j}].{name}"))?;
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
                reuse_port,
                share_port,
                backlog,
                tls,
            });
        }
        if listeners.is_empty() {
            return Err(ConfigError::NoListener {
                at: self.at(0..0, "listener"),
            });
        }
        Ok(listeners)
    }

    fn upstream(&self, name: String, u: UpstreamFile) -> Result<UpstreamConfig, ConfigError> {
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
        let tls = if u.tls || protocol == UpstreamProtocol::H2 {
            if let Some(ca) = &u.ca_file {
                self.existing_file(ca, format_args!("{field}.ca_file"))?;
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
                return Err(ConfigError::OutOfRange {
                    at: self.at(span.clone(), format!("{bfield}.weight")),
                    min: 1,
                    max: 10_000,
                });
            }
            match addr.parse::<SocketAddr>() {
                Ok(a) => backends.push((BackendAddr(a), weight)),
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
        let health = match u.health {
            None => None,
            Some(h) => {
                let path = match h.path {
                    Some(p) if !p.get_ref().starts_with('/') => {
                        return Err(ConfigError::RelativePath {
                            at: self.at(p.span(), format!("{field}.health.path")),
                        });
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
        Ok(UpstreamConfig {
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
            name,
        })
    }

    fn route(
        &self,
        i: usize,
        r: RouteFile,
        upstreams: &[UpstreamConfig],
    ) -> Result<RouteConfig, ConfigError> {
        let field = format!("route[{i}]");
        let upstream = upstreams
            .iter()
            .position(|u| u.name == *r.upstream.get_ref())
            .ok_or_else(|| ConfigError::UnknownUpstream {
                at: self.at(r.upstream.span(), format!("{field}.upstream")),
                name: r.upstream.get_ref().clone(),
            })?;
        let host = match r.host {
            Some(h) => {
                let v = h.get_ref().to_ascii_lowercase();
                let bare = v.strip_prefix("*.").unwrap_or(&v);
                if bare.is_empty() || bare.contains(['*', '/', ' ']) {
                    return Err(ConfigError::RouteHost {
                        at: self.at(h.span(), format!("{field}.host")),
                    });
                }
                Some(v)
            }
            None => None,
        };
        let path = match r.path {
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(ConfigError::RelativePath {
                    at: self.at(p.span(), format!("{field}.path")),
                });
            }
            Some(p) => p.into_inner(),
            None => "/".to_owned(),
        };
        Ok(RouteConfig {
            host,
            path,
            upstream,
            compress: r.compress,
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
                        return Err(ConfigError::MediaType {
                            at: self.at(span, format_args!("compression.types[{i}]")),
                            pattern: ty,
                        });
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

    /// A PEM or CA file named in the config must exist when it is checked.
    fn existing_file(
        &self,
        value: &Spanned<String>,
        field: impl fmt::Display,
    ) -> Result<(), ConfigError> {
        if Path::new(value.get_ref()).is_file() {
            return Ok(());
        }
        Err(ConfigError::NoSuchFile {
            at: self.at(value.span(), field),
            file: value.get_ref().into(),
        })
    }

    fn bounded<T: PartialOrd + Copy + TryInto<u64>>(
        &self,
        v: Option<Spanned<T>>,
        field: &str,
        min: T,
        max: T,
        default: T,
    ) -> Result<T, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() < min || *v.get_ref() > max => Err(ConfigError::OutOfRange {
                at: self.at(v.span(), field),
                min: min.try_into().unwrap_or(u64::MAX),
                max: max.try_into().unwrap_or(u64::MAX),
            }),
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
            Some(v) => parse_duration(v.get_ref()).map_err(|source| ConfigError::Duration {
                at: self.at(v.span(), field),
                source,
            }),
        }
    }
}

/// The index of the listener in `listeners` that already has `address`;
/// port 0 never clashes (each such listener binds its own ephemeral port).
/// The file's listeners are checked here, and the binary checks the ones
/// its flags add.
pub fn same_address(listeners: &[ListenerConfig], address: SocketAddr) -> Option<usize> {
    if address.port() == 0 {
        return None;
    }
    listeners.iter().position(|l| l.address == address)
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
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::Number(s.to_owned()))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(DurationError::Unit(s.to_owned())),
    };
    if d.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(d)
}

/// Splits `host:port` for a backend given by name.
pub fn split_host_port(s: &str) -> Result<(String, u16), HostPortError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| HostPortError::NoPort(s.to_owned()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| HostPortError::Port(s.to_owned()))?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        return Err(HostPortError::Host(s.to_owned()));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Resolves `host:port` once (re-resolution is the discovery task's job).
pub fn resolve(addr: &str) -> Result<SocketAddr, ResolveError> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    addr.to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            addr: addr.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ResolveError::NoAddress(addr.to_owned()))
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
    pub fn parse(s: &str) -> Result<RuntimeShape, UnknownRuntime> {
        match s {
            "thread-per-core" => Ok(RuntimeShape::ThreadPerCore),
            "work-stealing" => Ok(RuntimeShape::WorkStealing),
            _ => Err(UnknownRuntime(s.to_owned())),
        }
    }
}

impl Policy {
    /// Parses the `balance` value (also used by `--lb`).
    pub fn parse(s: &str) -> Result<Policy, UnknownPolicy> {
        match s {
            "round-robin" | "rr" => Ok(Policy::RoundRobin),
            "least-conn" | "least-outstanding" => Ok(Policy::LeastConn),
            "p2c" => Ok(Policy::P2c),
            _ => s
                .strip_prefix("hash:")
                .and_then(HashOn::parse)
                .map(Policy::Hash)
                .ok_or_else(|| UnknownPolicy(s.to_owned())),
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
    fn values_of_the_wrong_type_name_their_field() {
        let err = check("\n\nworkers = \"two\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Shape { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "test.toml:3:11: workers: invalid type: string \"two\", expected usize"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[[listener]]\naddress = 5\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:4:11: listener[1].address: invalid type: integer `5`"),
            "{err}"
        );

        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [1]\n";
        let err = check(text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:4:12: upstream.a.backends[0]: "),
            "{err}"
        );

        let text = "[[listener]]\nbacklog = 5\n";
        let err = check(text).unwrap_err().to_string();
        assert_eq!(err, "test.toml:1:1: listener[0]: missing field `address`");
    }

    #[test]
    fn text_that_is_not_toml_names_its_place() {
        let err = check("workers = = 2\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().starts_with("test.toml:1:11: "), "{err}");
    }

    #[test]
    fn two_listeners_on_one_address_are_rejected_but_port_zero_may_repeat() {
        let text = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[listener]]\naddress = \"127.0.0.1:8080\"\n";
        let err = check(text).unwrap_err();
        assert!(
            matches!(err, ConfigError::DuplicateListener { first: 0, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "test.toml:4:11: listener[1].address: 127.0.0.1:8080 is already the address of listener[0]"
        );
        // Another IP or another port is another address.
        let text = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[listener]]\naddress = \"127.0.0.2:8080\"\n[[listener]]\naddress = \"127.0.0.1:8081\"\n";
        assert_eq!(check(text).expect("valid").listeners.len(), 3);
        let text =
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n";
        assert_eq!(check(text).expect("valid").listeners.len(), 2);
    }

    #[test]
    fn share_port_is_off_unless_asked_and_needs_reuse_port() {
        let c = check("[[listener]]\naddress = \"127.0.0.1:1\"\n").expect("valid");
        assert!(!c.listeners[0].share_port);
        let text = "[[listener]]\naddress = \"127.0.0.1:1\"\nshare_port = true\n";
        assert!(check(text).expect("valid").listeners[0].share_port);
        let text =
            "[[listener]]\naddress = \"127.0.0.1:1\"\nreuse_port = false\nshare_port = true\n";
        let err = check(text).unwrap_err();
        assert!(
            matches!(err, ConfigError::ShareWithoutReusePort { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("test.toml:4:14: listener[0].share_port: "),
            "{err}"
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
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert!(matches!(parse_duration("s"), Err(DurationError::Number(_))));
        assert!(matches!(parse_duration("5d"), Err(DurationError::Unit(_))));
    }
}
