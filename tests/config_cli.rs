//! The command line and the config file: --check, --version, --help, unreachable seeds, and
//! command-line flags winning over the file.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn run_proxy(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut cmd = Command::new(proxy_bin());
    cmd.args(args).env_remove("RUST_LOG");
    let out = run_with_timeout(&mut cmd, timeout);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_file(yaml: &str) -> (TempDir, String) {
    let dir = TempDir(unique_temp_dir("rcp-config"));
    let p = write_file(&dir.0, "config.yaml", yaml.as_bytes());
    (dir, p.to_string_lossy().into_owned())
}

#[test]
fn check_rejects_an_unknown_key_and_names_it() {
    let (_d, path) = config_file(
        "proxy_port: 7777\nredis_nodes:\n  - \"127.0.0.1:7000\"\nbogus_setting_xyz: 1\n",
    );
    let (ok, out, err) = run_proxy(&["--config", &path, "--check"], Duration::from_secs(20));
    assert!(
        !ok,
        "--check accepted an unknown key\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains("bogus_setting_xyz"),
        "stderr does not name the key:\n{err}"
    );

    // Unknown keys inside the socket section are named as well.
    let (_d, path) = config_file(
        "redis_nodes:\n  - \"127.0.0.1:7000\"\nsocket:\n  tcp_nodelay: true\n  no_such_socket_option: 3\n",
    );
    let (ok, out, err) = run_proxy(&["--config", &path, "--check"], Duration::from_secs(20));
    assert!(
        !ok,
        "--check accepted an unknown socket key\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains("no_such_socket_option"),
        "stderr does not name the key:\n{err}"
    );
}

#[test]
fn check_accepts_a_valid_config_without_contacting_the_cluster() {
    // --check only validates the file; the seed here is not running.
    let (_d, path) = config_file(
        "proxy_port: 7777\nbind: \"127.0.0.1\"\nredis_nodes:\n  - \"127.0.0.1:7000\"\n  - \"127.0.0.1:7001\"\n\
         auto_redirect: true\nmax_redirects: 5\nrefresh_interval: \"30s\"\nconnect_timeout: \"1s\"\n\
         backend_timeout: \"10s\"\nbackend_connections: 1\naddress_map:\n  \"127.0.0.1:7000\": \"10.0.0.1:7000\"\n\
         log_level: info\nsocket:\n  tcp_nodelay: true\n  backlog: 511\n  reuse_port: false\n",
    );
    let (ok, out, err) = run_proxy(&["--config", &path, "--check"], Duration::from_secs(20));
    assert!(
        ok,
        "--check rejected a valid config\nstdout: {out}\nstderr: {err}"
    );
}

#[test]
fn unreachable_seeds_exit_non_zero_naming_the_nodes() {
    let (p1, p2) = (free_port(), free_port());
    let (_d, path) = config_file(&format!(
        "proxy_port: {}\nredis_nodes:\n  - \"127.0.0.1:{p1}\"\n  - \"127.0.0.1:{p2}\"\nconnect_timeout: \"1s\"\n",
        free_port()
    ));
    let t0 = std::time::Instant::now();
    let (ok, out, err) = run_proxy(&["--config", &path], Duration::from_secs(30));
    eprintln!(
        "proxy with unreachable seeds exited after {:?}",
        t0.elapsed()
    );
    assert!(
        !ok,
        "proxy started without any reachable seed\nstdout: {out}\nstderr: {err}"
    );
    let all = format!("{out}\n{err}");
    for p in [p1, p2] {
        assert!(
            all.contains(&format!("127.0.0.1:{p}")),
            "message does not name 127.0.0.1:{p}:\n{all}"
        );
    }
}

#[test]
fn version_and_help() {
    let (ok, out, err) = run_proxy(&["--version"], Duration::from_secs(10));
    assert!(ok, "--version failed: {err}");
    assert!(
        out.contains(env!("CARGO_PKG_VERSION")),
        "--version printed {out:?}"
    );

    let (ok, out, err) = run_proxy(&["--help"], Duration::from_secs(10));
    assert!(ok, "--help failed: {err}");
    assert!(
        out.contains("--config"),
        "--help does not mention --config:\n{out}"
    );
}

