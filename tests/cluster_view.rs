//! What CLUSTER commands show through the proxy.
//!
//! `cluster_view: passthrough` (the default): CLUSTER NODES/SLOTS/SHARDS come from a node with
//! addresses rewritten by `address_map`. `cluster_view: proxy`: the proxy answers as a
//! one-node cluster at its announced address owning every slot, so cluster-mode clients
//! (redis-py's RedisCluster, redis-rs's cluster client) keep every connection on the proxy;
//! checked by looking at who owns each client connection on every node (/proc).
//! CLUSTER admin subcommands are refused unless `allow_admin_commands: true`.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Who owns a TCP connection (Linux /proc)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct TcpEntry {
    local_port: u16,
    remote_port: u16,
    established: bool,
    inode: u64,
}

fn tcp_table() -> Vec<TcpEntry> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() < 10 {
                continue;
            }
            let port = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0)
            };
            out.push(TcpEntry {
                local_port: port(c[1]),
                remote_port: port(c[2]),
                established: c[3] == "01",
                inode: c[9].parse().unwrap_or(0),
            });
        }
    }
    out
}

/// Inodes of the sockets a process has open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut out = HashSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// The pid of the process whose command line contains `needle`.
fn pid_by_cmdline(needle: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                return Some(pid);
            }
        }
    }
    None
}

fn proxy_pid(proxy: &Proxy) -> u32 {
    let path = proxy.config_path.to_string_lossy().into_owned();
    pid_by_cmdline(&path).unwrap_or_else(|| panic!("no process runs with {path}"))
}

/// One node's client connections, classified by owning process.
#[derive(Debug, Default)]
struct NodeClients {
    port: u16,
    by_proxy: usize,
    by_client: Vec<String>,
    other: usize,
}

/// For every node: which of its client connections (CLIENT LIST, apart from the one asking)
/// belong to the proxy's process and which to the test client's process.
fn clients_per_node(cluster: &Cluster, proxy_pid: u32, client_pid: u32) -> Vec<NodeClients> {
    let mut out = Vec::new();
    for port in cluster.live_ports() {
        let mut con = cluster.conn(port);
        let me: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
        let table = tcp_table();
        let proxy_socks = socket_inodes(proxy_pid);
        let client_socks = socket_inodes(client_pid);
        let mut nc = NodeClients {
            port,
            ..Default::default()
        };
        for line in list.lines() {
            let f: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .collect();
            if f.get("id").and_then(|v| v.parse::<i64>().ok()) == Some(me) {
                continue;
            }
            let Some(peer_port) = f
                .get("addr")
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            let inode = table
                .iter()
                .find(|e| e.local_port == peer_port && e.remote_port == port)
                .map(|e| e.inode);
            match inode {
                Some(i) if proxy_socks.contains(&i) => nc.by_proxy += 1,
                Some(i) if client_socks.contains(&i) => nc.by_client.push(line.to_string()),
                _ => nc.other += 1,
            }
        }
        out.push(nc);
    }
    out
}

/// Established TCP connections of `pid` to the given remote ports.
fn connections_of(pid: u32, remote_ports: &[u16]) -> Vec<TcpEntry> {
    let socks = socket_inodes(pid);
    tcp_table()
        .into_iter()
        .filter(|e| {
            e.established && socks.contains(&e.inode) && remote_ports.contains(&e.remote_port)
        })
        .collect()
}

