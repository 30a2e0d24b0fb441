//! Reading the files of `deploy/` for the tests that check them: YAML
//! through Python's PyYAML (a dependency of `kubernetes-validate`, which
//! those tests need anyway; the workspace has no YAML crate), the values
//! the code declares (ports, drain periods) from its source.

use super::process::workspace_root;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `deploy/<rel>` in the workspace.
pub fn deploy_path(rel: &str) -> PathBuf {
    workspace_root().join("deploy").join(rel)
}

/// Whether a test that needs `tool` may be skipped when it is missing:
/// only when `SLUICE_TEST_SKIP_<WHAT>` is set (CI installs every tool).
pub fn tool_or_skip(tool: &str, what: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let var = format!("SLUICE_TEST_SKIP_{what}");
    assert!(
        std::env::var_os(&var).is_some(),
        "{tool} is not installed (.ci/run installs it); set {var}=1 to skip this test"
    );
    eprintln!("{tool} missing and {var} set: skipped");
    false
}

/// Every YAML document of `files`, as JSON values (empty documents left out).
pub fn yaml_docs(files: &[PathBuf]) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]\n\
                  print(json.dumps(docs))";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("run python3 (PyYAML: pip install kubernetes-validate brings it)");
    assert!(
        out.status.success(),
        "reading YAML failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// The text of a workspace file.
pub fn source(rel: &str) -> String {
    let path = workspace_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The port of `pub const NAME: &str = "IP:PORT";` in `rel`.
pub fn const_port(rel: &str, name: &str) -> u16 {
    let text = source(rel);
    let line = const_line(&text, rel, name);
    let quoted = line.split('"').nth(1).expect("a string constant");
    quoted
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{rel}: {name} = {quoted:?} has no port"))
}

/// The seconds of `const NAME: Duration = Duration::from_secs(N);` in `rel`.
pub fn const_secs(rel: &str, name: &str) -> u64 {
    let text = source(rel);
    let line = const_line(&text, rel, name);
    line.split("from_secs(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{rel}: {name} is not Duration::from_secs(N): {line}"))
}

fn const_line<'a>(text: &'a str, rel: &str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(&format!("const {name}:")))
        .unwrap_or_else(|| panic!("{rel} declares no const {name}"))
}

/// The `[[bin]]` names of the workspace's binaries that ship (the engine's
/// and the services'; not the test and bench tools).
pub fn shipped_binaries() -> Vec<String> {
    let mut bins = Vec::new();
    for manifest in [
        "engine/Cargo.toml",
        "services/app/Cargo.toml",
        "services/cache/Cargo.toml",
        "services/log/Cargo.toml",
        "services/demo/Cargo.toml",
    ] {
        let text = source(manifest);
        let mut in_bin = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
                bins.push(v.trim_matches('"').to_owned());
            }
        }
    }
    bins
}

/// Runs a command; its status and stdout+stderr.
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A file's lines that are instructions (no comments, continuations joined).
pub fn dockerfile_instructions(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(t);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}
