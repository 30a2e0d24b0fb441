//! Settings: flags and `SLUICE_APP_*` environment variables (clap) →
//! validated [`Config`].
//!
//! Precedence: a flag beats its environment variable, which beats the
//! documented `DEFAULT_*`. `main` validates before binding and exits 64 on a
//! bad setting; [`crate::run`] only sees a validated `Config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sluice_service_common::{ClientTls, ServerTls, TlsError};

/// Listen address of the binary.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// SQLite file shared by every replica on the machine.
pub const DEFAULT_DATABASE: &str = "sqlite://data/app/blog.db";
/// The cache service (`sluice-cache`).
pub const DEFAULT_CACHE: &str = "http://127.0.0.1:8081";
/// The log service (`sluice-log`).
pub const DEFAULT_LOG: &str = "http://127.0.0.1:8082";
/// `max-age` given to the cache for rendered reads.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(30);
/// How often the publishing job runs (one period).
pub const DEFAULT_JOB_INTERVAL: Duration = Duration::from_secs(60);
/// How long a job lease lives if its holder dies without releasing it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// Session lifetime (cookie `Max-Age` and store expiry).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Log records held while the log service is slow or down; more are dropped.
pub const DEFAULT_LOG_BUFFER: usize = 4096;
/// Largest batch sent to the log service in one request.
pub const DEFAULT_LOG_BATCH: usize = 256;
/// Longest a log record waits for its batch to fill.
pub const DEFAULT_LOG_FLUSH: Duration = Duration::from_millis(200);
/// Timeout of one request to the cache or log service.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long in-flight requests get to finish once draining starts.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Where posts, authors (and by default sessions and leases) live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing, WAL mode).
    Sqlite(PathBuf),
    /// `postgres://user@host:port/db`.
    Postgres(String),
}

impl FromStr for DatabaseConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ConfigError::Database(s.to_owned()));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        Err(ConfigError::Database(s.to_owned()))
    }
}

/// A shared store for sessions or the job lease: the SQL database, or Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedStore {
    Sql,
    Redis(String),
}

impl FromStr for SharedStore {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "sql" | "database" => Ok(Self::Sql),
            _ if s.starts_with("redis://") || s.starts_with("rediss://") => {
                Ok(Self::Redis(s.to_owned()))
            }
            _ => Err(ConfigError::Store(s.to_owned())),
        }
    }
}

/// An optional HTTP service (`none` turns it off): `http://` or
/// `https://` (TLS, h2 by ALPN; trusted as `--upstream-ca` says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrl(pub Option<url::Url>);

impl FromStr for ServiceUrl {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if s.is_empty() || s == "none" {
            return Ok(Self(None));
        }
        let url = url::Url::parse(s).map_err(|_| ConfigError::Url(s.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::Url(s.to_owned()));
        }
        Ok(Self(Some(url)))
    }
}

