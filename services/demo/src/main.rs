//! `sluice-demo`: starts the demo stack, prints where to point a client,
//! and stops it cleanly on Ctrl-C or SIGTERM. With `--processes`, the stack
//! runs as separate processes instead (`sluice_demo::processes`).

use std::process::ExitCode;

use clap::Parser;
use sluice_demo::processes::{Cluster, Plan};
use sluice_demo::{Options, Stack};
use sluice_service_common::{Logging, Stream, binary, shutdown_signal};

/// Flags of `sluice-demo`: the one-process stack's, plus the switch to the
/// multi-process one and its shared servers.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sluice-demo",
    about = "Sluice demo stack: proxy, blog replicas, cache and log services"
)]
struct Cli {
    #[command(flatten)]
    options: Options,
    /// Run the stack as separate processes: two proxies (--listen and the
    /// next port; admin APIs on --admin and the next port), three app
    /// replicas, two caches on Redis, PostgreSQL and the log service.
    /// (Not with --tls yet: its hops are plain HTTP on loopback.)
    #[arg(long, conflicts_with = "tls")]
    processes: bool,
    /// With --processes: the Redis to use (default: start redis-server if
    /// installed, else in-memory caches and sessions in SQL).
    #[arg(long, env = "SLUICE_DEMO_REDIS", requires = "processes")]
    redis: Option<String>,
    /// With --processes: the PostgreSQL to use, postgres://… (default:
    /// start one from /usr/lib/postgresql/*/bin if installed, else SQLite).
    #[arg(long, env = "SLUICE_DEMO_POSTGRES", requires = "processes")]
    postgres: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    binary::init_tracing(&Logging {
        default_filter: "warn,sluice_demo=info",
        stream: Stream::Stdout,
        ..Logging::default()
    });
    if cli.processes {
        return processes(&cli);
    }
    let options = cli.options;
    let Some(runtime) = binary::runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let stack = match Stack::start(&options).await {
            Ok(stack) => stack,
            Err(error) => return failed(&error),
        };
        println!("{}", stack.banner());
        shutdown_signal().await;
        println!("stopping: replicas unregister and drain, then the proxy, the cache and the log service…");
        stack.stop().await;
        ExitCode::SUCCESS
    })
}

fn processes(cli: &Cli) -> ExitCode {
    let o = &cli.options;
    let token = match o.admin_token.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => match sluice_demo::processes::random_token() {
            Ok(t) => t,
            Err(error) => return failed(&error),
        },
    };
    let data = match std::path::absolute(&o.data) {
        Ok(d) => d,
        Err(error) => return failed(&error),
    };
    let mut plan = match Plan::new(data, token) {
        Ok(plan) => plan,
        Err(error) => return failed(&error),
    };
    let next = |a: std::net::SocketAddr| {
        std::net::SocketAddr::new(a.ip(), if a.port() == 0 { 0 } else { a.port() + 1 })
    };
    plan.listen = [o.listen, next(o.listen)];
    plan.admin = [o.admin, next(o.admin)];
    plan.redis = cli.redis.clone();
    plan.postgres = cli.postgres.clone();
    plan.job_interval = o.job_interval;
    let Some(runtime) = binary::runtime() else {
        return ExitCode::FAILURE;
    };
    // Watch the signals before the (blocking) start: a Ctrl-C meanwhile
    // stops what has started.
    let signal = {
        let _in_runtime = runtime.enter();
        shutdown_signal()
    };
    let cluster = match Cluster::start(plan) {
        Ok(cluster) => cluster,
        Err(error) => return failed(&error),
    };
    println!("{}", cluster.banner());
    runtime.block_on(signal);
    println!("stopping: proxies drain, then the apps, caches, log service, Redis and PostgreSQL…");
    cluster.stop();
    ExitCode::SUCCESS
}

fn failed(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("sluice-demo: {error}");
    let mut source = error.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    ExitCode::FAILURE
}
