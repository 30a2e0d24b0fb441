//! `FileConfig` → [`Config`]: every rule is checked here, once, and a failure
//! names the file, line, column, field and problem.

use super::env::{EnvOverlay, Layered};
use super::error::At;
use super::file::{FileConfig, ListenerFile, RouteFile};
use super::values::parse_duration;
use super::*;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// Parses and validates `text`, read from `path` (used only in messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, None)
}

/// As [`parse`], with the `SLUICE_<SECTION>__<KEY>` variables of `env`
/// set in the parsed file first (`config::env`); an error names the
/// variable when it is in a value one set, else the file's line.
pub fn parse_layered(text: &str, path: &Path, env: &EnvOverlay) -> Result<Config, ConfigError> {
    if env.is_empty() {
        return parse(text, path);
    }
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| syntax(text, path, e))?;
    let applied = env.apply(&mut doc)?;
    let mut layered = Layered::new(text, path, applied);
    loop {
        // A Table always serializes; the error arm is for form's sake.
        let merged = toml::to_string(&doc).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: 0,
            column: 0,
            source: Box::new(<toml::de::Error as serde::de::Error>::custom(e)),
        })?;
        match parse_with(&merged, path, Some(&layered)) {
            Err(ConfigError::Shape { at, source }) => {
                if !layered.retry_as_string(&at, &mut doc) {
                    return Err(ConfigError::Shape { at, source });
                }
            }
            other => return other,
        }
    }
}

fn syntax(text: &str, path: &Path, e: toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
    ConfigError::Syntax {
        path: path.to_owned(),
        line,
        column,
        source: Box::new(e),
    }
}

fn parse_with(
    text: &str,
    path: &Path,
    layered: Option<&Layered<'_>>,
) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax(text, path, e))?;
    let v = Validator {
        text,
        path,
        layered,
    };
    // The path of every key walked, so that a type error names its field.
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = field_path(e.path());
        let source = e.into_inner();
        let span = source.span().unwrap_or(0..0);
        ConfigError::Shape {
            at: v.at(span, field),
            source: Box::new(source),
        }
    })?;
    v.config(file)
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
    /// Set when `text` is the file with variables applied: then places are
    /// told by the variables and the file's own text.
    layered: Option<&'a Layered<'a>>,
}