/// While a cluster-mode client (process `client_pid`) holds its connections open: none of
/// them goes to a cluster node, at least one goes to the proxy, and the nodes' clients are
/// the proxy's.
fn assert_client_stays_on_proxy(cluster: &Cluster, proxy: &Proxy, client_pid: u32, what: &str) {
    let ports = cluster.ports();
    let direct = connections_of(client_pid, &ports);
    let to_proxy = connections_of(client_pid, &[proxy.port]);
    eprintln!(
        "{what}: {} connection(s) to the proxy, {} to cluster nodes",
        to_proxy.len(),
        direct.len()
    );
    assert!(
        direct.is_empty(),
        "{what} opened connections straight to cluster nodes: {direct:?}"
    );
    assert!(
        !to_proxy.is_empty(),
        "{what} holds no connection to the proxy (port {}): the ownership check is blind",
        proxy.port
    );
    let ppid = proxy_pid(proxy);
    let per_node = clients_per_node(cluster, ppid, client_pid);
    for n in &per_node {
        eprintln!(
            "node {}: {} client(s) of the proxy, {} of {what}, {} other",
            n.port,
            n.by_proxy,
            n.by_client.len(),
            n.other
        );
        assert!(
            n.by_client.is_empty(),
            "{what} is connected to node {} directly:\n{}",
            n.port,
            n.by_client.join("\n")
        );
    }
    for m in cluster.masters() {
        let n = per_node.iter().find(|n| n.port == m).unwrap();
        assert!(
            n.by_proxy > 0,
            "master {m} has no connection from the proxy (pid {ppid}): the ownership check is blind"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn text_of(r: &Resp) -> String {
    r.text()
        .unwrap_or_else(|| panic!("expected a string reply, got {r:?}"))
}

fn int_of(r: &Resp) -> i64 {
    match r {
        Resp::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn array_of(r: &Resp) -> &Vec<Resp> {
    match r {
        Resp::Array(a) | Resp::Set(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A tag (without braces) per slot: the first "t<i>" hashing to it (as tag_for_slot, in one
/// pass).
fn tags_per_slot() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; 16384];
    let mut left = 16384;
    let mut i = 0u64;
    while left > 0 {
        let t = format!("t{i}");
        let s = key_slot(t.as_bytes()) as usize;
        if tags[s].is_none() {
            tags[s] = Some(t);
            left -= 1;
        }
        i += 1;
    }
    tags.into_iter().map(Option::unwrap).collect()
}

fn proxy_view_yaml(port: u16) -> String {
    format!("proxy_port: {port}\ncluster_view: proxy\nannounce_address: \"127.0.0.1:{port}\"\n")
}

/// Checks the proxy's one-node cluster view at `ip:port`; returns the node id it announces.
fn check_one_node_view(proxy: &Proxy, ip: &str, port: u16) -> String {
    let mut p = proxy.raw();

    // CLUSTER SLOTS: one range, 0-16383, one node (no replicas) at the announced address.
    let r = p.cmd(&["CLUSTER", "SLOTS"]);
    let ranges = array_of(&r);
    assert_eq!(ranges.len(), 1, "CLUSTER SLOTS ranges: {r:?}");
    let range = array_of(&ranges[0]);
    assert_eq!(range[0], Resp::Int(0), "{r:?}");
    assert_eq!(range[1], Resp::Int(16383), "{r:?}");
    assert_eq!(range.len(), 3, "one node per range, no replicas: {r:?}");
    let node = array_of(&range[2]);
    assert_eq!(text_of(&node[0]), ip, "CLUSTER SLOTS ip: {r:?}");
    assert_eq!(int_of(&node[1]), port as i64, "CLUSTER SLOTS port: {r:?}");
    let id = text_of(&node[2]);
    assert_eq!(id.len(), 40, "node id {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "node id {id:?}");

    // CLUSTER MYID: the same id.
    assert_eq!(text_of(&p.cmd(&["CLUSTER", "MYID"])), id, "CLUSTER MYID");

    // CLUSTER NODES: one line, myself,master, every slot.
    let text = text_of(&p.cmd(&["CLUSTER", "NODES"]));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "CLUSTER NODES:\n{text}");
    let parsed = parse_cluster_nodes(&text);
    assert_eq!(parsed.len(), 1, "CLUSTER NODES:\n{text}");
    let n = &parsed[0];
    assert_eq!(n.id, id, "CLUSTER NODES id:\n{text}");
    assert_eq!(n.port, port, "CLUSTER NODES port:\n{text}");
    assert!(
        lines[0]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{ip}:{port}")),
        "CLUSTER NODES address:\n{text}"
    );
    assert!(n.is_myself() && n.is_master(), "flags {:?}", n.flags);
    assert!(n.link_connected, "{text}");
    assert_eq!(n.slots, vec![(0, 16383)], "CLUSTER NODES slots:\n{text}");

    // CLUSTER SHARDS: one shard with every slot and one master node.
    let r = p.cmd(&["CLUSTER", "SHARDS"]);
    let shards = array_of(&r);
    assert_eq!(shards.len(), 1, "CLUSTER SHARDS: {r:?}");
    let slots = shards[0].lookup("slots").expect("shard has slots");
    assert_eq!(
        array_of(slots).iter().map(int_of).collect::<Vec<_>>(),
        vec![0, 16383],
        "CLUSTER SHARDS slots: {r:?}"
    );
    let nodes = array_of(shards[0].lookup("nodes").expect("shard has nodes"));
    assert_eq!(nodes.len(), 1, "CLUSTER SHARDS nodes: {r:?}");
    let sn = &nodes[0];
    assert_eq!(text_of(sn.lookup("id").expect("id")), id, "{r:?}");
    assert_eq!(
        int_of(sn.lookup("port").expect("port")),
        port as i64,
        "{r:?}"
    );
    assert_eq!(text_of(sn.lookup("ip").expect("ip")), ip, "{r:?}");
    assert_eq!(text_of(sn.lookup("role").expect("role")), "master", "{r:?}");

    // CLUSTER INFO: a healthy one-node cluster with all slots.
    let info = text_of(&p.cmd(&["CLUSTER", "INFO"]));
    let kv = parse_info(&info);
    for (k, v) in [
        ("cluster_state", "ok"),
        ("cluster_slots_assigned", "16384"),
        ("cluster_slots_ok", "16384"),
        ("cluster_known_nodes", "1"),
        ("cluster_size", "1"),
    ] {
        assert_eq!(
            kv.get(k).map(String::as_str),
            Some(v),
            "{k} in CLUSTER INFO:\n{info}"
        );
    }
    id
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn passthrough_view_shows_mapped_addresses() {
    let cluster = Cluster::start();
    let masters = cluster.masters();
    let r0 = cluster.replica_of(masters[0]);
    let mapped: BTreeMap<u16, (String, u16)> = [
        (masters[0], ("10.9.8.7".to_string(), 7000)),
        (masters[1], ("10.9.8.7".to_string(), 7001)),
        (r0, ("10.9.8.8".to_string(), 7100)),
    ]
    .into_iter()
    .collect();
    let mut yaml = String::from("address_map:\n");
    for (port, (ip, p)) in &mapped {
        yaml += &format!("  \"127.0.0.1:{port}\": \"{ip}:{p}\"\n");
    }
    // No cluster_view key: passthrough is the default.
    let proxy = Proxy::start(&cluster, &yaml);
    let ids: BTreeMap<String, u16> = cluster
        .ports()
        .into_iter()
        .map(|p| (cluster.node_id(p), p))
        .collect();
    let expect = |id: &str| -> (String, u16) {
        let port = ids[id];
        mapped
            .get(&port)
            .cloned()
            .unwrap_or_else(|| ("127.0.0.1".to_string(), port))
    };
    let mut p = proxy.raw();

    // The operator can read the map back (PROXY CONFIG GET lists every setting).
    // In the order of the internal addresses as strings, as the config holds them.
    let mut pairs: Vec<String> = mapped
        .iter()
        .map(|(port, (ip, pp))| format!("127.0.0.1:{port}={ip}:{pp}"))
        .collect();
    pairs.sort();
    let want = pairs.join(",");
    assert_eq!(
        p.cmd(&["PROXY", "CONFIG", "GET", "address_map"]),
        Resp::Array(vec![
            Resp::Bulk(b"address_map".to_vec()),
            Resp::Bulk(want.into_bytes())
        ])
    );

    // CLUSTER NODES: every node, mapped ones at their public address.
    let text = text_of(&p.cmd(&["CLUSTER", "NODES"]));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 6, "CLUSTER NODES through the proxy:\n{text}");
    for line in &lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (ip, port) = expect(f[0]);
        let addr = f[1].split('@').next().unwrap();
        assert_eq!(
            addr,
            format!("{ip}:{port}"),
            "address of node {} (internal port {}):\n{text}",
            f[0],
            ids[f[0]]
        );
    }
    for port in mapped.keys() {
        assert!(
            !text.contains(&format!("127.0.0.1:{port}")),
            "internal address 127.0.0.1:{port} still shown:\n{text}"
        );
    }

    // CLUSTER SLOTS: masters and replicas per range, mapped ones rewritten. Redis 7.0 leaves
    // out replicas whose replication offset is still 0, so write to every master first and
    // wait until a node's reply names all six.
    for (i, &m) in masters.iter().enumerate() {
        let k = key_owned_by(&cluster, m, &format!("pt{i}:"));
        assert_eq!(p.cmd(&["SET", &k, "x"]), Resp::Simple("OK".into()));
    }
    let count_nodes = |r: &Resp| -> usize {
        array_of(r)
            .iter()
            .map(|range| array_of(range).len().saturating_sub(2))
            .sum()
    };
    let mut r = p.cmd(&["CLUSTER", "SLOTS"]);
    let t0 = Instant::now();
    while count_nodes(&r) < 6 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        r = p.cmd(&["CLUSTER", "SLOTS"]);
    }
    eprintln!("CLUSTER SLOTS named every node after {:?}", t0.elapsed());
    let ranges = array_of(&r);
    assert!(ranges.len() >= 3, "{r:?}");
    let mut seen = HashSet::new();
    for range in ranges {
        let items = array_of(range);
        for node in &items[2..] {
            let n = array_of(node);
            let id = text_of(&n[2]);
            let (ip, port) = expect(&id);
            assert_eq!(text_of(&n[0]), ip, "CLUSTER SLOTS ip of {id}: {r:?}");
            assert_eq!(
                int_of(&n[1]),
                port as i64,
                "CLUSTER SLOTS port of {id}: {r:?}"
            );
            seen.insert(ids[&id]);
        }
    }
    assert_eq!(seen.len(), 6, "CLUSTER SLOTS names every node");

    // CLUSTER SHARDS: node ip/port (and endpoint) rewritten.
    let r = p.cmd(&["CLUSTER", "SHARDS"]);
    let mut seen = 0;
    for shard in array_of(&r) {
        for node in array_of(shard.lookup("nodes").expect("nodes")) {
            let id = text_of(node.lookup("id").expect("id"));
            let (ip, port) = expect(&id);
            assert_eq!(
                int_of(node.lookup("port").expect("port")),
                port as i64,
                "SHARDS port of {id}: {r:?}"
            );
            assert_eq!(
                text_of(node.lookup("ip").expect("ip")),
                ip,
                "SHARDS ip of {id}: {r:?}"
            );
            if let Some(ep) = node.lookup("endpoint") {
                assert_eq!(text_of(ep), ip, "SHARDS endpoint of {id}: {r:?}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 6, "CLUSTER SHARDS names every node: {r:?}");

    // CLUSTER INFO comes from a node.
    let info = parse_info(&text_of(&p.cmd(&["CLUSTER", "INFO"])));
    assert_eq!(info.get("cluster_state").map(String::as_str), Some("ok"));
    assert_eq!(
        info.get("cluster_known_nodes").map(String::as_str),
        Some("6")
    );

    // MYID is a real node's id.
    let myid = text_of(&p.cmd(&["CLUSTER", "MYID"]));
    assert!(
        ids.contains_key(&myid),
        "CLUSTER MYID {myid:?} is no node's id"
    );

    // redis-cli's view through the proxy too.
    let cli_nodes = cli(proxy.port, &["CLUSTER", "NODES"]);
    assert!(cli_nodes.contains("10.9.8.7:7000"), "{cli_nodes}");
}

#[test]
fn proxy_view_answers_as_a_one_node_cluster() {
    let cluster = Cluster::start();
    let masters = cluster.masters();

    // Explicit announce address (not the listen address).
    let explicit = Proxy::start(
        &cluster,
        "cluster_view: proxy\nannounce_address: \"10.20.30.40:7777\"\n",
    );
    let id1 = check_one_node_view(&explicit, "10.20.30.40", 7777);

    // Default announce address: the proxy's listen address.
    let proxy = Proxy::start(&cluster, "cluster_view: proxy\n");
    let id2 = check_one_node_view(&proxy, "127.0.0.1", proxy.port);
    eprintln!("node ids announced: {id1} {id2}");

    // CLUSTER KEYSLOT is answered by the proxy (no node sees it).
    let keyslot_calls = |c: &Cluster| -> u64 {
        c.live_ports()
            .iter()
            .map(|&p| c.cmdstat(p, "cluster|keyslot").0)
            .sum()
    };
    let before = keyslot_calls(&cluster);
    let mut p = proxy.raw();
    for k in ["foo", "{user1}:name", "", "a{b}c"] {
        assert_eq!(
            p.cmd(&["CLUSTER", "KEYSLOT", k]),
            Resp::Int(key_slot(k.as_bytes()) as i64),
            "CLUSTER KEYSLOT {k:?}"
        );
    }
    assert_eq!(
        keyslot_calls(&cluster),
        before,
        "CLUSTER KEYSLOT reached a node"
    );

    // COUNTKEYSINSLOT / GETKEYSINSLOT go to the slot's owner.
    for (i, &m) in masters.iter().enumerate() {
        let slot = cluster.first_slot_of(m) + 5 + i as u16;
        let keys = keys_in_slot(slot, "cv", 3);
        for k in &keys {
            assert_eq!(p.cmd(&["SET", k, "v"]), Resp::Simple("OK".into()));
        }
        let s = slot.to_string();
        assert_eq!(
            p.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]),
            Resp::Int(3),
            "COUNTKEYSINSLOT {slot} (owner {m})"
        );
        let r = p.cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "10"]);
        let mut got: Vec<String> = array_of(&r).iter().map(text_of).collect();
        got.sort();
        assert_eq!(got, keys, "GETKEYSINSLOT {slot} (owner {m})");
    }
    // Data commands are unaffected by the view.
    assert_eq!(
        p.cmd(&[
            "MGET",
            &keys_in_slot(cluster.first_slot_of(masters[1]) + 6, "cv", 1)[0],
            "nosuch"
        ]),
        Resp::Array(vec![Resp::Bulk(b"v".to_vec()), Resp::NullBulk])
    );
}

/// A child process killed on drop.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn python_with_redis_py() {
    let out = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}): run scripts/install-deps.sh"));
    assert!(
        out.status.success(),
        "python3 cannot import redis.cluster: run scripts/install-deps.sh (pip install redis)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_py_cluster_client_keeps_every_connection_on_the_proxy() {
    python_with_redis_py();
    let cluster = Cluster::start();
    let port = free_port();
    let proxy = Proxy::start(&cluster, &proxy_view_yaml(port));
    assert_eq!(proxy.port, port);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/cluster_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(port.to_string())
        .arg("--hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn python3");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut guard = ChildGuard(Some(child));
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });

    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut held = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                eprintln!("py: {l}");
                let hold = l == "HOLD";
                lines.push(l);
                if hold {
                    held = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if !held {
        drop(guard);
        let err = err_thread.join().unwrap_or_default();
        proxy.fail(&format!(
            "cluster_client.py did not reach HOLD:\nstdout:\n{}\nstderr:\n{err}",
            lines.join("\n")
        ));
    }

    assert_client_stays_on_proxy(&cluster, &proxy, pid, "redis-py RedisCluster");

    // Let the script finish.
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let child = guard.0.as_mut().unwrap();
    let status = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
        child.try_wait().unwrap()
    });
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    let err = err_thread.join().unwrap_or_default();
    let out = lines.join("\n");
    match status {
        Some(st) if st.success() && out.contains("CLUSTER CLIENT OK") => {}
        other => proxy.fail(&format!(
            "cluster_client.py ended with {other:?}\nstdout:\n{out}\nstderr:\n{err}"
        )),
    }
    guard.0 = None;

    // Its writes are in the cluster: one key per slot plus 256 counters, on the slot owners.
    let masters = cluster.masters();
    let total: u64 = masters
        .iter()
        .map(|&m| cluster.query::<u64>(m, &["DBSIZE"]))
        .sum();
    assert_eq!(
        total,
        16384 + 256,
        "keys written by redis-py through the proxy"
    );
    for slot in [0u16, 5460, 5461, 10922, 10923, 16383] {
        let k = format!("{{{}}}:py", tag_for_slot(slot));
        let v: Option<String> = cluster.query(cluster.slot_owner(slot), &["GET", &k]);
        assert_eq!(
            v,
            Some(format!("v{slot}")),
            "{k} on the owner of slot {slot}"
        );
    }
}

