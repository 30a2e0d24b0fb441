//! The differential suite: every conformance case (`sluice_e2e::conformance`)
//! against Sluice, nginx and HAProxy, each forwarding to the same recording
//! origin with an equivalent generated configuration, and a table of who
//! passes what.
//!
//! ```text
//! cargo run -p sluice-e2e --bin differential [-- --out PATH]
//! ```
//!
//! Installs nginx and haproxy with apt-get when they are missing (the
//! bench's `install::ensure_apt`), so it never runs in `cargo test` or CI.
//! Writes the table to `tests/differential/RESULTS.md` (or `--out`) with the
//! date and the peer versions, and prints it.

use sluice_bench::install::{ensure_apt, git_rev};
use sluice_bench::peers::version_line;
use sluice_bench::process::Running;
use sluice_e2e::conformance::{Case, Outcome, RecordingOrigin, Target, cases, run};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The peers, in table order.
const PEERS: [&str; 3] = ["sluice", "nginx", "haproxy"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let out = std::env::args()
        .skip_while(|a| a != "--out")
        .nth(1)
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("differential/RESULTS.md"),
            PathBuf::from,
        );
    let mut log = Vec::new();
    let missing = ensure_apt(&[("nginx", "nginx"), ("haproxy", "haproxy")], &mut log);
    for m in &missing {
        eprintln!("{m} is missing and could not be installed: its column is empty");
    }
    let cases = cases::all();
    let origin = RecordingOrigin::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut columns: Vec<(&str, String, Option<Vec<Outcome>>)> = Vec::new();
    for peer in PEERS {
        if missing.iter().any(|m| m == peer) {
            columns.push((peer, "not installed".into(), None));
            continue;
        }
        eprintln!("running {} cases against {peer}", cases.len());
        // The last case's script must not answer the next peer's readiness probe.
        origin.arm(Default::default()).await;
        let (version, outcomes) = match peer {
            "sluice" => {
                let proxy = Proxy::start(&config(&[origin.addr()])).await;
                let target = Target {
                    h1: proxy.addr(),
                    h2c: proxy.addr(),
                };
                let outcomes = run_cases(&cases, target, &origin).await;
                proxy.shutdown().await;
                (format!("sluice {}", git_rev()), Some(outcomes))
            }
            _ => {
                let peer_dir = dir.path().join(peer);
                std::fs::create_dir_all(&peer_dir).expect("peer dir");
                let target = Target {
                    h1: free_port(),
                    h2c: free_port(),
                };
                let (program, args) = configure(peer, &peer_dir, target, origin.addr());
                let version = version_line(program, &["-v"]);
                match start(peer, program, args, &peer_dir, target).await {
                    Ok(running) => {
                        let target = if peer == "haproxy" {
                            // One bind serves both: HAProxy spots the h2 preface.
                            Target {
                                h2c: target.h1,
                                ..target
                            }
                        } else {
                            target
                        };
                        let outcomes = run_cases(&cases, target, &origin).await;
                        drop(running);
                        (version, Some(outcomes))
                    }
                    Err(e) => {
                        eprintln!("{peer} did not start: {e}");
                        (format!("{version} (did not start)"), None)
                    }
                }
            }
        };
        columns.push((peer, version, outcomes));
    }
    let table = render(&cases, &columns);
    println!("{table}");
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out, &table).expect("write the results");
    eprintln!("written to {}", out.display());
}

async fn run_cases(cases: &[Case], target: Target, origin: &RecordingOrigin) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        out.push(run(case, target, origin).await);
    }
    out
}

/// A port nothing listens on now (bound, then released).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Writes the peer's configuration into `dir`: its program and arguments.
fn configure(peer: &str, dir: &Path, t: Target, origin: SocketAddr) -> (&'static str, Vec<String>) {
    let d = dir.display();
    match peer {
        "nginx" => {
            let conf = nginx_conf(&d.to_string(), t, origin);
            let path = dir.join("nginx.conf");
            std::fs::write(&path, conf).expect("write nginx.conf");
            (
                "nginx",
                vec![
                    "-p".into(),
                    d.to_string(),
                    "-c".into(),
                    path.display().to_string(),
                ],
            )
        }
        _ => {
            let path = dir.join("haproxy.cfg");
            std::fs::write(&path, haproxy_cfg(t, origin)).expect("write haproxy.cfg");
            (
                "haproxy",
                vec!["-db".into(), "-f".into(), path.display().to_string()],
            )
        }
    }
}

