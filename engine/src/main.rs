//! The `sluice` binary: parse the command line, load and validate the config
//! (exit 64 when it is wrong, before anything is bound), bind, and run.

use clap::{Parser, Subcommand};
use sluice::Config;
use sluice::config::env::EnvOverlay;
use sluice::config::validate::{check_cert, same_address};
use sluice::config::{At, CertConfig, ConfigError, ListenerConfig, defaults};
use sluice::lifecycle::handover;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits.h EX_USAGE / EX_CONFIG-style code for a bad config.
const EXIT_BAD_CONFIG: u8 = 64;

/// sysexits.h EX_TEMPFAIL: `--takeover` failed; the running process keeps
/// serving, and the upgrade can be tried again.
const EXIT_TAKEOVER_FAILED: u8 = 75;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "sluice",
    version,
    about = "A fast reverse proxy and load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file (see engine/examples/sluice.toml).
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Plain HTTP listener (HTTP/1.1 and h2c); repeatable (comma-separated in the variable).
    #[arg(long, env = "SLUICE_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// Backend host:port of the default group; repeatable (comma-separated in the variable).
    #[arg(long, env = "SLUICE_BACKEND", value_delimiter = ',')]
    backend: Vec<String>,
    /// round-robin | least-conn | p2c | hash:header:NAME | hash:cookie:NAME | hash:client
    #[arg(long, env = "SLUICE_LB")]
    lb: Option<String>,
    /// Worker threads (default: the number of cores).
    #[arg(long, env = "SLUICE_WORKERS")]
    workers: Option<usize>,
    /// thread-per-core (default) | work-stealing
    #[arg(long, env = "SLUICE_RUNTIME")]
    runtime: Option<String>,
    /// TLS listener (h2 and http/1.1 by ALPN); needs --cert and --key.
    #[arg(long, env = "SLUICE_TLS_LISTEN", requires_all = ["cert", "key"])]
    tls_listen: Option<SocketAddr>,
    #[arg(long, env = "SLUICE_CERT")]
    cert: Option<PathBuf>,
    #[arg(long, env = "SLUICE_KEY")]
    key: Option<PathBuf>,
    /// Log one line per request: JSON lines to stdout, unless the file's
    /// `[access_log]` says otherwise.
    #[arg(long, env = "SLUICE_ACCESS_LOG", value_parser = clap::builder::BoolishValueParser::new())]
    access_log: bool,
    /// This proxy's name on responses (`x-sluice-instance`) and in log
    /// lines (default: the host name and the first listener's port).
    #[arg(long, env = "SLUICE_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Compress responses, gzip at this level (1 fastest .. 9 smallest),
    /// with the codings of `compression.algorithms` (gzip by default).
    #[arg(long, env = "SLUICE_GZIP", value_parser = clap::value_parser!(u32).range(1..=9))]
    gzip: Option<u32>,
    /// Admin API listener (register/unregister backends, health, reload).
    #[arg(long, env = "SLUICE_ADMIN")]
    admin: Option<SocketAddr>,
    /// Bearer token required by the admin API (overrides the file's).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin API's bearer token.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Unix socket on which this process hands its listening sockets to a
    /// successor (`[upgrade] socket`; the variable is SLUICE_UPGRADE__SOCKET).
    #[arg(long)]
    upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets over from the sluice answering on the
    /// upgrade socket, serve, then let it drain and exit (README
    /// "Zero-downtime upgrade").
    #[arg(long, env = "SLUICE_TAKEOVER", value_parser = clap::builder::BoolishValueParser::new())]
    takeover: bool,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Validate a config file (with the SLUICE_<SECTION>__<KEY> variables) and exit.
    Check {
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    // Colours only for a person at a terminal, never into files or pipes.
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let flags = flag_vars();
    let skip: Vec<&str> = flags.iter().map(String::as_str).collect();
    let env = match EnvOverlay::from_env(&skip) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Some(Command::Check { config }) = &cli.command {
        return match Config::load_with_env(config, &env) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        };
    }
    let config = match build_config(&cli, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let upgrade_socket = config.upgrade.socket.clone();
    // Without --takeover the upgrade socket is taken before anything is
    // bound: a second sluice on it is a mistake, not a successor.
    let mut upgrade_listener = None;
    if let (Some(path), false) = (&upgrade_socket, cli.takeover) {
        match handover::bind_upgrade_socket(path) {
            Ok(l) => upgrade_listener = Some(l),
            Err(e) => {
                eprintln!("sluice: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (bound, successor) = if cli.takeover {
        let Some(path) = &upgrade_socket else {
            eprintln!(
                "sluice: --takeover needs the upgrade socket ([upgrade] socket, --upgrade-socket or SLUICE_UPGRADE__SOCKET)"
            );
            return ExitCode::from(EXIT_BAD_CONFIG);
        };
        match handover::take(path, &config) {
            Ok((bound, successor)) => {
                tracing::info!(
                    old_pid = successor.old_pid,
                    sockets = successor.received,
                    "takeover: received the listening sockets"
                );
                (bound, Some(successor))
            }
            Err(e) => {
                eprintln!("sluice: takeover failed: {e}; the running process keeps serving");
                return ExitCode::from(EXIT_TAKEOVER_FAILED);
            }
        }
    } else {
        match sluice::bind(&config) {
            Ok(b) => (b, None),
            Err(e) => {
                eprintln!("sluice: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    for a in bound.addrs() {
        tracing::info!(address = %a, workers = config.workers, "listening");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        // Installed before serving: SIGHUP's default action would kill us.
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let server = match sluice::Server::start(bound, &config) {
            Ok(s) => s,
            Err(e) => {
                if let Some(successor) = successor {
                    successor.abort(&format!("the successor cannot start: {e}"));
                }
                return Err(e);
            }
        };
        if let Some(addr) = server.admin_addr() {
            tracing::info!(address = %addr, "admin API listening");
        }
        if let Some(successor) = successor {
            let old_pid = successor.old_pid;
            let done = tokio::task::spawn_blocking(move || successor.ready())
                .await
                .map_err(std::io::Error::other)?;
            match done {
                Ok(()) => tracing::info!(old_pid, "takeover complete: the old process drains"),
                // Ready was sent: the old process may already be draining
                // with its listeners closed, so standing down here could
                // leave nobody to accept. Serving on is the safe side: at
                // worst both processes accept from the shared queues until
                // the old one is stopped.
                Err(e) => tracing::error!(
                    old_pid,
                    error = %e,
                    "takeover: the old process did not confirm; serving anyway (stop it if it still runs)"
                ),
            }
            if let Some(path) = &upgrade_socket {
                match handover::bind_upgrade_socket(path) {
                    Ok(l) => upgrade_listener = Some(l),
                    Err(e) => tracing::error!(error = %e, "no upgrade socket: this process cannot hand over"),
                }
            }
        }
        if let (Some(path), Some(_)) = (&upgrade_socket, &upgrade_listener) {
            tracing::info!(path = %path.display(), "upgrade socket listening");
        }
        let handed_over = {
            let source = server.handover().clone();
            async move {
                match upgrade_listener {
                    Some(l) => handover::serve(l, source).await,
                    None => std::future::pending().await,
                }
            }
        };
        // A reload re-reads only the file; the environment's overlay and the
        // flags are applied again on top (the environment cannot change).
        server.reloader().set_env(env);
        let flags = cli.clone();
        server
            .reloader()
            .set_overlay(Box::new(move |c: &mut Config| {
                add_flag_listeners(&flags, c)?;
                apply_upstream_flags(&flags, c)
            }));
        #[cfg(unix)]
        reload_on_sighup(hup, server.reloader().clone());
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = handed_over => {}
        }
        tracing::info!("shutting down: draining connections");
        server.shutdown().await;
        Ok::<_, std::io::Error>(ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Adds the listeners of `--listen` and `--tls-listen` to the file's; an
/// address already listened on is an error, as it is in the file.
fn add_flag_listeners(cli: &Cli, config: &mut Config) -> Result<(), ConfigError> {
    let plain = cli
        .listen
        .iter()
        .map(|&address| ("--listen", address, None));
    let tls = match (cli.tls_listen, &cli.cert, &cli.key) {
        (Some(address), Some(cert), Some(key)) => Some((
            "--tls-listen",
            address,
            Some(CertConfig {
                cert: cert.clone(),
                key: key.clone(),
                server_names: Vec::new(),
            }),
        )),
        _ => None,
    };
    for (flag, address, cert) in plain.chain(tls) {
        if let Some(c) = &cert {
            // As for the file's listeners: a pair that cannot serve is refused.
            check_cert(c, At::Flag("--cert"), At::Flag("--key"))?;
        }
        if let Some(first) = same_address(&config.listeners, address) {
            return Err(ConfigError::DuplicateListener {
                at: At::Flag(flag),
                address,
                first,
            });
        }
        config.listeners.push(ListenerConfig {
            address,
            reuse_port: true,
            share_port: false,
            backlog: defaults::BACKLOG,
            tls: cert.into_iter().collect(),
            client_auth: None,
            proxy_protocol: None,
            conn_limit: Default::default(),
        });
    }
    Ok(())
}

/// The variables clap reads for the flags, which the overlay leaves alone.
fn flag_vars() -> Vec<String> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let subs = cmd.get_subcommands().flat_map(|s| s.get_arguments());
    cmd.get_arguments()
        .chain(subs)
        .filter_map(|arg| arg.get_env()?.to_str().map(str::to_owned))
        .collect()
}

/// Config file first, then its `SLUICE_<SECTION>__<KEY>` overlay, then quick
/// flags on top (flags win). Without a file the variables apply to an empty
/// one, which must then be whole (a listener among the variables).
fn build_config(cli: &Cli, env: &EnvOverlay) -> Result<Config, ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::load_with_env(path, env)?,
        None if !env.is_empty() => {
            let mut c = sluice::config::validate::parse_layered(
                "",
                std::path::Path::new("(no config file)"),
                env,
            )?;
            c.source = None;
            c
        }
        None => {
            if cli.listen.is_empty() && cli.tls_listen.is_none() {
                return Err(ConfigError::NothingToDo);
            }
            let mut c = Config::simple(([127, 0, 0, 1], 0).into(), &[]);
            c.listeners.clear();
            c.workers = sluice::config::validate::default_workers();
            c
        }
    };
    add_flag_listeners(cli, &mut config)?;
    apply_upstream_flags(cli, &mut config)?;
    if let Some(w) = cli.workers {
        // The file's bounds (`workers` in config::validate).
        if !(1..=1024).contains(&w) {
            return Err(ConfigError::OutOfRange {
                at: At::Flag("--workers"),
                min: 1,
                max: 1024,
            });
        }
        config.workers = w;
    }
    if let Some(path) = &cli.upgrade_socket {
        let text = path.to_string_lossy();
        if let Some(problem) = sluice::config::validate::upgrade_socket_problem(&text) {
            return Err(ConfigError::UpgradeSocket {
                at: At::Flag("--upgrade-socket"),
                value: text.into_owned(),
                problem,
            });
        }
        config.upgrade.socket = Some(path.clone());
    }
    if let Some(r) = &cli.runtime {
        config.runtime =
            sluice::config::RuntimeShape::parse(r).map_err(|source| ConfigError::Runtime {
                at: At::Flag("--runtime"),
                source,
            })?;
    }

    if let Some(address) = cli.admin {
        // The file's other admin settings (state file, allow-lists) stay.
        let mut admin = config
            .admin
            .take()
            .unwrap_or_else(|| sluice::config::AdminConfig::new(address));
        admin.address = address;
        config.admin = Some(admin);
    }
    // The token flags apply to the admin API of the file or of `--admin`.
    let token = match (&cli.admin_token, &cli.admin_token_file) {
        (_, Some(path)) => Some(sluice::config::values::read_token(path).map_err(|source| {
            ConfigError::TokenFile {
                at: At::Flag("--admin-token-file"),
                source,
            }
        })?),
        (Some(t), None) => Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
        (None, None) => None,
    };
    match (&mut config.admin, token) {
        (Some(admin), Some(token)) => admin.token = Some(token),
        (None, Some(_)) => {
            tracing::warn!("an admin token is set but there is no admin API (--admin or [admin])")
        }
        (_, None) => {}
    }
    Ok(config)
}

/// The flags that shape routing and responses, applied on top of the file:
/// at start, and again on every reload (which re-reads only the file).
fn apply_upstream_flags(cli: &Cli, config: &mut Config) -> Result<(), ConfigError> {
    if !cli.backend.is_empty() || cli.lb.is_some() {
        // `--backend` passes the file's rule too: no port 0, no wildcard,
        // multicast or broadcast, not one of our own listeners.
        let own: Vec<SocketAddr> = config
            .listeners
            .iter()
            .map(|l| l.address)
            .chain(config.admin.as_ref().map(|a| a.address))
            .chain(cli.admin)
            .collect();
        let group = config
            .upstreams
            .iter_mut()
            .find(|u| u.name == defaults::DEFAULT_GROUP)
            .ok_or(ConfigError::NoDefaultGroup)?;
        for b in &cli.backend {
            match b.parse() {
                Ok(addr) => {
                    let addr =
                        sluice::addr::BackendAddr::checked(addr, &own).map_err(|source| {
                            ConfigError::Backend {
                                at: At::Flag("--backend"),
                                source: Box::new(source),
                            }
                        })?;
                    group.backends.push((addr, 1));
                }
                Err(_) => {
                    let (host, port) =
                        sluice::config::values::split_host_port(b).map_err(|source| {
                            ConfigError::HostPort {
                                at: At::Flag("--backend"),
                                source,
                            }
                        })?;
                    group.dns.push(sluice::config::DnsBackend {
                        host,
                        port,
                        weight: 1,
                    });
                }
            }
        }
        if let Some(lb) = &cli.lb {
            group.policy =
                sluice::balance::Policy::parse(lb).map_err(|source| ConfigError::Policy {
                    at: At::Flag("--lb"),
                    source,
                })?;
        }
    }
    if cli.access_log && config.access_log.is_none() {
        config.access_log = Some(sluice::config::AccessLogConfig::default());
    }
    if let Some(id) = &cli.instance_id {
        if !sluice::config::access_log::instance_id_ok(id) {
            return Err(ConfigError::Observe {
                at: At::Flag("--instance-id"),
                value: id.clone(),
                problem: "expected printable ASCII without quotes, backslash or ;",
            });
        }
        config.instance_id = Some(id.clone());
    }
    if let Some(level) = cli.gzip {
        config.compression.enabled = true;
        config.compression.level = level;
    }
    Ok(())
}

/// SIGHUP reads the config file again; a bad file is logged and ignored.
#[cfg(unix)]
fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    reloader: std::sync::Arc<sluice::lifecycle::Reloader>,
) {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Err(e) = reloader.reload().await {
                tracing::error!(error = %e, "reload rejected; the old config keeps serving");
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
