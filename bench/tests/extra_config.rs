//! The extra-config fragments under bench/configs/, merged into the config
//! the harness generates and run by a real `sluice`: Sluice accepts every
//! one in every scenario shape, and they change what it does (a rate limit
//! refuses, the state machine ejects or does not).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sluice_bin;
use sluice_bench::origins::Origins;
use sluice_bench::peers::sluice::Sluice;
use sluice_bench::peers::sluice_config::{self, ExtraConfig};
use sluice_bench::peers::{CertFiles, Peer, PeerCtx};
use sluice_bench::pin::Pinning;
use sluice_bench::probe::{self, free_port};
use sluice_bench::scenario::Coding;

fn fragment_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

fn fragment_text(name: &str) -> String {
    std::fs::read_to_string(fragment_path(name)).unwrap()
}

/// A context in `dir` with fresh ports, a real certificate and `origins`.
fn ctx(dir: &Path, origins: [SocketAddr; 2], tls: bool, gzip_level: Option<u32>) -> PeerCtx {
    PeerCtx {
        dir: dir.to_path_buf(),
        listen: free_port().unwrap(),
        tls_listen: tls.then(|| free_port().unwrap()),
        origins,
        cert: CertFiles::generate(dir).unwrap(),
        gzip_level,
        coding: Coding::Gzip,
    }
}

#[test]
fn sluice_accepts_every_shipped_fragment_in_every_scenario_shape() {
    let Some(bin) = sluice_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let origins = [free_port().unwrap(), free_port().unwrap()];
    let mut names: Vec<String> = std::fs::read_dir(fragment_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let extra = ExtraConfig::load(&fragment_path(name)).unwrap();
        for (tls, gzip) in [(false, None), (true, None), (false, Some(6))] {
            let file = dir.path().join("sluice.toml");
            let text = sluice_config::render(&ctx(dir.path(), origins, tls, gzip), Some(&extra));
            std::fs::write(&file, &text).unwrap();
            let out = std::process::Command::new(&bin)
                .arg("check")
                .arg("--config")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} (tls {tls}, gzip {gzip:?}): {}\n{text}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `sluice-b` started the way the harness starts it, with `fragment` merged.
fn start(bin: &Path, dir: &Path, origins: [SocketAddr; 2], fragment: &str) -> (PeerCtx, impl Drop) {
    let extra = ExtraConfig::parse(Path::new("test.toml"), fragment).unwrap();
    let ctx = ctx(dir, origins, false, None);
    let sluice = Sluice::b(bin.to_path_buf()).with_config_file(Some(extra));
    let running = sluice.start(&ctx, &Pinning::none()).expect("sluice starts");
    (ctx, running)
}

/// The shipped rate limit with its bucket shrunk to one token and its
/// refill to one per 1000 s, on /1k only (the readiness probe's /ping stays
/// free): the second request is refused, so the fragment is in force.
#[test]
fn the_rate_limit_fragment_is_in_force() {
    let Some(bin) = sluice_bin() else { return };
    let text = fragment_text("rate-limit-on.toml");
    let tight = text
        .replace("rate = 1000000 ", "rate = 0.001 ")
        .replace("burst = 16777216 ", "burst = 1\npath = \"/1k\" ");
    assert_eq!(tight.matches("0.001").count(), 1, "{tight}");
    assert!(tight.contains("burst = 1\n"), "{tight}");
    let dir = tempfile::tempdir().unwrap();
    let origins = Origins::start(
        Path::new(env!("CARGO_BIN_EXE_bench-origin")),
        &Pinning::none(),
    )
    .unwrap();
    let (ctx, _sluice) = start(&bin, dir.path(), origins.addrs, &tight);
    assert_eq!(probe::get(ctx.listen, "/1k", &[]).unwrap().status, 200);
    let refused = probe::get(ctx.listen, "/1k", &[]).unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-sluice-error"), Some("rate limited"));
    assert_eq!(probe::get(ctx.listen, "/ping", &[]).unwrap().status, 200);
}

/// The state of the backend at `addr`, from `GET /backends`.
fn backend_state(admin: SocketAddr, addr: SocketAddr) -> String {
    let resp = probe::get(admin, "/backends", &[]).unwrap();
    assert_eq!(resp.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let backends = v["groups"][0]["backends"].as_array().unwrap();
    let b = backends
        .iter()
        .find(|b| b["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} in {v}"));
    b["state"].as_str().unwrap().to_string()
}

/// One live origin and one dead port: with the state machine on the dead
/// one leaves rotation; with it off it stays `healthy` however often it
/// fails (its failures are retried on the live one, so clients see 200).
#[test]
fn the_state_machine_fragments_switch_ejection_on_and_off() {
    let Some(bin) = sluice_bin() else { return };
    let origins = Origins::start(
        Path::new(env!("CARGO_BIN_EXE_bench-origin")),
        &Pinning::none(),
    )
    .unwrap();
    let dead = free_port().unwrap();
    for (name, ejects) in [
        ("state-machine-on.toml", true),
        ("state-machine-off.toml", false),
    ] {
        let admin = free_port().unwrap();
        let fragment = format!("{}\n[admin]\naddress = \"{admin}\"\n", fragment_text(name));
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _sluice) = start(&bin, dir.path(), [origins.addrs[0], dead], &fragment);
        for _ in 0..20 {
            assert_eq!(
                probe::get(ctx.listen, "/1k", &[]).unwrap().status,
                200,
                "{name}"
            );
        }
        if ejects {
            // The machine moves it off the worker, so poll for it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while backend_state(admin, dead) == "healthy" && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_ne!(backend_state(admin, dead), "healthy", "{name}");
        } else {
            assert_eq!(backend_state(admin, dead), "healthy", "{name}");
        }
        assert_eq!(backend_state(admin, origins.addrs[0]), "healthy", "{name}");
    }
}
