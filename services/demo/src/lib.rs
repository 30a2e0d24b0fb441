//! The one-command demo stack: the log service, the cache service, the
//! proxy (with its admin API) and N app replicas, all in this process on
//! loopback, with embedded defaults (SQLite under `--data`, the in-memory
//! cache) so that nothing needs installing first.
//!
//! ```text
//! start: log → cache → proxy (+admin) → replicas (each registers itself)
//! stop:  replicas (unregister: the proxy drains them; then they drain) →
//!        proxy (drains) → cache → log (flushes every buffered entry)
//! ```
//!
//! The admin API is not open: unless `--admin-token` (or
//! `SLUICE_ADMIN_TOKEN`) gives one, the stack makes a random token at
//! start, the replicas register with it, and the banner prints it.
//!
//! The same stack on shared Redis and PostgreSQL is a flag away:
//! `--database postgres://… --sessions redis://… --store redis://…`.
//!
//! `--tls` runs h2 over TLS on every hop: client → proxy (the listener
//! serves the demo's certificate, h2 by ALPN), proxy → replicas (an `h2`
//! group verifying them against the demo CA), replicas → cache and log
//! (`https://`, `--upstream-ca` the demo CA). The certificates are made at
//! start ([`certs`]). The admin API, on loopback, stays plain HTTP: the
//! proxy's admin listener has no TLS; registration goes there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod certs;
pub mod processes;

use certs::DemoCerts;
use sluice_service_common::{ClientTls, ServerTls};

