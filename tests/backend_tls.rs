//! `backend_tls`: a cluster that speaks only TLS (`port 0`, `tls-port`, `tls-cluster yes`,
//! announcing its TLS ports), served through the proxy to plain clients: every kind of node
//! connection (shared, split, blocking, subscription, RESP3) and the discovery before the
//! reactor starts. A CA that did not sign the nodes is a start-up error.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn backend_tls_yaml(certs: &Certs) -> String {
    format!("backend_tls:\n  ca_file: {}\n", certs.path("ca.pem"))
}

#[test]
fn a_tls_cluster_is_served_to_plain_clients() {
    let certs = make_certs();
    let cluster = TlsCluster::start(&certs, 3);
    let seeds = vec![format!("127.0.0.1:{}", cluster.ports[0])];
    let proxy = Proxy::start_raw(
        &seeds,
        &backend_tls_yaml(&certs),
        &[],
        Duration::from_secs(20),
    );
    let mut c = proxy.raw();
    for i in 0..30 {
        let k = format!("btls:{i}");
        assert_eq!(
            c.cmd(&["SET", &k, &i.to_string()]).text().as_deref(),
            Some("OK"),
            "SET {k}"
        );
    }
    // Every master holds some of them: each was reached over TLS.
    for &p in &cluster.ports {
        let n: u64 = tls_cli(&certs, p, &["DBSIZE"]).parse().unwrap_or(0);
        assert!(n > 0, "node {p} got none of the keys");
    }
    let r = c.cmd(&["MGET", "btls:1", "btls:2", "btls:29"]);
    assert_eq!(
        r,
        Resp::Array(vec![
            Resp::Bulk(b"1".to_vec()),
            Resp::Bulk(b"2".to_vec()),
            Resp::Bulk(b"29".to_vec())
        ])
    );
    // A value larger than one TLS record, both ways.
    let big = "y".repeat(200_000);
    assert_eq!(
        c.cmd(&["SET", "btls:big", &big]).text().as_deref(),
        Some("OK")
    );
    assert_eq!(
        c.cmd(&["GET", "btls:big"]).text().map(|t| t.len()),
        Some(200_000)
    );
    // A blocking command on a connection of its own, and a subscription.
    let mut blocked = proxy.raw_timeout(Duration::from_secs(10));
    blocked.send_cmd(&["BLPOP", "btls:list", "5"]);
    let mut sub = proxy.raw();
    sub.cmd(&["SUBSCRIBE", "btls:ch"]);
    let delivered = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match c.cmd(&["PUBLISH", "btls:ch", "m"]) {
            Resp::Int(n) if n >= 1 => Some(()),
            _ => None,
        },
    );
    assert!(delivered.is_some(), "the subscription never counted");
    assert_eq!(
        sub.reply(),
        Resp::Array(vec![
            Resp::Bulk(b"message".to_vec()),
            Resp::Bulk(b"btls:ch".to_vec()),
            Resp::Bulk(b"m".to_vec())
        ])
    );
    // The BLPOP may not have reached its node yet: push until it returns.
    let popped = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        c.cmd(&["RPUSH", "btls:list", "x"]);
        Some(blocked.reply())
    });
    assert_eq!(
        popped,
        Some(Resp::Array(vec![
            Resp::Bulk(b"btls:list".to_vec()),
            Resp::Bulk(b"x".to_vec())
        ]))
    );
    // RESP3: HELLO 3 towards the nodes, over TLS too.
    let mut r3 = proxy.raw();
    r3.cmd(&["HELLO", "3"]);
    assert_eq!(r3.cmd(&["GET", "btls:7"]).text().as_deref(), Some("7"));
    let log = proxy.log_text();
    assert!(!log.contains("lost"), "a node connection broke:\n{log}");

    // Another CA: the nodes cannot be verified, and the start says why.
    let other = make_certs();
    let dir = unique_temp_dir("rcp-btls-bad");
    let cfg = write_file(
        &dir,
        "config.yaml",
        format!(
            "proxy_port: {}\nredis_nodes: [\"{}\"]\n{}",
            free_port(),
            seeds[0],
            backend_tls_yaml(&other)
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(proxy_bin());
    cmd.arg("--config").arg(&cfg).env_remove("RUST_LOG");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an unverifiable node must stop the start"
    );
    assert!(err.contains("over TLS") && err.contains(&seeds[0]), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The nodes' CA file changed on disk (a rotation): new node connections use the new file
/// within a second, with no restart; a file that verifies nothing makes them fail, and the
/// right one again makes them work.
#[test]
fn backend_tls_files_are_read_again_when_they_change() {
    let certs = make_certs();
    let other = make_certs();
    let cluster = TlsCluster::start(&certs, 3);
    let seeds = vec![format!("127.0.0.1:{}", cluster.ports[0])];
    let dir = unique_temp_dir("rcp-btls-rotate");
    let ca = dir.join("nodes-ca.pem");
    std::fs::copy(certs.path("ca.pem"), &ca).unwrap();
    let proxy = Proxy::start_raw(
        &seeds,
        &format!("backend_tls:\n  ca_file: {}\n", ca.display()),
        &[],
        Duration::from_secs(20),
    );
    let mut c = proxy.raw();
    assert_eq!(c.cmd(&["SET", "rot:1", "a"]).text().as_deref(), Some("OK"));
    // The nodes' connections are cut: the proxy must open new ones, with what the file says.
    let cut = |certs: &Certs| {
        for &p in &cluster.ports {
            tls_cli(certs, p, &["CLIENT", "KILL", "TYPE", "normal"]);
        }
    };
    std::fs::copy(other.path("ca.pem"), &ca).unwrap();
    let refused = poll_until(Duration::from_secs(15), Duration::from_millis(200), || {
        cut(&certs);
        match c.cmd(&["GET", "rot:1"]) {
            Resp::Error(e) => Some(e),
            _ => None,
        }
    });
    assert!(
        refused.is_some(),
        "a CA that did not sign the nodes was never used for new node connections"
    );
    std::fs::copy(certs.path("ca.pem"), &ca).unwrap();
    let served = poll_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || match c.cmd(&["GET", "rot:1"]) {
            Resp::Bulk(v) => Some(v),
            _ => None,
        },
    );
    assert_eq!(
        served.as_deref(),
        Some(&b"a"[..]),
        "the right CA again was never used"
    );
    let log = proxy.log_text();
    assert!(
        log.contains("backend_tls: certificate files changed"),
        "the change is logged:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
