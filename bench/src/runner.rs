//! One benchmark run, top to bottom: install → origins → for each round, for
//! each scenario, for each peer in turn: start, probe, load, measure, stop →
//! medians → report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::idle;
use crate::install;
use crate::load::{Generator, LoadSpec};
use crate::measure::{self, Cores};
use crate::peers::sluice_config::ExtraConfig;
use crate::peers::{self, CertFiles, Peer, PeerCtx, direct::Direct};
use crate::pin::{Pinning, which};
use crate::probe::{self, free_port};
use crate::report::{self, AB_PEER, Report};
use crate::results::{Cell, Round, Status};
use crate::scenario::{self, Kind, Scenario, Timing};

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// The command line's arguments, for the report (empty from a library call).
    pub args: Vec<String>,
    pub quick: bool,
    /// Proxies to compare (`sluice`, `nginx`, `haproxy`, `caddy`).
    pub peers: Vec<String>,
    /// Also run the generator against the origin directly (the ceiling).
    pub direct: bool,
    /// A given Sluice binary; `None`: build it the way users do
    /// ([`install::build_sluice`]).
    pub sluice_bin: Option<PathBuf>,
    /// A second Sluice binary, run as the peer `sluice-b` beside `sluice`
    /// in every round: the A/B mode (report: B ÷ A with its spread).
    pub sluice_bin_b: Option<PathBuf>,
    /// A TOML fragment merged into the config generated for `sluice` (A).
    pub sluice_extra_config: Option<PathBuf>,
    /// The same for `sluice-b`; without `sluice_bin_b`, B is A's binary:
    /// one build, two configurations (see `peers::sluice_config`).
    pub sluice_extra_config_b: Option<PathBuf>,
    pub origin_bin: PathBuf,
    pub rounds: Option<usize>,
    pub duration: Option<Duration>,
    /// Only these scenario ids.
    pub scenarios: Option<Vec<String>>,
    /// Install missing tools with apt-get / cargo install.
    pub install: bool,
    /// Use the built-in generator for HTTP/1.1 even when wrk exists.
    pub builtin: bool,
    /// Generator for the new-connection scenario: wrk (default) or oha.
    pub close_generator: Generator,
    pub idle_connections: Option<usize>,
    pub pin: bool,
    /// Where the report goes.
    pub out_dir: PathBuf,
}

impl Options {
    /// Whether `sluice-b` runs beside `sluice`: a second binary, or a
    /// second configuration of the same one.
    pub fn ab(&self) -> bool {
        self.sluice_bin_b.is_some() || self.sluice_extra_config_b.is_some()
    }
}

/// The two sides' extra configs, read and checked before anything starts.
/// `None` when neither side has one (both then run from the quick flags).
type Extras = Option<(Option<ExtraConfig>, Option<ExtraConfig>)>;

fn load_extras(opts: &Options, notes: &mut Vec<String>) -> Result<Extras> {
    let load = |p: &Option<PathBuf>| p.as_deref().map(ExtraConfig::load).transpose();
    let (a, b) = (
        load(&opts.sluice_extra_config)?,
        load(&opts.sluice_extra_config_b)?,
    );
    if a.is_none() && b.is_none() {
        return Ok(None);
    }
    for (name, extra) in [("sluice", &a), (AB_PEER, &b)] {
        if let Some(e) = extra {
            notes.push(format!(
                "{name}: extra config `{}` merged into its generated config file (see Generated configurations).",
                e.path.display()
            ));
        }
    }
    notes.push("With an extra config, every Sluice runs from a generated config file (the quick flags' settings as TOML), so that A and B differ by the fragment only.".into());
    Ok(Some((a, b)))
}

