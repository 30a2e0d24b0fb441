//! The kustomize base of `deploy/k8s/`: every manifest validated offline
//! against the schemas of a pinned Kubernetes version (`kubernetes-validate`,
//! which bundles them), and the essentials checked against the code: probe
//! paths and ports are what the binaries serve (the proxy's are asked of the
//! real binary started with the ConfigMap's TOML), the grace periods cover
//! preStop plus the drain, the proxy discovers the headless Service by its
//! DNS name, and every Secret and ConfigMap reference resolves.

use serde_json::Value;
use sluice::config::Config;
use sluice::config::validate::parse;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::deploy::{
    const_port, const_secs, deploy_path, run, source, tool_or_skip, yaml_docs,
};
use sluice_e2e::harness::process::Sluice;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The schemas' version: the oldest Kubernetes still supported upstream
/// when this was written; `kubernetes-validate` bundles it.
const KUBERNETES: &str = "1.31.0";

/// The manifests: every YAML file but the kustomization.
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_path("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn validate(files: &[PathBuf]) -> (bool, String) {
    run(Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .args(files))
}

#[test]
fn every_manifest_is_valid_against_the_pinned_schemas_and_listed() {
    if !tool_or_skip("kubernetes-validate", "K8S_VALIDATE") {
        return;
    }
    let files = manifests();
    let (ok, out) = validate(&files);
    assert!(ok, "kubernetes-validate {KUBERNETES}: {out}");
    // The validator does reject a misspelt field (strict mode).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(deploy_path("k8s/proxy-deployment.yaml")).unwrap();
    std::fs::write(
        &bad,
        text.replace("terminationGracePeriodSeconds", "terminationGracePeriod"),
    )
    .unwrap();
    assert!(!validate(&[bad]).0, "a misspelt field passed");

    let kustomization = yaml_docs(&[deploy_path("k8s/kustomization.yaml")]).remove(0);
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml resources vs deploy/k8s/*.yaml"
    );

    // kustomize itself builds it, where kubectl is at hand (not required).
    if run(Command::new("sh").args(["-c", "command -v kubectl"])).0 {
        let (ok, out) = run(Command::new("kubectl")
            .arg("kustomize")
            .arg(deploy_path("k8s")));
        assert!(ok, "kubectl kustomize: {out}");
        let docs = out.lines().filter(|l| l.starts_with("kind: ")).count();
        assert_eq!(docs, yaml_docs(&files).len(), "{out}");
        assert!(out.contains("image: localhost/sluice:latest"), "{out}");
    }
}

/// The manifests, with lookups by kind and name.
struct Manifests {
    docs: Vec<Value>,
    namespace: String,
}

impl Manifests {
    fn load() -> Manifests {
        let kustomization = yaml_docs(&[deploy_path("k8s/kustomization.yaml")]).remove(0);
        Manifests {
            docs: yaml_docs(&manifests()),
            namespace: kustomization["namespace"].as_str().unwrap().to_owned(),
        }
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.docs.iter().filter(move |d| d["kind"] == kind)
    }

    /// The proxy's TOML, as the ConfigMap holds it.
    fn proxy_toml(&self) -> String {
        let cm = self.get("ConfigMap", "sluice-proxy-config");
        cm["data"]["sluice.toml"].as_str().unwrap().to_owned()
    }
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// A named or numbered container port.
fn port_of(c: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let name = port.as_str().unwrap();
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

/// A probe's path and port.
fn probe(c: &Value, which: &str) -> (String, u16) {
    let get = &c[which]["httpGet"];
    (
        get["path"].as_str().unwrap().to_owned(),
        port_of(c, &get["port"]),
    )
}

/// The value of an env entry given inline.
fn env(c: &Value, name: &str) -> String {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no env {name}"))
        .to_owned()
}

/// terminationGracePeriodSeconds ≥ the preStop sleep + `drain`.
fn assert_grace(d: &Value, drain: Duration) {
    let spec = &d["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let cmd = &container(d)["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(cmd[0], "sleep", "{}: preStop", d["metadata"]["name"]);
    let sleep: u64 = cmd[1].as_str().unwrap().parse().unwrap();
    assert!(
        Duration::from_secs(grace) >= drain + Duration::from_secs(sleep),
        "{}: grace {grace}s < preStop {sleep}s + drain {drain:?}",
        d["metadata"]["name"]
    );
}

#[test]
fn services_probes_ports_and_grace_match_their_code() {
    if !tool_or_skip("python3", "PYTHON") {
        return;
    }
    let m = Manifests::load();
    for (name, var, dir, drain_file, drain) in [
        (
            "app",
            "SLUICE_APP_LISTEN",
            "app",
            "services/app/src/config.rs",
            "DEFAULT_DRAIN_GRACE",
        ),
        (
            "cache",
            "SLUICE_CACHE_LISTEN",
            "cache",
            "services/cache/src/lib.rs",
            "DRAIN_GRACE",
        ),
        (
            "log",
            "SLUICE_LOG_LISTEN",
            "log",
            "services/log/src/lib.rs",
            "SHUTDOWN_GRACE",
        ),
    ] {
        let d = m.get("Deployment", name);
        let c = container(d);
        let port = const_port(&format!("services/{dir}/src/config.rs"), "DEFAULT_LISTEN");
        assert_eq!(env(c, var), format!("0.0.0.0:{port}"), "{name}");
        // The routes of each service's API (`/ping` liveness, `/ready` readiness).
        let api = source(&format!("services/{dir}/src/api.rs"));
        assert!(
            api.contains("\"ping\"") || api.contains("\"/ping\""),
            "{name}: /ping"
        );
        assert!(
            api.contains("\"ready\"") || api.contains("\"/ready\""),
            "{name}: /ready"
        );
        assert_eq!(
            probe(c, "livenessProbe"),
            ("/ping".to_owned(), port),
            "{name}"
        );
        assert_eq!(
            probe(c, "readinessProbe"),
            ("/ready".to_owned(), port),
            "{name}"
        );
        assert_grace(d, Duration::from_secs(const_secs(drain_file, drain)));
        // Its Service sends to that port.
        let svc = m.get("Service", name);
        assert_eq!(port_of(c, &svc["spec"]["ports"][0]["targetPort"]), port);
    }
}

#[test]
fn the_proxy_discovers_the_headless_service_and_waits_for_its_drain() {
    if !tool_or_skip("python3", "PYTHON") {
        return;
    }
    let m = Manifests::load();
    let config: Config = parse(&m.proxy_toml(), Path::new("sluice.toml")).expect("valid TOML");
    let d = m.get("Deployment", "sluice-proxy");
    let c = container(d);
    assert_grace(d, config.timeouts.shutdown_grace);
    let admin = config.admin.as_ref().unwrap().address.port();
    assert_eq!(probe(c, "livenessProbe"), ("/healthz".to_owned(), admin));
    assert_eq!(probe(c, "readinessProbe"), ("/readyz".to_owned(), admin));
    let svc = m.get("Service", "sluice-proxy");
    assert_eq!(
        port_of(c, &svc["spec"]["ports"][0]["targetPort"]),
        config.listeners[0].address.port()
    );

    // The apps: a name the proxy resolves, which is the headless Service's
    // DNS name, on the port the Service and the app pods use.
    let group = config
        .upstreams
        .iter()
        .find(|u| u.name == "default")
        .unwrap();
    let (host, port) = (&group.dns[0].host, group.dns[0].port);
    let svc = m
        .of_kind("Service")
        .find(|s| {
            format!(
                "{}.{}.svc.cluster.local",
                s["metadata"]["name"].as_str().unwrap(),
                m.namespace
            ) == *host
        })
        .unwrap_or_else(|| panic!("{host} is no Service's DNS name"));
    assert_eq!(svc["spec"]["clusterIP"], "None", "{host}: not headless");
    assert_eq!(
        svc["spec"]["ports"][0]["port"].as_u64(),
        Some(u64::from(port))
    );
    let app = m.get("Deployment", svc["metadata"]["name"].as_str().unwrap());
    assert_eq!(
        svc["spec"]["selector"],
        app["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        port_of(container(app), &svc["spec"]["ports"][0]["targetPort"]),
        port
    );

    // The env ConfigMap points at the mounted file and the mounted secret.
    let env = &m.get("ConfigMap", "sluice-proxy-env")["data"];
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "sluice-proxy-env");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount = |volume: &str| {
        mounts
            .iter()
            .find(|v| v["name"] == volume)
            .and_then(|v| v["mountPath"].as_str())
            .unwrap()
            .to_owned()
    };
    assert_eq!(env["SLUICE_CONFIG"].as_str().unwrap(), mount("config"));
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let secret = volumes.iter().find(|v| v["name"] == "secret").unwrap();
    let item = secret["secret"]["items"][0]["path"].as_str().unwrap();
    assert_eq!(
        env["SLUICE_ADMIN_TOKEN_FILE"].as_str().unwrap(),
        format!("{}/{item}", mount("secret"))
    );
}

#[test]
fn every_reference_resolves_and_every_container_is_bounded() {
    if !tool_or_skip("python3", "PYTHON") {
        return;
    }
    let m = Manifests::load();
    let secret = m.get("Secret", "sluice-secrets");
    let has_key =
        |name: &str, key: &str| name == "sluice-secrets" && secret["stringData"][key].is_string();
    let workloads: Vec<&Value> = m
        .of_kind("Deployment")
        .chain(m.of_kind("StatefulSet"))
        .collect();
    for w in &workloads {
        let name = &w["metadata"]["name"];
        let spec = &w["spec"]["template"]["spec"];
        assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
        let labels = &w["spec"]["template"]["metadata"]["labels"];
        assert_eq!(&w["spec"]["selector"]["matchLabels"], labels, "{name}");
        for c in spec["containers"].as_array().unwrap() {
            for k in ["requests", "limits"] {
                for r in ["cpu", "memory"] {
                    assert!(c["resources"][k][r].is_string(), "{name}: {k}.{r}");
                }
            }
            for e in c["env"].as_array().into_iter().flatten() {
                if let Some(r) = e["valueFrom"].get("secretKeyRef") {
                    let (n, k) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                    assert!(has_key(n, k), "{name}: secret {n}/{k}");
                }
            }
            for from in c["envFrom"].as_array().into_iter().flatten() {
                let n = from["configMapRef"]["name"].as_str().unwrap();
                m.get("ConfigMap", n);
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(s) = v.get("secret") {
                let n = s["secretName"].as_str().unwrap();
                for item in s["items"].as_array().into_iter().flatten() {
                    assert!(has_key(n, item["key"].as_str().unwrap()), "{name}: {n}");
                }
            }
            if let Some(cm) = v.get("configMap") {
                m.get("ConfigMap", cm["name"].as_str().unwrap());
            }
            if let Some(pvc) = v.get("persistentVolumeClaim") {
                m.get("PersistentVolumeClaim", pvc["claimName"].as_str().unwrap());
            }
        }
    }
    // A budget selects a workload; the proxy, apps and caches have one.
    let mut covered = BTreeSet::new();
    for pdb in m.of_kind("PodDisruptionBudget") {
        let sel = &pdb["spec"]["selector"]["matchLabels"];
        let w = workloads
            .iter()
            .find(|w| &w["spec"]["selector"]["matchLabels"] == sel)
            .unwrap_or_else(|| panic!("PDB {} selects nothing", pdb["metadata"]["name"]));
        covered.insert(w["metadata"]["name"].as_str().unwrap().to_owned());
    }
    for name in ["sluice-proxy", "app", "cache"] {
        assert!(covered.contains(name), "no PodDisruptionBudget for {name}");
    }
}

#[tokio::test]
async fn the_real_proxy_with_the_configmap_answers_its_probes() {
    if !tool_or_skip("python3", "PYTHON") {
        return;
    }
    let m = Manifests::load();
    let c = container(m.get("Deployment", "sluice-proxy"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, m.proxy_toml()).unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "t0ken\n").unwrap();
    // The pod's file as it is, moved onto loopback by the overlay.
    let sluice = Sluice::run_env(
        std::iter::empty::<&str>(),
        &[
            ("SLUICE_CONFIG", path.to_str().unwrap()),
            ("SLUICE_ADMIN_TOKEN_FILE", token.to_str().unwrap()),
            ("SLUICE_WORKERS", "1"),
            ("SLUICE_LISTENER__0__ADDRESS", "127.0.0.1:0"),
            ("SLUICE_ADMIN__ADDRESS", "127.0.0.1:0"),
            ("SLUICE_UPSTREAM__DEFAULT__BACKENDS", "[\"127.0.0.1:1\"]"),
        ],
    );
    sluice.listening().await;
    // Kubelet sends no token: the probe paths must not need one.
    let admin = Admin::new(sluice.logged_addr("admin API listening").await);
    for which in ["livenessProbe", "readinessProbe"] {
        let (path, _) = probe(c, which);
        assert_eq!(admin.get(&path).await.status, 200, "{which} {path}");
    }
    assert_eq!(admin.get("/backends").await.status, 401);
}
