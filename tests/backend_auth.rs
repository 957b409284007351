//! `backend_auth`: a cluster whose nodes require a password (requirepass + masterauth, set on
//! a running cluster as an operator would). Every kind of node connection authenticates:
//! shared (SET/GET/MGET), blocking (BLPOP), transaction, subscription, RESP3 (HELLO 3 AUTH),
//! replica reads, and the topology refresh after a MOVED. A wrong password is a start-up
//! error naming the node and Redis's reply; no password reaches the log or PROXY CONFIG GET.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "s3cret-Pa55";

/// An authenticated raw connection to one node.
fn node(port: u16) -> RawClient {
    let mut c = RawClient::connect(port, Duration::from_secs(5)).expect("connect to node");
    let r = c.cmd(&["AUTH", SECRET]);
    assert_eq!(r.text().as_deref(), Some("OK"), "AUTH on {port}: {r:?}");
    c
}

/// requirepass and masterauth on every node; a plain connection is refused afterwards.
fn require_password(cluster: &mut Cluster) {
    cluster.require_password(SECRET);
    for p in cluster.ports() {
        let mut plain = RawClient::connect(p, Duration::from_secs(5)).unwrap();
        let r = plain.cmd(&["PING"]);
        assert!(
            r.error_text().is_some_and(|e| e.starts_with("NOAUTH")),
            "{p} should now refuse an unauthenticated PING: {r:?}"
        );
    }
}

