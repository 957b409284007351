//! A throw-away local Redis Cluster (`Cluster`): its redis-server processes, `redis-cli
//! --cluster create`, waiting until it is healthy, direct queries to its nodes, killing a
//! node, teardown on Drop, and a limit on clusters alive at once (`ClusterPermit`).
//! Slot maths and slot migrations are in `slots.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::conn::{node_conn, parse_info, ping_port};
use super::process::{
    die_with_parent, free_port, keep_tmp, redis_cli_bin, redis_server_bin, run_with_timeout,
    unique_temp_dir, valkey_server_bin, LOCALHOST,
};
use super::resp::{log_tail, poll_until};

// ---------------------------------------------------------------------------------------------
// A semaphore on live clusters
// ---------------------------------------------------------------------------------------------

struct Semaphore {
    count: Mutex<usize>,
    cv: Condvar,
}

fn cluster_semaphore() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| {
        let n = std::env::var("RCP_MAX_CLUSTERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        Semaphore {
            count: Mutex::new(n),
            cv: Condvar::new(),
        }
    })
}

/// Held by a live cluster; released (waking one waiter) on drop.
pub struct ClusterPermit(());

impl ClusterPermit {
    pub fn acquire() -> ClusterPermit {
        let s = cluster_semaphore();
        let mut c = s.count.lock().unwrap_or_else(|e| e.into_inner());
        while *c == 0 {
            c = s.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        *c -= 1;
        ClusterPermit(())
    }
}

impl Drop for ClusterPermit {
    fn drop(&mut self) {
        let s = cluster_semaphore();
        let mut c = s.count.lock().unwrap_or_else(|e| e.into_inner());
        *c += 1;
        s.cv.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// CLUSTER NODES
// ---------------------------------------------------------------------------------------------

/// One line of CLUSTER NODES.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    pub master_id: Option<String>,
    pub link_connected: bool,
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    pub fn is_replica(&self) -> bool {
        self.flags.iter().any(|f| f == "slave")
    }
    pub fn is_failing(&self) -> bool {
        self.flags
            .iter()
            .any(|f| matches!(f.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
    }
    pub fn is_myself(&self) -> bool {
        self.flags.iter().any(|f| f == "myself")
    }
}

pub fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        // ip:port@busport[,hostname]
        let addr = f[1].split('@').next().unwrap_or("");
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut slots = Vec::new();
        for s in &f[8..] {
            if s.starts_with('[') {
                continue; // migrating/importing markers
            }
            let (a, b) = match s.split_once('-') {
                Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                None => (s.parse().ok(), s.parse().ok()),
            };
            if let (Some(a), Some(b)) = (a, b) {
                slots.push((a, b));
            }
        }
        out.push(NodeLine {
            id: f[0].to_string(),
            port,
            flags: f[2].split(',').map(String::from).collect(),
            master_id: (f[3] != "-").then(|| f[3].to_string()),
            link_connected: f[7] == "connected",
            slots,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

struct NodeProc {
    port: u16,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

/// Options for `Cluster::start_with`.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// cluster-node-timeout in ms: how fast a dead master is failed over. Small values make
    /// failover tests fast but risk spurious failovers on a loaded 2-core machine.
    pub node_timeout_ms: u64,
    pub masters: usize,
    pub replicas_per_master: usize,
    /// `enable-debug-command local` on every node (Redis 7's default, `no`, refuses DEBUG),
    /// for a test that must read a node's internals (DEBUG HTSTATS) on a direct connection.
    pub enable_debug_command: bool,
    /// Which server the nodes run.
    pub server: Server,
    /// Each node's outgoing connections (cluster bus, replication) leave from an address
    /// of its own, 127.0.0.(20 + its index), while it listens and announces 127.0.0.1: a
    /// test can then cut one node off from the others by address and port (tc in a
    /// network namespace of its own) while clients still reach it (tests/partition.rs).
    pub source_addrs: bool,
}

/// The server a test cluster runs: Redis (Debian's 7.0, the default) or Valkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Redis,
    Valkey,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_timeout_ms: 2000,
            masters: 3,
            replicas_per_master: 1,
            enable_debug_command: false,
            server: Server::Redis,
            source_addrs: false,
        }
    }
}

/// A local Redis Cluster (by default 3 masters + 3 replicas) in its own temp dir.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<NodeProc>,
    opts: ClusterOptions,
    /// requirepass of every node, once `require_password` set it.
    password: Option<String>,
    _permit: ClusterPermit,
}

impl Cluster {
    /// 3 masters + 3 replicas, node timeout 2 s.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    /// 3 masters + 3 replicas of `server`.
    pub fn start_on(server: Server) -> Cluster {
        Cluster::start_with(ClusterOptions {
            server,
            ..ClusterOptions::default()
        })
    }

