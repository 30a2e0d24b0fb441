//! A real `redis-server` on a free loopback port, killed on drop.
//!
//! If `redis-server` is not installed, the first test to need it installs it
//! with apt-get, once per process (`OnceLock`) and once per machine at a time
//! (`flock` on a lock file, since several test binaries run in parallel).

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serialises apt-get between test processes.
const APT_LOCK: &str = "/tmp/sluice-redis-install.lock";
/// How long a fresh server gets to answer PING before the test fails.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between readiness polls.
const POLL_EVERY: Duration = Duration::from_millis(20);

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server and returns once it answers PING.
    pub async fn start() -> Self {
        let binary = redis_server_binary();
        // A port freed by another process between our probe and redis's bind
        // makes redis exit; try again with a fresh port.
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let child = spawn(binary, port, dir.path());
            let mut server = Self {
                child,
                port,
                _dir: dir,
            };
            if server.wait_until_ready().await {
                return server;
            }
        }
        panic!("redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server now (the cache under test sees it vanish).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh, empty server on the same port after [`Self::kill`].
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn(redis_server_binary(), self.port, self._dir.path());
        assert!(
            self.wait_until_ready().await,
            "redis-server did not come back on port {}",
            self.port
        );
    }

    /// Polls PING until PONG; false if the process exited first.
    async fn wait_until_ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ping(self.port).await {
                return true;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

fn spawn(binary: &Path, port: u16, dir: &Path) -> Child {
    Command::new(binary)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

fn free_port() -> u16 {
    let probe = StdListener::bind("127.0.0.1:0").expect("bind :0");
    probe.local_addr().expect("local addr").port()
}

fn redis_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(found) = find_on_path("redis-server") {
            return found;
        }
        let status = Command::new("flock")
            .arg(APT_LOCK)
            .args(["sh", "-c"])
            .arg(
                "command -v redis-server >/dev/null 2>&1 || \
                 { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }",
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("run flock/apt-get to install redis-server");
        assert!(status.success(), "installing redis-server failed: {status}");
        find_on_path("redis-server").expect("redis-server on PATH after install")
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