#[test]
fn command_line_flags_win_over_the_file() {
    let cluster = Cluster::start();
    let master = cluster.masters()[0];
    let (file_port, flag_port, dead_seed) = (free_port(), free_port(), free_port());
    // The file names a dead seed and one port; the flags name a live seed and another port.
    let proxy = Proxy::start_with(
        &cluster,
        ProxyOptions {
            seeds: vec![],
            extra_yaml: format!(
                "proxy_port: {file_port}\nredis_nodes:\n  - \"127.0.0.1:{dead_seed}\"\nlog_level: error\n"
            ),
            args: vec![
                "--port".into(),
                flag_port.to_string(),
                "--nodes".into(),
                format!("127.0.0.1:{master}"),
                "--log-level".into(),
                "debug".into(),
                "--busy-poll".into(),
                "40us".into(),
            ],
        },
    );
    assert_eq!(proxy.port, flag_port);
    let mut raw = proxy.raw();
    assert_eq!(
        raw.cmd(&["PROXY", "CONFIG", "GET", "busy_poll"]),
        Resp::Array(vec![
            Resp::Bulk(b"busy_poll".to_vec()),
            Resp::Bulk(b"40us".to_vec())
        ]),
        "--busy-poll as PROXY CONFIG GET shows it"
    );
    match raw.cmd(&["PROXY", "CONFIG", "GET", "socket.*"]) {
        Resp::Array(items) => {
            let names: Vec<String> = items.iter().step_by(2).filter_map(|r| r.text()).collect();
            for want in [
                "socket.tcp_nodelay",
                "socket.tcp_keepalive",
                "socket.backlog",
            ] {
                assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
            }
        }
        other => panic!("PROXY CONFIG GET socket.*: {other:?}"),
    }
    assert_eq!(
        raw.cmd(&["PROXY", "CONFIG", "GET", "workers"]),
        Resp::Array(vec![
            Resp::Bulk(b"workers".to_vec()),
            Resp::Bulk(b"1".to_vec())
        ]),
    );
    assert!(
        port_closed(file_port),
        "the proxy also listens on the file's port"
    );
    let mut con = proxy.conn();
    let _: () = redis::cmd("SET")
        .arg("flags:k")
        .arg("v")
        .query(&mut con)
        .or_log(&proxy, "SET");
    let v: String = redis::cmd("GET")
        .arg("flags:k")
        .query(&mut con)
        .or_log(&proxy, "GET");
    assert_eq!(v, "v");
    assert!(
        !proxy.log_text().trim().is_empty(),
        "--log-level debug produced no log output"
    );
}

/// `--check --connect` asks every seed, as the proxy would at start, and says what each
/// answered: a live node's cluster (masters, nodes, slots served), a dead one's error; it
/// succeeds when one answered, fails when none did.
#[test]
fn check_connect_reports_what_each_seed_says() {
    let cluster = Cluster::start_masters(3);
    let live = cluster.masters()[0];
    let dead = free_port();
    let (_d, path) = config_file(&format!(
        "redis_nodes:\n  - \"127.0.0.1:{live}\"\n  - \"127.0.0.1:{dead}\"\nconnect_timeout: 1s\n"
    ));
    let (ok, out, err) = run_proxy(
        &["--config", &path, "--check", "--connect"],
        Duration::from_secs(30),
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("configuration ok"), "{out}");
    let line = |port: u16| {
        out.lines()
            .find(|l| l.starts_with(&format!("seed 127.0.0.1:{port}:")))
            .unwrap_or_else(|| panic!("no line for seed {port}:\n{out}"))
            .to_string()
    };
    let l = line(live);
    assert!(
        l.contains("ok, Redis") && l.contains("3 masters, 3 nodes, 16384 of 16384 slots served"),
        "{l}"
    );
    let l = line(dead);
    assert!(!l.contains("ok"), "{l}");
    // No seed answers: a failure, each named.
    let (_d2, path) = config_file(&format!(
        "redis_nodes:\n  - \"127.0.0.1:{dead}\"\nconnect_timeout: 1s\n"
    ));
    let (ok, out, err) = run_proxy(&["--config", &path, "--connect"], Duration::from_secs(30));
    assert!(!ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains(&format!("seed 127.0.0.1:{dead}: ")), "{out}");
    assert!(err.contains("no seed answered"), "{err}");
}