/// Flags of `sluice-demo`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sluice-demo",
    about = "Sluice demo stack: proxy, two blog replicas, cache and log services"
)]
pub struct Options {
    /// Where the proxy listens (point the browser, curl or wrk here).
    #[arg(long, env = "SLUICE_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The proxy's admin API.
    #[arg(long, env = "SLUICE_DEMO_ADMIN", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
    /// The admin API's bearer token (default: a random one, made at start).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Data directory (SQLite file, log service files).
    #[arg(long, env = "SLUICE_DEMO_DATA", default_value = "data")]
    pub data: PathBuf,
    /// App replicas to start.
    #[arg(long, env = "SLUICE_DEMO_REPLICAS", default_value_t = 2)]
    pub replicas: usize,
    /// The app database: default `sqlite://{data}/app/blog.db`, or `postgres://…`.
    #[arg(long, env = "SLUICE_APP_DATABASE")]
    pub database: Option<sluice_app::DatabaseConfig>,
    /// Sessions and job lease: `sql` or `redis://…`.
    #[arg(long, env = "SLUICE_APP_SESSIONS", default_value = "sql")]
    pub sessions: sluice_app::SharedStore,
    /// Cache store: `memory` or `redis://…`.
    #[arg(long, env = "SLUICE_CACHE_STORE", default_value = "memory")]
    pub store: sluice_cache::StoreConfig,
    /// Publishing job period of the app.
    #[arg(long, default_value = "60s", value_parser = sluice_app::config::parse_duration)]
    pub job_interval: Duration,
    /// h2 over TLS on every hop, with certificates made at start under
    /// `{data}/tls/` (clients trust `ca.pem`).
    #[arg(long, env = "SLUICE_DEMO_TLS")]
    pub tls: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} settings: {reason}")]
    Config { what: &'static str, reason: String },
    #[error("starting the proxy")]
    Proxy(#[source] std::io::Error),
    #[error("making a random admin token (reading /dev/urandom)")]
    Token(#[source] std::io::Error),
    #[error("making the demo's certificates")]
    Certs(#[from] certs::CertError),
    #[error("loading the demo's certificates")]
    Tls(#[from] sluice_service_common::TlsError),
}

/// 32 random bytes from the operating system's CSPRNG, as hex: the admin
/// token when none is given. (`fastrand` is not meant for secrets, and
/// reading the device needs no new dependency.)
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A background service with its shutdown trigger.
struct Running<T> {
    name: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<T>,
}

impl<T> Running<T> {
    async fn stop(self) -> Option<T> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(v) => Some(v),
            Err(error) => {
                tracing::error!(name = self.name, %error, "task failed");
                None
            }
        }
    }
}

fn spawn<T, Fut>(name: String, run: impl FnOnce(oneshot::Receiver<()>) -> Fut) -> Running<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    Running {
        name,
        stop,
        task: tokio::spawn(run(stopped)),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { what, addr, source })
}

/// The running stack.
pub struct Stack {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// What the admin API wants in `Authorization: Bearer …`.
    pub admin_token: String,
    pub cache: SocketAddr,
    pub log: SocketAddr,
    pub replicas: Vec<SocketAddr>,
    /// The certificates, with `--tls`.
    pub certs: Option<DemoCerts>,
    apps: Vec<Running<()>>,
    server: sluice::Server,
    cache_task: Running<()>,
    log_task: Running<()>,
}

impl Stack {
    pub async fn start(options: &Options) -> Result<Stack, DemoError> {
        let certs = match options.tls {
            true => Some(DemoCerts::generate(&options.data.join("tls"))?),
            false => None,
        };
        let serve_tls = |leaf: Option<&certs::Leaf>| -> Result<Option<ServerTls>, DemoError> {
            Ok(match leaf {
                Some(leaf) => Some(ServerTls::load(&leaf.cert, &leaf.key)?),
                None => None,
            })
        };
        let log_listener = bind("the log service", ([127, 0, 0, 1], 0).into()).await?;
        let log = log_listener
            .local_addr()
            .map_err(|source| DemoError::Bind {
                what: "the log service",
                addr: ([127, 0, 0, 1], 0).into(),
                source,
            })?;
        let log_config = sluice_log::Config {
            tls: serve_tls(certs.as_ref().map(|c| &c.log))?,
            ..sluice_log::Config::new(options.data.join("log"))
        }
        .validate()
        .map_err(|e| DemoError::Config {
            what: "log",
            reason: e.to_string(),
        })?;
        let log_task = spawn("log".into(), |stopped| async move {
            if let Err(error) = sluice_log::run(log_listener, log_config, stopped).await {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "log service failed"
                );
            }
        });

        let cache_listener = bind("the cache service", ([127, 0, 0, 1], 0).into()).await?;
        let cache = cache_listener
            .local_addr()
            .map_err(|source| DemoError::Bind {
                what: "the cache service",
                addr: ([127, 0, 0, 1], 0).into(),
                source,
            })?;
        let cache_config = sluice_cache::Config {
            store: options.store.clone(),
            tls: serve_tls(certs.as_ref().map(|c| &c.cache))?,
            ..sluice_cache::Config::default()
        }
        .validate()
        .map_err(|e| DemoError::Config {
            what: "cache",
            reason: e.to_string(),
        })?;
        let cache_task = spawn("cache".into(), |stopped| async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = sluice_cache::run(cache_listener, cache_config, shutdown).await {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "cache service failed"
                );
            }
        });

        let admin_token = match options.admin_token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => random_token().map_err(DemoError::Token)?,
        };
        let mut proxy_config = sluice::Config::simple(options.listen, &[]);
        // The replicas register themselves; the proxy heartbeats each one
        // (`GET /ping`, the default) and takes a dead one out of rotation.
        proxy_config.upstreams[0].heartbeat = Some(sluice::config::HealthCheck::default());
        let mut admin_config = sluice::config::AdminConfig::new(options.admin);
        admin_config.token = Some(admin_token.clone());
        proxy_config.admin = Some(admin_config);
        proxy_config.access_log = None;
        if let Some(certs) = &certs {
            proxy_config.listeners[0].tls = vec![sluice::config::CertConfig {
                cert: certs.proxy.cert.clone(),
                key: certs.proxy.key.clone(),
                server_names: Vec::new(),
            }];
            let group = &mut proxy_config.upstreams[0];
            group.protocol = sluice::config::UpstreamProtocol::H2;
            // The replicas' certificates name 127.0.0.1, the address they
            // register: the default server name.
            group.tls = Some(sluice::config::UpstreamTls {
                verify: sluice::config::UpstreamVerify::Roots {
                    ca_file: Some(certs.ca_file.clone()),
                },
                server_name: None,
                client_cert: None,
            });
        }
        let bound = sluice::bind(&proxy_config).map_err(DemoError::Proxy)?;
        let server = sluice::Server::start(bound, &proxy_config).map_err(DemoError::Proxy)?;
        let proxy = server.addrs().first().map_or(options.listen, |a| a.0);
        let admin = server.admin_addr().unwrap_or(options.admin);

        let scheme = if certs.is_some() { "https" } else { "http" };
        let url = |addr: SocketAddr| url::Url::parse(&format!("{scheme}://{addr}")).ok();
        let admin_url = url::Url::parse(&format!("http://{admin}")).ok();
        let service_tls = match &certs {
            Some(c) => Some(ClientTls::load(Some(&c.ca_file))?),
            None => None,
        };
        let database = options.database.clone().unwrap_or_else(|| {
            sluice_app::DatabaseConfig::Sqlite(options.data.join("app").join("blog.db"))
        });
        let app_config = sluice_app::Config {
            sessions: options.sessions.clone(),
            lease: options.sessions.clone(),
            cache: url(cache),
            log: url(log),
            admin: admin_url,
            tls: serve_tls(certs.as_ref().map(|c| &c.app))?,
            service_tls,
            admin_token: sluice_app::AdminToken::new(&admin_token),
            job_interval: options.job_interval,
            // A newcomer sees content at once; the banner's curl answers 200.
            seed_posts: true,
            ..sluice_app::Config::new(database)
        }
        .validate()
        .map_err(|e| DemoError::Config {
            what: "app",
            reason: e.to_string(),
        })?;
        let mut apps = Vec::new();
        let mut replicas = Vec::new();
        for i in 0..options.replicas {
            let listener = bind("an app replica", ([127, 0, 0, 1], 0).into()).await?;
            if let Ok(addr) = listener.local_addr() {
                replicas.push(addr);
            }
            let config = sluice_app::Config {
                instance_id: Some(format!("app-{}", i + 1)),
                ..app_config.clone()
            };
            apps.push(spawn(format!("app-{}", i + 1), |stopped| async move {
                if let Err(error) = sluice_app::run(listener, config, stopped).await {
                    tracing::error!(
                        error = &error as &dyn std::error::Error,
                        "app replica failed"
                    );
                }
            }));
        }
        Ok(Stack {
            proxy,
            admin,
            admin_token,
            cache,
            log,
            replicas,
            certs,
            apps,
            server,
            cache_task,
            log_task,
        })
    }

    /// Stops everything in order: replicas (unregister, drain), proxy,
    /// cache, log.
    pub async fn stop(self) {
        let apps = self.apps.into_iter().map(Running::stop);
        futures_join_all(apps).await;
        tracing::info!("replicas stopped; draining the proxy");
        self.server.shutdown().await;
        let _ = self.cache_task.stop().await;
        let _ = self.log_task.stop().await;
        tracing::info!("demo stack stopped");
    }

    /// What to tell the user.
    pub fn banner(&self) -> String {
        // With TLS, the certificates name `localhost`; curl trusts the demo CA.
        let (p, s, curl) = match &self.certs {
            Some(c) => (
                format!("localhost:{}", self.proxy.port()),
                "https",
                format!("curl --cacert {}", c.ca_file.display()),
            ),
            None => (self.proxy.to_string(), "http", "curl".to_owned()),
        };
        let tls = match &self.certs {
            Some(c) => format!(
                "\x20 TLS:             h2 over TLS on every hop; the demo CA is {} (made at start)\n",
                c.ca_file.display()
            ),
            None => String::new(),
        };
        format!(
            "\nSluice demo stack is up.\n\
             \n  blog (browser):  {s}://{p}/posts\n\
             \x20 curl:            {curl} -s {s}://{p}/posts/1 -H 'accept: application/json'\n\
             \x20 log in:          {curl} -si {s}://{p}/login -d '{{\"author\":\"admin\",\"password\":\"sluice\"}}'\n\
             \x20 write:           {curl} -si {s}://{p}/posts -H 'cookie: sid=…' -d '{{\"title\":\"Hello\",\"body\":\"…\"}}'\n\
             \x20 load:            wrk -t2 -c16 -d10s {s}://{p}/posts\n\
             \x20 proxy admin:     curl -s http://{}/backends -H 'authorization: Bearer {}'\n\
             \x20 replicas:        {:?}\n\
             \x20 cache / log:     {s}://{} / {s}://{}\n\
             {tls}\nCtrl-C stops everything cleanly.\n",
            self.admin, self.admin_token, self.replicas, self.cache, self.log
        )
    }
}

/// Waits for every future, concurrently (replicas drain in parallel).
async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
