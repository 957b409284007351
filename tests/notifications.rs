//! Keyspace and keyevent notifications from every master (issue 18): a Redis Cluster
//! publishes them only on the node that holds the key, so a subscriber through the proxy
//! must hear those of every master, once each, in RESP2 and RESP3 (redis-py), also after a
//! failover of a master.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn require_redis_py() {
    let out = Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}): run scripts/install-deps.sh"));
    assert!(
        out.status.success(),
        "python3 cannot import redis-py: run scripts/install-deps.sh\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/keyspace_events.py");

#[test]
fn redis_py_hears_the_notifications_of_every_master() {
    require_redis_py();
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT).arg(proxy.port.to_string()).arg("all");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("KEYSPACE OK") {
        proxy.fail(&format!(
            "keyspace_events.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        ));
    }
    assert!(
        stdout.contains("protocol 2: ok") && stdout.contains("protocol 3: ok"),
        "{stdout}"
    );
    // Every master was set, not only the one the subscriptions live on.
    for m in cluster.masters() {
        let v: Vec<String> = cluster.query(m, &["CONFIG", "GET", "notify-keyspace-events"]);
        assert!(v.get(1).is_some_and(|f| f.contains('K')), "{m}: {v:?}");
    }
}

/// A master fails over while a redis-py subscriber listens: once the proxy follows the
/// promoted replica, the notifications of its keys come again, and none twice.
#[test]
fn notifications_follow_a_failover() {
    require_redis_py();
    let cluster = Cluster::start();
    for m in cluster.masters() {
        let _: String = cluster.query(m, &["CONFIG", "SET", "notify-keyspace-events", "KA"]);
        for r in cluster.replicas_of(m) {
            let _: String = cluster.query(r, &["CONFIG", "SET", "notify-keyspace-events", "KA"]);
        }
    }
    let proxy = Proxy::start(&cluster, "");
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(proxy.port.to_string())
        .arg("listen")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |within: Duration| rx.recv_timeout(within).ok();
    assert_eq!(
        next(Duration::from_secs(10)).as_deref(),
        Some("LISTENING"),
        "the listener did not subscribe"
    );
    // The master that is not the subscription's own (the first in address order): its
    // events come through the fan-in connection.
    let mut masters = cluster.masters();
    masters.sort_by_key(|p| format!("127.0.0.1:{p}"));
    let victim = masters[2];
    let mut c = proxy.raw();
    // Writes on the victim's keys until one is heard (the fan-in connection is up), then a
    // batch whose every event must come.
    let heard = |c: &mut RawClient, victim: u16, round: &str| {
        let probe = key_owned_by(&cluster, victim, &format!("fo:probe:{round}"));
        let got = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
            c.cmd(&["SET", &probe, "1"]);
            while let Some(line) = next(Duration::from_millis(50)) {
                if line == format!("GOT {probe}") {
                    return Some(());
                }
            }
            None
        });
        assert!(got.is_some(), "{round}: no event for {probe} on {victim}");
        let keys: Vec<String> = (0..40)
            .map(|i| key_owned_by(&cluster, victim, &format!("fo:{round}:{i}")))
            .collect();
        for k in &keys {
            assert_eq!(c.cmd(&["SET", k, "v"]).text().as_deref(), Some("OK"));
        }
        let mut counts = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.len() < keys.len() && Instant::now() < deadline {
            if let Some(line) = next(Duration::from_millis(200)) {
                if let Some(k) = line.strip_prefix("GOT ") {
                    if keys.iter().any(|x| x == k) {
                        *counts.entry(k.to_string()).or_insert(0) += 1;
                    }
                }
            }
        }
        // Late duplicates would show within a moment.
        while let Some(line) = next(Duration::from_millis(300)) {
            if let Some(k) = line.strip_prefix("GOT ") {
                if let Some(n) = counts.get_mut(k) {
                    *n += 1;
                }
            }
        }
        assert_eq!(
            counts.len(),
            keys.len(),
            "{round}: events missing: {counts:?}"
        );
        assert!(
            counts.values().all(|&n| n == 1),
            "{round}: twice: {counts:?}"
        );
    };
    heard(&mut c, victim, "before");
    let replica = cluster.replica_of(victim);
    let r: String = cluster.query(replica, &["CLUSTER", "FAILOVER"]);
    assert_eq!(r, "OK");
    cluster.wait_promoted(replica, Duration::from_secs(30));
    // The promoted replica now holds the keys: its events, through a new fan-in connection.
    heard(&mut c, replica, "after");
    let _ = child.kill();
    let _ = child.wait();
}
