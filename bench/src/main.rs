//! `sluice-bench`: parses the command line and hands over to
//! [`sluice_bench::runner::run`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sluice_bench::load::Generator;
use sluice_bench::runner::{Options, run};

#[derive(Parser)]
#[command(about = "Benchmark Sluice against nginx, HAProxy and Caddy on pinned cores")]
struct Args {
    /// About a minute: fewer scenarios, 2 s runs, one round.
    #[arg(long)]
    quick: bool,
    /// Comma-separated peers: sluice, nginx, haproxy, caddy, and the optional
    /// pingora (default: sluice,nginx,haproxy,caddy; in an A/B: sluice).
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<String>>,
    /// Add Pingora (built from crates.io: bench/pingora) to the peers.
    #[arg(long)]
    with_pingora: bool,
    /// A sluice binary to measure (default: `cargo build --release -p sluice
    /// --bin sluice` of this tree, the binary users get).
    #[arg(long)]
    sluice_bin: Option<PathBuf>,
    /// A/B mode: a second sluice binary, run as `sluice-b` right beside
    /// `sluice` (A) in every round; the report gives B ÷ A with its spread.
    /// Alone it compares the two builds only (no other peer, no direct run).
    #[arg(long)]
    sluice_bin_b: Option<PathBuf>,
    /// A TOML fragment merged into the config generated for `sluice` (A):
    /// tables merge, [[arrays]] append, other values replace. Every Sluice
    /// then runs from a generated config file (see bench/README.md).
    #[arg(long)]
    sluice_extra_config: Option<PathBuf>,
    /// The same for `sluice-b`. Without --sluice-bin-b this is an A/B of one
    /// binary with two configurations (e.g. bench/configs/rate-limit-on.toml).
    #[arg(long)]
    sluice_extra_config_b: Option<PathBuf>,
    /// Path to bench-origin (default: next to this binary).
    #[arg(long)]
    origin_bin: Option<PathBuf>,
    /// Rounds per (scenario, peer); default 3, or 1 with --quick.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measurement; default 6, or 2 with --quick.
    #[arg(long)]
    duration: Option<u64>,
    /// Only these scenario ids (h1-tiny, h1-1k, h1-64k, h1-close, h2-tls, gzip-1, gzip-6, idle).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Idle connections for the memory scenario (default 5000, 1000 with --quick).
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Don't install anything; skip what is missing.
    #[arg(long)]
    no_install: bool,
    /// Use the built-in HTTP/1.1 load loop instead of wrk.
    #[arg(long)]
    builtin: bool,
    /// Generator for the new-connection-per-request scenario.
    #[arg(long, value_parser = ["wrk", "oha"], default_value = "wrk")]
    close_generator: String,
    /// Skip the direct-to-origin ceiling run.
    #[arg(long)]
    no_direct: bool,
    /// Don't pin cores with taskset.
    #[arg(long)]
    no_pin: bool,
    /// Report directory (default: bench/results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

fn main() {
    // `sluice-bench services [--quick]`: the cache and log services instead
    // of the proxy comparison (see `sluice_bench::services`).
    if std::env::args().nth(1).as_deref() == Some("services") {
        std::process::exit(sluice_bench::services::cli(std::env::args_os().skip(1)));
    }
    let a = Args::parse();
    let ab = a.sluice_bin_b.is_some() || a.sluice_extra_config_b.is_some();
    let mut peers = a.peers.clone().unwrap_or_else(|| {
        let default: &[&str] = if ab {
            &["sluice"]
        } else {
            &["sluice", "nginx", "haproxy", "caddy"]
        };
        default.iter().map(|p| p.to_string()).collect()
    });
    if a.with_pingora && !peers.iter().any(|p| p == "pingora") {
        peers.push("pingora".into());
    }
    // An A/B alone skips the origin-only ceiling: it says nothing about B ÷ A.
    let ab_alone = ab && a.peers.is_none();
    let direct = !(a.no_direct || ab_alone);
    let origin_bin = a.origin_bin.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("bench-origin")))
            .unwrap_or_else(|| PathBuf::from("bench-origin"))
    });
    let opts = Options {
        args: std::env::args().skip(1).collect(),
        quick: a.quick,
        peers,
        direct,
        sluice_bin: a.sluice_bin,
        sluice_bin_b: a.sluice_bin_b,
        sluice_extra_config: a.sluice_extra_config,
        sluice_extra_config_b: a.sluice_extra_config_b,
        origin_bin,
        rounds: a.rounds,
        duration: a.duration.map(Duration::from_secs),
        scenarios: a.scenarios,
        install: !a.no_install,
        builtin: a.builtin,
        close_generator: if a.close_generator == "oha" {
            Generator::Oha
        } else {
            Generator::Wrk
        },
        idle_connections: a.idle_connections,
        pin: !a.no_pin,
        out_dir: a
            .out_dir
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")),
    };
    match run(&opts) {
        Ok(w) => {
            println!("report: {}", w.markdown.display());
            println!("chart:  {}", w.svg.display());
            println!("raw:    {}", w.json.display());
        }
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::exit(1);
        }
    }
}
