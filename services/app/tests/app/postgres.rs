//! A real PostgreSQL server on a free loopback port, stopped on drop.
//!
//! Uses the Debian `postgresql` package's binaries
//! (`/usr/lib/postgresql/*/bin`); if they are missing, the first test to
//! need them installs the package with apt-get, once per process
//! (`OnceLock`) and once per machine at a time (`flock`). `initdb` refuses to
//! run as root, so as root the cluster is made and run as the `postgres`
//! user (`runuser`), in a temp dir handed to that user.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection;

/// Serialises apt-get between test processes.
const APT_LOCK: &str = "/tmp/sluice-postgres-install.lock";
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(50);

pub struct Postgres {
    child: Child,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub async fn start() -> Postgres {
        let bin = bin_dir().to_owned();
        let as_postgres = is_root();
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the postgres temp dir failed");
        }
        let data = dir.path().join("data");
        let status = command(as_postgres, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed: {status}");
        let port = free_port();
        let child = spawn(as_postgres, &bin, &data, dir.path(), port);
        let mut server = Postgres {
            child,
            port,
            bin,
            data,
            as_postgres,
            _dir: dir,
        };
        // A port taken by another process between probe and bind makes
        // postgres exit: try again on a fresh one.
        for _ in 0..5 {
            if server.wait_until_ready().await {
                return server;
            }
            server.port = free_port();
            server.child = spawn(
                as_postgres,
                &server.bin,
                &server.data,
                server._dir.path(),
                server.port,
            );
        }
        panic!("postgres did not start");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Polls a real connection (TCP accepts before the server is ready).
    async fn wait_until_ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(conn) = sqlx::PgConnection::connect(&self.url()).await {
                let _ = conn.close().await;
                return true;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("postgres on port {} did not accept connections", self.port);
    }

    fn stop(&mut self) {
        let _ = command(self.as_postgres, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(as_postgres: bool, bin: &Path, data: &Path, socket_dir: &Path, port: u16) -> Child {
    command(as_postgres, &bin.join("postgres"))
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(socket_dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "max_connections=200"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn postgres")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let probe = StdListener::bind("127.0.0.1:0").expect("bind :0");
    probe.local_addr().expect("local addr").port()
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(found) = find_bin_dir() {
            return found;
        }
        let status = Command::new("flock")
            .arg(APT_LOCK)
            .args(["sh", "-c"])
            .arg(
                "ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
                 { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }",
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("run flock/apt-get to install postgresql");
        assert!(status.success(), "installing postgresql failed: {status}");
        find_bin_dir().expect("postgresql binaries after install")
    })
}