impl Validator<'_> {
    /// Where the value at `span`, the field `field`, is in the file.
    fn at(&self, span: Range<usize>, field: impl fmt::Display) -> At {
        match self.layered {
            Some(l) => l.at(&field.to_string()),
            None => at(self.text, self.path, span, field),
        }
    }

    /// A route's or a limit's `host`: exact or `*.suffix`, lowercased.
    fn host_pattern(
        &self,
        host: Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some(h) = host else { return Ok(None) };
        let v = h.get_ref().to_ascii_lowercase();
        let bare = v.strip_prefix("*.").unwrap_or(&v);
        if bare.is_empty() || bare.contains(['*', '/', ' ']) {
            return Err(ConfigError::RouteHost {
                at: self.at(h.span(), format_args!("{field}.host")),
            });
        }
        Ok(Some(v))
    }

    /// A route's or a limit's `path` prefix: absolute.
    fn path_prefix(
        &self,
        path: Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<String>, ConfigError> {
        match path {
            Some(p) if !p.get_ref().starts_with('/') => Err(ConfigError::RelativePath {
                at: self.at(p.span(), format_args!("{field}.path")),
            }),
            // Matched against normalised request paths (`proxy::path`).
            p => Ok(p.map(|p| crate::proxy::path::normalize(p.get_ref()).into_owned())),
        }
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
            max_request_body: self.bounded(
                f.limits.max_request_body,
                "limits.max_request_body",
                0,
                u64::MAX,
                d.max_request_body,
            )?,
            min_body_rate: self.bounded(
                f.limits.min_body_rate,
                "limits.min_body_rate",
                0,
                u32::MAX,
                d.min_body_rate,
            )?,
            min_body_rate_grace: self.duration(
                f.limits.min_body_rate_grace,
                "limits.min_body_rate_grace",
                d.min_body_rate_grace,
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
            client_body: self.duration(ft.client_body, "timeouts.client_body", t.client_body)?,
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
            upstream_body: self.duration(
                ft.upstream_body,
                "timeouts.upstream_body",
                t.upstream_body,
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

        let admin = f.admin.map(|a| self.admin(a)).transpose()?;
        let f_has_global = f.global_limits.is_some();
        // What no backend may be: our own listeners (a forwarding loop).
        let own: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.address)
            .chain(admin.as_ref().map(|a| a.address))
            .collect();

        let mut upstreams = Vec::with_capacity(f.upstream.len());
        for (name, u) in f.upstream {
            upstreams.push(self.upstream(name, u, &own, f.forwarding.backend_header)?);
        }

        let mut routes = Vec::with_capacity(f.route.len());
        for (i, r) in f.route.into_iter().enumerate() {
            routes.push(self.route(i, r, &upstreams)?);
        }
        if routes.is_empty() && upstreams.len() == 1 {
            // One group and no routes: everything goes to it.
            routes.push(RouteConfig {
                name: None,
                host: None,
                path: "/".into(),
                upstream: 0,
                compress: None,
                retry: None,
                max_request_body: None,
                timeout: None,
            });
        }

        let runtime = match &f.runtime {
            None => RuntimeShape::ThreadPerCore,
            Some(r) => RuntimeShape::parse(r.get_ref()).map_err(|source| ConfigError::Runtime {
                at: self.at(r.span(), "runtime"),
                source,
            })?,
        };

        let (instance_id, instance_header) = self.instance(f.instance_id, f.instance_header)?;
        let tracing = self.tracing(f.tracing, &listeners)?;
        let upgrade = self.upgrade(f.upgrade)?;
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
                client_cert_header: self.client_cert_header(f.forwarding.client_cert_header)?,
            },
            routes,
            upstreams,
            access_log: self.access_log(f.access_log)?,
            instance_id,
            instance_header,
            admin,
            compression: self.compression(f.compression)?,
            global_limits: f.global_limits.map(|g| self.global_limits(g)).transpose()?,
            tracing,
            upgrade,
            rate_limits: self.rate_limits(f.rate_limit, f_has_global)?,
            metrics: MetricsConfig {
                enabled: f.metrics.enabled.unwrap_or(true),
            },
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
                let (cert_at, key_at) = (
                    self.at(c.cert.span(), format_args!("{field}.tls[{j}].cert")),
                    self.at(c.key.span(), format_args!("{field}.tls[{j}].key")),
                );
                let cert = CertConfig {
                    cert: c.cert.into_inner().into(),
                    key: c.key.into_inner().into(),
                    server_names: c
                        .server_names
                        .iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                };
                check_cert(&cert, cert_at, key_at)?;
                tls.push(cert);
            }
            let client_auth =
                self.client_auth(&field, !tls.is_empty(), l.client_ca, l.client_auth)?;
            let proxy_protocol =
                self.proxy_protocol_in(&field, l.proxy_protocol, l.proxy_protocol_trusted)?;
            listeners.push(ListenerConfig {
                address,
                reuse_port,
                share_port,
                backlog,
                tls,
                client_auth,
                proxy_protocol,
                conn_limit: self.conn_limit(
                    &field,
                    l.max_connections,
                    l.max_connections_per_client,
                    l.on_limit,
                )?,
            });
        }
        if listeners.is_empty() {
            return Err(ConfigError::NoListener {
                at: self.at(0..0, "listener"),
            });
        }
        Ok(listeners)
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
        let host = self.host_pattern(r.host, &field)?;
        let path = self
            .path_prefix(r.path, &field)?
            .unwrap_or_else(|| "/".to_owned());
        let retry = match r.retry {
            Some(retry) => Some(Arc::new(self.retry(&field, retry)?)),
            None => None,
        };
        let name = match r.name {
            None => None,
            Some(n) => {
                // `_` starts the names the proxy uses itself (`_unmatched`).
                let ok = (1..=128).contains(&n.get_ref().len())
                    && !n.get_ref().starts_with('_')
                    && n.get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_graphic() || b == b' ');
                if !ok {
                    return Err(ConfigError::RouteName {
                        at: self.at(n.span(), format!("{field}.name")),
                        value: n.into_inner(),
                    });
                }
                Some(n.into_inner())
            }
        };
        Ok(RouteConfig {
            name,
            host,
            path,
            upstream,
            compress: r.compress,
            retry,
            max_request_body: r.max_request_body.map(Spanned::into_inner),
            timeout: r
                .timeout
                .map(|t| self.duration(Some(t), &format!("{field}.timeout"), Duration::ZERO))
                .transpose()?,
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

/// Reads a listener's certificate chain and key as `server::tls` will and
/// checks that the key is the leaf certificate's, so that `check`, start and
/// reload refuse a pair that would fail every handshake. `cert_at` and
/// `key_at` name where each file was given (the binary's flags use this too).
pub fn check_cert(c: &CertConfig, cert_at: At, key_at: At) -> Result<(), ConfigError> {
    let chain = pem::read_certs(&c.cert).map_err(|source| ConfigError::Pem {
        at: cert_at.clone(),
        source: Box::new(source),
    })?;
    let key = pem::read_key(&pem::provider(), &c.key).map_err(|source| ConfigError::Pem {
        at: key_at.clone(),
        source: Box::new(source),
    })?;
    pem::certified_key(chain, key, &c.key).map_err(|source| {
        let at = match source {
            pem::PemError::KeyMismatch { .. } => key_at,
            _ => cert_at,
        };
        ConfigError::Pem {
            at,
            source: Box::new(source),
        }
    })?;
    Ok(())
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

/// The number of cores, which is what one worker per core wants.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

mod access_log;
mod admin;
mod client_auth;
mod compression;
mod health;
mod limits;
mod proxy_protocol;
mod retry;
mod sticky;
#[cfg(test)]
mod tests;
mod tracing;
mod upgrade;
mod upstream;
mod upstream_tls;

pub use upgrade::upgrade_socket_problem;