pub fn run(opts: &Options) -> Result<report::Written> {
    let started = time::OffsetDateTime::now_utc();
    let loadavg_before = measure::loadavg();
    let pin = Pinning::for_run(opts.pin);
    let mut notes: Vec<String> = Vec::new();
    let mut install_log: Vec<String> = Vec::new();
    let extras = load_extras(opts, &mut notes)?;

    // 1. Tools and peers.
    let want_apt: Vec<(&str, &str)> = {
        let mut v = Vec::new();
        if !opts.builtin {
            v.push(("wrk", "wrk"));
            v.push(("nghttp2-client", "h2load"));
        }
        if opts.peers.iter().any(|p| p == "pingora") {
            v.extend_from_slice(peers::pingora::APT_BUILD_DEPS);
        }
        for p in &opts.peers {
            if let Some(pkg) =
                peers::by_name(p, &PathBuf::new()).and_then(|peer| peer.apt_package())
            {
                v.push((pkg, pkg));
            }
        }
        v
    };
    if opts.install {
        let still = install::ensure_apt(&want_apt, &mut install_log);
        for pkg in still {
            notes.push(format!(
                "`{pkg}` could not be installed: its peer or scenarios are skipped."
            ));
        }
    }
    let h1 = if !opts.builtin && which("wrk").is_some() {
        Generator::Wrk
    } else {
        notes.push("HTTP/1.1 load from the built-in generator (wrk not used): figures are not comparable with wrk runs.".into());
        Generator::Builtin
    };
    let close = match opts.close_generator {
        Generator::Oha if opts.install && install::ensure_oha(&mut install_log) => Generator::Oha,
        Generator::Oha if which("oha").is_some() => Generator::Oha,
        _ => h1,
    };
    let timing = Timing {
        rounds: opts.rounds.unwrap_or(if opts.quick { 1 } else { 3 }),
        duration: opts
            .duration
            .unwrap_or(Duration::from_secs(if opts.quick { 2 } else { 6 })),
        warmup: if opts.quick {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        },
    };
    // `--scenarios` picks from every scenario, with `--quick` too (which
    // then only sets the timings and the idle size).
    let idle_default = if opts.quick { 1000 } else { 5000 };
    let mut scenarios = if opts.quick && opts.scenarios.is_none() {
        scenario::quick(h1, close)
    } else {
        scenario::all(h1, close, opts.idle_connections.unwrap_or(idle_default))
    };
    if let Some(n) = opts.idle_connections {
        for s in &mut scenarios {
            if let Kind::Idle { connections } = &mut s.kind {
                *connections = n;
            }
        }
    }
    if let Some(only) = &opts.scenarios {
        scenarios.retain(|s| only.iter().any(|o| o == s.id));
    }

    // 2. Origins, certificate, peers.
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir()
        .ctx(|| "creating scratch dir".into())?;
    let cert = CertFiles::generate(scratch.path())?;
    let origins = crate::origins::Origins::start(&opts.origin_bin, &pin)?;
    let mut peer_list: Vec<Box<dyn Peer>> = Vec::new();
    let mut skipped_peers: Vec<(String, String)> = Vec::new();
    let mut names = opts.peers.clone();
    if opts.ab() {
        // B right after A, so that they run back to back in every round.
        if !names.iter().any(|n| n == "sluice") {
            names.insert(0, "sluice".into());
        }
        let at = names
            .iter()
            .position(|n| n == "sluice")
            .map_or(0, |i| i + 1);
        names.insert(at, AB_PEER.into());
    }
    for name in &names {
        // Without --sluice-bin-b, B is A's binary (resolved just before).
        let a_bin = peer_list
            .iter()
            .find(|p| p.name() == "sluice")
            .map(|p| PathBuf::from(p.program()));
        let sides = Sides {
            a_bin,
            extras: extras.clone(),
        };
        match resolve_peer(name, opts, &sides, &mut install_log, &mut notes) {
            Ok(p) => peer_list.push(p),
            Err(why) => skipped_peers.push((name.clone(), why)),
        }
    }
    if opts.direct {
        peer_list.push(Box::new(Direct {
            origin: origins.addrs[0],
            origin_pid: origins.pids[0],
        }));
    }

    // 3. Measure: for each round, each scenario, each peer in turn.
    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    let mut configs: BTreeMap<(String, String), String> = BTreeMap::new();
    for (si, s) in scenarios.iter().enumerate() {
        for (pi, p) in peer_list.iter().enumerate() {
            let mut cell = Cell::new();
            cell.caveat = p.caveat(s);
            if p.name() == "direct" && !s.direct_applies() {
                cell.status = Status::Skipped("n/a for the origin".into());
            } else if let Some(bin) = s.generator().and_then(Generator::binary)
                && which(bin).is_none()
            {
                cell.status = Status::Skipped(format!("`{bin}` not installed"));
            }
            cells.insert((si, pi), cell);
        }
    }
    let ticks = measure::clock_ticks_per_sec();
    for round in 0..timing.rounds {
        for (si, s) in scenarios.iter().enumerate() {
            // A B C, then C B A: no peer always runs first or last, nor
            // always right after the same neighbour.
            let mut order: Vec<usize> = (0..peer_list.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for pi in order {
                let p = &peer_list[pi];
                let Some(cell) = cells.get_mut(&(si, pi)) else {
                    continue;
                };
                if !cell.runnable() {
                    continue;
                }
                eprintln!(
                    "round {}/{} {} {}",
                    round + 1,
                    timing.rounds,
                    s.id,
                    p.name()
                );
                let dir = scratch
                    .path()
                    .join(format!("{}-{}-{round}", p.name(), s.id));
                std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
                let ctx = PeerCtx {
                    dir,
                    listen: free_port()?,
                    tls_listen: if s.needs_tls() {
                        Some(free_port()?)
                    } else {
                        None
                    },
                    origins: origins.addrs,
                    cert: cert.clone(),
                    gzip_level: s.gzip_level(),
                    coding: s.coding(),
                };
                match measure_one(p.as_ref(), s, &ctx, &pin, &timing, ticks, round == 0) {
                    Ok((mut r, config, gzip_bytes)) => {
                        r.round = round;
                        if round == 0 {
                            // One config per distinct shape: each gzip level
                            // is its own, so the report shows every level.
                            let variant = match s.gzip_level() {
                                _ if s.needs_tls() => "TLS/h2 scenario".to_string(),
                                Some(level) => {
                                    format!("{} level {level} scenario", s.coding().token())
                                }
                                None => "plain scenarios".to_string(),
                            };
                            configs
                                .entry((p.name().to_string(), variant))
                                .or_insert(config);
                        }
                        let errors =
                            r.load.map_or(0, |l| l.errors) + r.idle.map_or(0, |i| i.failed as u64);
                        if errors > 0 {
                            cell.status = Status::Failed(format!(
                                "{errors} failed requests in round {}",
                                round + 1
                            ));
                        }
                        if gzip_bytes.is_some() {
                            cell.gzip_bytes = gzip_bytes;
                        }
                        cell.rounds.push(r);
                    }
                    Err(MeasureError::Unsupported(why)) => cell.status = Status::Unsupported(why),
                    Err(MeasureError::Failed(why)) => {
                        // An old build may lack TLS or gzip; a run from a
                        // generated file is a build that has them (a
                        // fragment that breaks the start is a failure).
                        cell.status = if p.name().starts_with("sluice")
                            && extras.is_none()
                            && (s.needs_tls() || s.gzip_level().is_some())
                        {
                            Status::Unsupported(format!("not supported yet ({why})"))
                        } else {
                            Status::Failed(why)
                        };
                    }
                }
            }
        }
    }
    drop(origins);

    // 4. Report.
    let (cpu, cores, kernel) = install::machine();
    let mut versions: Vec<(String, String)> = peer_list
        .iter()
        .map(|p| (p.name().to_string(), p.version()))
        .collect();
    for (tool, args) in [
        ("wrk", &["-v"][..]),
        ("h2load", &["--version"][..]),
        ("oha", &["--version"][..]),
    ] {
        if which(tool).is_some() {
            versions.push((tool.to_string(), peers::version_line(tool, args)));
        }
    }
    versions.push(("rustc".into(), peers::version_line("rustc", &["--version"])));
    let report = Report {
        started,
        quick: opts.quick,
        args: opts.args.clone(),
        machine: (cpu, cores, kernel),
        pinning: pin.describe(),
        timing,
        versions,
        install_log,
        notes,
        skipped_peers,
        scenarios,
        peers: peer_list.iter().map(|p| p.name().to_string()).collect(),
        cells,
        configs,
        loadavg: (loadavg_before, measure::loadavg()),
    };
    report::write(&report, &opts.out_dir)
}

/// The peer called `name`, with its binary found or built, or why it is
/// skipped. Sluice is built with `cargo build --release -p sluice --bin
/// sluice` unless `--sluice-bin` names a binary (a no-op when up to date),
/// Pingora always (the same), the others are looked up on `$PATH`.
fn resolve_peer(
    name: &str,
    opts: &Options,
    sides: &Sides,
    install_log: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> std::result::Result<Box<dyn Peer>, String> {
    let mut given = |bin: &std::path::Path, flag: &str| {
        if bin.is_file() {
            notes.push(format!("{name}: `{}` ({flag})", bin.display()));
            Ok(bin.to_path_buf())
        } else {
            Err(format!("{} ({flag}): no such file", bin.display()))
        }
    };
    match name {
        "sluice" => {
            let sluice = match &opts.sluice_bin {
                Some(bin) => peers::sluice::Sluice::new(given(bin, "given with --sluice-bin")?),
                None => {
                    let (bin, shown) = install::build_sluice(&install::target_dir())?;
                    let rev = install::git_rev();
                    given(&bin, &format!("`{shown}` from this tree at {rev}"))?;
                    peers::sluice::Sluice::new(bin).built_at(rev)
                }
            };
            Ok(Box::new(sides.shape(sluice, false)))
        }
        AB_PEER => {
            let bin = match (&opts.sluice_bin_b, &sides.a_bin) {
                (Some(bin), _) => given(bin, "given with --sluice-bin-b")?,
                (None, Some(a)) => {
                    notes.push(format!("{name}: `{}` (A's binary)", a.display()));
                    a.clone()
                }
                (None, None) => return Err("A (`sluice`) could not be resolved".into()),
            };
            let b = peers::sluice::Sluice::b(bin);
            Ok(Box::new(sides.shape(b, true)))
        }
        "pingora" => {
            let bin = if opts.install {
                peers::pingora::Pingora::build(install_log)
                    .ok_or("`cargo build` of bench/pingora failed (see bench/README.md)")?
            } else {
                Some(peers::pingora::Pingora::default_bin())
                    .filter(|b| b.is_file())
                    .ok_or("bench/pingora is not built (--no-install)")?
            };
            Ok(Box::new(peers::pingora::Pingora::new(bin)))
        }
        _ => match peers::by_name(name, &PathBuf::new()) {
            Some(p) if which(&p.program()).is_some() => Ok(p),
            Some(p) => Err(format!("`{}` not installed", p.program())),
            None => Err("unknown peer".into()),
        },
    }
}

/// What the Sluice sides share: A's binary (B's too without
/// `--sluice-bin-b`) and the extra configs.
struct Sides {
    a_bin: Option<PathBuf>,
    extras: Extras,
}

impl Sides {
    /// A side (`b`: `sluice-b`) on the quick flags, or on a generated
    /// config file with its own fragment when the run has any.
    fn shape(&self, sluice: peers::sluice::Sluice, b: bool) -> peers::sluice::Sluice {
        match &self.extras {
            None => sluice,
            Some((extra_a, extra_b)) => {
                sluice.with_config_file(if b { extra_b } else { extra_a }.clone())
            }
        }
    }
}

enum MeasureError {
    Unsupported(String),
    Failed(String),
}

impl From<crate::error::Error> for MeasureError {
    fn from(e: crate::error::Error) -> Self {
        MeasureError::Failed(e.to_string())
    }
}

/// Starts `peer`, runs scenario `s` against it once, stops it.
fn measure_one(
    peer: &dyn Peer,
    s: &Scenario,
    ctx: &PeerCtx,
    pin: &Pinning,
    timing: &Timing,
    ticks: u64,
    probe_gzip: bool,
) -> std::result::Result<(Round, String, Option<usize>), MeasureError> {
    let mut running = peer.start(ctx, pin)?;
    let config = running.config.clone();
    let mut gzip_bytes = None;
    if s.gzip_level().is_some() && probe_gzip {
        let coding = s.coding().token();
        let resp = probe::get(running.addr, "/json64k", &[("Accept-Encoding", coding)])?;
        if !resp
            .header("content-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case(coding))
        {
            running.stop();
            let why = if peer.name() == "sluice" {
                format!("not supported yet: no Content-Encoding: {coding} in the response")
            } else {
                format!("no Content-Encoding: {coding} in the response")
            };
            return Err(MeasureError::Unsupported(why));
        }
        gzip_bytes = Some(resp.body.len());
    }
    let round = match &s.kind {
        Kind::Load {
            generator,
            path,
            connections,
            close,
            h2_streams,
            gzip_level,
            coding,
        } => {
            let url = match (h2_streams, running.tls_addr) {
                (Some(_), Some(tls)) => format!("https://{tls}{path}"),
                _ => format!("http://{}{path}", running.addr),
            };
            let mut spec = LoadSpec {
                url,
                connections: *connections,
                duration: timing.warmup,
                close: *close,
                streams: h2_streams.unwrap_or(1),
                accept_encoding: gzip_level.map(|_| coding.token()),
            };
            if !timing.warmup.is_zero() {
                let _ = generator.run(&spec, pin, &ctx.dir);
            }
            spec.duration = timing.duration;
            let before = measure::sample(running.pid);
            let cores = Cores::now(pin);
            let load = generator.run(&spec, pin, &ctx.dir)?;
            let after = measure::sample(running.pid);
            let (proxy_core_busy, load_core_busy) = Cores::now(pin).busy_since(&cores);
            if load.requests == 0 {
                return Err(MeasureError::Failed("no request completed".into()));
            }
            let cpu = measure::cpu_split_per_request(before, after, ticks, load.requests);
            Round {
                load: Some(load),
                cpu_us_per_req: cpu.cpu_us,
                user_us_per_req: cpu.user_us,
                sys_us_per_req: cpu.sys_us,
                peak_rss: after.peak_rss,
                proxy_core_busy,
                load_core_busy,
                idle: None,
                round: 0,
            }
        }
        Kind::Idle { connections } => {
            let r = idle::run(running.addr, running.pid, *connections)?;
            Round {
                peak_rss: measure::sample(running.pid).peak_rss,
                cpu_us_per_req: f64::NAN,
                user_us_per_req: f64::NAN,
                sys_us_per_req: f64::NAN,
                proxy_core_busy: f64::NAN,
                load_core_busy: f64::NAN,
                idle: Some(r),
                load: None,
                round: 0,
            }
        }
    };
    running.stop();
    Ok((round, config, gzip_bytes))
}
