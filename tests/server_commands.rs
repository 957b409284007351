//! Server commands through the proxy: CONFIG SET/GET/RESETSTAT fanned out to every node,
//! CLIENT LIST/INFO/KILL/SETNAME acting on the proxy's own clients (seen by redis-py),
//! COMMAND introspection, SLOWLOG merged over every master, MONITOR (redis-cli, and a monitor
//! that never reads cut off at client_output_limit), admin commands refused by default and
//! fanned out with allow_admin_commands, and ROLE/TIME/CLIENT INFO pipelined over RESP3.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ok() -> Resp {
    Resp::Simple("OK".into())
}

fn bulk(x: &str) -> Resp {
    Resp::Bulk(x.as_bytes().to_vec())
}

/// A node's value of a configuration parameter, asked directly.
fn node_config(cluster: &Cluster, port: u16, name: &str) -> String {
    let v: Vec<String> = cluster.query(port, &["CONFIG", "GET", name]);
    assert_eq!(v.len(), 2, "node {port}: CONFIG GET {name} -> {v:?}");
    v[1].clone()
}

/// A raw RESP client straight to a node.
fn node_raw(port: u16) -> RawClient {
    let mut c = RawClient::connect(port, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("cannot connect to node {port}: {e}"));
    c.label = format!("node 127.0.0.1:{port}");
    c
}

/// A field of the proxy's own INFO section, read through the proxy.
fn proxy_info_field(c: &mut RawClient, field: &str) -> u64 {
    let r = c.cmd(&["INFO", "proxy"]);
    let text = r
        .text()
        .unwrap_or_else(|| panic!("INFO proxy: not text: {r:?}"));
    parse_info(&text)
        .get(field)
        .unwrap_or_else(|| panic!("INFO proxy has no {field}:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO proxy {field}: {e}\n{text}"))
}

fn int(r: &Resp, what: &str) -> i64 {
    match r {
        Resp::Int(n) => *n,
        other => panic!("{what}: expected an integer, got {other:?}"),
    }
}

fn array<'a>(r: &'a Resp, what: &str) -> &'a Vec<Resp> {
    match r {
        Resp::Array(v) | Resp::Set(v) => v,
        other => panic!("{what}: expected an array, got {other:?}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// CLIENT LIST through the proxy: (id, whole line) of every client.
fn proxy_client_ids(c: &mut RawClient) -> Vec<(u64, String)> {
    let r = c.cmd(&["CLIENT", "LIST"]);
    let text = r
        .text()
        .unwrap_or_else(|| panic!("CLIENT LIST: not text: {r:?}"));
    text.lines()
        .filter_map(|l| {
            let id = l.split(' ').find_map(|f| f.strip_prefix("id="))?;
            Some((id.parse().ok()?, l.to_string()))
        })
        .collect()
}

/// Makes every replica visible in CLUSTER SLOTS, where the proxy learns of nodes: Redis 7.0
/// leaves out replicas whose replication offset is still 0, i.e. all of them in a fresh,
/// idle cluster. One write per master (directly) moves the offsets; then waits (bounded).
fn make_replicas_listed(cluster: &Cluster) {
    let masters = cluster.masters();
    for &m in &masters {
        let k = key_owned_by(cluster, m, "prime:");
        let _: () = cluster.query(m, &["SET", &k, "1"]);
    }
    let ok = poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
        masters
            .iter()
            .all(|&m| {
                let v: redis::Value = cluster.query(m, &["CLUSTER", "SLOTS"]);
                let redis::Value::Array(ranges) = v else {
                    return false;
                };
                ranges
                    .iter()
                    .all(|r| matches!(r, redis::Value::Array(items) if items.len() >= 4))
            })
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "replicas not listed in CLUSTER SLOTS within 30 s"
    );
}

/// A proxy that knows all six nodes (checked through INFO proxy).
fn proxy_knowing_every_node(cluster: &Cluster, extra: &str) -> Proxy {
    make_replicas_listed(cluster);
    let proxy = Proxy::start(cluster, extra);
    let mut c = proxy.raw();
    assert_eq!(
        proxy_info_field(&mut c, "cluster_nodes"),
        6,
        "the proxy does not know every node"
    );
    proxy
}

// ---------------------------------------------------------------------------------------------
// CONFIG
// ---------------------------------------------------------------------------------------------

#[test]
fn config_set_reaches_every_node_and_errors_are_the_nodes_own() {
    let cluster = Cluster::start();
    let proxy = proxy_knowing_every_node(&cluster, "");
    let nodes = cluster.ports();
    assert_eq!(nodes.len(), 6);
    let mut c = proxy.raw();

    // One parameter at a time: every node, replicas included, has the new value.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "12345"]),
        ok()
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        ok()
    );
    for &p in &nodes {
        assert_eq!(
            node_config(&cluster, p, "slowlog-log-slower-than"),
            "12345",
            "node {p} after CONFIG SET through the proxy"
        );
        assert_eq!(
            node_config(&cluster, p, "notify-keyspace-events"),
            "AKE",
            "node {p} after CONFIG SET through the proxy"
        );
    }
    // CONFIG GET through the proxy returns it (a node's RESP2 flat array).
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "slowlog-log-slower-than"]),
        Resp::Array(vec![bulk("slowlog-log-slower-than"), bulk("12345")])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
        Resp::Array(vec![bulk("notify-keyspace-events"), bulk("AKE")])
    );

    // Several parameters in one CONFIG SET.
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "2000",
            "slowlog-max-len",
            "77"
        ]),
        ok()
    );
    for &p in &nodes {
        assert_eq!(node_config(&cluster, p, "slowlog-log-slower-than"), "2000");
        assert_eq!(node_config(&cluster, p, "slowlog-max-len"), "77");
    }

    // Errors every node gives alike: the node's own error text, nothing changed anywhere.
    let mut direct = node_raw(nodes[0]);
    let failing: [&[&str]; 4] = [
        &["CONFIG", "SET", "no-such-param", "1"],
        // Redis applies a multi-parameter CONFIG SET atomically: the valid one is not set.
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "999",
            "no-such-param",
            "1",
        ],
        &["CONFIG", "SET", "slowlog-max-len", "notanumber"],
        &["CONFIG", "SET", "slowlog-max-len"],
    ];
    for args in failing {
        let want = direct.cmd(args);
        assert!(want.is_error(), "node: {args:?} -> {want:?}");
        let got = c.cmd(args);
        assert_eq!(got, want, "{args:?} through the proxy vs. a node directly");
    }
    for &p in &nodes {
        assert_eq!(
            node_config(&cluster, p, "slowlog-log-slower-than"),
            "2000",
            "node {p} changed by a failed CONFIG SET"
        );
        assert_eq!(node_config(&cluster, p, "slowlog-max-len"), "77");
    }

    // A failure on one node only: named, with the nodes where it was applied.
    let victim = cluster.replica_of(cluster.masters()[1]);
    let _: () = cluster.query(victim, &["ACL", "SETUSER", "default", "-config|set"]);
    let r = c.cmd(&["CONFIG", "SET", "slowlog-max-len", "55"]);
    let _: () = cluster.query(victim, &["ACL", "SETUSER", "default", "+config|set"]);
    let e = r
        .error_text()
        .unwrap_or_else(|| panic!("CONFIG SET failing on {victim}: {r:?}"));
    let prefix = format!("ERR failed on node 127.0.0.1:{victim}: NOPERM");
    assert!(e.starts_with(&prefix), "{e:?} should start with {prefix:?}");
    let applied: BTreeSet<String> = e
        .split("(already applied on: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no 'already applied on' in {e:?}"))
        .trim_end_matches(')')
        .split(", ")
        .map(String::from)
        .collect();
    let others: BTreeSet<String> = nodes
        .iter()
        .filter(|&&p| p != victim)
        .map(|&p| Cluster::addr(p))
        .collect();
    assert_eq!(applied, others, "{e}");
    for &p in &nodes {
        let want = if p == victim { "77" } else { "55" };
        assert_eq!(
            node_config(&cluster, p, "slowlog-max-len"),
            want,
            "node {p}"
        );
    }

    // CONFIG RESETSTAT: every node's statistics and the proxy's counters.
    for i in 0..30 {
        assert_eq!(c.cmd(&["SET", &format!("rs:{i}"), "v"]), ok());
    }
    let before = proxy_info_field(&mut c, "total_commands_processed");
    assert!(
        before >= 30,
        "total_commands_processed {before} before RESETSTAT"
    );
    let sets: u64 = cluster
        .masters()
        .iter()
        .map(|&m| cluster.cmdstat(m, "set").0)
        .sum();
    assert!(
        sets >= 30,
        "SET calls on the masters before RESETSTAT: {sets}"
    );
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), ok());
    let after = proxy_info_field(&mut c, "total_commands_processed");
    assert!(
        after <= 3,
        "proxy's total_commands_processed after CONFIG RESETSTAT: {after} (was {before})"
    );
    for &p in &nodes {
        assert_eq!(
            cluster.cmdstat(p, "set"),
            (0, 0, 0),
            "node {p}: cmdstat_set after CONFIG RESETSTAT"
        );
    }
}