    /// `masters` masters and no replica: for tests that need a cluster but no failover.
    pub fn start_masters(masters: usize) -> Cluster {
        Cluster::start_with(ClusterOptions {
            masters,
            replicas_per_master: 0,
            ..ClusterOptions::default()
        })
    }

    pub fn start_with(opts: ClusterOptions) -> Cluster {
        let permit = ClusterPermit::acquire();
        let t0 = Instant::now();
        let dir = unique_temp_dir("rcp-cluster");
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
            opts: opts.clone(),
            password: None,
            _permit: permit,
        };
        let total = opts.masters * (1 + opts.replicas_per_master);
        for _ in 0..total {
            cluster.spawn_node();
        }
        cluster.create();
        cluster.wait_healthy(Duration::from_secs(45));
        eprintln!(
            "[harness] cluster {:?} ready in {:?} (dir {})",
            cluster.ports(),
            t0.elapsed(),
            cluster.dir.display()
        );
        cluster
    }

    /// Starts one redis-server on a fresh port pair; retries with another port when the
    /// chosen one was taken meanwhile.
    fn spawn_node(&mut self) {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let ndir = self.dir.join(port.to_string());
            fs::create_dir_all(&ndir).unwrap();
            let log = ndir.join("redis.log");
            let idx = self.nodes.len();
            let mut cmd = self.node_command(port, &ndir, idx);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
            let pid = child.id();
            let mut node = NodeProc {
                port,
                child: Some(child),
                pid,
                log,
            };
            let up = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
                if let Some(st) = node.child.as_mut().unwrap().try_wait().unwrap() {
                    return Some(Err(format!("exited with {st}")));
                }
                ping_port(port, Duration::from_millis(500)).then_some(Ok(()))
            });
            match up {
                Some(Ok(())) => {
                    self.nodes.push(node);
                    return;
                }
                other => {
                    last_err = format!(
                        "redis-server on port {port} did not start ({:?})\n{}",
                        other,
                        log_tail(&node.log, 20)
                    );
                    if let Some(mut c) = node.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                }
            }
        }
        panic!("{last_err}");
    }

    /// Starts a killed node again on its port, with its `nodes.conf` (so it rejoins with
    /// its slots and no data: no persistence); returns once it answers PING.
    pub fn restart(&mut self, port: u16) {
        let ndir = self.dir.join(port.to_string());
        let idx = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .expect("unknown node");
        let mut cmd = self.node_command(port, &ndir, idx);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("unknown node");
        assert!(n.child.is_none(), "node {port} is still running");
        n.pid = child.id();
        n.child = Some(child);
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            ping_port(port, Duration::from_millis(500)).then_some(())
        });
        assert!(
            up.is_some(),
            "node {port} did not come back\n{}",
            log_tail(&self.node_log(port), 20)
        );
    }

    /// The address a node's outgoing connections leave from (`source_addrs`).
    pub fn source_addr(&self, port: u16) -> String {
        let idx = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .expect("unknown node");
        format!("127.0.0.{}", 20 + idx)
    }

    fn node_command(&self, port: u16, ndir: &Path, idx: usize) -> Command {
        let mut cmd = Command::new(match self.opts.server {
            Server::Redis => redis_server_bin(),
            Server::Valkey => valkey_server_bin(),
        });
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", LOCALHOST])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args([
                "--cluster-node-timeout",
                &self.opts.node_timeout_ms.to_string(),
            ])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--repl-diskless-sync", "yes"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .args(["--logfile", "redis.log"])
            .args(if self.opts.enable_debug_command {
                &["--enable-debug-command", "local"][..]
            } else {
                &[]
            })
            .args(if self.opts.source_addrs {
                vec![
                    "--bind-source-addr".to_string(),
                    format!("127.0.0.{}", 20 + idx),
                    "--cluster-announce-ip".to_string(),
                    LOCALHOST.to_string(),
                ]
            } else {
                vec![]
            })
            .arg("--dir")
            .arg(ndir)
            .current_dir(ndir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        cmd
    }

    fn create(&self) {
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["--cluster", "create"]);
        for n in &self.nodes {
            cmd.arg(format!("{LOCALHOST}:{}", n.port));
        }
        cmd.args([
            "--cluster-replicas",
            &self.opts.replicas_per_master.to_string(),
        ])
        .arg("--cluster-yes");
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(self.dir.join("cluster-create.log"), &text).ok();
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed ({}):\n{text}",
            out.status
        );
    }

    /// Why the cluster is not (yet) healthy, or None when it is: every live node reports
    /// cluster_state:ok and knows every node, all views agree on the expected number of
    /// masters (all holding slots, 16384 in total) and replicas, no node is flagged failing,
    /// and every replica's link to its master is up.
    pub fn health_problem(&self) -> Option<String> {
        let live: Vec<u16> = self.live_ports();
        let expect_masters = self.opts.masters;
        let expect_replicas = live.len().saturating_sub(expect_masters);
        let mut first_view: Option<Vec<(u16, bool)>> = None;
        for &p in &live {
            let mut con = match node_conn(p, Duration::from_secs(2), self.password.as_deref()) {
                Ok(c) => c,
                Err(e) => return Some(format!("{p}: cannot connect: {e}")),
            };
            let info: String = match redis::cmd("CLUSTER").arg("INFO").query(&mut con) {
                Ok(s) => s,
                Err(e) => return Some(format!("{p}: CLUSTER INFO: {e}")),
            };
            let info = parse_info(&info);
            if info.get("cluster_state").map(String::as_str) != Some("ok") {
                return Some(format!(
                    "{p}: cluster_state {:?}",
                    info.get("cluster_state")
                ));
            }
            let nodes_txt: String = match redis::cmd("CLUSTER").arg("NODES").query(&mut con) {
                Ok(s) => s,
                Err(e) => return Some(format!("{p}: CLUSTER NODES: {e}")),
            };
            let nodes = parse_cluster_nodes(&nodes_txt);
            let known: Vec<&NodeLine> = nodes.iter().filter(|n| live.contains(&n.port)).collect();
            if known.len() != live.len() {
                return Some(format!(
                    "{p}: knows {} of {} live nodes",
                    known.len(),
                    live.len()
                ));
            }
            if let Some(n) = known.iter().find(|n| n.is_failing() || !n.link_connected) {
                return Some(format!("{p}: sees {} as {:?}", n.port, n.flags));
            }
            let masters: Vec<&&NodeLine> = known
                .iter()
                .filter(|n| n.is_master() && !n.slots.is_empty())
                .collect();
            let replicas = known.iter().filter(|n| n.is_replica()).count();
            if masters.len() != expect_masters || replicas != expect_replicas {
                return Some(format!(
                    "{p}: sees {} masters with slots and {} replicas",
                    masters.len(),
                    replicas
                ));
            }
            let covered: u32 = masters
                .iter()
                .flat_map(|m| &m.slots)
                .map(|&(a, b)| (b - a) as u32 + 1)
                .sum();
            if covered != 16384 {
                return Some(format!("{p}: {covered} slots covered"));
            }
            let mut view: Vec<(u16, bool)> =
                known.iter().map(|n| (n.port, n.is_master())).collect();
            view.sort();
            match &first_view {
                None => first_view = Some(view),
                Some(v) if *v != view => {
                    return Some(format!("views differ: {v:?} vs {p}: {view:?}"))
                }
                _ => {}
            }
            let me = known.iter().find(|n| n.is_myself());
            if me.map(|n| n.is_replica()).unwrap_or(false) {
                let repl: String = match redis::cmd("INFO").arg("replication").query(&mut con) {
                    Ok(s) => s,
                    Err(e) => return Some(format!("{p}: INFO replication: {e}")),
                };
                let repl = parse_info(&repl);
                if repl.get("master_link_status").map(String::as_str) != Some("up") {
                    return Some(format!(
                        "{p}: master_link_status {:?}",
                        repl.get("master_link_status")
                    ));
                }
            }
        }
        None
    }

    /// Waits until `health_problem` is None; panics naming the last problem on timeout.
    pub fn wait_healthy(&self, timeout: Duration) {
        let mut last = String::new();
        let ok = poll_until(timeout, Duration::from_millis(100), || {
            match self.health_problem() {
                None => Some(()),
                Some(p) => {
                    last = p;
                    None
                }
            }
        });
        if ok.is_none() {
            panic!(
                "cluster {:?} not healthy within {timeout:?}: {last}\ncreate log:\n{}",
                self.ports(),
                log_tail(&self.dir.join("cluster-create.log"), 30)
            );
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every node's port, dead or alive, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Ports of the nodes whose process is still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Process ids of all nodes (for checking cleanup).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    pub fn is_alive(&self, port: u16) -> bool {
        self.nodes
            .iter()
            .any(|n| n.port == port && n.child.is_some())
    }

    pub fn addr(port: u16) -> String {
        format!("{LOCALHOST}:{port}")
    }

    pub fn node_log(&self, port: u16) -> PathBuf {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("unknown node")
            .log
            .clone()
    }

    /// A redis-rs connection straight to one node (10 s timeouts).
    pub fn conn(&self, port: u16) -> redis::Connection {
        node_conn(port, Duration::from_secs(10), self.password.as_deref())
            .unwrap_or_else(|e| panic!("cannot connect to node {port}: {e}"))
    }

    /// Runs one command on a node over a direct connection; panics on error.
    pub fn query<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> T {
        self.try_query(port, args)
            .unwrap_or_else(|e| panic!("node {port}: {args:?} failed: {e}"))
    }

    pub fn try_query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        args: &[&str],
    ) -> redis::RedisResult<T> {
        let mut con = node_conn(port, Duration::from_secs(10), self.password.as_deref())?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut con)
    }

    /// Turns on `requirepass` (and `masterauth`, first, so replication goes on) on every
    /// node of the running cluster, as an operator would; the harness's own connections
    /// authenticate from then on.
    pub fn require_password(&mut self, secret: &str) {
        for p in self.ports() {
            for (k, v) in [("masterauth", secret), ("requirepass", secret)] {
                let _: String = self.query(p, &["CONFIG", "SET", k, v]);
            }
        }
        self.password = Some(secret.to_string());
    }

    /// Runs `redis-cli -p port args...` and returns its stdout (panics if it fails).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// One live node's CLUSTER NODES view.
    pub fn nodes_view(&self, from: u16) -> Vec<NodeLine> {
        parse_cluster_nodes(&self.query::<String>(from, &["CLUSTER", "NODES"]))
    }

    /// The first node still running (for the views of the cluster read from any node).
    pub(super) fn any_live(&self) -> u16 {
        *self.live_ports().first().expect("no live node")
    }

    /// Current masters that hold slots (as seen by a live node), ordered by their lowest slot.
    pub fn masters(&self) -> Vec<u16> {
        let mut m: Vec<NodeLine> = self
            .nodes_view(self.any_live())
            .into_iter()
            .filter(|n| n.is_master() && !n.slots.is_empty() && !n.is_failing())
            .collect();
        m.sort_by_key(|n| n.slots.iter().map(|s| s.0).min());
        m.into_iter().map(|n| n.port).collect()
    }

    /// Replicas of a master (as seen by a live node).
    pub fn replicas_of(&self, master: u16) -> Vec<u16> {
        let view = self.nodes_view(self.any_live());
        let id = view
            .iter()
            .find(|n| n.port == master)
            .expect("master not in view")
            .id
            .clone();
        view.iter()
            .filter(|n| n.is_replica() && n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
            .collect()
    }

    /// The (first) replica of a master.
    pub fn replica_of(&self, master: u16) -> u16 {
        *self
            .replicas_of(master)
            .first()
            .unwrap_or_else(|| panic!("master {master} has no replica"))
    }

    pub fn node_id(&self, port: u16) -> String {
        self.query(port, &["CLUSTER", "MYID"])
    }

    /// SIGKILLs a node's process (and reaps it).
    pub fn kill(&mut self, port: u16) {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("unknown node");
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// INFO commandstats entry for a command: (calls, rejected_calls, failed_calls).
    pub fn cmdstat(&self, port: u16, command: &str) -> (u64, u64, u64) {
        let info: String = self.query(port, &["INFO", "commandstats"]);
        let key = format!("cmdstat_{}", command.to_lowercase());
        let info = parse_info(&info);
        let Some(v) = info.get(&key) else {
            return (0, 0, 0);
        };
        let mut m = BTreeMap::new();
        for kv in v.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        let g = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        (g("calls"), g("rejected_calls"), g("failed_calls"))
    }

    /// INFO clients' `blocked_clients` of one node: its clients waiting in a blocking
    /// command (BLPOP, XREAD BLOCK, ...), not its subscribers.
    pub fn blocked_clients(&self, port: u16) -> u64 {
        let info: String = self.query(port, &["INFO", "clients"]);
        parse_info(&info)
            .get("blocked_clients")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// `blocked_clients` summed over the current masters.
    pub fn blocked_on_masters(&self) -> u64 {
        self.masters()
            .iter()
            .map(|&m| self.blocked_clients(m))
            .sum()
    }

    /// Waits until the masters together have at least `n` blocked clients; panics naming
    /// `what` after `timeout`. For a test that must not go on before a blocking command it
    /// sent has reached its node.
    pub fn wait_blocked_on_masters(&self, n: u64, timeout: Duration, what: &str) {
        let mut last = 0;
        let ok = poll_until(timeout, Duration::from_millis(10), || {
            last = self.blocked_on_masters();
            (last >= n).then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: {last} of {n} clients blocked on the masters after {timeout:?}"
        );
    }

    /// Waits until `replica` reports role:master; returns when it did.
    pub fn wait_promoted(&self, replica: u16, timeout: Duration) -> Instant {
        let mut last = String::new();
        let r = poll_until(timeout, Duration::from_millis(20), || {
            match self.try_query::<String>(replica, &["INFO", "replication"]) {
                Ok(s) => {
                    let role = parse_info(&s).get("role").cloned().unwrap_or_default();
                    last = role.clone();
                    (role == "master").then(Instant::now)
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        r.unwrap_or_else(|| {
            panic!(
                "replica {replica} not promoted within {timeout:?} (last role: {last})\n{}",
                log_tail(&self.node_log(replica), 30)
            )
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "[harness] test panicked; cluster dir was {}",
                self.dir.display()
            );
        }
        if !keep_tmp() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p port args...` (30 s deadline) and returns stdout;
/// panics with stderr when it exits non-zero.
pub fn cli(port: u16, args: &[&str]) -> String {
    let mut cmd = Command::new(redis_cli_bin());
    cmd.args(["-h", LOCALHOST, "-p", &port.to_string()])
        .args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "redis-cli -p {port} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