#[test]
fn redis_rs_cluster_client_keeps_every_connection_on_the_proxy() {
    let cluster = Cluster::start();
    let port = free_port();
    let proxy = Proxy::start(&cluster, &proxy_view_yaml(port));
    assert_eq!(proxy.port, port);
    let tags = tags_per_slot();

    let client =
        redis::cluster::ClusterClientBuilder::new(vec![format!("redis://127.0.0.1:{port}/")])
            .connection_timeout(Duration::from_secs(10))
            .response_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
    let mut con = client
        .get_connection()
        .or_log(&proxy, "redis-rs cluster client connecting to the proxy");

    let t0 = Instant::now();
    for chunk in (0..16384usize).collect::<Vec<_>>().chunks(2048) {
        let mut pipe = redis::cluster::cluster_pipe();
        for &s in chunk {
            pipe.cmd("SET")
                .arg(format!("{{{}}}:rs", tags[s]))
                .arg(format!("v{s}"))
                .ignore();
        }
        pipe.query::<()>(&mut con)
            .or_log(&proxy, "redis-rs cluster pipeline of SETs");
    }
    for chunk in (0..16384usize).collect::<Vec<_>>().chunks(2048) {
        let mut pipe = redis::cluster::cluster_pipe();
        for &s in chunk {
            pipe.cmd("GET").arg(format!("{{{}}}:rs", tags[s]));
        }
        let got: Vec<Option<String>> = pipe
            .query(&mut con)
            .or_log(&proxy, "redis-rs cluster pipeline of GETs");
        for (&s, v) in chunk.iter().zip(got) {
            assert_eq!(v, Some(format!("v{s}")), "slot {s}");
        }
    }
    for s in (0..16384usize).step_by(97) {
        let k = format!("{{{}}}:rs", tags[s]);
        let v: Option<String> = redis::cmd("GET")
            .arg(&k)
            .query(&mut con)
            .or_log(&proxy, "redis-rs cluster GET");
        assert_eq!(v, Some(format!("v{s}")), "{k}");
    }
    eprintln!(
        "redis-rs cluster client: 16384 SETs + GETs in {:?}",
        t0.elapsed()
    );

    // While the cluster connection is still open.
    assert_client_stays_on_proxy(
        &cluster,
        &proxy,
        std::process::id(),
        "redis-rs ClusterConnection",
    );
    drop(con);

    // The ownership check itself sees a direct connection when there is one.
    let masters = cluster.masters();
    let direct = cluster.conn(masters[0]);
    let per_node = clients_per_node(&cluster, proxy_pid(&proxy), std::process::id());
    let n = per_node.iter().find(|n| n.port == masters[0]).unwrap();
    assert_eq!(
        n.by_client.len(),
        1,
        "a direct connection to {} not seen: {per_node:?}",
        masters[0]
    );
    drop(direct);

    let total: u64 = masters
        .iter()
        .map(|&m| cluster.query::<u64>(m, &["DBSIZE"]))
        .sum();
    assert_eq!(total, 16384, "keys written by redis-rs through the proxy");
    for slot in [0u16, 8000, 16383] {
        let k = format!("{{{}}}:rs", tags[slot as usize]);
        let v: Option<String> = cluster.query(cluster.slot_owner(slot), &["GET", &k]);
        assert_eq!(
            v,
            Some(format!("v{slot}")),
            "{k} on the owner of slot {slot}"
        );
    }
}