/// A fresh, idle cluster: Redis 7.0's CLUSTER SLOTS leaves out every replica (replication
/// offset still 0), yet CONFIG SET must still reach all six nodes, or say it did not.
#[test]
fn config_set_on_a_fresh_idle_cluster_reaches_the_replicas_too() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let nodes = cluster.ports();
    let mut c = proxy.raw();
    let known = proxy_info_field(&mut c, "cluster_nodes");
    let r = c.cmd(&["CONFIG", "SET", "slowlog-max-len", "99"]);
    let values: Vec<(u16, String)> = nodes
        .iter()
        .map(|&p| (p, node_config(&cluster, p, "slowlog-max-len")))
        .collect();
    let missed: Vec<u16> = values
        .iter()
        .filter(|(_, v)| v != "99")
        .map(|(p, _)| *p)
        .collect();
    assert!(
        missed.is_empty() || r.is_error(),
        "CONFIG SET answered {r:?} but nodes {missed:?} (replicas: {:?}) were not changed; \
         the proxy knew {known} nodes (INFO proxy cluster_nodes)",
        missed
            .iter()
            .map(|&p| cluster
                .nodes_view(p)
                .iter()
                .any(|n| n.is_myself() && n.is_replica()))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// CLIENT through redis-py
// ---------------------------------------------------------------------------------------------

#[test]
fn redis_py_client_list_setname_info_and_kill() {
    require_python_module("redis");
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/server_clients.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(proxy.port.to_string());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    if !out.status.success() || !stdout.contains("SERVER CLIENTS OK") {
        proxy.fail(&format!(
            "server_clients.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        ));
    }
    assert!(
        stdout.contains("resp3: ok") && stdout.contains("resp2: ok"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// COMMAND
// ---------------------------------------------------------------------------------------------

#[test]
fn command_introspection_is_the_clusters() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let node = cluster.masters()[0];
    let mut c = proxy.raw();
    let mut d = node_raw(node);

    let n = int(&c.cmd(&["COMMAND", "COUNT"]), "COMMAND COUNT via proxy");
    let want = int(&d.cmd(&["COMMAND", "COUNT"]), "COMMAND COUNT on a node");
    assert_eq!(n, want, "COMMAND COUNT through the proxy vs. a node");
    assert!(n > 150, "COMMAND COUNT {n}");

    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
        Resp::Array(vec![bulk("a"), bulk("b")])
    );
    let gkf = c.cmd(&["COMMAND", "GETKEYSANDFLAGS", "MSET", "a", "1", "b", "2"]);
    assert_eq!(
        gkf,
        d.cmd(&["COMMAND", "GETKEYSANDFLAGS", "MSET", "a", "1", "b", "2"])
    );
    assert_eq!(array(&gkf, "GETKEYSANDFLAGS").len(), 2);

    let docs = c.cmd(&["COMMAND", "DOCS", "GET"]);
    let items = array(&docs, "COMMAND DOCS GET");
    assert_eq!(items.len(), 2, "COMMAND DOCS GET: {docs:?}");
    assert_eq!(items[0], bulk("get"));
    let summary = items[1]
        .lookup("summary")
        .and_then(Resp::text)
        .unwrap_or_else(|| panic!("COMMAND DOCS GET has no summary: {docs:?}"));
    assert!(!summary.is_empty());
    assert_eq!(docs, d.cmd(&["COMMAND", "DOCS", "GET"]), "COMMAND DOCS GET");

    assert_eq!(
        c.cmd(&["COMMAND", "INFO", "GET", "MSET"]),
        d.cmd(&["COMMAND", "INFO", "GET", "MSET"])
    );
    // COMMAND LIST names subcommands too: compared with a node's as a set.
    let names = |r: &Resp| -> BTreeSet<String> {
        array(r, "COMMAND LIST")
            .iter()
            .filter_map(Resp::text)
            .collect()
    };
    let list = names(&c.cmd(&["COMMAND", "LIST"]));
    assert!(
        list.contains("get") && list.len() as i64 >= n,
        "COMMAND LIST {}",
        list.len()
    );
    assert_eq!(list, names(&d.cmd(&["COMMAND", "LIST"])), "COMMAND LIST");
    let all = c.cmd(&["COMMAND"]);
    assert_eq!(array(&all, "COMMAND").len() as i64, n);
}

// ---------------------------------------------------------------------------------------------
// SLOWLOG
// ---------------------------------------------------------------------------------------------

#[test]
fn slowlog_merges_every_master() {
    let cluster = Cluster::start();
    let proxy = proxy_knowing_every_node(&cluster, "");
    let masters = cluster.masters();
    let nodes = cluster.ports();
    // A replica's slow log repeats its master's writes: the masters' make the one server's.
    let node_addrs: BTreeSet<String> = masters.iter().map(|&p| Cluster::addr(p)).collect();
    let mut c = proxy.raw();

    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]),
        ok()
    );
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), ok());
    let keys: Vec<(u16, String)> = masters
        .iter()
        .map(|&m| (m, key_owned_by(&cluster, m, &format!("slow{m}:"))))
        .collect();
    for (m, k) in &keys {
        assert_eq!(c.cmd(&["SET", k, &format!("v{m}")]), ok());
    }
    for i in 0..12 {
        assert_eq!(c.cmd(&["SET", &format!("filler{i}"), "x"]), ok());
    }

    let r = c.cmd(&["SLOWLOG", "GET", "-1"]);
    let entries = array(&r, "SLOWLOG GET -1");
    let mut last_ts = i64::MAX;
    let mut tagged = Vec::new();
    let mut ids = BTreeSet::new();
    for e in entries {
        let f = array(e, "slowlog entry");
        assert_eq!(f.len(), 6, "slowlog entry {e:?}");
        // Each node numbers its entries from 0; the merged ids are unique.
        assert!(
            ids.insert(int(&f[0], "entry id")),
            "SLOWLOG id twice: {r:?}"
        );
        let ts = int(&f[1], "entry timestamp");
        assert!(ts <= last_ts, "SLOWLOG GET not newest first: {r:?}");
        last_ts = ts;
        let addr = f[4].text().unwrap_or_default();
        assert!(
            node_addrs.contains(&addr),
            "entry's client field {addr:?} is not a master's address: {e:?}"
        );
        let args: Vec<String> = array(&f[3], "entry args")
            .iter()
            .filter_map(Resp::text)
            .collect();
        tagged.push((args, addr));
    }
    let mut seen = BTreeSet::new();
    for (m, k) in &keys {
        let hit = tagged
            .iter()
            .find(|(a, _)| a.len() >= 2 && a[0].eq_ignore_ascii_case("SET") && a[1] == *k)
            .unwrap_or_else(|| panic!("SET {k} (on master {m}) not in SLOWLOG GET -1: {tagged:?}"));
        assert_eq!(
            hit.1,
            Cluster::addr(*m),
            "SET {k} tagged with the wrong node"
        );
        seen.insert(hit.1.clone());
        let times = tagged
            .iter()
            .filter(|(a, _)| a.len() >= 2 && a[0].eq_ignore_ascii_case("SET") && a[1] == *k)
            .count();
        assert_eq!(times, 1, "SET {k} listed {times} times: {tagged:?}");
    }
    assert_eq!(seen.len(), 3, "three masters' entries in one SLOWLOG GET");

    // Default count 10, explicit count.
    let r = c.cmd(&["SLOWLOG", "GET"]);
    assert_eq!(
        array(&r, "SLOWLOG GET").len(),
        10,
        "SLOWLOG GET default count"
    );
    let r = c.cmd(&["SLOWLOG", "GET", "3"]);
    assert_eq!(array(&r, "SLOWLOG GET 3").len(), 3);

    // LEN: the sum of every node's, compared once nothing new gets logged.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "1000000"]),
        ok()
    );
    let via1 = int(&c.cmd(&["SLOWLOG", "LEN"]), "SLOWLOG LEN");
    let per_node: Vec<(u16, i64)> = masters
        .iter()
        .map(|&p| (p, cluster.query::<i64>(p, &["SLOWLOG", "LEN"])))
        .collect();
    let sum: i64 = per_node.iter().map(|x| x.1).sum();
    let via2 = int(&c.cmd(&["SLOWLOG", "LEN"]), "SLOWLOG LEN");
    assert!(sum >= 15, "per-node SLOWLOG LEN {per_node:?}");
    assert_eq!(
        (via1, via2),
        (sum, sum),
        "SLOWLOG LEN through the proxy vs. per node {per_node:?}"
    );

    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), ok());
    for &p in &nodes {
        assert_eq!(
            cluster.query::<i64>(p, &["SLOWLOG", "LEN"]),
            0,
            "node {p} after SLOWLOG RESET through the proxy"
        );
    }
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), Resp::Int(0));
    assert_eq!(c.cmd(&["SLOWLOG", "GET", "-1"]), Resp::Array(vec![]));
}

