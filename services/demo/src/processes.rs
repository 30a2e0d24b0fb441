//! `sluice-demo --processes`: the stack as separate OS processes, as it runs
//! in production: two proxy replicas with one config file (each its own
//! listener and admin port), three app replicas, two cache replicas on one
//! Redis, PostgreSQL and the log service.
//!
//! ```text
//! start: redis, postgres → log → caches → apps (wait /ready) → proxies (wait /readyz)
//! stop:  proxies (SIGTERM: drain) → apps (SIGTERM: drain) → caches → log → redis, postgres
//! ```
//!
//! The binaries are the ones next to the running executable
//! (`current_exe()`'s directory: `target/release/` or `target/debug/`).
//! Redis and PostgreSQL are the URLs given, else real servers started from
//! the distribution's binaries (`redis-server`, `/usr/lib/postgresql/*/bin`),
//! else the embedded defaults (SQLite posts, sessions and lease in SQL, the
//! caches in memory), and the banner says which.
//!
//! No orphans: every child joins the process group of a watchdog (`sh`)
//! that reads a pipe from this process; when this process dies, however it
//! dies (kill -9 included), the pipe closes, `read` returns and the
//! watchdog SIGKILLs the whole group. (`PR_SET_PDEATHSIG` would need
//! `unsafe`, which the workspace forbids.) Each child's stdout and stderr
//! go to `{data}/logs/NAME.log`.
//!
//! The proxies find the apps from the config file (`backends = [...]`, fixed
//! ports chosen at start) with active health checks, exactly as the compose
//! file does with DNS: no app registers anywhere, so both replicas see the
//! same backends.

mod children;
mod shared;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use children::{Child, Cluster};
pub use shared::{Postgres, Redis};

/// What to start, and how (the drills use shorter periods than the demo).
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where `sluice`, `sluice-app`, `sluice-cache` and `sluice-log` are.
    pub bin_dir: PathBuf,
    /// Logs, config, the log service's files, Redis's and PostgreSQL's data.
    pub data: PathBuf,
    /// The two proxies' listeners (port 0: a free one, fixed for restarts).
    pub listen: [SocketAddr; 2],
    /// The two proxies' admin listeners.
    pub admin: [SocketAddr; 2],
    /// `redis://…` to use instead of starting one.
    pub redis: Option<String>,
    /// `postgres://…` to use instead of starting one.
    pub postgres: Option<String>,
    /// Start redis-server / postgres when no URL is given and they are installed.
    pub start_shared: bool,
    pub apps: usize,
    pub caches: usize,
    /// The app's publishing job period.
    pub job_interval: Duration,
    /// The job lease's lifetime if its holder dies.
    pub lease_ttl: Duration,
    /// The proxies' active health check interval.
    pub health_interval: Duration,
    /// The admin API token (both proxies).
    pub admin_token: String,
    /// Start the apps with `--seed-posts` (an empty blog gets a few posts).
    pub seed_posts: bool,
}

impl Plan {
    /// The demo's defaults: binaries next to this executable, proxies on
    /// 8080/8081 with admin APIs on 9090/9091.
    pub fn new(data: PathBuf, admin_token: String) -> std::io::Result<Plan> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe
            .parent()
            .map(Path::to_owned)
            .ok_or_else(|| std::io::Error::other("the executable has no directory"))?;
        Ok(Plan {
            bin_dir,
            data,
            listen: [([127, 0, 0, 1], 8080).into(), ([127, 0, 0, 1], 8081).into()],
            admin: [([127, 0, 0, 1], 9090).into(), ([127, 0, 0, 1], 9091).into()],
            redis: None,
            postgres: None,
            start_shared: true,
            apps: 3,
            caches: 2,
            job_interval: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(30),
            health_interval: Duration::from_secs(2),
            admin_token,
            seed_posts: true,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{}: not found (build it first: cargo build [--release] -p sluice -p sluice-app -p sluice-cache -p sluice-log)", .0.display())]
    MissingBinary(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} did not become ready within {secs}s (see {})", log.display())]
    NotReady {
        name: String,
        secs: u64,
        log: PathBuf,
    },
    #[error("{name} exited during start ({status}); see {}: {tail}", log.display())]
    Exited {
        name: String,
        status: std::process::ExitStatus,
        log: PathBuf,
        /// The log's last lines: the reason, even once the data dir is gone.
        tail: String,
    },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

impl LaunchError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
        let what = what.into();
        move |source| LaunchError::Io { what, source }
    }
}

/// A free loopback port now (the launcher fixes every port at start so a
/// restarted process comes back where its peers expect it).
pub(crate) fn free_port() -> std::io::Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}

/// `addr` with port 0 replaced by a free one.
pub(crate) fn fix_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    Ok(SocketAddr::new(addr.ip(), free_port()?))
}

/// One blocking `GET path` over a fresh connection: the status, or `None`
/// when nothing answered in time. Readiness probes only.
pub fn http_status(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<u16> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{auth}connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// 32 random bytes from the operating system's CSPRNG, as hex: the admin
/// token when none is given.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Both proxies' config: the apps as static backends with active health
/// checks, retries of idempotent requests on another app, and a retry
/// budget that covers one replica's share of the load while it is detected.
pub(crate) fn proxy_config(apps: &[SocketAddr], token_file: &Path, health: Duration) -> String {
    let backends: Vec<String> = apps.iter().map(|a| format!("\"{a}\"")).collect();
    let interval = health.as_millis().max(100);
    format!(
        "# Written by sluice-demo --processes; both proxy replicas read it\n\
         # (listener and admin addresses come from SLUICE_LISTENER__0__ADDRESS\n\
         # and SLUICE_ADMIN__ADDRESS).\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"{token}\"\n\n\
         [timeouts]\nshutdown_grace = \"10s\"\n\n\
         [[route]]\nupstream = \"default\"\n\n\
         [route.retry]\nattempts = 3\nstatuses = [502, 503, 504]\n\n\
         [upstream.default]\nbackends = [{backends}]\nbalance = \"round-robin\"\n\n\
         [upstream.default.health]\npath = \"/ping\"\ninterval = \"{interval}ms\"\ntimeout = \"{timeout}ms\"\nrise = 1\nfall = 2\n\n\
         [upstream.default.retry_budget]\nratio = 1.0\nmin_per_second = 100\nttl = \"10s\"\n",
        token = token_file.display(),
        backends = backends.join(", "),
        timeout = (interval / 2).max(50),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated file is a valid proxy config: the apps are the
    /// group's backends, checked by `/ping`, with GET retries on.
    #[test]
    fn the_proxy_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin-token");
        std::fs::write(&token, "0123456789abcdef0123456789abcdef").unwrap();
        let apps: Vec<SocketAddr> = vec![
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7002".parse().unwrap(),
            "127.0.0.1:7003".parse().unwrap(),
        ];
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, proxy_config(&apps, &token, Duration::from_secs(1))).unwrap();
        let config = sluice::Config::load(&file).expect("the proxy accepts it");
        let backends = format!("{:?}", config.upstreams[0]);
        for app in &apps {
            assert!(backends.contains(&app.to_string()), "{backends}");
        }
    }
}
