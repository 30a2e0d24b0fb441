//! The image of `deploy/Dockerfile.prebuilt` (the runtime stage of
//! `deploy/Dockerfile` over binaries built outside) built with podman from
//! this run's `sluice` binary, then run: it serves `/readyz`, its
//! HEALTHCHECK passes, and it runs as the unprivileged user.
//!
//! No registry is needed: the base image is made here from the host's own
//! bash, coreutils, grep and glibc (`podman import`), which is what the
//! Debian base gives the real image. Storage is `vfs` in a temporary
//! directory and the runtime `runc` with cgroupfs (what works inside an
//! unprivileged CI container); `SLUICE_TEST_PODMAN_FLAGS` replaces those
//! flags. Without podman the test fails unless `SLUICE_TEST_SKIP_CONTAINER`
//! is set.

use sluice_e2e::harness::STEP;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::deploy::{deploy_path, run, tool_or_skip};
use sluice_e2e::harness::process::sluice_bin;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_FLAGS: &str = "--storage-driver=vfs --cgroup-manager=cgroupfs --runtime=runc";
/// Limits the runtime may set inside a CI container (it may not raise them).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];
/// What the base image must hold: the image's shell and healthcheck tools.
const TOOLS: [&str; 7] = ["sh", "bash", "head", "grep", "mkdir", "chown", "sleep"];

struct Podman {
    root: tempfile::TempDir,
    flags: Vec<String>,
}

impl Podman {
    fn new() -> Podman {
        let flags = std::env::var("SLUICE_TEST_PODMAN_FLAGS").unwrap_or(DEFAULT_FLAGS.into());
        Podman {
            root: tempfile::tempdir().expect("tempdir"),
            flags: flags.split_whitespace().map(str::to_owned).collect(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.args(&self.flags)
            .arg("--root")
            .arg(self.root.path().join("root"))
            .arg("--runroot")
            .arg(self.root.path().join("run"));
        c
    }

    /// Runs `podman args…`; its output, or the test fails saying what failed.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = run(self.cmd().args(args));
        assert!(ok, "podman {args:?}: {out}");
        out
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // vfs layers are plain directories; the containers go first.
        let _ = self.cmd().args(["rm", "--all", "--force"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}

/// Copies `path` (its content, symlinks followed) to `root` under both
/// its given and its canonical name.
fn copy_in(root: &Path, path: &Path) {
    let canonical = std::fs::canonicalize(path).expect("canonicalize");
    for p in [path, canonical.as_path()] {
        let to = root.join(p.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if !to.exists() {
            std::fs::copy(&canonical, &to).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}

/// A base image from the host's tools and the libraries they link.
fn base_rootfs(root: &Path) {
    // A merged-/usr host's /bin → usr/bin and so on, first, so that the
    // files copied below land where the image expects them (/bin/sh).
    std::fs::create_dir_all(root).unwrap();
    for dir in ["bin", "sbin", "lib", "lib64"] {
        if let Ok(target) = std::fs::read_link(Path::new("/").join(dir)) {
            std::fs::create_dir_all(root.join(&target)).unwrap();
            std::os::unix::fs::symlink(target, root.join(dir)).unwrap();
        }
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for tool in TOOLS {
        let (ok, out) = run(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
        assert!(ok, "{tool} not found");
        files.push(PathBuf::from(out.trim()));
    }
    let mut libs = Vec::new();
    for f in files.iter().chain([&sluice_bin()]) {
        let (_, out) = run(Command::new("ldd").arg(f));
        for line in out.lines() {
            let lib = line
                .split("=>")
                .last()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap_or("");
            if lib.starts_with('/') {
                libs.push(PathBuf::from(lib));
            }
        }
    }
    for f in files.iter().chain(&libs) {
        copy_in(root, f);
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\n").unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
}

async fn wait_accepting(addr: SocketAddr) {
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_image_serves_readyz_passes_its_healthcheck_and_runs_unprivileged() {
    if !tool_or_skip("podman", "CONTAINER") {
        return;
    }
    let podman = Podman::new();
    let tag = std::process::id();
    let work = tempfile::tempdir().unwrap();

    let rootfs = work.path().join("rootfs");
    base_rootfs(&rootfs);
    let tar = work.path().join("base.tar");
    let (ok, out) = run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    assert!(ok, "tar: {out}");
    let base = format!("localhost/sluice-test-base:{tag}");
    podman.ok(&["import", tar.to_str().unwrap(), &base]);

    // The build context: bin/ with the binary, as the Dockerfile expects.
    let context = work.path().join("context");
    std::fs::create_dir_all(context.join("bin")).unwrap();
    std::fs::copy(sluice_bin(), context.join("bin/sluice")).unwrap();
    let image = format!("localhost/sluice-test:{tag}");
    let dockerfile = deploy_path("Dockerfile.prebuilt");
    // HEALTHCHECK is a Docker-format field: OCI images drop it.
    let mut build = vec!["build", "--format", "docker", "--build-arg"];
    let base_arg = format!("BASE={base}");
    build.extend([
        base_arg.as_str(),
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        &image,
    ]);
    build.extend(ULIMITS);
    build.push(context.to_str().unwrap());
    podman.ok(&build);
    let user = podman.ok(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
    assert_eq!(user.trim(), "10001:10001");

    let (listen, admin) = (free_port(), free_port());
    let name = format!("sluice-test-{tag}");
    let health_port = format!("HEALTHCHECK_PORT={admin}");
    let (listen_arg, admin_arg) = (format!("127.0.0.1:{listen}"), format!("127.0.0.1:{admin}"));
    let mut run_args = vec!["run", "--detach", "--name", &name, "--network", "host"];
    run_args.extend(ULIMITS);
    run_args.extend(["--env", &health_port, &image]);
    run_args.extend(["--listen", &listen_arg, "--admin", &admin_arg]);
    run_args.extend(["--backend", "127.0.0.1:1", "--workers", "1"]);
    podman.ok(&run_args);

    let addr = SocketAddr::from(([127, 0, 0, 1], admin));
    let started = tokio::time::timeout(STEP, wait_accepting(addr)).await;
    if started.is_err() {
        let logs = run(podman.cmd().args(["logs", &name])).1;
        let ps = run(podman.cmd().args(["ps", "--all"])).1;
        panic!("the container's proxy never listened on {addr}:\n{ps}\n{logs}");
    }
    assert_eq!(Admin::new(addr).get("/readyz").await.status, 200);
    // The image's own HEALTHCHECK (bash /dev/tcp, no curl in the image).
    podman.ok(&["healthcheck", "run", &name]);
    let uid = podman.ok(&["exec", &name, "bash", "-c", "echo $EUID"]);
    assert_eq!(uid.trim(), "10001");
    podman.ok(&["rm", "--force", &name]);
}