// ---------------------------------------------------------------------------------------------
// MONITOR
// ---------------------------------------------------------------------------------------------

#[test]
fn monitor_through_redis_cli_shows_other_clients_commands() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut cmd = Command::new(redis_cli_bin());
    cmd.args(["-h", LOCALHOST, "-p", &proxy.port.to_string(), "monitor"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawn redis-cli monitor");
    let mut so = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen2 = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match so.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen2.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let started = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        text().contains("OK").then_some(())
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(
            started.is_some(),
            "redis-cli monitor printed no OK: {:?}",
            text()
        );
        let mut sender = proxy.raw();
        let me = sender.stream.local_addr().unwrap().to_string();
        assert_eq!(sender.cmd(&["SET", "mon:key", "hello \"world\""]), ok());
        assert_eq!(sender.cmd(&["GET", "mon:key"]), bulk("hello \"world\""));
        let _ = sender.cmd(&["DBSIZE"]);
        let got = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            let t = text();
            t.contains("\"DBSIZE\"").then_some(t)
        });
        let t = got
            .unwrap_or_else(|| proxy.fail(&format!("MONITOR output lacks DBSIZE: {:?}", text())));
        let lines: Vec<&str> = t.lines().collect();
        let find = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no MONITOR line with {needle:?} in {lines:?}"))
        };
        let set_i = find("\"SET\" \"mon:key\"");
        let get_i = find("\"GET\" \"mon:key\"");
        let db_i = find("\"DBSIZE\"");
        assert!(set_i < get_i && get_i < db_i, "MONITOR order: {lines:?}");
        // `<secs>.<micros> [0 <client addr>] "arg" ...`
        let line = lines[set_i];
        let (ts, rest) = line.split_once(' ').unwrap();
        let (secs, micros) = ts.split_once('.').unwrap_or_else(|| panic!("{line:?}"));
        let secs: u64 = secs.parse().unwrap_or_else(|_| panic!("{line:?}"));
        assert!(secs.abs_diff(unix_now()) < 60, "timestamp {line:?}");
        assert!(
            micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
            "{line:?}"
        );
        assert_eq!(
            rest,
            format!("[0 {me}] \"SET\" \"mon:key\" \"hello \\\"world\\\"\""),
            "MONITOR line"
        );
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn monitor_that_never_reads_is_cut_off_at_client_output_limit() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "client_output_limit: 1mb\n");
    let mut admin = proxy.raw();
    assert_eq!(
        admin.cmd(&["PROXY", "CONFIG", "GET", "client_output_limit"]),
        Resp::Array(vec![bulk("client_output_limit"), bulk("1048576")])
    );

    // The monitor: asks for its id, then MONITOR, and never reads again.
    let mut mon = proxy.raw();
    let mon_id = int(&mon.cmd(&["CLIENT", "ID"]), "CLIENT ID") as u64;
    mon.send_cmd(&["MONITOR"]);
    let is_monitor = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        proxy_client_ids(&mut admin)
            .into_iter()
            .any(|(id, l)| id == mon_id && l.contains("cmd=monitor"))
            .then_some(())
    });
    assert!(
        is_monitor.is_some(),
        "monitor {mon_id} never shows cmd=monitor"
    );

    // A second monitor that does read: the same traffic must not cut it off.
    let mut reading = proxy.raw();
    let reading_id = int(&reading.cmd(&["CLIENT", "ID"]), "CLIENT ID") as u64;
    assert_eq!(reading.cmd(&["MONITOR"]), ok());
    let reading_stop = Arc::new(AtomicBool::new(false));
    let reading_stop2 = reading_stop.clone();
    let reading_n = Arc::new(AtomicU64::new(0));
    let reading_n2 = reading_n.clone();
    let reading_t = std::thread::spawn(move || -> (u64, String) {
        reading.set_timeout(Duration::from_millis(200));
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        while !reading_stop2.load(Ordering::SeqCst) {
            match reading.stream.read(&mut buf) {
                Ok(0) => return (n, "eof".into()),
                Ok(k) => {
                    n += k as u64;
                    reading_n2.store(n, Ordering::SeqCst);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return (n, format!("error {e}")),
            }
        }
        (n, "running".into())
    });

    // Traffic: SETs of 100 KB values from another client, a handful of keys reused.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut writer = proxy.raw();
    let (stop2, sent2) = (stop.clone(), sent.clone());
    let writer_t = std::thread::spawn(move || -> Result<(), String> {
        let value = vec![b'x'; 100 * 1024];
        let mut i = 0u64;
        while !stop2.load(Ordering::SeqCst) && sent2.load(Ordering::SeqCst) < 64 << 20 {
            let key = format!("big:{}", i % 8);
            writer.send_cmd(&[b"SET".as_slice(), key.as_bytes(), &value]);
            match writer.read_reply() {
                Ok(r) if r == Resp::Simple("OK".into()) => {}
                Ok(r) => return Err(format!("SET {key} -> {r:?}")),
                Err(e) => return Err(format!("SET {key}: {}", common::resp::describe_end(&e))),
            }
            sent2.fetch_add(value.len() as u64, Ordering::SeqCst);
            i += 1;
        }
        Ok(())
    });

    // A bystander keeps working meanwhile: batches of 100 PINGs.
    let mut bystander = proxy.raw();
    let mut worst = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gone_after = None;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(bystander.cmd(&["PING"]), Resp::Simple("PONG".into()));
        }
        worst = worst.max(t0.elapsed());
        if !proxy_client_ids(&mut bystander)
            .iter()
            .any(|(id, _)| *id == mon_id)
        {
            gone_after = Some(sent.load(Ordering::SeqCst));
            break;
        }
        if writer_t.is_finished() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let wres = writer_t.join().unwrap();
    let total = sent.load(Ordering::SeqCst);
    eprintln!(
        "monitor cut off after {gone_after:?} bytes of SET values (total {total}); worst 100 PINGs during traffic: {worst:?}"
    );
    assert!(wres.is_ok(), "writer: {wres:?}");
    let reading_still_there = proxy_client_ids(&mut bystander)
        .iter()
        .any(|(id, _)| *id == reading_id);
    // Everything fed to it arrives (bounded wait), then the reader stops.
    let _ = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        (reading_n.load(Ordering::SeqCst) >= total).then_some(())
    });
    reading_stop.store(true, Ordering::SeqCst);
    let (reading_bytes, reading_end) = reading_t.join().unwrap();
    assert!(
        reading_still_there && reading_end == "running",
        "the monitor that reads was cut off too ({reading_end}, {reading_bytes} bytes read)"
    );
    assert!(
        reading_bytes >= total,
        "the reading monitor got {reading_bytes} bytes for {total} bytes of SET values"
    );
    let Some(_) = gone_after else {
        proxy.fail(&format!(
            "a MONITOR that never reads was not disconnected after {total} bytes of traffic"
        ));
    };
    assert!(
        proxy.log_count("over client_output_limit") >= 1,
        "no 'over client_output_limit' line in the proxy log"
    );
    assert!(
        worst < Duration::from_secs(2),
        "100 PINGs of a bystander took {worst:?} while the monitor was filling up"
    );
    let t0 = Instant::now();
    for _ in 0..100 {
        assert_eq!(bystander.cmd(&["PING"]), Resp::Simple("PONG".into()));
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "100 PINGs: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        bystander.cmd(&["STRLEN", "big:0"]),
        Resp::Int(100 * 1024),
        "the writes went through"
    );

    // The monitor's socket: whatever had been sent, then the close.
    mon.set_timeout(Duration::from_secs(10));
    let mut drained = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let end = loop {
        match mon.stream.read(&mut buf) {
            Ok(0) => break "eof".to_string(),
            Ok(n) => drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset".into(),
            Err(e) => break format!("error {e}"),
        }
        if drained > 256 << 20 {
            break "too much".into();
        }
    };
    assert!(
        end == "eof" || end == "reset",
        "monitor socket after the cut-off: {end} after {drained} bytes"
    );
    proxy.assert_running();
}