fn password_file(dir: &std::path::Path, secret: &str) -> String {
    write_file(dir, "node-password", format!("{secret}\n").as_bytes())
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_node_connection_authenticates_and_follows_a_password_change() {
    let mut cluster = Cluster::start();
    require_password(&mut cluster);
    let dir = unique_temp_dir("rcp-auth");
    let file = password_file(&dir, SECRET);
    let proxy = Proxy::start(
        &cluster,
        &format!(
            "backend_auth:\n  password_file: {file}\nread_from: prefer_replica\nrefresh_interval: 300ms\n"
        ),
    );
    let mut c = proxy.raw();
    // Shared connections to every master, and a split over them.
    for i in 0..30 {
        let k = format!("auth:{i}");
        assert_eq!(
            c.cmd(&["SET", &k, &i.to_string()]).text().as_deref(),
            Some("OK")
        );
    }
    let keys: Vec<String> = (0..30).map(|i| format!("auth:{i}")).collect();
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    // Replica reads (prefer_replica): replication may lag a moment behind the SETs.
    let all = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let r = c.cmd(&mget);
        let texts: Vec<Option<String>> = match &r {
            Resp::Array(items) => items.iter().map(|x| x.text()).collect(),
            other => panic!("MGET: {other:?}"),
        };
        (texts
            .iter()
            .enumerate()
            .all(|(i, t)| t.as_deref() == Some(&*i.to_string())))
        .then_some(texts)
    });
    assert!(all.is_some(), "MGET through replicas never saw every value");

    // A blocking command on a connection of its own.
    let mut blocked = proxy.raw_timeout(Duration::from_secs(10));
    blocked.send_cmd(&["BLPOP", "auth:list", "5"]);
    let on_node = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        let n: u64 = cluster.masters().into_iter().map(blocked_on).sum();
        (n >= 1).then_some(())
    });
    assert!(on_node.is_some(), "BLPOP never blocked on a master");
    assert_eq!(c.cmd(&["RPUSH", "auth:list", "x"]), Resp::Int(1));
    let popped = blocked.reply();
    assert_eq!(
        popped,
        Resp::Array(vec![
            Resp::Bulk(b"auth:list".to_vec()),
            Resp::Bulk(b"x".to_vec())
        ])
    );

    // A transaction on a pinned connection.
    assert_eq!(c.cmd(&["MULTI"]).text().as_deref(), Some("OK"));
    assert_eq!(c.cmd(&["INCR", "auth:0"]).text().as_deref(), Some("QUEUED"));
    assert_eq!(
        c.cmd(&["EXEC"]),
        Resp::Array(vec![Resp::Int(1)]),
        "EXEC on the pinned, authenticated connection"
    );

    // A subscription connection, and RESP3 (HELLO 3 AUTH towards the nodes).
    let mut sub = proxy.raw();
    let r = sub.cmd(&["SUBSCRIBE", "auth:ch"]);
    let b = |t: &str| Resp::Bulk(t.as_bytes().to_vec());
    assert_eq!(
        r,
        Resp::Array(vec![b("subscribe"), b("auth:ch"), Resp::Int(1)])
    );
    let receivers = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match c.cmd(&["PUBLISH", "auth:ch", "hello"]) {
            Resp::Int(n) if n >= 1 => Some(n),
            _ => None,
        },
    );
    assert!(receivers.is_some(), "the subscriber never counted");
    assert_eq!(
        sub.reply(),
        Resp::Array(vec![b("message"), b("auth:ch"), b("hello")])
    );
    let mut r3 = proxy.raw();
    r3.cmd(&["HELLO", "3"]);
    assert_eq!(r3.cmd(&["GET", "auth:3"]).text().as_deref(), Some("3"));

    // A MOVED: a slot migrated behind the proxy's back; the refresh that follows needs the
    // password too.
    let slot = key_slot(b"auth:moved");
    let from = cluster.slot_owner(slot);
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    assert_eq!(
        c.cmd(&["SET", "auth:moved", "v"]).text().as_deref(),
        Some("OK")
    );
    move_slot(&cluster, slot, from, to);
    // A write, so it meets the old master's MOVED (a read could be answered by a replica
    // that has not heard of the move yet, under prefer_replica).
    assert_eq!(
        c.cmd(&["SET", "auth:moved", "v2"]).text().as_deref(),
        Some("OK")
    );
    let refreshed = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (proxy.log_count("MOVED slot") >= 1).then_some(())
    });
    assert!(
        refreshed.is_some(),
        "no MOVED followed:\n{}",
        proxy.log_tail(30)
    );

    // Nothing failed for want of a password, and no secret is in the log or the config.
    let log = proxy.log_text();
    assert!(!log.contains("NOAUTH"), "NOAUTH in the log:\n{log}");
    assert!(!log.contains("refused the proxy's credentials"), "{log}");
    assert!(!log.contains(SECRET), "the password reached the log");
    let shown: Vec<String> = match c.cmd(&["PROXY", "CONFIG", "GET", "backend_auth*"]) {
        Resp::Array(items) => items.iter().filter_map(Resp::text).collect(),
        other => panic!("PROXY CONFIG GET: {other:?}"),
    };
    assert_eq!(
        shown,
        ["backend_auth.user", "", "backend_auth.password", "(set)"],
        "the password is shown as set, never itself"
    );

    // CONFIG GET of the nodes' passwords through the proxy: redacted.
    let got: Vec<String> = match c.cmd(&["CONFIG", "GET", "requirepass"]) {
        Resp::Array(items) => items.iter().filter_map(Resp::text).collect(),
        other => panic!("CONFIG GET requirepass: {other:?}"),
    };
    assert_eq!(got, ["requirepass", "(redacted)"]);

    // The password changes on the nodes and in the proxy's file. The nodes keep the
    // connections they had; once those are gone, the proxy's next connection is refused,
    // it reads the file again, and the one after that authenticates: no restart.
    let new = "n3w-Pa55";
    password_file(&dir, new);
    cluster.require_password(new);
    for p in cluster.ports() {
        let _: u64 = cluster.query(p, &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    }
    let served = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let mut c = proxy.raw();
        (c.cmd(&["GET", "auth:3"]).text().as_deref() == Some("3")).then_some(())
    });
    assert!(
        served.is_some(),
        "not served after the password change:\n{}",
        proxy.log_tail(30)
    );
    assert!(proxy
        .log_text()
        .contains("a new one was read from backend_auth's source"));
    assert!(
        !proxy.log_text().contains(new),
        "the new password reached the log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Moves one (small) slot from `from` to `to` with authenticated commands, as
/// `redis-cli --cluster reshard -a` would.
fn move_slot(cluster: &Cluster, slot: u16, from: u16, to: u16) {
    let (mut src, mut dst) = (node(from), node(to));
    let (src_id, dst_id) = (cluster_id(&mut src), cluster_id(&mut dst));
    let s = slot.to_string();
    assert_eq!(
        dst.cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id])
            .text()
            .as_deref(),
        Some("OK")
    );
    assert_eq!(
        src.cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id])
            .text()
            .as_deref(),
        Some("OK")
    );
    loop {
        let keys = match src.cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "100"]) {
            Resp::Array(k) => k.iter().filter_map(|x| x.text()).collect::<Vec<_>>(),
            other => panic!("GETKEYSINSLOT: {other:?}"),
        };
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut args = vec![
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "AUTH",
            SECRET,
            "KEYS",
        ];
        args.extend(keys.iter().map(String::as_str));
        let r = src.cmd(&args);
        assert_eq!(r.text().as_deref(), Some("OK"), "MIGRATE: {r:?}");
    }
    for p in cluster.masters() {
        let r = node(p).cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]);
        assert_eq!(
            r.text().as_deref(),
            Some("OK"),
            "SETSLOT NODE on {p}: {r:?}"
        );
    }
}

