//! The container image (deploy/Dockerfile): the static binary built for musl, the
//! runtime stage built from it with podman (no registry is reachable here, so the stage
//! that compiles inside the official Rust image is not run), and the container run
//! against a test cluster: it answers PING, serves SET/GET, runs as a non-root user, and
//! its health check passes. deploy/compose.yaml is checked for its shape; compose itself
//! is not run (its images, redis:7 and rust, would come from a registry).
//!
//! Needs podman, runc, musl-tools and Rust's x86_64-unknown-linux-musl target:
//! scripts/install-deps.sh installs them. On this kind of machine podman runs containers
//! only with runc, cgroupfs, the host's network and explicit ulimits; the flags below say so.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MUSL: &str = "x86_64-unknown-linux-musl";

fn need(program: &str) {
    need_version(
        program,
        "scripts/install-deps.sh installs podman, runc and musl-tools",
    );
}

fn run(cmd: &mut Command, what: &str, timeout: Duration) -> String {
    let out = run_with_timeout(cmd, timeout);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// podman as this machine lets it run containers.
fn podman(root: &Path) -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c.arg("--root").arg(root.join("storage"));
    c.arg("--runroot").arg(root.join("run"));
    c
}

#[test]
fn the_container_image_serves_a_cluster() {
    need("podman");
    need("runc");
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets = run(
        Command::new("rustup").args(["target", "list", "--installed"]),
        "rustup target list",
        Duration::from_secs(30),
    );
    assert!(
        targets.lines().any(|l| l.trim() == MUSL),
        "Rust's {MUSL} target is missing: scripts/install-deps.sh adds it (rustup target add {MUSL})"
    );
    // The static binary, in a target directory of its own (the one `cargo test` holds is
    // locked while the tests run).
    let target = root_dir.join("target").join("container");
    run(
        Command::new("cargo")
            .args(["build", "--release", "--locked", "--target", MUSL])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root_dir),
        "cargo build --release --target x86_64-unknown-linux-musl",
        Duration::from_secs(1200),
    );
    let bin = target
        .join(MUSL)
        .join("release")
        .join("redis-cluster-proxy");
    let elf = std::fs::read(&bin).unwrap();
    assert!(
        elf.starts_with(b"\x7fELF") && !has_interpreter(&elf),
        "{} is not a static binary",
        bin.display()
    );

    // The build context: the Dockerfile's from-host stage takes the binary from
    // target/x86_64-unknown-linux-musl/release/ and config.yaml.
    let work = unique_temp_dir("rcp-container");
    let ctx = work.join("ctx");
    let dest = ctx.join("target").join(MUSL).join("release");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(&bin, dest.join("redis-cluster-proxy")).unwrap();
    std::fs::copy(root_dir.join("config.yaml"), ctx.join("config.yaml")).unwrap();
    std::fs::copy(root_dir.join("deploy/Dockerfile"), ctx.join("Dockerfile")).unwrap();
    let image = format!("localhost/rcp-test-{}", std::process::id());
    run(
        podman(&work)
            // The docker format keeps HEALTHCHECK (OCI images have no health check).
            .args([
                "build",
                "--format",
                "docker",
                "--target",
                "from-host",
                "-t",
                &image,
                "-f",
            ])
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx),
        "podman build --target from-host",
        Duration::from_secs(300),
    );
    let inspect = run(
        podman(&work).args([
            "image",
            "inspect",
            &image,
            "--format",
            "{{.Config.User}} {{.Config.ExposedPorts}} {{.Config.Entrypoint}}",
        ]),
        "podman image inspect",
        Duration::from_secs(30),
    );
    assert!(
        inspect.contains("65534:65534"),
        "not a non-root user: {inspect}"
    );
    assert!(inspect.contains("6379/tcp"), "6379 not exposed: {inspect}");
    let health = run(
        podman(&work).args([
            "image",
            "inspect",
            &image,
            "--format",
            "{{.Config.Healthcheck}}",
        ]),
        "podman image inspect (health check)",
        Duration::from_secs(30),
    );
    assert!(
        health.contains("--ping"),
        "no health check in the image: {health}"
    );

    let cluster = Cluster::start_masters(3);
    let port = free_port();
    let name = format!("rcp-test-{}", std::process::id());
    let seed = format!("127.0.0.1:{}", cluster.masters()[0]);
    run(
        podman(&work)
            .args(["run", "-d", "--rm", "--name", &name, "--network", "host"])
            .args([
                "--ulimit",
                "nofile=4096:4096",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .arg(&image)
            .args([
                "--nodes",
                &seed,
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ]),
        "podman run",
        Duration::from_secs(60),
    );
    let stop = || {
        let _ = run_with_timeout(
            podman(&work).args(["rm", "-f", "-t", "1", &name]),
            Duration::from_secs(30),
        );
    };
    let up = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ping_port(port, Duration::from_millis(500)).then_some(())
    });
    if up.is_none() {
        let logs = run_with_timeout(podman(&work).args(["logs", &name]), Duration::from_secs(10));
        stop();
        panic!(
            "the container's proxy never answered PING on {port}:\n{}",
            String::from_utf8_lossy(&logs.stderr)
        );
    }
    let mut c = RawClient::connect(port, Duration::from_secs(5)).unwrap();
    for i in 0..30 {
        let k = format!("container:{i}");
        assert_eq!(c.cmd(&["SET", &k, "v"]), Resp::Simple("OK".into()));
        assert_eq!(c.cmd(&["GET", &k]), Resp::Bulk(b"v".to_vec()));
    }
    // The image's own health check: its binary's --ping, inside the container.
    let health = run_with_timeout(
        podman(&work)
            .args(["exec", &name, "/redis-cluster-proxy", "--ping"])
            .arg(format!("127.0.0.1:{port}")),
        Duration::from_secs(30),
    );
    stop();
    assert!(
        health.status.success(),
        "the health check failed: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    let _ = run_with_timeout(
        podman(&work).args(["rmi", "-f", &image]),
        Duration::from_secs(60),
    );
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "[container] built and ran the from-host image; not run: the from-build stage and \
         deploy/compose.yaml (their images come from a registry this machine cannot reach)"
    );
}

