//! The children: how each is started (a [`Spec`], kept for restarts), how
//! its readiness is probed, and the [`Cluster`] that starts them in order,
//! kills, restarts and stops them.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::shared::{Postgres, Redis};
use super::{LaunchError, Plan, fix_port, free_port, http_status, proxy_config};

/// How long a child gets to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(50);
/// How long a SIGTERM'd child gets to drain before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// A command line, kept so that a restart runs the same one.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl Spec {
    pub(crate) fn new(name: &str, program: &Path) -> Spec {
        Spec {
            name: name.to_owned(),
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub(crate) fn arg(&mut self, a: impl Into<OsString>) {
        self.args.push(a.into());
    }

    pub(crate) fn args<'a>(&mut self, args: impl IntoIterator<Item = &'a str>) {
        self.args.extend(args.into_iter().map(OsString::from));
    }

    fn env(&mut self, key: &str, value: impl Into<String>) {
        self.env.push((key.to_owned(), value.into()));
    }
}

/// How to tell a child is ready.
#[derive(Clone, Debug)]
enum Probe {
    /// `GET path` answers 200.
    Http(SocketAddr, &'static str),
    Redis(u16),
    Postgres(Box<Postgres>),
}

/// One child process and how to start it again.
pub struct Child {
    spec: Spec,
    probe: Probe,
    /// App replicas: `--instance-id`, with `.N` for the N-th restart so the
    /// log service's `source` tells one process's entries from the next's.
    instance: Option<String>,
    /// Starts so far.
    pub generation: u32,
    process: Option<std::process::Child>,
}

impl Child {
    /// The instance id of the running app process.
    pub fn instance(&self) -> Option<String> {
        let base = self.instance.as_ref()?;
        let generation = self.generation.saturating_sub(1);
        Some(match generation {
            0 => base.clone(),
            n => format!("{base}.{n}"),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(std::process::Child::id)
    }
}

/// The running stack.
pub struct Cluster {
    pub plan: Plan,
    /// Both proxies' listeners, then their admin APIs.
    pub proxies: [SocketAddr; 2],
    pub admins: [SocketAddr; 2],
    pub apps: Vec<SocketAddr>,
    pub caches: Vec<SocketAddr>,
    pub log: SocketAddr,
    /// The Redis in use (given or started), if any.
    pub redis: Option<String>,
    /// The PostgreSQL started by the launcher, if any.
    pub postgres: Option<Postgres>,
    /// The database URL the apps use.
    pub database: String,
    /// What fell back to an embedded default, for the banner.
    pub notes: Vec<String>,
    /// Whether the proxy binary supports `--takeover` (fd handover).
    pub takeover: bool,
    children: Vec<Child>,
    /// The process group leader: SIGKILLs the group when its stdin closes.
    watchdog: std::process::Child,
    logs: PathBuf,
}

impl Cluster {
    /// Starts everything in order and returns once every piece is ready.
    pub fn start(plan: Plan) -> Result<Cluster, LaunchError> {
        for bin in ["sluice", "sluice-app", "sluice-cache", "sluice-log"] {
            let path = plan.bin_dir.join(bin);
            if !path.is_file() {
                return Err(LaunchError::MissingBinary(path));
            }
        }
        let logs = plan.data.join("logs");
        std::fs::create_dir_all(&logs).map_err(LaunchError::io("creating the logs dir"))?;
        let watchdog = Command::new("sh")
            .args(["-c", "read _ignored; kill -KILL 0"])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(LaunchError::io("starting the watchdog (sh)"))?;
        let port = |what: &str| free_port().map_err(LaunchError::io(format!("a port for {what}")));
        let mut cluster = Cluster {
            proxies: [
                fix_port(plan.listen[0]).map_err(LaunchError::io("a proxy port"))?,
                fix_port(plan.listen[1]).map_err(LaunchError::io("a proxy port"))?,
            ],
            admins: [
                fix_port(plan.admin[0]).map_err(LaunchError::io("an admin port"))?,
                fix_port(plan.admin[1]).map_err(LaunchError::io("an admin port"))?,
            ],
            apps: Vec::new(),
            caches: Vec::new(),
            log: SocketAddr::from(([127, 0, 0, 1], port("the log service")?)),
            redis: plan.redis.clone(),
            postgres: None,
            database: String::new(),
            notes: Vec::new(),
            takeover: false,
            children: Vec::new(),
            watchdog,
            logs,
            plan,
        };
        cluster.start_shared()?;
        cluster.start_services()?;
        Ok(cluster)
    }

    fn start_shared(&mut self) -> Result<(), LaunchError> {
        let plan = self.plan.clone();
        if self.redis.is_none() {
            match Redis::binary().filter(|_| plan.start_shared) {
                Some(binary) => {
                    let port = free_port().map_err(LaunchError::io("a port for redis"))?;
                    let dir = plan.data.join("redis");
                    std::fs::create_dir_all(&dir).map_err(LaunchError::io("the redis dir"))?;
                    self.add(Redis::spec(&binary, port, &dir), Probe::Redis(port), None)?;
                    self.redis = Some(format!("redis://127.0.0.1:{port}"));
                }
                None => self.notes.push(
                    "no Redis (--redis URL, or install redis-server): sessions and the job lease in SQL, caches in memory".into(),
                ),
            }
        }
        self.database = match (
            &plan.postgres,
            Postgres::bin_dir().filter(|_| plan.start_shared),
        ) {
            (Some(url), _) => url.clone(),
            (None, Some(bin)) => {
                let port = free_port().map_err(LaunchError::io("a port for postgres"))?;
                let pg = Postgres::init(bin, &plan.data, port)?;
                let url = pg.url();
                self.add(pg.spec(), Probe::Postgres(Box::new(pg.clone())), None)?;
                self.postgres = Some(pg);
                url
            }
            (None, None) => {
                self.notes.push(
                    "no PostgreSQL (--postgres URL, or install postgresql): posts in SQLite under the data dir".into(),
                );
                format!(
                    "sqlite://{}",
                    plan.data.join("app").join("blog.db").display()
                )
            }
        };
        Ok(())
    }

    fn start_services(&mut self) -> Result<(), LaunchError> {
        let plan = self.plan.clone();
        let bin = |name: &str| plan.bin_dir.join(name);
        let mut log = Spec::new("log", &bin("sluice-log"));
        log.arg("--listen");
        log.arg(self.log.to_string());
        log.arg("--dir");
        log.arg(plan.data.join("log"));
        self.add(log, Probe::Http(self.log, "/ready"), None)?;

        for i in 1..=plan.caches {
            let addr = SocketAddr::from((
                [127, 0, 0, 1],
                free_port().map_err(LaunchError::io("a cache port"))?,
            ));
            let mut cache = Spec::new(&format!("cache-{i}"), &bin("sluice-cache"));
            cache.arg("--listen");
            cache.arg(addr.to_string());
            cache.arg("--store");
            cache.arg(
                self.redis
                    .as_ref()
                    .map_or("memory".into(), |r| format!("{r}/0")),
            );
            self.add(cache, Probe::Http(addr, "/ready"), None)?;
            self.caches.push(addr);
        }

        let token_file = plan.data.join("admin-token");
        write_private(&token_file, &plan.admin_token)?;
        for i in 1..=plan.apps {
            let addr = SocketAddr::from((
                [127, 0, 0, 1],
                free_port().map_err(LaunchError::io("an app port"))?,
            ));
            let mut app = Spec::new(&format!("app-{i}"), &bin("sluice-app"));
            app.arg("--listen");
            app.arg(addr.to_string());
            app.env("SLUICE_APP_DATABASE", &self.database);
            let sessions = self
                .redis
                .as_ref()
                .map_or("sql".into(), |r| format!("{r}/1"));
            app.env("SLUICE_APP_SESSIONS", sessions);
            // The lease lives with the job's `job_runs` rows in the
            // database: a Redis outage does not stop the job.
            app.args(["--lease", "sql", "--admin", "none"]);
            if let Some(cache) = self.caches.get((i - 1) % self.caches.len().max(1)) {
                app.arg("--cache");
                app.arg(format!("http://{cache}"));
            }
            app.arg("--log");
            app.arg(format!("http://{}", self.log));
            app.arg("--job-interval");
            app.arg(format!("{}ms", plan.job_interval.as_millis()));
            app.arg("--lease-ttl");
            app.arg(format!("{}ms", plan.lease_ttl.as_millis()));
            // The proxies only health-check the apps (fall = 2): on SIGTERM
            // an app serves on with /ping failing for three intervals, so
            // both proxies take it out before it closes a pooled connection.
            app.arg("--shutdown-delay");
            app.arg(format!(
                "{}ms",
                plan.health_interval.as_millis().max(100) * 3
            ));
            // Seeding lands with the one-process demo's; pass it on once
            // the app knows it.
            if plan.seed_posts && help_has(&bin("sluice-app"), "--seed-posts") {
                app.arg("--seed-posts");
            }
            self.add(app, Probe::Http(addr, "/ready"), Some(format!("app-{i}")))?;
            self.apps.push(addr);
        }

        let config = plan.data.join("sluice.toml");
        std::fs::write(
            &config,
            proxy_config(&self.apps, &token_file, plan.health_interval),
        )
        .map_err(LaunchError::io(format!("writing {}", config.display())))?;
        self.takeover = help_has(&bin("sluice"), "--takeover");
        for i in 0..2 {
            let mut proxy = Spec::new(&format!("proxy-{}", i + 1), &bin("sluice"));
            proxy.arg("--config");
            proxy.arg(&config);
            // One file for both; the listener and admin ports differ.
            proxy.env("SLUICE_LISTENER__0__ADDRESS", self.proxies[i].to_string());
            proxy.env("SLUICE_ADMIN__ADDRESS", self.admins[i].to_string());
            if self.takeover {
                proxy.arg("--upgrade-socket");
                proxy.arg(plan.data.join(format!("proxy-{}.upgrade.sock", i + 1)));
            }
            self.add(proxy, Probe::Http(self.admins[i], "/readyz"), None)?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        spec: Spec,
        probe: Probe,
        instance: Option<String>,
    ) -> Result<(), LaunchError> {
        self.children.push(Child {
            spec,
            probe,
            instance,
            generation: 0,
            process: None,
        });
        let name = self
            .children
            .last()
            .map(|c| c.spec.name.clone())
            .unwrap_or_default();
        self.start_child(&name)
    }

    fn child_mut(&mut self, name: &str) -> Result<&mut Child, LaunchError> {
        self.children
            .iter_mut()
            .find(|c| c.spec.name == name)
            .ok_or_else(|| LaunchError::Io {
                what: format!("no child named {name}"),
                source: std::io::ErrorKind::NotFound.into(),
            })
    }

    pub fn child(&self, name: &str) -> Option<&Child> {
        self.children.iter().find(|c| c.spec.name == name)
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Every app process's instance id so far (restarts included).
    pub fn instances(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.children {
            if let Some(base) = &c.instance {
                for g in 0..c.generation {
                    out.push(if g == 0 {
                        base.clone()
                    } else {
                        format!("{base}.{g}")
                    });
                }
            }
        }
        out
    }

    /// Spawns `name` (again) and waits until it is ready.
    pub fn start_child(&mut self, name: &str) -> Result<(), LaunchError> {
        let pgid = self.watchdog.id();
        let log = self.log_file(name);
        let child = self.child_mut(name)?;
        child.generation += 1;
        let process = spawn(&child.spec, child.instance().as_deref(), &[], pgid, &log)?;
        child.process = Some(process);
        self.wait_ready(name)
    }

    /// Starts a successor of proxy `name` with `--takeover` (it takes the
    /// listening sockets over the upgrade socket) and returns the old
    /// process, which drains and exits on its own.
    pub fn takeover(&mut self, name: &str) -> Result<std::process::Child, LaunchError> {
        let pgid = self.watchdog.id();
        let log = self.log_file(name);
        let child = self.child_mut(name)?;
        child.generation += 1;
        let old = child.process.take();
        let new = spawn(&child.spec, None, &["--takeover"], pgid, &log)?;
        child.process = Some(new);
        self.wait_ready(name)?;
        old.ok_or_else(|| LaunchError::Io {
            what: format!("{name} was not running"),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    fn wait_ready(&mut self, name: &str) -> Result<(), LaunchError> {
        let log = self.log_file(name);
        let token = self.plan.admin_token.clone();
        let child = self.child_mut(name)?;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(p) = child.process.as_mut()
                && let Ok(Some(status)) = p.try_wait()
            {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
                return Err(LaunchError::Exited {
                    name: name.to_owned(),
                    status,
                    log,
                    tail,
                });
            }
            let ready = match &child.probe {
                Probe::Http(addr, path) => http_status(*addr, path, Some(&token)) == Some(200),
                Probe::Redis(port) => Redis::ping(*port),
                Probe::Postgres(pg) => pg.ready(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LaunchError::NotReady {
                    name: name.to_owned(),
                    secs: READY_DEADLINE.as_secs(),
                    log,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL, as `kill -9` would, and reap it.
    pub fn kill(&mut self, name: &str) -> Result<(), LaunchError> {
        let child = self.child_mut(name)?;
        if let Some(mut p) = child.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after a deadline).
    pub fn terminate(&mut self, name: &str) -> Result<Option<ExitStatus>, LaunchError> {
        let postgres = self.postgres.clone();
        let child = self.child_mut(name)?;
        let Some(mut p) = child.process.take() else {
            return Ok(None);
        };
        if matches!(child.probe, Probe::Postgres(_))
            && let Some(pg) = postgres
        {
            pg.stop();
        } else {
            signal(p.id(), "TERM");
        }
        Ok(wait_for(&mut p, STOP_DEADLINE))
    }

    /// Stops everything, the entry points first: proxies, apps, caches,
    /// log, then Redis and PostgreSQL.
    pub fn stop(mut self) {
        let order = ["proxy-", "app-", "cache-", "log", "redis", "postgres"];
        for prefix in order {
            let names: Vec<String> = self
                .children
                .iter()
                .filter(|c| c.spec.name.starts_with(prefix))
                .map(|c| c.spec.name.clone())
                .collect();
            // Replicas of one kind drain together.
            let mut waiting = Vec::new();
            for name in names {
                if let Ok(child) = self.child_mut(&name)
                    && let Some(p) = child.process.take()
                {
                    if !matches!(child.probe, Probe::Postgres(_)) {
                        signal(p.id(), "TERM");
                    }
                    waiting.push(p);
                }
            }
            if prefix == "postgres"
                && let Some(pg) = &self.postgres
            {
                pg.stop();
            }
            for mut p in waiting {
                wait_for(&mut p, STOP_DEADLINE);
            }
        }
    }

    /// What to tell the user.
    pub fn banner(&self) -> String {
        let [a, b] = self.proxies;
        let mut s = format!(
            "\nSluice multi-process stack is up.\n\
             \n  proxies:         http://{a}/posts   http://{b}/posts\n\
             \x20 admin APIs:      http://{}   http://{}   (token in {})\n\
             \x20 apps:            {:?}\n\
             \x20 caches:          {:?}\n\
             \x20 log service:     http://{}\n\
             \x20 database:        {}\n\
             \x20 redis:           {}\n\
             \x20 process logs:    {}\n",
            self.admins[0],
            self.admins[1],
            self.plan.data.join("admin-token").display(),
            self.apps,
            self.caches,
            self.log,
            self.database,
            self.redis.as_deref().unwrap_or("none"),
            self.logs.display(),
        );
        for note in &self.notes {
            s.push_str(&format!("  note:            {note}\n"));
        }
        s.push_str("\nCtrl-C stops everything: proxies drain, then apps, caches, log, Redis, PostgreSQL.\n");
        s
    }
}

impl Drop for Cluster {
    /// Whatever is still running goes now: closing the watchdog's stdin
    /// makes it SIGKILL the group.
    fn drop(&mut self) {
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
        for c in &mut self.children {
            if let Some(mut p) = c.process.take() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }
}

fn spawn(
    spec: &Spec,
    instance: Option<&str>,
    extra: &[&str],
    pgid: u32,
    log: &Path,
) -> Result<std::process::Child, LaunchError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(LaunchError::io(format!("opening {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(LaunchError::io("dup of a log file"))?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args).args(extra);
    if let Some(id) = instance {
        cmd.args(["--instance-id", id]);
    }
    // Nothing of ours leaks in (an exported SLUICE_CONFIG would change the
    // proxies' config); the spec sets what each child needs.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("SLUICE_")) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(i32::try_from(pgid).unwrap_or(0))
        .spawn()
        .map_err(LaunchError::io(format!("starting {}", spec.name)))
}

/// `kill -SIG pid` (the std library only sends SIGKILL; `libc::kill` is
/// `unsafe`, which the workspace forbids).
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_for(p: &mut std::process::Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Ok(Some(status)) = p.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    let _ = p.kill();
    p.wait().ok()
}

fn write_private(path: &Path, text: &str) -> Result<(), LaunchError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(LaunchError::io(format!("writing {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(LaunchError::io(format!("writing {}", path.display())))
}

/// Whether `binary --help` lists `flag` (features that land separately).
fn help_has(binary: &Path, flag: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}