/// INFO's blocked_clients of one node, asked with the password.
fn blocked_on(port: u16) -> u64 {
    let info = node(port)
        .cmd(&["INFO", "clients"])
        .text()
        .unwrap_or_default();
    parse_info(&info)
        .get("blocked_clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cluster_id(c: &mut RawClient) -> String {
    c.cmd(&["CLUSTER", "MYID"]).text().expect("CLUSTER MYID")
}

#[test]
fn a_wrong_password_is_a_start_up_error_naming_the_node() {
    let mut cluster = Cluster::start_masters(3);
    require_password(&mut cluster);
    let dir = unique_temp_dir("rcp-auth-wrong");
    let seed = Cluster::addr(cluster.masters()[0]);
    let run = |yaml: String| {
        let cfg = write_file(&dir, "config.yaml", yaml.as_bytes());
        let mut cmd = Command::new(proxy_bin());
        cmd.arg("--config").arg(&cfg).env_remove("RUST_LOG");
        let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let wrong = "not-the-password";
    let (ok, text) = run(format!(
        "proxy_port: {}\nredis_nodes: [\"{seed}\"]\nbackend_auth:\n  password: {wrong}\n",
        free_port()
    ));
    assert!(!ok, "a refused password must stop the start:\n{text}");
    assert!(
        text.contains(&seed) && text.contains("WRONGPASS") && text.contains("backend_auth"),
        "the error names the node, Redis's reply and the key:\n{text}"
    );
    assert!(!text.contains(wrong), "the password was printed:\n{text}");

    // No backend_auth at all: the error says what to set.
    let (ok, text) = run(format!(
        "proxy_port: {}\nredis_nodes: [\"{seed}\"]\n",
        free_port()
    ));
    assert!(
        !ok && text.contains("NOAUTH") && text.contains("backend_auth"),
        "{text}"
    );

    // A password file that is not there: a configuration error naming the key.
    let (ok, text) = run(format!(
        "proxy_port: {}\nredis_nodes: [\"{seed}\"]\nbackend_auth:\n  password_file: {}/missing\n",
        free_port(),
        dir.display()
    ));
    assert!(!ok && text.contains("backend_auth.password_file"), "{text}");

    // A seed URL with a password: refused without repeating the password.
    let (ok, text) = run(format!(
        "proxy_port: {}\nredis_nodes: [\"redis://:{SECRET}@{seed}\"]\n",
        free_port()
    ));
    assert!(!ok && text.contains("backend_auth"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the seed's password was printed:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