// ---------------------------------------------------------------------------------------------
// Admin commands
// ---------------------------------------------------------------------------------------------

#[test]
fn admin_commands_refused_by_default_and_fanned_out_when_allowed() {
    let cluster = Cluster::start();
    let nodes = cluster.ports();
    let masters = cluster.masters();
    make_replicas_listed(&cluster);
    {
        let mut proxy = Proxy::start(&cluster, "");
        let mut c = proxy.raw();
        let refused: [(&[&str], &str); 10] = [
            (&["DEBUG", "SLEEP", "0"], "DEBUG"),
            (&["FAILOVER"], "FAILOVER"),
            (&["BGSAVE"], "BGSAVE"),
            (&["SAVE"], "SAVE"),
            (&["BGREWRITEAOF"], "BGREWRITEAOF"),
            (&["REPLICAOF", "NO", "ONE"], "REPLICAOF"),
            (&["SLAVEOF", "NO", "ONE"], "SLAVEOF"),
            (&["SWAPDB", "0", "1"], "SWAPDB"),
            (&["MODULE", "LOAD", "/nonexistent.so"], "MODULE LOAD"),
            (&["CLUSTER", "SETSLOT", "0", "STABLE"], "CLUSTER SETSLOT"),
        ];
        for (args, name) in refused {
            assert_eq!(
                c.cmd(args),
                Resp::Error(format!(
                    "ERR {name} is not allowed through the proxy (allow_admin_commands)"
                )),
                "{args:?} by default"
            );
        }
        // ACL changes are refused whatever allow_admin_commands says: the proxy's users come
        // from its configuration file (the nodes' users are the proxy's backend_auth).
        for args in [&["ACL", "SETUSER", "bob"][..], &["ACL", "DELUSER", "bob"]] {
            let e = c.cmd(args).error_text().unwrap_or_default();
            assert!(
                e.contains("not supported through this proxy") && e.contains("auth.users"),
                "{args:?}: {e}"
            );
        }
        let r = c.cmd(&["MIGRATE", LOCALHOST, &nodes[0].to_string(), "k", "0", "100"]);
        assert_eq!(
            r,
            Resp::Error(
                "ERR MIGRATE is not allowed through the proxy (allow_admin_commands)".into()
            )
        );
        let r = c.cmd(&["SHUTDOWN"]);
        let e = r.error_text().unwrap_or_else(|| panic!("SHUTDOWN: {r:?}"));
        assert!(e.contains("PROXY SHUTDOWN"), "SHUTDOWN refusal: {e:?}");
        let r = c.cmd(&["SHUTDOWN", "NOSAVE"]);
        assert!(r.is_error(), "SHUTDOWN NOSAVE: {r:?}");
        let r = c.cmd(&["MOVE", "k", "1"]);
        assert!(
            r.error_text().is_some_and(|e| e.contains("MOVE")),
            "MOVE: {r:?}"
        );
        let r = c.cmd(&["PROXY", "SHUTDOWN"]);
        assert_eq!(
            r,
            Resp::Error(
                "ERR PROXY SHUTDOWN is not allowed through the proxy (allow_admin_commands)".into()
            )
        );
        // DEBUG OBJECT key is routed by its key: it reaches the key's node (which, by Redis
        // 7's default enable-debug-command no, refuses DEBUG with its own error).
        assert_eq!(c.cmd(&["SET", "dbg:k", "v"]), ok());
        let r = c.cmd(&["DEBUG", "OBJECT", "dbg:k"]);
        assert!(
            r.text().is_some_and(|t| t.starts_with("Value at:"))
                || r.error_text()
                    .is_some_and(|e| e.contains("DEBUG command not allowed")),
            "DEBUG OBJECT: {r:?}"
        );
        assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
        proxy.assert_running();
        // Nothing refused reached a node; DEBUG OBJECT reached exactly one, the key's owner.
        let owner = cluster.slot_owner(key_slot(b"dbg:k"));
        for &p in &nodes {
            assert!(ping_port(p, Duration::from_secs(2)), "node {p} down");
            for name in [
                "bgsave",
                "save",
                "failover",
                "replicaof",
                "slaveof",
                "swapdb",
                "shutdown",
            ] {
                assert_eq!(
                    cluster.cmdstat(p, name),
                    (0, 0, 0),
                    "node {p}: cmdstat_{name}"
                );
            }
            let (calls, rejected, _) = cluster.cmdstat(p, "debug");
            let want = u64::from(p == owner);
            assert_eq!(
                calls + rejected,
                want,
                "node {p} (owner of dbg:k: {owner}): DEBUG calls+rejected"
            );
        }
    }

    // allow_admin_commands: BGSAVE runs on every node.
    let mut proxy = proxy_knowing_every_node(&cluster, "allow_admin_commands: true\n");
    let mut c = proxy.raw();
    let r = c.cmd(&["BGSAVE"]);
    assert!(
        !r.is_error() && r.text().is_some_and(|t| t.contains("saving started")),
        "BGSAVE with allow_admin_commands: {r:?}"
    );
    let deadline = Duration::from_secs(20);
    for &p in &nodes {
        let done = poll_until(deadline, Duration::from_millis(50), || {
            let info: String = cluster.query(p, &["INFO", "persistence"]);
            let i = parse_info(&info);
            let saves: u64 = i.get("rdb_saves").and_then(|v| v.parse().ok()).unwrap_or(0);
            (i.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") && saves >= 1)
                .then(|| i.get("rdb_last_bgsave_status").cloned().unwrap_or_default())
        });
        let status = done.unwrap_or_else(|| {
            panic!(
                "node {p} (master: {}): no completed BGSAVE within {deadline:?}",
                masters.contains(&p)
            )
        });
        assert_eq!(status, "ok", "node {p}: rdb_last_bgsave_status");
        assert_eq!(
            cluster.cmdstat(p, "bgsave").0,
            1,
            "node {p}: cmdstat_bgsave calls"
        );
        assert!(
            cluster.dir().join(p.to_string()).join("dump.rdb").is_file(),
            "node {p}: no dump.rdb after BGSAVE"
        );
    }
    // DEBUG reaches a node now: OK, or that node's own refusal (enable-debug-command no).
    let r = c.cmd(&["DEBUG", "SLEEP", "0"]);
    assert!(
        r == ok()
            || r.error_text()
                .is_some_and(|e| e.contains("DEBUG command not allowed")),
        "DEBUG SLEEP 0 with allow_admin_commands: {r:?}"
    );
    // FAILOVER reaches a node now: Redis's own answer (cluster mode refuses it), not the proxy's.
    let r = c.cmd(&["FAILOVER"]);
    assert!(
        !r.error_text()
            .is_some_and(|e| e.contains("allow_admin_commands")),
        "FAILOVER with allow_admin_commands: {r:?}"
    );
    // SHUTDOWN stays refused; PROXY SHUTDOWN stops the proxy.
    let r = c.cmd(&["SHUTDOWN"]);
    assert!(
        r.error_text().is_some_and(|e| e.contains("PROXY SHUTDOWN")),
        "SHUTDOWN with allow_admin_commands: {r:?}"
    );
    for &p in &nodes {
        assert!(
            ping_port(p, Duration::from_secs(2)),
            "node {p} down after SHUTDOWN"
        );
    }
    assert_eq!(c.cmd(&["PROXY", "SHUTDOWN"]), ok());
    let exited = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (!proxy.is_running()).then_some(())
    });
    assert!(
        exited.is_some(),
        "proxy still running 10 s after PROXY SHUTDOWN"
    );
}

