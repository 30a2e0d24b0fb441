//! The shared state's servers: a real `redis-server` and a real PostgreSQL
//! from the distribution's binaries, when installed, on fixed loopback
//! ports, as children of the launcher (so a drill can kill and restart
//! them like any other piece).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::LaunchError;
use super::children::Spec;

/// How a Redis started by the launcher runs: persistence on (append-only
/// file, fsync on every write), so sessions survive a kill -9 as they do on
/// a production Redis with `appendonly yes`.
pub struct Redis;

impl Redis {
    /// `redis-server` on `PATH` (or /usr/bin, /usr/sbin), if installed.
    pub fn binary() -> Option<PathBuf> {
        find_on_path("redis-server")
    }

    pub(crate) fn spec(binary: &Path, port: u16, dir: &Path) -> Spec {
        let mut spec = Spec::new("redis", binary);
        spec.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
        ]);
        spec.arg(dir);
        spec
    }

    /// Whether it answers PING.
    pub fn ping(port: u16) -> bool {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

/// A PostgreSQL cluster made with `initdb` (trust auth on loopback, user
/// `postgres`). As root, `initdb` and `postgres` run as the `postgres` user
/// (`runuser`), and the cluster lives in a directory that user owns.
#[derive(Clone, Debug)]
pub struct Postgres {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub as_postgres: bool,
}

impl Postgres {
    /// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `postgres`.
    pub fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Makes the cluster under `root/postgres` (once: kept across restarts).
    pub fn init(bin: PathBuf, root: &Path, port: u16) -> Result<Postgres, LaunchError> {
        let data = &root.join("postgres");
        let as_postgres = is_root();
        if as_postgres {
            // The cluster gets a dir of its own that the `postgres` user
            // owns, under a data dir it can enter.
            std::fs::create_dir_all(data).map_err(LaunchError::io("creating the postgres dir"))?;
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(data)
                .status()
                .map_err(LaunchError::io("chown"))?;
            if !status.success() {
                return Err(LaunchError::Postgres(format!("chown failed: {status}")));
            }
            grant_traverse(root)?;
        }
        let pg = Postgres {
            bin,
            data: data.to_owned(),
            port,
            as_postgres,
        };
        if !pg.cluster().join("PG_VERSION").is_file() {
            let out = pg
                .command("initdb")
                .arg("-D")
                .arg(pg.cluster())
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .stdin(Stdio::null())
                .output()
                .map_err(LaunchError::io("running initdb"))?;
            if !out.status.success() {
                return Err(LaunchError::Postgres(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        Ok(pg)
    }

    fn cluster(&self) -> PathBuf {
        self.data.join("cluster")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub(crate) fn spec(&self) -> Spec {
        let postgres = self.bin.join("postgres");
        let mut spec = if self.as_postgres {
            let mut s = Spec::new("postgres", Path::new("runuser"));
            s.args(["-u", "postgres", "--"]);
            s.arg(&postgres);
            s
        } else {
            Spec::new("postgres", &postgres)
        };
        spec.arg("-D");
        spec.arg(self.cluster());
        spec.args(["-p", &self.port.to_string(), "-k"]);
        spec.arg(&self.data);
        spec.args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ]);
        spec
    }

    /// Whether it accepts connections (`pg_isready`).
    pub fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A fast shutdown (`pg_ctl stop -m fast`): the server and its backends.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.cluster())
            .args(["stop", "-m", "fast", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// One query's rows, unaligned (`psql -At`), fields split on `|`.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, LaunchError> {
        let psql = [self.bin.join("psql"), PathBuf::from("/usr/bin/psql")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| LaunchError::Postgres("psql not found".into()))?;
        let out = Command::new(psql)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
            ])
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(LaunchError::io("running psql"))?;
        if !out.status.success() {
            return Err(LaunchError::Postgres(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect())
    }
}

/// Lets the `postgres` user through to `dir`: `o+x` (enter, not list) on
/// the launcher's own data dir (`root`, a 0700 temp dir for the drills),
/// and an error naming the first directory above it that others cannot
/// enter (changing those is not ours to do).
fn grant_traverse(root: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(root) {
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o001))
                .map_err(LaunchError::io(format!("chmod o+x {}", root.display())))?;
        }
    }
    for parent in root.ancestors().skip(1) {
        let closed = std::fs::metadata(parent)
            .map(|m| m.permissions().mode() & 0o001 == 0)
            .unwrap_or(true);
        if closed {
            return Err(LaunchError::Postgres(format!(
                "the postgres user cannot enter {} (no o+x): use a --data dir it can reach, or --postgres URL",
                parent.display()
            )));
        }
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
