//! The "first session" a user would try: redis-cli and redis-py pointed at the proxy port as
//! if it were a single Redis server.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn redis_cli_session_against_the_proxy() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let p = proxy.port;

    assert_eq!(cli(p, &["PING"]).trim(), "PONG");
    assert_eq!(cli(p, &["SET", "foo", "bar"]).trim(), "OK");
    assert_eq!(cli(p, &["GET", "foo"]).trim(), "bar");
    assert_eq!(
        cli(
            p,
            &[
                "MSET",
                "{user1}:name",
                "alice",
                "{user1}:email",
                "alice@example.com"
            ]
        )
        .trim(),
        "OK"
    );
    assert_eq!(
        cli(p, &["MGET", "{user1}:name", "{user1}:email"]).trim(),
        "alice\nalice@example.com"
    );
    // Keys in different slots: MGET is split by the proxy, values come back in order;
    // MSETNX cannot be split and is refused with CROSSSLOT.
    assert_ne!(key_slot(b"foo"), key_slot(b"user1"));
    assert_eq!(
        cli(p, &["MGET", "foo", "{user1}:name", "nosuchkey"]),
        "bar\nalice\n\n",
        "cross-slot MGET via redis-cli"
    );
    let cross = cli(p, &["MSETNX", "foo", "x", "{user1}:name", "y"]);
    assert!(
        cross.contains("CROSSSLOT"),
        "cross-slot MSETNX via redis-cli: {cross:?}"
    );
    assert_eq!(
        cli(p, &["GET", "foo"]).trim(),
        "bar",
        "MSETNX wrote nothing"
    );

    // Keyless cluster commands are answered by one of the nodes.
    let info = cli(p, &["CLUSTER", "INFO"]);
    assert!(
        info.contains("cluster_state:ok"),
        "CLUSTER INFO via the proxy:\n{info}"
    );
    assert!(
        info.contains("cluster_known_nodes:6"),
        "CLUSTER INFO via the proxy:\n{info}"
    );
    let nodes = cli(p, &["CLUSTER", "NODES"]);
    let parsed = parse_cluster_nodes(&nodes);
    assert_eq!(parsed.len(), 6, "CLUSTER NODES via the proxy:\n{nodes}");
    assert_eq!(
        parsed.iter().filter(|n| n.is_master()).count(),
        3,
        "{nodes}"
    );
    assert_eq!(
        parsed.iter().filter(|n| n.is_replica()).count(),
        3,
        "{nodes}"
    );

    // The data went to the slot owners.
    let owner = cluster.slot_owner(key_slot(b"foo"));
    let v: String = cluster.query(owner, &["GET", "foo"]);
    assert_eq!(v, "bar");

    // A scripted (non-tty) redis-cli session over stdin, several commands on one connection.
    let mut child = Command::new(redis_cli_bin())
        .args(["-h", "127.0.0.1", "-p", &p.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"SET session:k 42\nINCR session:k\nGET session:k\nECHO done\n")
            .unwrap();
    }
    let out = poll_until(Duration::from_secs(30), Duration::from_millis(20), || {
        child.try_wait().unwrap().map(|_| ())
    });
    if out.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        proxy.fail("redis-cli stdin session did not finish within 30 s");
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "redis-cli stdin session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK\n43\n43\ndone"
    );
}

fn python_with_redis_py() -> String {
    let out = Command::new("python3")
        .args(["-c", "import redis, sys; print(redis.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}): run scripts/install-deps.sh"));
    assert!(
        out.status.success(),
        "python3 cannot import redis-py: run scripts/install-deps.sh (pip install redis)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_py_seed_example_resp3_default_then_resp2() {
    let version = python_with_redis_py();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 6,
        "redis-py {version} does not default to RESP3; need >= 6"
    );
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/seed_example.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(proxy.port.to_string());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    if !out.status.success() || !stdout.contains("SEED EXAMPLE OK") {
        proxy.fail(&format!(
            "seed_example.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        ));
    }
    assert!(stdout.contains("default: ok (protocol 3)"), "{stdout}");
    assert!(stdout.contains("resp2: ok (protocol 2)"), "{stdout}");
    // The script's writes are in the cluster.
    let k = "py:default:greeting";
    let owner = cluster.slot_owner(key_slot(k.as_bytes()));
    let v: String = cluster.query(owner, &["GET", k]);
    assert_eq!(v, "hello");
}
