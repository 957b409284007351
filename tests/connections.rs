//! Connections the proxy holds for one client (a subscriber's, a transaction's) are never
//! lent to another; a client that half-closes after a long pipeline gets every reply; a
//! pathological PROXY CONFIG GET pattern cannot stall the reactor; a failed shared connection
//! moves no other client.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn held_connections_are_not_lent_and_half_closed_pipelines_complete() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");

    // A subscriber on the pub/sub master, then a BLPOP on the same master (keys chosen on
    // it): the BLPOP must not be given the subscriber's connection.
    let mut sub = proxy.raw();
    sub.send_cmd(&["SUBSCRIBE", "held"]);
    sub.set_timeout(Duration::from_secs(5));
    let _ = sub.reply();
    let home = *cluster.masters().iter().min().unwrap();
    let key = key_owned_by(&cluster, home, "held");
    let port = proxy.port;
    let k = key.clone();
    let blocked = std::thread::spawn(move || {
        let mut con = redis_conn(port, Duration::from_secs(10)).unwrap();
        let t = Instant::now();
        let r: Option<(String, String)> =
            redis::cmd("BLPOP").arg(&k).arg(1).query(&mut con).unwrap();
        (r, t.elapsed())
    });
    // Until the BLPOP is blocked on its master (INFO blocked_clients counts no subscriber).
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
        (cluster.blocked_clients(home) >= 1).then_some(())
    });
    assert!(seen.is_some(), "the BLPOP never blocked on node {home}");
    let mut con = proxy.conn();
    let n: i64 = redis::cmd("PUBLISH")
        .arg("held")
        .arg("msg")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    match sub.reply() {
        Resp::Array(v) => assert_eq!(v.last().and_then(Resp::text).as_deref(), Some("msg")),
        other => panic!("subscriber got {other:?}"),
    }
    let (r, waited) = blocked.join().unwrap();
    assert_eq!(r, None, "the BLPOP timed out on its own connection");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // A transaction's connection, pinned by WATCH, is not taken by another client's
    // transaction on the same node.
    let mut a = proxy.raw();
    let mut b = proxy.raw();
    assert_eq!(a.cmd(&["WATCH", &key]), Resp::Simple("OK".into()));
    assert_eq!(b.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(b.cmd(&["SET", &key, "b"]), Resp::Simple("QUEUED".into()));
    assert_eq!(a.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(a.cmd(&["SET", &key, "a"]), Resp::Simple("QUEUED".into()));
    assert!(matches!(b.cmd(&["EXEC"]), Resp::Array(_)));
    // B wrote the key A watched: A's EXEC must fail, and must not contain B's command.
    let exec = a.cmd(&["EXEC"]);
    assert!(
        matches!(exec, Resp::Null | Resp::NullArray | Resp::NullBulk),
        "{exec:?}"
    );
    assert_eq!(a.cmd(&["GET", &key]).text().as_deref(), Some("b"));

    // 5,000 INCRs in one write, then the client closes its sending side: every one is
    // answered (more than the 1,024 a client may have pending at once).
    let mut raw = proxy.raw();
    let mut buf = Vec::new();
    for _ in 0..5000 {
        buf.extend_from_slice(&encode_cmd(&["INCR", "halfclosed"]));
    }
    raw.send(&buf);
    raw.shutdown_write();
    raw.set_timeout(Duration::from_secs(20));
    for i in 1..=5000 {
        assert_eq!(raw.reply(), Resp::Int(i), "reply {i}");
    }
    raw.wait_eof().expect("closed after the last reply");
    let v: i64 = redis::cmd("GET").arg("halfclosed").query(&mut con).unwrap();
    assert_eq!(v, 5000);

    // CLIENT REPLY OFF / ON / SKIP: the replies the client asked not to get are dropped, the
    // rest arrive in order.
    let mut raw = proxy.raw();
    let mut buf = Vec::new();
    for c in [
        vec!["SET", "rk", "1"],
        vec!["CLIENT", "REPLY", "OFF"],
        vec!["SET", "rk", "2"],
        vec!["GET", "rk"],
        vec!["CLIENT", "REPLY", "ON"],
        vec!["GET", "rk"],
        vec!["CLIENT", "REPLY", "SKIP"],
        vec!["GET", "rk"],
        vec!["ECHO", "last"],
    ] {
        buf.extend_from_slice(&encode_cmd(&c));
    }
    raw.send(&buf);
    raw.set_timeout(Duration::from_secs(5));
    assert_eq!(raw.reply(), Resp::Simple("OK".into()));
    assert_eq!(
        raw.reply(),
        Resp::Simple("OK".into()),
        "CLIENT REPLY ON answers"
    );
    assert_eq!(raw.reply().text().as_deref(), Some("2"));
    assert_eq!(raw.reply().text().as_deref(), Some("last"));

    // A glob that would backtrack forever in a naive matcher: answered at once.
    let mut raw = proxy.raw();
    raw.set_timeout(Duration::from_secs(5));
    let pattern = format!("{}Z", "*".repeat(200));
    let t = Instant::now();
    let r = raw.cmd(&["PROXY", "CONFIG", "GET", &pattern]);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(r, Resp::Array(ref v) if v.is_empty()), "{r:?}");
    assert_pong(&mut con);
}

