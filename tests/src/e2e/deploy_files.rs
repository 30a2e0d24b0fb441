//! The packaging files of `deploy/` against the code they package: the
//! Dockerfile's essentials (multi-stage, `--locked`, non-root, only the
//! binaries, the ports the configs and services use), the compose stack,
//! and the systemd unit (`systemd-analyze verify`, hardening, stop timeout
//! at least the drain). Kubernetes is in `k8s.rs`, the image run in
//! `container.rs`.

use serde_json::Value;
use sluice::config::validate::parse;
use sluice_e2e::harness::deploy::{
    const_port, deploy_path, dockerfile_instructions, run, shipped_binaries, tool_or_skip,
    yaml_docs,
};
use sluice_e2e::harness::process::sluice_bin;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The ports the services listen on by default (their `DEFAULT_LISTEN`).
fn service_ports() -> [(&'static str, u16); 3] {
    [
        (
            "app",
            const_port("services/app/src/config.rs", "DEFAULT_LISTEN"),
        ),
        (
            "cache",
            const_port("services/cache/src/config.rs", "DEFAULT_LISTEN"),
        ),
        (
            "log",
            const_port("services/log/src/config.rs", "DEFAULT_LISTEN"),
        ),
    ]
}

/// The stages of a Dockerfile: each `FROM` line with the instructions after it.
fn stages(path: &Path) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for i in dockerfile_instructions(path) {
        if i.starts_with("FROM ") {
            out.push((i, Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(i);
        }
    }
    out
}

/// The runtime stage's instructions that must be the same in both files.
fn runtime_contract(body: &[String]) -> Vec<String> {
    body.iter()
        .filter(|i| {
            [
                "USER ",
                "EXPOSE ",
                "HEALTHCHECK ",
                "ENTRYPOINT ",
                "STOPSIGNAL ",
                "WORKDIR ",
            ]
            .iter()
            .any(|k| i.starts_with(k))
        })
        .cloned()
        .collect()
}

#[test]
fn the_dockerfile_builds_locked_in_one_stage_and_ships_only_the_binaries_as_non_root() {
    let path = deploy_path("Dockerfile");
    // The builder's Rust is the toolchain file's.
    let toolchain = sluice_e2e::harness::deploy::source("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("a channel")
        .trim_matches('"');
    let args = dockerfile_instructions(&path);
    assert!(
        args.contains(&format!("ARG RUST_VERSION={channel}")),
        "{args:?}"
    );
    let stages = stages(&path);
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    let (builder_from, build) = &stages[0];
    assert!(builder_from.ends_with(" AS builder"), "{builder_from}");
    let cargo = build
        .iter()
        .find(|i| i.contains("cargo build"))
        .expect("a cargo build");
    assert!(
        cargo.contains("--release") && cargo.contains("--locked"),
        "{cargo}"
    );
    // Every shipped binary is built and copied out, and nothing else is.
    for bin in shipped_binaries() {
        assert!(
            cargo.contains(&format!("--bin {bin} ")),
            "{bin} not built: {cargo}"
        );
        assert!(
            cargo.contains(&format!("target/release/{bin} ")),
            "{bin} not copied: {cargo}"
        );
    }
    let (runtime_from, runtime) = &stages[1];
    assert!(
        runtime_from.contains("-slim"),
        "a small runtime base: {runtime_from}"
    );
    let copies: Vec<&String> = runtime.iter().filter(|i| i.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        [&"COPY --from=builder /out/ /usr/local/bin/".to_owned()],
        "the runtime stage copies the binaries and nothing else"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as {user}");
    // The ports: the proxy's in the deploy configs, each service's default.
    let config = parse(
        &std::fs::read_to_string(deploy_path("compose/sluice.toml")).unwrap(),
        Path::new("sluice.toml"),
    )
    .expect("the compose proxy config is valid");
    let expose: BTreeSet<u16> = runtime
        .iter()
        .filter_map(|i| i.strip_prefix("EXPOSE "))
        .flat_map(|p| p.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    let mut wanted = BTreeSet::from([
        config.listeners[0].address.port(),
        config.admin.as_ref().unwrap().address.port(),
    ]);
    wanted.extend(service_ports().map(|(_, p)| p));
    assert_eq!(expose, wanted);
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("HEALTHCHECK ") && i.contains("/readyz"))
    );
    assert!(
        runtime
            .iter()
            .any(|i| i == "ENTRYPOINT [\"/usr/local/bin/sluice\"]")
    );

    // The prebuilt variant is the same runtime over outside binaries.
    let prebuilt = stages_of_prebuilt();
    assert_eq!(runtime_contract(&prebuilt), runtime_contract(runtime));
}

fn stages_of_prebuilt() -> Vec<String> {
    let stages = stages(&deploy_path("Dockerfile.prebuilt"));
    assert_eq!(stages.len(), 1, "{stages:?}");
    stages.into_iter().next().unwrap().1
}

#[test]
fn the_build_context_leaves_target_out() {
    let ignore = std::fs::read_to_string(deploy_path("../.dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

/// A compose duration (`30s`, `1m`) in seconds.
fn compose_secs(v: &Value) -> u64 {
    let s = v.as_str().expect("a duration");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().unwrap();
    match unit {
        "s" => n,
        "m" => n * 60,
        other => panic!("unit {other:?}"),
    }
}

#[test]
fn the_compose_stack_has_every_piece_healthchecked_in_order_with_file_secrets() {
    if !tool_or_skip("python3", "PYTHON") {
        return;
    }
    let doc = yaml_docs(&[deploy_path("compose.yaml")]).remove(0);
    let services = doc["services"].as_object().expect("services");
    let replicas = |name: &str| services[name]["deploy"]["replicas"].as_u64().unwrap_or(1);
    for name in [
        "proxy-a", "proxy-b", "app", "cache", "log", "redis", "postgres",
    ] {
        let s = &services[name];
        assert!(
            s["healthcheck"]["test"].is_array(),
            "{name} has no healthcheck"
        );
        // Every dependency waits for health, not for a start.
        for (dep, cond) in s["depends_on"].as_object().into_iter().flatten() {
            assert!(
                services.contains_key(dep),
                "{name} depends on unknown {dep}"
            );
            assert_eq!(cond["condition"], "service_healthy", "{name} → {dep}");
        }
        // Secrets are declared at the top level, as files.
        for secret in s["secrets"].as_array().into_iter().flatten() {
            let secret = secret.as_str().unwrap();
            assert!(
                doc["secrets"][secret]["file"].is_string(),
                "{name}: {secret}"
            );
        }
    }
    assert_eq!((replicas("app"), replicas("cache")), (3, 2));
    // The proxies' config is the file of the configs entry, and valid; the
    // stop grace covers its drain; the apps are discovered by DNS name.
    let file = doc["configs"]["proxy_config"]["file"].as_str().unwrap();
    let path = deploy_path(file);
    let config = parse(&std::fs::read_to_string(&path).unwrap(), &path).expect("valid");
    for proxy in ["proxy-a", "proxy-b"] {
        let s = &services[proxy];
        assert_eq!(s["environment"]["SLUICE_CONFIG"], "/etc/sluice/sluice.toml");
        assert_eq!(s["configs"][0]["target"], "/etc/sluice/sluice.toml");
        assert!(
            Duration::from_secs(compose_secs(&s["stop_grace_period"]))
                > config.timeouts.shutdown_grace
        );
        let probe = s["healthcheck"]["test"].to_string();
        let admin = config.admin.as_ref().unwrap().address.port();
        assert!(
            probe.contains(&format!("/{admin} ")) && probe.contains("/readyz"),
            "{probe}"
        );
    }
    let app = config
        .upstreams
        .iter()
        .find(|u| u.name == "default")
        .unwrap();
    let (app_port, cache_port, log_port) = (
        service_ports()[0].1,
        service_ports()[1].1,
        service_ports()[2].1,
    );
    assert_eq!(
        (app.dns[0].host.as_str(), app.dns[0].port),
        ("app", app_port)
    );
    // Each service listens on its default port on every interface.
    let env = |name: &str, var: &str| {
        services[name]["environment"][var]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        env("app", "SLUICE_APP_LISTEN"),
        format!("0.0.0.0:{app_port}")
    );
    assert_eq!(
        env("cache", "SLUICE_CACHE_LISTEN"),
        format!("0.0.0.0:{cache_port}")
    );
    assert_eq!(
        env("log", "SLUICE_LOG_LISTEN"),
        format!("0.0.0.0:{log_port}")
    );
    assert_eq!(
        env("app", "SLUICE_APP_CACHE"),
        format!("http://cache:{cache_port}")
    );
    assert_eq!(
        env("app", "SLUICE_APP_LOG"),
        format!("http://log:{log_port}")
    );
}

const HARDENING: &[&str] = &[
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "SystemCallFilter=@system-service",
    "KillSignal=SIGTERM",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "DynamicUser=yes",
];

#[test]
fn the_systemd_unit_is_hardened_waits_for_the_drain_and_verifies() {
    let unit = std::fs::read_to_string(deploy_path("sluice.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for key in HARDENING {
        assert!(lines.contains(key), "missing {key}");
    }
    let families = lines
        .iter()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies");
    assert_eq!(families, "AF_INET AF_INET6 AF_UNIX");
    assert!(lines.iter().any(|l| l.starts_with("LimitNOFILE=")));
    let stop = lines
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("TimeoutStopSec=Ns");
    assert!(
        Duration::from_secs(stop) > sluice::config::defaults::SHUTDOWN_GRACE,
        "TimeoutStopSec={stop}s does not cover the default drain"
    );

    if !tool_or_skip("systemd-analyze", "SYSTEMD_ANALYZE") {
        return;
    }
    // verify needs the binary it names: the one this test run built.
    let dir = tempfile::tempdir().unwrap();
    let bin = sluice_bin();
    let verify = |text: &str| {
        let path = dir.path().join("sluice.service");
        std::fs::write(
            &path,
            text.replace("/usr/local/bin/sluice", bin.to_str().unwrap()),
        )
        .unwrap();
        run(Command::new("systemd-analyze").arg("verify").arg(&path))
    };
    let (ok, out) = verify(&unit);
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");
    // It does catch a misspelt key (a warning, exit 0: hence the output check).
    let (_, out) = verify(&unit.replace("ProtectHome=", "ProtectHom="));
    assert!(out.contains("Unknown key"), "{out}");
}