// ---------------------------------------------------------------------------------------------
// RESP3 pipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn role_time_client_info_pipelined_over_resp3_in_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let k1 = key_owned_by(&cluster, masters[0], "p3a:");
    let k2 = key_owned_by(&cluster, masters[2], "p3b:");
    let mut c = proxy.raw();
    let cmds: Vec<Vec<&str>> = vec![
        vec!["HELLO", "3"],
        vec!["ROLE"],
        vec!["SET", &k1, "v1"],
        vec!["TIME"],
        vec!["GET", &k1],
        vec!["CLIENT", "INFO"],
        vec!["SET", &k2, "v2"],
        vec!["CLIENT", "ID"],
        vec!["GET", &k2],
        vec!["DBSIZE"],
        vec!["CONFIG", "GET", "maxmemory-policy"],
        vec!["LASTSAVE"],
        vec!["PING"],
    ];
    let mut bytes = Vec::new();
    for cmd in &cmds {
        bytes.extend_from_slice(&encode_cmd(cmd));
    }
    c.send(&bytes);
    let r: Vec<Resp> = (0..cmds.len()).map(|_| c.reply()).collect();
    let ctx = format!("{r:#?}");

    assert!(
        matches!(&r[0], Resp::Map(_)) && r[0].lookup("proto") == Some(&Resp::Int(3)),
        "HELLO 3: {ctx}"
    );
    assert_eq!(
        r[1],
        Resp::Array(vec![bulk("master"), Resp::Int(0), Resp::Array(vec![])]),
        "ROLE: {ctx}"
    );
    assert_eq!(r[2], ok(), "SET: {ctx}");
    let time = array(&r[3], "TIME");
    assert_eq!(time.len(), 2, "TIME: {ctx}");
    let secs: u64 = time[0].text().and_then(|t| t.parse().ok()).unwrap_or(0);
    let micros: u64 = time[1]
        .text()
        .and_then(|t| t.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        secs.abs_diff(unix_now()) < 60 && micros < 1_000_000,
        "TIME: {ctx}"
    );
    assert_eq!(r[4], bulk("v1"), "GET: {ctx}");
    let info = r[5].text().unwrap_or_else(|| panic!("CLIENT INFO: {ctx}"));
    assert_eq!(
        r[5].type_char(),
        '=',
        "CLIENT INFO over RESP3 is a verbatim string: {ctx}"
    );
    let id = int(&r[7], "CLIENT ID");
    let fields: Vec<&str> = info.split_whitespace().collect();
    for want in [
        format!("id={id}"),
        "resp=3".into(),
        format!("laddr={}", proxy.addr()),
        format!("addr={}", c.stream.local_addr().unwrap()),
    ] {
        assert!(
            fields.contains(&want.as_str()),
            "CLIENT INFO lacks {want}: {info}"
        );
    }
    assert_eq!(r[6], ok(), "SET: {ctx}");
    assert_eq!(r[8], bulk("v2"), "GET: {ctx}");
    assert!(int(&r[9], "DBSIZE") >= 2, "DBSIZE: {ctx}");
    assert_eq!(
        r[10],
        Resp::Map(vec![(bulk("maxmemory-policy"), bulk("noeviction"))]),
        "CONFIG GET over RESP3: {ctx}"
    );
    assert!(int(&r[11], "LASTSAVE") > 0, "LASTSAVE: {ctx}");
    assert_eq!(r[12], Resp::Simple("PONG".into()), "PING: {ctx}");

    // Differences from Redis found after the ordering checks, reported together.
    let mut diffs = Vec::new();
    // Redis shows the command being executed: cmd=client|info, also inside a pipeline.
    if !fields.contains(&"cmd=client|info") {
        diffs.push(format!(
            "CLIENT INFO inside a pipeline shows {:?} instead of cmd=client|info",
            fields.iter().find(|f| f.starts_with("cmd="))
        ));
    }
    // CLIENT LIST over RESP3: Redis answers a verbatim string, as for CLIENT INFO.
    let mut d = node_raw(masters[0]);
    let _ = d.cmd(&["HELLO", "3"]);
    let direct = d.cmd(&["CLIENT", "LIST"]);
    let via = c.cmd(&["CLIENT", "LIST"]);
    assert!(
        via.text().is_some_and(|t| t.contains(&format!("id={id} "))),
        "{via:?}"
    );
    if via.type_char() != direct.type_char() {
        diffs.push(format!(
            "CLIENT LIST over RESP3: the proxy answers '{}', a node '{}'",
            via.type_char(),
            direct.type_char()
        ));
    }
    assert!(diffs.is_empty(), "{diffs:#?}");
}