/// With several shared connections per node, a client keeps its connection when another of
/// the set fails: moving it would let its later requests overtake earlier ones still in
/// flight on the old connection.
#[test]
fn a_failed_shared_connection_does_not_move_other_clients() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "backend_connections: 3\n");
    let node = *cluster.masters().iter().min().unwrap();
    let key = key_owned_by(&cluster, node, "place");
    // The id of the node's connection whose last command was `cmd` (lower case), if one.
    let conn_of = |cmd: &str| -> Vec<String> {
        let list: String = cluster.query(node, &["CLIENT", "LIST"]);
        list.lines()
            .filter(|l| l.split(' ').any(|f| f == format!("cmd={cmd}")))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_string)
            .collect()
    };
    // Each client with a command of its own, so that the node tells which connection it uses.
    let mut clients: Vec<RawClient> = (0..3).map(|_| proxy.raw()).collect();
    let mut before = Vec::new();
    for (c, cmd) in clients.iter_mut().zip(["GET", "STRLEN", "EXISTS"]) {
        let r = c.cmd(&[cmd, &key]);
        assert!(!r.is_error(), "{cmd}: {r:?}");
        let ids = conn_of(&cmd.to_lowercase());
        assert_eq!(ids.len(), 1, "{cmd} on one connection: {ids:?}");
        before.push(ids[0].clone());
    }
    let mut distinct = before.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one connection per client: {before:?}");

    let killed = cluster.cli(node, &["CLIENT", "KILL", "ID", &before[0]]);
    assert_eq!(killed.trim(), "1", "CLIENT KILL: {killed}");
    // Until the proxy has seen that connection close (it logs it) and dropped it.
    let lost = format!("connection to node {} lost", Cluster::addr(node));
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
        (proxy.log_count(&lost) >= 1).then_some(())
    });
    if seen.is_none() {
        proxy.fail(&format!("no \"{lost}\" in the proxy's log"));
    }

    for (i, cmd) in [(1, "TTL"), (2, "TYPE")] {
        let r = clients[i].cmd(&[cmd, &key]);
        assert!(!r.is_error(), "{cmd}: {r:?}");
        let ids = conn_of(&cmd.to_lowercase());
        assert_eq!(
            ids,
            [before[i].clone()],
            "client {i} moved to another connection"
        );
    }
    let r = clients[0].cmd(&["PTTL", &key]);
    assert_eq!(r, Resp::Int(-2));
    let ids = conn_of("pttl");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        !before.contains(&ids[0]),
        "a new connection for the first client: {ids:?}"
    );
}

/// SIGTERM or SIGINT: the proxy takes no more clients or requests, answers what it already
/// took (here a slow script still running on a node), then exits with status 0.
#[test]
fn a_stop_signal_answers_what_was_taken_then_exits() {
    let cluster = Cluster::start();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let mut proxy = Proxy::start(&cluster, "log_level: info\n");
        let mut raw = proxy.raw_timeout(Duration::from_secs(10));
        assert_eq!(raw.cmd(&["PING"]), Resp::Simple("PONG".into()));
        // Some hundreds of milliseconds of work on a node.
        raw.send_cmd(&[
            "EVAL",
            "local i = 0 while i < 20000000 do i = i + 1 end return 'done'",
            "0",
        ]);
        std::thread::sleep(Duration::from_millis(50));
        proxy.signal(sig);
        assert_eq!(
            raw.reply().text().as_deref(),
            Some("done"),
            "{name}: the reply in flight when the signal came"
        );
        if let Err(e) = raw.wait_eof() {
            proxy.fail(&format!("{name}: {e}"));
        }
        let Some(status) = proxy.wait_exit(Duration::from_secs(5)) else {
            proxy.fail(&format!("{name}: still running 5 s after its replies"));
        };
        assert!(status.success(), "{name}: exit status {status}");
        let log = proxy.log_text();
        assert!(
            log.contains(&format!("shutting down ({name}): 1 clients, 1 replies due")),
            "{name}: {}",
            proxy.log_tail(5)
        );
    }
}

/// A node whose connections keep dropping cannot flood the log: a few "connection ... lost"
/// lines per node per 10 s, then a count of those left out. Clients' comings and goings
/// are logged at info with `log_connections: true`.
#[test]
fn a_flapping_node_cannot_flood_the_log() {
    let cluster = Cluster::start_masters(3);
    let proxy = Proxy::start(&cluster, "log_connections: true\n");
    let node = cluster.masters()[0];
    let key = key_owned_by(&cluster, node, "flap");
    let mut c = proxy.raw();
    let lost = format!("connection to node 127.0.0.1:{node} lost");
    // Drops the proxy's connections to the node, then uses them again: one loss each.
    let mut flap = || {
        let r = c.cmd(&["SET", &key, "v"]);
        assert!(!r.is_error(), "{r:?}");
        let killed: i64 = cluster.query(node, &["CLIENT", "KILL", "TYPE", "normal"]);
        assert!(
            killed >= 1,
            "the proxy's connection to {node} was there to kill"
        );
    };
    let started = Instant::now();
    for _ in 0..20 {
        flap();
    }
    // The losses are seen (the next SET found each connection gone), yet few are logged.
    poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (proxy.log_count(&lost) >= 3).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "too slow to test the window"
    );
    assert_eq!(proxy.log_count(&lost), 3, "{}", proxy.log_text());
    // Past the window, the next loss is logged with the count of those left out.
    let said = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        flap();
        proxy
            .log_text()
            .lines()
            .find(|l| l.contains(&lost) && l.contains("more like this"))
            .map(str::to_string)
    });
    let said =
        said.unwrap_or_else(|| panic!("no count of the lines left out:\n{}", proxy.log_text()));
    assert!(said.contains("not logged"), "{said}");
    assert!(
        proxy.log_count("INFO  redis_cluster_proxy::accept] client 127.0.0.1:") >= 1,
        "a connect at info with log_connections: {}",
        proxy.log_text()
    );
}
