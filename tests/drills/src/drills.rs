//! The drills themselves: what each disrupts, in order, under the load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_demo::processes::{Cluster, Plan};
use tokio::time::Instant;

use crate::load::{self, Load, Targets};
use crate::report::Report;
use crate::{Settings, verify};

/// One drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drill {
    /// kill -9 one proxy replica, restart it.
    ProxyKill,
    /// kill -9 one app replica, restart it.
    AppKill,
    /// kill -9 one cache replica, restart it.
    CacheKill,
    /// kill -9 Redis for a few seconds, restart it.
    RedisKill,
    /// SIGTERM, wait, start: every app replica, one by one.
    RollingRestart,
    /// Each proxy replaced by a successor started with `--takeover`.
    ProxyUpgrade,
}

/// In the order they run on one stack. Redis goes last: while the apps'
/// Redis clients recover (see the README's "Scale drills"), a drill after
/// it would fail for the Redis drill's reason, not its own.
pub const ALL: [Drill; 6] = [
    Drill::ProxyKill,
    Drill::AppKill,
    Drill::CacheKill,
    Drill::RollingRestart,
    Drill::ProxyUpgrade,
    Drill::RedisKill,
];

impl Drill {
    pub fn name(self) -> &'static str {
        match self {
            Drill::ProxyKill => "proxy-kill",
            Drill::AppKill => "app-kill",
            Drill::CacheKill => "cache-kill",
            Drill::RedisKill => "redis-kill",
            Drill::RollingRestart => "rolling-restart",
            Drill::ProxyUpgrade => "proxy-upgrade",
        }
    }

    /// Whether failures are excused during the first health interval after
    /// a disruption (kills: the proxies cannot know before a check or a
    /// failed try). A rolling restart and an upgrade are planned: none.
    fn grace(self) -> bool {
        !matches!(self, Drill::RollingRestart | Drill::ProxyUpgrade)
    }
}

/// The cluster plus what the load needs, moved in and out of blocking tasks.
pub struct Stack {
    pub cluster: Cluster,
    pub targets: Arc<Targets>,
    pub cookie: String,
    /// A post made at start that every drill reads.
    pub seed_id: i64,
}

impl Stack {
    pub async fn start(settings: &Settings, data: PathBuf) -> Result<Stack, String> {
        let token = sluice_demo::processes::random_token().map_err(|e| e.to_string())?;
        let mut plan = Plan::new(data, token).map_err(|e| e.to_string())?;
        plan.bin_dir = settings.bin_dir.clone();
        plan.listen = [([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into()];
        plan.admin = [([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into()];
        plan.job_interval = settings.job_interval;
        plan.lease_ttl = settings.job_interval * 2;
        plan.health_interval = settings.health_interval;
        plan.seed_posts = false;
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(plan))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| error_chain(&e))?;
        if cluster.redis.is_none() || cluster.postgres.is_none() {
            let notes = cluster.notes.join("; ");
            tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .ok();
            return Err(format!(
                "the drills need a real Redis and PostgreSQL (redis-server, /usr/lib/postgresql/*/bin): {notes}"
            ));
        }
        let targets = Arc::new(Targets::new(cluster.proxies));
        let cookie = load::login(&targets).await?;
        let reply = targets
            .send(
                "POST",
                "/posts",
                &format!("cookie: {cookie}\r\ncontent-type: application/json\r\n"),
                r#"{"title":"drill seed","body":"read by every drill"}"#,
            )
            .await
            .map_err(|f| f.label())?;
        let seed_id = load::id_of(&reply.body)
            .ok_or_else(|| format!("seed post: {} {}", reply.status, reply.body))?;
        Ok(Stack {
            cluster,
            targets,
            cookie,
            seed_id,
        })
    }

    pub async fn stop(self) {
        let cluster = self.cluster;
        let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
    }

    /// Runs `f` on the cluster off the runtime (it sleeps and waits).
    async fn with<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Cluster) -> T + Send + 'static,
    ) -> (Stack, T) {
        let Stack {
            mut cluster,
            targets,
            cookie,
            seed_id,
        } = self;
        let (cluster, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut cluster);
            (cluster, out)
        })
        .await
        .expect("the launcher does not panic");
        (
            Stack {
                cluster,
                targets,
                cookie,
                seed_id,
            },
            out,
        )
    }
}