/// CLIENT LIST shows what each client is doing, as Redis does: b blocked, x in MULTI (with
/// its queued commands), P subscribed, N otherwise; nothing in the output list.
#[test]
fn client_list_flags_show_blocked_transaction_and_subscribed_clients() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut blocked = proxy.raw();
    blocked.send_cmd(&["BLPOP", "flags:list", "5"]);
    let mut tx = proxy.raw();
    assert_eq!(tx.cmd(&["MULTI"]), ok());
    assert_eq!(
        tx.cmd(&["SET", "flags:k", "1"]),
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(tx.cmd(&["GET", "flags:k"]), Resp::Simple("QUEUED".into()));
    let mut sub = proxy.raw();
    sub.send_cmd(&["SUBSCRIBE", "flags:ch", "flags:ch2"]);
    sub.send_cmd(&["PSUBSCRIBE", "flags:*"]);
    for _ in 0..3 {
        let _ = sub.reply();
    }
    // The transaction and the subscriptions are answered; the BLPOP is not: until it is
    // blocked on its master (the proxy has sent it by then).
    cluster.wait_blocked_on_masters(1, Duration::from_secs(10), "BLPOP flags:list");

    let mut me = proxy.raw();
    let my_id = int(&me.cmd(&["CLIENT", "ID"]), "CLIENT ID");
    // INFO clients counts the blocked client only, not the subscriber.
    let info = me.cmd(&["INFO", "clients"]);
    let info = parse_info(&info.text().unwrap_or_default());
    assert_eq!(
        info.get("blocked_clients").map(String::as_str),
        Some("1"),
        "{info:?}"
    );
    let list = me.cmd(&["CLIENT", "LIST"]);
    let text = list
        .text()
        .unwrap_or_else(|| panic!("CLIENT LIST: {list:?}"));
    let field = |line: &str, f: &str| -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
            .unwrap_or_else(|| panic!("no {f} in {line}"))
            .to_string()
    };
    let by_cmd = |cmd: &str| -> String {
        text.lines()
            .find(|l| field(l, "cmd") == cmd)
            .unwrap_or_else(|| panic!("no client with cmd={cmd}:\n{text}"))
            .to_string()
    };
    let b = by_cmd("blpop");
    assert_eq!(
        (field(&b, "flags"), field(&b, "oll")),
        ("b".into(), "0".into()),
        "{b}"
    );
    let x = by_cmd("get");
    assert_eq!(
        (field(&x, "flags"), field(&x, "multi")),
        ("x".into(), "2".into()),
        "{x}"
    );
    let p = by_cmd("psubscribe");
    assert_eq!(
        ["flags", "sub", "psub", "ssub"].map(|f| field(&p, f)),
        ["P", "2", "1", "0"],
        "{p}"
    );
    let mine = text
        .lines()
        .find(|l| field(l, "id") == my_id.to_string())
        .unwrap_or_else(|| panic!("caller {my_id} missing:\n{text}"));
    assert_eq!(
        (
            field(mine, "flags"),
            field(mine, "multi"),
            field(mine, "oll")
        ),
        ("N".into(), "-1".into(), "0".into()),
        "{mine}"
    );
}