/// nginx as a reverse proxy is usually set up: HTTP/1.1 and keep-alive to
/// the origin, and the client's host passed on (`$host`: the request
/// line's host for an absolute-form target, else Host). nginx 1.22 speaks
/// h2c only on a listener of its own (`http2` without `ssl`).
fn nginx_conf(dir: &str, t: Target, origin: SocketAddr) -> String {
    format!(
        "user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream origin {{
        server {origin};
        keepalive 16;
    }}
    server {{
        listen {h1};
        listen {h2c} http2;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
        }}
    }}
}}
",
        h1 = t.h1,
        h2c = t.h2c
    )
}

/// HAProxy in HTTP mode with keep-alive both ways; one plain bind serves
/// HTTP/1.1 and h2c (HAProxy detects the HTTP/2 preface).
fn haproxy_cfg(t: Target, origin: SocketAddr) -> String {
    format!(
        "global
    nbthread 1

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive

frontend fe
    bind {h1}
    default_backend origin

backend origin
    server o1 {origin}
",
        h1 = t.h1
    )
}

/// Starts the peer (the bench's `Running`: output to a log, ready when
/// `GET /` through it answers 200, stopped on drop).
async fn start(
    peer: &str,
    program: &str,
    args: Vec<String>,
    dir: &Path,
    t: Target,
) -> Result<Running, String> {
    let (peer, program, dir) = (peer.to_owned(), program.to_owned(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(&program);
        cmd.args(&args);
        Running::spawn(
            &peer,
            &mut cmd,
            t.h1,
            "/",
            &dir.join("output.log"),
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The Markdown table, then each failure's reason.
fn render(cases: &[Case], columns: &[(&str, String, Option<Vec<Outcome>>)]) -> String {
    let mut s = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(s, "# Differential conformance: Sluice, nginx, HAProxy\n");
    let _ = writeln!(
        s,
        "Generated by `cargo run -p sluice-e2e --bin differential` on {date}. Each peer forwards to the same recording origin with the configuration in `tests/src/bin/differential.rs` (Sluice runs in process, built from the commit named below); the cases are `tests/src/conformance/cases/`. A note is why Sluice differs on purpose.\n"
    );
    for (peer, version, _) in columns {
        let _ = writeln!(s, "- {peer}: {version}");
    }
    let _ = writeln!(s);
    let mut passed = vec![0usize; columns.len()];
    let _ = writeln!(s, "| case | section | {} | note |", PEERS.join(" | "));
    let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(PEERS.len()));
    for (i, case) in cases.iter().enumerate() {
        let cells: Vec<&str> = columns
            .iter()
            .enumerate()
            .map(|(c, (_, _, o))| match o.as_ref().map(|o| o[i].passed()) {
                Some(true) => {
                    passed[c] += 1;
                    "pass"
                }
                Some(false) => "**FAIL**",
                None => "–",
            })
            .collect();
        let note = case
            .sluice_differs
            .map_or(String::new(), |n| format!("sluice: {n}"));
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            case.id,
            case.section,
            cells.join(" | "),
            note.replace('|', "\\|")
        );
    }
    let totals: Vec<String> = passed
        .iter()
        .map(|p| format!("{p}/{}", cases.len()))
        .collect();
    let _ = writeln!(s, "| **passed** | | {} | |", totals.join(" | "));
    let _ = writeln!(s, "\n## Why each failure failed\n");
    for (peer, _, outcomes) in columns {
        let Some(outcomes) = outcomes else { continue };
        for o in outcomes.iter().filter(|o| !o.passed()) {
            let _ = writeln!(
                s,
                "- {peer} `{}`: {}",
                o.id,
                o.failures.join("; ").replace('\n', " ")
            );
        }
    }
    s
}