/// What happened during a drill, for the checks.
pub struct Timeline {
    /// When the load started.
    pub origin: Instant,
    pub start_ms: i64,
    /// When each disruption began.
    pub disruptions: Vec<Instant>,
    pub end_ms: i64,
    pub steps: Vec<String>,
    pub errors: Vec<String>,
}

pub async fn run_one(stack: Stack, settings: &Settings, drill: Drill) -> (Stack, Report) {
    if drill == Drill::ProxyUpgrade && !stack.cluster.takeover {
        return (
            stack,
            Report::skipped(drill.name(), "skipped: the binary has no --takeover"),
        );
    }
    let load = Load::start(
        stack.targets.clone(),
        stack.cookie.clone(),
        settings.workers,
        stack.seed_id,
    );
    let mut t = Timeline {
        origin: Instant::now(),
        start_ms: verify::now_ms(),
        disruptions: Vec::new(),
        end_ms: 0,
        steps: Vec::new(),
        errors: Vec::new(),
    };
    tokio::time::sleep(settings.warmup).await;
    let stack = disrupt(stack, settings, drill, &mut t).await;
    tokio::time::sleep(settings.settle).await;
    let record = load.stop().await;
    t.end_ms = verify::now_ms();
    let grace = if drill.grace() {
        settings.health_interval
    } else {
        Duration::ZERO
    };
    let report = verify::check(
        &stack,
        settings,
        drill.name(),
        &t,
        &record,
        grace,
        !drill.grace(),
    )
    .await;
    (stack, report)
}

async fn disrupt(mut stack: Stack, settings: &Settings, drill: Drill, t: &mut Timeline) -> Stack {
    let outage = settings.outage;
    let kill_restart = |name: &'static str| {
        move |c: &mut Cluster| -> Result<(), String> {
            c.kill(name).map_err(|e| error_chain(&e))?;
            std::thread::sleep(outage);
            c.start_child(name).map_err(|e| error_chain(&e))
        }
    };
    let target = match drill {
        Drill::ProxyKill => Some("proxy-1"),
        Drill::AppKill => Some("app-2"),
        Drill::CacheKill => Some("cache-1"),
        Drill::RedisKill => Some("redis"),
        _ => None,
    };
    if let Some(name) = target {
        t.disruptions.push(Instant::now());
        t.steps.push(format!(
            "kill -9 {name}, {}s down, restart",
            outage.as_secs()
        ));
        let (next, out) = stack.with(kill_restart(name)).await;
        stack = next;
        if let Err(e) = out {
            t.errors.push(e);
        }
        return stack;
    }
    let apps = stack.cluster.apps.len();
    match drill {
        Drill::RollingRestart => {
            for i in 1..=apps {
                let name = format!("app-{i}");
                t.disruptions.push(Instant::now());
                t.steps.push(format!(
                    "{} ms: SIGTERM {name}",
                    t.origin.elapsed().as_millis()
                ));
                let (next, out) = stack
                    .with(move |c| {
                        let status = c.terminate(&name).map_err(|e| error_chain(&e))?;
                        c.start_child(&name).map_err(|e| error_chain(&e))?;
                        Ok::<_, String>((name, status))
                    })
                    .await;
                stack = next;
                match out {
                    Ok((name, status)) => t.steps.push(format!(
                        "{} ms: {name} exited ({}) and started again",
                        t.origin.elapsed().as_millis(),
                        status.map_or("killed after the deadline".into(), |s| s.to_string())
                    )),
                    Err(e) => t.errors.push(e),
                }
            }
        }
        Drill::ProxyUpgrade => {
            for name in ["proxy-1", "proxy-2"] {
                t.disruptions.push(Instant::now());
                let (next, out) = stack
                    .with(move |c| {
                        let mut old = c.takeover(name).map_err(|e| error_chain(&e))?;
                        old.wait().map_err(|e| e.to_string())
                    })
                    .await;
                stack = next;
                match out {
                    Ok(status) if status.success() => {
                        t.steps
                            .push(format!("{name}: successor took over, the old one exited 0"));
                    }
                    Ok(status) => t
                        .errors
                        .push(format!("{name}: the old process exited {status}")),
                    Err(e) => t.errors.push(format!("{name}: {e}")),
                }
            }
        }
        _ => {}
    }
    stack
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}