/// WAIT through the proxy goes to every master the client wrote to since its last WAIT, on
/// the connections its writes took, and answers the smallest count; with no write, one
/// master answers. INFO's errorstats and changes since the last save are the cluster's.
#[test]
fn wait_counts_the_replicas_of_every_master_written_to() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let (a, b) = (masters[0], masters[1]);
    let ka = key_owned_by(&cluster, a, "w");
    let kb = key_owned_by(&cluster, b, "w");
    let mut c = proxy.raw_timeout(Duration::from_secs(10));
    assert_eq!(c.cmd(&["SET", &ka, "1"]), ok());
    assert_eq!(c.cmd(&["SET", &kb, "1"]), ok());
    let before: Vec<u64> = masters
        .iter()
        .map(|&m| cluster.cmdstat(m, "wait").0)
        .collect();
    // Each master has one replica: both acknowledge.
    assert_eq!(c.cmd(&["WAIT", "1", "5000"]), Resp::Int(1));
    let after: Vec<u64> = masters
        .iter()
        .map(|&m| cluster.cmdstat(m, "wait").0)
        .collect();
    assert_eq!(after[0], before[0] + 1, "WAIT reached {a}, written to");
    assert_eq!(after[1], before[1] + 1, "WAIT reached {b}, written to");
    assert_eq!(
        after[2], before[2],
        "WAIT skipped {}, not written to",
        masters[2]
    );
    // Two replicas cannot be had: the smallest count after the timeout.
    assert_eq!(c.cmd(&["SET", &ka, "2"]), ok());
    assert_eq!(c.cmd(&["WAIT", "2", "100"]), Resp::Int(1));
    // No write since: one master answers at once.
    assert_eq!(c.cmd(&["WAIT", "0", "0"]), Resp::Int(1));
    // After a failover the proxy may not know of yet, a write is redirected to the new
    // master: WAIT asks the node that made the write, not the one first tried.
    let replica = cluster.replica_of(a);
    let r: String = cluster.query(replica, &["CLUSTER", "FAILOVER"]);
    assert_eq!(r, "OK");
    cluster.wait_promoted(replica, Duration::from_secs(30));
    let wrote = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (c.cmd(&["SET", &ka, "3"]) == ok()).then_some(())
    });
    assert!(wrote.is_some(), "no write to {ka} after the failover");
    let r = c.cmd(&["WAIT", "1", "5000"]);
    assert_eq!(r, Resp::Int(1), "WAIT after a failover: {r:?}");

    // INFO replication answers for the proxy as one master: the fewest replicas any
    // master has (one each here), no per-replica lines naming one shard's nodes.
    let repl = c.cmd(&["INFO", "replication"]).text().unwrap_or_default();
    assert!(
        repl.contains("role:master\r\nconnected_slaves:1\r\n") && !repl.contains("slave0:"),
        "{repl}"
    );

    // Errors on two masters: INFO's errorstats counts both.
    assert_eq!(c.cmd(&["SET", &ka, "x"]), ok());
    assert_eq!(c.cmd(&["SET", &kb, "x"]), ok());
    for k in [&ka, &kb] {
        assert!(c.cmd(&["INCR", k]).is_error());
    }
    let info = c.cmd(&["INFO", "errorstats"]).text().unwrap_or_default();
    let errs = parse_info(&info);
    let n: u64 = errs
        .get("errorstat_ERR")
        .and_then(|v| v.strip_prefix("count="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(n >= 2, "errorstat_ERR summed over the masters: {info}");
}