/// deploy/compose.yaml: six Redis nodes, the cluster made from them, and the proxy built
/// from deploy/Dockerfile with its configuration mounted. Its shape is checked here; it is
/// not run (see above).
#[test]
fn compose_file_has_a_cluster_and_the_proxy() {
    use serde_yaml::Value;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| -> Value {
        let text = std::fs::read_to_string(root.join(p)).unwrap();
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let doc = read("deploy/compose.yaml");
    let services = doc["services"].as_mapping().expect("services");
    let nodes: Vec<String> = services
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| k.starts_with("redis-"))
        .map(str::to_string)
        .collect();
    assert_eq!(nodes.len(), 6, "{nodes:?}");
    let init = doc["services"]["cluster-init"]["command"][0]
        .as_str()
        .unwrap_or_default();
    assert!(init.contains("--cluster-replicas 1"), "{init}");
    assert!(nodes.iter().all(|n| init.contains(n.as_str())), "{init}");
    let p = &doc["services"]["proxy"];
    assert_eq!(p["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
    assert_eq!(
        p["depends_on"]["cluster-init"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    let cfg = read("deploy/compose-proxy.yaml");
    assert_eq!(cfg["bind"].as_str(), Some("0.0.0.0"));
    // The proxy's own check of the configuration compose mounts.
    let out = run_with_timeout(
        Command::new(proxy_bin())
            .args(["--check", "--config"])
            .arg(root.join("deploy/compose-proxy.yaml")),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether an ELF file asks for a dynamic loader (a PT_INTERP program header).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

/// deploy/redis-cluster-proxy.service passes `systemd-analyze verify` (with its commands
/// pointed at the built binary, which the unit expects in /usr/local/bin), ExecReload
/// included.
#[test]
fn the_systemd_unit_verifies() {
    need_version(
        "systemd-analyze",
        "systemd (scripts/install-deps.sh installs it)",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("deploy/redis-cluster-proxy.service")).unwrap();
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    let dir = unique_temp_dir("rcp-unit");
    let path = dir.join("redis-cluster-proxy.service");
    let bin = proxy_bin().to_string();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/redis-cluster-proxy", &bin),
    )
    .unwrap();
    let out = run_with_timeout(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path),
        Duration::from_secs(60),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

fn need_version(program: &str, how: &str) {
    assert!(
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "{program} not found: {how}"
    );
}