/// CLUSTER subcommands that change the cluster.
fn admin_commands(some_id: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["CLUSTER", "ADDSLOTS", "100"]),
        v(&["CLUSTER", "ADDSLOTSRANGE", "100", "200"]),
        v(&["CLUSTER", "DELSLOTS", "100"]),
        v(&["CLUSTER", "DELSLOTSRANGE", "100", "200"]),
        v(&["CLUSTER", "SETSLOT", "100", "STABLE"]),
        v(&["CLUSTER", "SETSLOT", "100", "NODE", some_id]),
        v(&["CLUSTER", "FAILOVER"]),
        v(&["CLUSTER", "FAILOVER", "TAKEOVER"]),
        v(&["CLUSTER", "RESET", "SOFT"]),
        v(&["CLUSTER", "FORGET", some_id]),
        v(&["CLUSTER", "MEET", "127.0.0.1", "1"]),
        v(&["CLUSTER", "REPLICATE", some_id]),
        v(&["CLUSTER", "FLUSHSLOTS"]),
        v(&["CLUSTER", "BUMPEPOCH"]),
        v(&["CLUSTER", "SET-CONFIG-EPOCH", "1"]),
        v(&["cluster", "addslots", "100"]),
    ]
}

#[test]
fn cluster_admin_subcommands_are_refused_unless_allowed() {
    let cluster = Cluster::start();
    let masters = cluster.masters();
    let some_id = cluster.node_id(masters[1]);
    let owner_before = cluster.slot_owner(100);

    for (label, yaml) in [
        ("passthrough (default)", String::new()),
        ("proxy view", "cluster_view: proxy\n".to_string()),
    ] {
        let proxy = Proxy::start(&cluster, &yaml);
        let mut p = proxy.raw();
        let mut bad = Vec::new();
        for c in admin_commands(&some_id) {
            let r = p.cmd(c.as_slice());
            let refused = r
                .error_text()
                .map(|e| e.contains("not allowed through the proxy"))
                .unwrap_or(false);
            if !refused {
                bad.push(format!("{}: {r:?}", c.join(" ")));
            }
        }
        if !bad.is_empty() {
            proxy.fail(&format!(
                "{label}: {} admin subcommand(s) not refused:\n{}",
                bad.len(),
                bad.join("\n")
            ));
        }
        // Read-only subcommands still work, and so does the connection.
        let info = text_of(&p.cmd(&["CLUSTER", "INFO"]));
        assert!(info.contains("cluster_state:ok"), "{label}: {info}");
        assert_eq!(p.cmd(&["SET", "admin:k", "1"]), Resp::Simple("OK".into()));
    }
    // Nothing changed in the cluster.
    assert_eq!(
        cluster.health_problem(),
        None,
        "cluster after the refused commands"
    );
    assert_eq!(cluster.masters(), masters);
    assert_eq!(cluster.slot_owner(100), owner_before);

    // With allow_admin_commands the subcommands reach Redis (harmless ones here: Redis
    // itself refuses them).
    let proxy = Proxy::start(&cluster, "allow_admin_commands: true\n");
    let mut p = proxy.raw();
    let owned = cluster.first_slot_of(masters[2]).to_string();
    let r = p.cmd(&["CLUSTER", "ADDSLOTS", &owned]);
    let e = r.error_text().unwrap_or_default();
    assert!(
        e.contains("already busy") && !e.contains("not allowed"),
        "ADDSLOTS of an assigned slot with allow_admin_commands: {r:?}"
    );
    let unknown = "0123456789012345678901234567890123456789";
    let r = p.cmd(&["CLUSTER", "FORGET", unknown]);
    let e = r.error_text().unwrap_or_default();
    assert!(
        e.contains("Unknown node") && !e.contains("not allowed"),
        "FORGET of an unknown node with allow_admin_commands: {r:?}"
    );
    assert_eq!(cluster.health_problem(), None);
}