/// The proxy admin API's bearer token. Its `Debug` does not show it, so a
/// logged config does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token; surrounding whitespace (a token file's newline) is dropped,
    /// and an empty token is none.
    pub fn new(token: &str) -> Option<AdminToken> {
        let t = token.trim();
        (!t.is_empty()).then(|| AdminToken(t.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

/// The validated runtime settings of one replica (everything but the socket).
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub sessions: SharedStore,
    pub lease: SharedStore,
    pub cache: Option<url::Url>,
    pub log: Option<url::Url>,
    /// The proxy's admin API; `None`: do not register.
    pub admin: Option<url::Url>,
    /// Sent as `Authorization: Bearer …` to the admin API.
    pub admin_token: Option<AdminToken>,
    /// Stable name of this replica; generated from the port when `None`.
    pub instance_id: Option<String>,
    /// The author seeded at start (`INSERT … ON CONFLICT DO NOTHING`).
    pub author: String,
    pub password: String,
    /// Insert the welcome posts into an empty blog at start (`seed`).
    pub seed_posts: bool,
    pub cache_max_age: Duration,
    pub job_interval: Duration,
    pub lease_ttl: Duration,
    pub session_ttl: Duration,
    pub log_buffer: usize,
    pub log_batch: usize,
    pub log_flush: Duration,
    pub service_timeout: Duration,
    pub drain_grace: Duration,
    /// After SIGTERM (and unregistering), how long to keep serving with
    /// `/ping` answering 503 before closing anything (`--shutdown-delay`).
    pub shutdown_delay: Duration,
    /// HTTPS with this certificate; `None`: plain HTTP.
    pub tls: Option<ServerTls>,
    /// How `https://` services (cache, log, admin) are trusted
    /// (`--upstream-ca`); `None`: the system trust store.
    pub service_tls: Option<ClientTls>,
}

impl Config {
    /// Defaults for everything but the database; no cache, log or proxy.
    pub fn new(database: DatabaseConfig) -> Config {
        Config {
            database,
            sessions: SharedStore::Sql,
            lease: SharedStore::Sql,
            cache: None,
            log: None,
            admin: None,
            admin_token: None,
            instance_id: None,
            author: "admin".to_owned(),
            password: "sluice".to_owned(),
            seed_posts: false,
            cache_max_age: DEFAULT_CACHE_MAX_AGE,
            job_interval: DEFAULT_JOB_INTERVAL,
            lease_ttl: DEFAULT_LEASE_TTL,
            session_ttl: DEFAULT_SESSION_TTL,
            log_buffer: DEFAULT_LOG_BUFFER,
            log_batch: DEFAULT_LOG_BATCH,
            log_flush: DEFAULT_LOG_FLUSH,
            service_timeout: DEFAULT_SERVICE_TIMEOUT,
            drain_grace: DEFAULT_DRAIN_GRACE,
            shutdown_delay: Duration::ZERO,
            tls: None,
            service_tls: None,
        }
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        for (name, d) in [
            ("job-interval", self.job_interval),
            ("lease-ttl", self.lease_ttl),
            ("session-ttl", self.session_ttl),
            ("log-flush", self.log_flush),
            ("service-timeout", self.service_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.log_buffer == 0 {
            return Err(ConfigError::Zero("log-buffer"));
        }
        if self.log_batch == 0 {
            return Err(ConfigError::Zero("log-batch"));
        }
        if self.author.is_empty() || self.password.is_empty() {
            return Err(ConfigError::Zero("author/password length"));
        }
        Ok(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--database {0:?}: expected sqlite://FILE or postgres://…")]
    Database(String),
    #[error("{0:?}: expected `sql` or redis://…")]
    Store(String),
    #[error("{0:?}: expected an http:// or https:// URL, or `none`")]
    Url(String),
    #[error("--{0} must be greater than zero")]
    Zero(&'static str),
    #[error("--admin-token-file {}: cannot read it", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--admin-token-file {}: the file is empty", .0.display())]
    EmptyTokenFile(PathBuf),
    #[error("--tls-cert/--tls-key cannot be used")]
    Tls(#[source] TlsError),
    #[error("--upstream-ca cannot be used")]
    UpstreamCa(#[source] TlsError),
}

/// Command line of the `sluice-app` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sluice-app",
    version,
    about = "Sluice demo blog app (one replica)"
)]
pub struct Cli {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "SLUICE_APP_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// `sqlite://FILE` (shared by replicas on this machine) or `postgres://…`.
    #[arg(long, env = "SLUICE_APP_DATABASE", default_value = DEFAULT_DATABASE)]
    pub database: DatabaseConfig,
    /// Session store: `sql` (the database) or `redis://…`.
    #[arg(long, env = "SLUICE_APP_SESSIONS", default_value = "sql")]
    pub sessions: SharedStore,
    /// Job lease store: `sql` or `redis://…`; defaults to the session store.
    #[arg(long, env = "SLUICE_APP_LEASE")]
    pub lease: Option<SharedStore>,
    /// Cache service URL, or `none`.
    #[arg(long, env = "SLUICE_APP_CACHE", default_value = DEFAULT_CACHE)]
    pub cache: ServiceUrl,
    /// Log service URL, or `none`.
    #[arg(long, env = "SLUICE_APP_LOG", default_value = DEFAULT_LOG)]
    pub log: ServiceUrl,
    /// The proxy's admin API to register with, e.g. http://127.0.0.1:9090.
    #[arg(long, env = "SLUICE_APP_ADMIN", default_value = "none")]
    pub admin: ServiceUrl,
    /// Bearer token for the proxy's admin API (the proxy's own variable,
    /// so one export serves both).
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<String>,
    /// A file holding the admin API's bearer token (surrounding whitespace
    /// is dropped): keeps the token out of `ps` and the environment.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Name of this replica in `X-Instance-ID` (default: generated).
    #[arg(long, env = "SLUICE_APP_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Author seeded at start.
    #[arg(long, env = "SLUICE_APP_AUTHOR", default_value = "admin")]
    pub author: String,
    /// Password of the seeded author (stored salted and hashed).
    #[arg(
        long,
        env = "SLUICE_APP_PASSWORD",
        default_value = "sluice",
        hide_env_values = true
    )]
    pub password: String,
    /// Start an empty blog with a few welcome posts by the seeded author
    /// (only when it has no posts at all; the demo turns it on).
    #[arg(long, env = "SLUICE_APP_SEED_POSTS")]
    pub seed_posts: bool,
    /// After SIGTERM, keep serving this long with /ping answering 503, so
    /// that proxies which only health-check this replica take it out of
    /// rotation before it closes connections (health interval × fall, plus
    /// one interval); 0: close at once (registered replicas are drained by
    /// the proxy when they unregister).
    #[arg(long, env = "SLUICE_APP_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// `max-age` of cached reads: e.g. 500ms, 30s, 5m.
    #[arg(long, env = "SLUICE_APP_CACHE_MAX_AGE", default_value = "30s", value_parser = parse_duration)]
    pub cache_max_age: Duration,
    /// Period of the publishing job.
    #[arg(long, env = "SLUICE_APP_JOB_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub job_interval: Duration,
    /// Lifetime of the job lease if its holder dies.
    #[arg(long, env = "SLUICE_APP_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// Session lifetime.
    #[arg(long, env = "SLUICE_APP_SESSION_TTL", default_value = "24h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Log records buffered while the log service is down (then dropped, counted).
    #[arg(long, env = "SLUICE_APP_LOG_BUFFER", default_value_t = DEFAULT_LOG_BUFFER)]
    pub log_buffer: usize,
    /// Serve HTTPS (h2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain, leaf first; needs --tls-key. Read at start only.
    #[arg(long, env = "SLUICE_APP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_APP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificates trusted for https:// service URLs: a server whose
    /// certificate is one of them (a pinned self-signed leaf) or chains to
    /// one of them (a CA; the name is checked) is trusted. Default: the
    /// bundled Mozilla roots.
    #[arg(long, env = "SLUICE_APP_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
}

impl Cli {
    /// Validates the settings into the runtime config.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let admin_token = match (&self.admin_token, &self.admin_token_file) {
            (_, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                Some(
                    AdminToken::new(&text)
                        .ok_or_else(|| ConfigError::EmptyTokenFile(path.clone()))?,
                )
            }
            (Some(token), None) => AdminToken::new(token),
            (None, None) => None,
        };
        Config {
            admin_token,
            sessions: self.sessions.clone(),
            lease: self.lease.clone().unwrap_or_else(|| self.sessions.clone()),
            cache: self.cache.0.clone(),
            log: self.log.0.clone(),
            admin: self.admin.0.clone(),
            instance_id: self.instance_id.clone(),
            author: self.author.clone(),
            password: self.password.clone(),
            seed_posts: self.seed_posts,
            shutdown_delay: self.shutdown_delay,
            cache_max_age: self.cache_max_age,
            job_interval: self.job_interval,
            lease_ttl: self.lease_ttl,
            session_ttl: self.session_ttl,
            log_buffer: self.log_buffer,
            tls: ServerTls::from_flags(self.tls_cert.as_deref(), self.tls_key.as_deref())
                .map_err(ConfigError::Tls)?,
            service_tls: match &self.upstream_ca {
                Some(path) => Some(ClientTls::load(Some(path)).map_err(ConfigError::UpstreamCa)?),
                None => None,
            },
            ..Config::new(self.database.clone())
        }
        .validate()
    }
}

/// The services' one duration grammar (`sluice_service_common::duration`).
pub use sluice_service_common::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "sluice-app",
            "--database",
            "postgres://u@127.0.0.1:5432/db",
            "--sessions",
            "redis://127.0.0.1:6379",
            "--job-interval",
            "200ms",
            "--cache",
            "none",
        ])
        .unwrap();
        let c = cli.config().unwrap();
        assert_eq!(
            c.database,
            DatabaseConfig::Postgres("postgres://u@127.0.0.1:5432/db".into())
        );
        assert_eq!(c.lease, SharedStore::Redis("redis://127.0.0.1:6379".into()));
        assert_eq!(c.job_interval, Duration::from_millis(200));
        assert!(c.cache.is_none());
        assert!(c.admin.is_none());
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn admin_token_from_a_flag_or_a_file() {
        let cli = Cli::try_parse_from(["sluice-app", "--admin-token", "s3cret"]).unwrap();
        let token = cli.config().unwrap().admin_token.expect("token");
        assert_eq!(token.expose(), "s3cret");
        assert!(
            !format!("{token:?}").contains("s3cret"),
            "Debug shows the token"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let cli = Cli::try_parse_from(["sluice-app", "--admin-token-file", file.to_str().unwrap()])
            .unwrap();
        assert_eq!(
            cli.config().unwrap().admin_token.unwrap().expose(),
            "from-file"
        );

        std::fs::write(&file, " \n").unwrap();
        let cli = Cli::try_parse_from(["sluice-app", "--admin-token-file", file.to_str().unwrap()])
            .unwrap();
        assert!(matches!(cli.config(), Err(ConfigError::EmptyTokenFile(_))));
        let missing = dir.path().join("missing");
        let cli = Cli::try_parse_from([
            "sluice-app",
            "--admin-token-file",
            missing.to_str().unwrap(),
        ])
        .unwrap();
        assert!(matches!(cli.config(), Err(ConfigError::TokenFile { .. })));
        assert!(
            Cli::try_parse_from([
                "sluice-app",
                "--admin-token",
                "a",
                "--admin-token-file",
                "b"
            ])
            .is_err(),
            "a token and a token file conflict"
        );
    }

    #[test]
    fn bad_values() {
        assert!("mysql://x".parse::<DatabaseConfig>().is_err());
        assert!("memcache://x".parse::<SharedStore>().is_err());
        assert!("ftp://x".parse::<ServiceUrl>().is_err());
        assert!("https://cache.internal:8443".parse::<ServiceUrl>().is_ok());
        let zero = Cli::try_parse_from(["sluice-app", "--job-interval", "0s"]).unwrap();
        assert!(matches!(zero.config(), Err(ConfigError::Zero(_))));
    }
}
