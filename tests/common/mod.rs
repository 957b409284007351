//! Shared harness for the integration tests: a throw-away 3-master/3-replica Redis Cluster on
//! 127.0.0.1 (`Cluster`), the proxy binary in front of it (`Proxy`), a raw RESP client
//! (`resp::RawClient`) and small helpers (slot computation, waiting with deadlines).
//!
//! Everything started here is killed on Drop, also when the test panics; temp dirs are
//! removed on Drop unless RCP_KEEP_TMP is set. Child processes also get SIGKILL from the
//! kernel (PR_SET_PDEATHSIG) if the test thread that started them dies without unwinding.
//! (PDEATHSIG follows the spawning *thread*: start a Cluster/Proxy in the thread that owns it.)
//!
//! Environment knobs: RCP_MAX_CLUSTERS (clusters alive at once in one test binary, default 3),
//! RCP_KEEP_TMP (keep temp dirs), REDIS_SERVER / REDIS_CLI (explicit binary paths).
#![allow(dead_code)]

pub mod resp;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[allow(unused_imports)]
pub use resp::{encode_cmd, log_tail, parse_resp, poll_until, RawClient, ReadEnd, Resp};

pub const LOCALHOST: &str = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// External programs
// ---------------------------------------------------------------------------------------------

fn find_program(name: &str, env_var: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return p;
        }
        panic!("{env_var}={} is not a file", p.display());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/bin".into());
    dirs.push("/usr/local/bin".into());
    for d in dirs {
        let c = d.join(name);
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "{name} not found (searched PATH, /usr/bin, /usr/local/bin): run scripts/install-deps.sh"
    );
}

pub fn redis_server_bin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find_program("redis-server", "REDIS_SERVER"))
}

pub fn redis_cli_bin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find_program("redis-cli", "REDIS_CLI"))
}

/// The proxy binary cargo built for this test run.
pub fn proxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_redis-cluster-proxy")
}

/// Makes a child get SIGKILL when the thread that spawned it dies (e.g. the test binary is
/// killed by a CI timeout), so no redis-server outlives a test run.
fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs a command to completion with a deadline; kills it when the deadline passes.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    // Drain the pipes in threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = t_out.join().unwrap();
            let err = t_err.join().unwrap();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Process-wide limits: a semaphore on live clusters, a port allocator, unique names
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

fn process_seed() -> u32 {
    static SEED: OnceLock<u32> = OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let x = nanos ^ std::process::id().wrapping_mul(2_654_435_761);
        // xorshift to spread it
        let mut y = x | 1;
        y ^= y << 13;
        y ^= y >> 17;
        y ^= y << 5;
        y
    })
}

static PORT_COUNTER: AtomicU32 = AtomicU32::new(0);

fn port_is_free(port: u32) -> bool {
    port <= 65535 && TcpListener::bind((LOCALHOST, port as u16)).is_ok()
}

/// The range free ports are drawn from: 20000..35000 (bus ports up to 45000), narrowed to
/// stay below the kernel's ephemeral range when that leaves room, so that outgoing
/// connections (cluster bus, proxy backends) cannot grab a chosen port before it is bound.
fn port_range() -> (u32, u32) {
    static R: OnceLock<(u32, u32)> = OnceLock::new();
    *R.get_or_init(|| {
        let eph_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u32>().ok())
            });
        match eph_low {
            Some(low) if low >= 20000 + 10000 + 1000 => (20000, (low - 10000 - 20000).min(15000)),
            _ => (20000, 15000),
        }
    })
}

/// A free 127.0.0.1 port P in 20000..35000 with P+10000 (the cluster bus port) free as well.
/// Each call in this process returns a different port (process-wide counter from a random,
/// per-process start), so tests running in parallel threads do not collide.
pub fn free_port() -> u16 {
    let (low, span) = port_range();
    for _ in 0..span {
        let n = PORT_COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = low + (process_seed().wrapping_add(n)) % span;
        if port_is_free(p) && port_is_free(p + 10000) {
            return p as u16;
        }
    }
    panic!("no free port pair in {low}..{}", low + span + 10000);
}

/// A fresh directory under the system temp dir (removed by whoever owns it).
pub fn unique_temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    d
}

fn keep_tmp() -> bool {
    std::env::var_os("RCP_KEEP_TMP").is_some()
}

// ---------------------------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------------------------

/// CRC16-CCITT (XMODEM), as Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a key, honouring {hash tags}.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % 16384
}

/// A hash tag (without braces) whose keys all live in `slot`.
pub fn tag_for_slot(slot: u16) -> String {
    for i in 0u64.. {
        let t = format!("t{i}");
        if key_slot(t.as_bytes()) == slot {
            return t;
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------------------------
// Redis connections
// ---------------------------------------------------------------------------------------------

/// A redis-rs connection to 127.0.0.1:port with connect/read/write timeouts.
pub fn redis_conn(port: u16, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{LOCALHOST}:{port}/"))?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// Sends PING over a plain socket; true when +PONG comes back.
pub fn ping_port(port: u16, timeout: Duration) -> bool {
    let Ok(mut c) = RawClient::connect(port, timeout) else {
        return false;
    };
    if c.stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    matches!(c.read_reply(), Ok(Resp::Simple(s)) if s == "PONG")
}

/// Parses the `field:value` lines of an INFO reply.
pub fn parse_info(info: &str) -> BTreeMap<String, String> {
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_timeout_ms: 2000,
            masters: 3,
            replicas_per_master: 1,
        }
    }
}

/// A local Redis Cluster (by default 3 masters + 3 replicas) in its own temp dir.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<NodeProc>,
    opts: ClusterOptions,
    _permit: ClusterPermit,
}

impl Cluster {
    /// 3 masters + 3 replicas, node timeout 2 s.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(opts: ClusterOptions) -> Cluster {
        let permit = ClusterPermit::acquire();
        let t0 = Instant::now();
        let dir = unique_temp_dir("rcp-cluster");
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
            opts: opts.clone(),
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
            let mut cmd = Command::new(redis_server_bin());
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
                .arg("--dir")
                .arg(&ndir)
                .current_dir(&ndir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
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
            let mut con = match redis_conn(p, Duration::from_secs(2)) {
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
        redis_conn(port, Duration::from_secs(10))
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
        let mut con = redis_conn(port, Duration::from_secs(10))?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut con)
    }

    /// Runs `redis-cli -p port args...` and returns its stdout (panics if it fails).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// One live node's CLUSTER NODES view.
    pub fn nodes_view(&self, from: u16) -> Vec<NodeLine> {
        parse_cluster_nodes(&self.query::<String>(from, &["CLUSTER", "NODES"]))
    }

    fn any_live(&self) -> u16 {
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

    /// Owner port of every slot, from one CLUSTER SLOTS of the first master.
    pub fn slot_owners(&self) -> Vec<u16> {
        self.slot_table(self.masters()[0])
    }

    /// Owner port of every slot (0: none) according to `from`'s CLUSTER SLOTS.
    fn slot_table(&self, from: u16) -> Vec<u16> {
        let v: redis::Value = self.query(from, &["CLUSTER", "SLOTS"]);
        let mut owners = vec![0u16; 16384];
        let redis::Value::Array(ranges) = v else {
            panic!("CLUSTER SLOTS: {v:?}")
        };
        for r in ranges {
            let redis::Value::Array(items) = r else {
                continue;
            };
            let (Some(redis::Value::Int(a)), Some(redis::Value::Int(b))) =
                (items.first(), items.get(1))
            else {
                continue;
            };
            if let Some(redis::Value::Array(m)) = items.get(2) {
                if let Some(redis::Value::Int(port)) = m.get(1) {
                    for slot in *a..=*b {
                        owners[slot as usize] = *port as u16;
                    }
                }
            }
        }
        owners
    }

    /// Owner of a slot according to `from`'s CLUSTER SLOTS.
    pub fn slot_owner_per(&self, from: u16, slot: u16) -> Option<u16> {
        Some(self.slot_table(from)[slot as usize]).filter(|&p| p != 0)
    }

    /// Owner of a slot according to a live master (direct CLUSTER SLOTS).
    pub fn slot_owner(&self, slot: u16) -> u16 {
        let from = self
            .masters()
            .first()
            .copied()
            .unwrap_or_else(|| self.any_live());
        self.slot_owner_per(from, slot)
            .unwrap_or_else(|| panic!("slot {slot} has no owner"))
    }

    /// The lowest slot owned by a master.
    pub fn first_slot_of(&self, master: u16) -> u16 {
        self.nodes_view(master)
            .into_iter()
            .find(|n| n.port == master)
            .and_then(|n| n.slots.iter().map(|s| s.0).min())
            .unwrap_or_else(|| panic!("{master} owns no slot"))
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

    // ----- slot migration helpers (run on direct connections) -----

    /// Step 1 of a resharding: target IMPORTING from source, source MIGRATING to target.
    pub fn begin_migration(&self, slot: u16, from: u16, to: u16) {
        let s = slot.to_string();
        let from_id = self.node_id(from);
        let to_id = self.node_id(to);
        let _: () = self.query(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]);
        let _: () = self.query(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]);
    }

    /// Step 2: MIGRATE the given keys from source to target.
    pub fn migrate_keys(&self, from: u16, to: u16, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut args: Vec<String> = vec![
            "MIGRATE".into(),
            LOCALHOST.into(),
            to.to_string(),
            "".into(),
            "0".into(),
            "5000".into(),
            "KEYS".into(),
        ];
        args.extend(keys.iter().cloned());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r: String = self.query(from, &a);
        assert_eq!(r, "OK", "MIGRATE from {from} to {to}");
    }

    /// Keys of a slot held by a node (up to 10,000).
    pub fn keys_in_slot(&self, port: u16, slot: u16) -> Vec<String> {
        self.query(
            port,
            &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "10000"],
        )
    }

    pub fn count_keys_in_slot(&self, port: u16, slot: u16) -> u64 {
        self.query(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
    }

    /// Step 3: assign the slot to the target on the target, the source and all other masters.
    pub fn finish_migration(&self, slot: u16, from: u16, to: u16) {
        let s = slot.to_string();
        let to_id = self.node_id(to);
        let mut order = vec![to, from];
        for m in self.masters() {
            if !order.contains(&m) {
                order.push(m);
            }
        }
        for p in order {
            let _: () = self.query(p, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        }
    }

    /// A complete resharding of one slot with all its keys, waiting until every live master
    /// reports the new owner.
    pub fn move_slot(&self, slot: u16, from: u16, to: u16) {
        self.begin_migration(slot, from, to);
        loop {
            let keys: Vec<String> = self.query(
                from,
                &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"],
            );
            if keys.is_empty() {
                break;
            }
            self.migrate_keys(from, to, &keys);
        }
        self.finish_migration(slot, from, to);
        let masters = self.masters();
        let ok = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            masters
                .iter()
                .all(|&m| self.slot_owner_per(m, slot) == Some(to))
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "slot {slot} not owned by {to} on every master after the move"
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

// ---------------------------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------------------------

/// Options for `Proxy::start_with`.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// Seed node ports; empty means "the first master only" (the rest must be discovered).
    pub seeds: Vec<u16>,
    /// YAML appended to the generated config. A top-level key given here replaces the
    /// harness's default for that key (proxy_port, bind, redis_nodes, log_level).
    pub extra_yaml: String,
    /// Extra command-line arguments after `--config PATH`.
    pub args: Vec<String>,
}

/// The proxy binary running against a cluster; killed on Drop.
pub struct Proxy {
    pub port: u16,
    child: Option<Child>,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub config_path: PathBuf,
}

fn top_level_keys(yaml: &str) -> HashSet<String> {
    yaml.lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('\t') && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
        })
        .collect()
}

impl Proxy {
    /// Starts the proxy with the first master as its only seed plus `extra_yaml`.
    pub fn start(cluster: &Cluster, extra_yaml: &str) -> Proxy {
        Proxy::start_with(
            cluster,
            ProxyOptions {
                extra_yaml: extra_yaml.to_string(),
                ..Default::default()
            },
        )
    }

    pub fn start_with(cluster: &Cluster, opts: ProxyOptions) -> Proxy {
        let seeds = if opts.seeds.is_empty() {
            vec![*cluster.masters().first().expect("cluster has no master")]
        } else {
            opts.seeds.clone()
        };
        let seeds: Vec<String> = seeds.iter().map(|p| Cluster::addr(*p)).collect();
        Proxy::start_raw(
            &seeds,
            &opts.extra_yaml,
            &opts.args,
            Duration::from_secs(20),
        )
    }

    /// Starts the proxy with explicit seed addresses (no cluster needed); waits until PING
    /// answers and panics with the log tail otherwise.
    pub fn start_raw(
        seeds: &[String],
        extra_yaml: &str,
        args: &[String],
        timeout: Duration,
    ) -> Proxy {
        let dir = unique_temp_dir("rcp-proxy");
        let log = dir.join("proxy.log");
        let config_path = dir.join("config.yaml");
        let overridden = top_level_keys(extra_yaml);
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut y = String::new();
            if !overridden.contains("proxy_port") {
                y += &format!("proxy_port: {port}\n");
            }
            if !overridden.contains("bind") {
                y += "bind: \"127.0.0.1\"\n";
            }
            if !overridden.contains("redis_nodes") {
                y += "redis_nodes:\n";
                for s in seeds {
                    y += &format!("  - \"{s}\"\n");
                }
            }
            if !overridden.contains("log_level") {
                y += "log_level: debug\n";
            }
            y += extra_yaml;
            if !y.ends_with('\n') {
                y.push('\n');
            }
            fs::write(&config_path, &y).unwrap();
            let logf = File::create(&log).unwrap();
            let mut cmd = Command::new(proxy_bin());
            cmd.arg("--config")
                .arg(&config_path)
                .args(args)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf);
            die_with_parent(&mut cmd);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", proxy_bin()));
            let mut proxy = Proxy {
                port,
                child: Some(child),
                dir: dir.clone(),
                log: log.clone(),
                config_path: config_path.clone(),
            };
            // The port the proxy should listen on: --port wins over the file, which may set
            // proxy_port itself through extra_yaml.
            if let Some(p) = extra_yaml.lines().find_map(|l| {
                l.strip_prefix("proxy_port:")
                    .and_then(|v| v.trim().parse::<u16>().ok())
            }) {
                proxy.port = p;
            }
            if let Some(i) = args.iter().position(|a| a == "--port") {
                proxy.port = args[i + 1].parse().expect("--port value");
            }
            let mut exited = None;
            let up = poll_until(timeout, Duration::from_millis(25), || {
                if let Some(st) = proxy.child.as_mut().unwrap().try_wait().unwrap() {
                    exited = Some(st);
                    return Some(false);
                }
                ping_port(proxy.port, Duration::from_millis(500)).then_some(true)
            });
            match up {
                Some(true) => return proxy,
                _ => {
                    last_err = format!(
                        "proxy did not answer PING on port {} within {timeout:?} (exit status: {exited:?})\nconfig:\n{y}\n--- proxy log tail ---\n{}",
                        proxy.port,
                        log_tail(&log, 60)
                    );
                    // A bind race with another test is the only failure worth retrying.
                    let tail = log_tail(&log, 60).to_lowercase();
                    let bind_race = exited.is_some() && tail.contains("in use");
                    if !bind_race {
                        break;
                    }
                }
            }
        }
        if !keep_tmp() {
            // keep the dir for the panic message? the text is already captured
            let _ = fs::remove_dir_all(&dir);
        }
        panic!("{last_err}");
    }

    pub fn addr(&self) -> String {
        format!("{LOCALHOST}:{}", self.port)
    }

    /// A redis-rs connection to the proxy (10 s timeouts).
    pub fn conn(&self) -> redis::Connection {
        self.conn_timeout(Duration::from_secs(10))
    }

    pub fn conn_timeout(&self, t: Duration) -> redis::Connection {
        redis_conn(self.port, t).unwrap_or_else(|e| {
            panic!(
                "cannot connect to the proxy on {}: {e}\n--- proxy log tail ---\n{}",
                self.port,
                self.log_tail(40)
            )
        })
    }

    /// A raw RESP client on the proxy (10 s timeouts); its failures quote the proxy log.
    pub fn raw(&self) -> RawClient {
        self.raw_timeout(Duration::from_secs(10))
    }

    pub fn raw_timeout(&self, t: Duration) -> RawClient {
        let mut c = RawClient::connect(self.port, t).unwrap_or_else(|e| {
            panic!(
                "cannot connect to the proxy on {}: {e}\n--- proxy log tail ---\n{}",
                self.port,
                self.log_tail(40)
            )
        });
        c.log = Some(self.log.clone());
        c
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// Number of log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// True while the proxy process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Sends `sig` (libc's number) to the proxy process.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("proxy process").id();
        // SAFETY: kill(2) on the pid of the child this harness started and still holds.
        assert_eq!(
            unsafe { libc::kill(pid as libc::pid_t, sig) },
            0,
            "kill {sig}"
        );
    }

    /// Waits up to `timeout` for the proxy to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with the log tail) unless the process is still running.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!(
                "the proxy exited\n--- proxy log tail ---\n{}",
                self.log_tail(60)
            );
        }
    }

    /// Panic helper: a message plus the proxy's log tail.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n--- proxy log tail ---\n{}", self.log_tail(60))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[harness] test panicked; proxy {} log tail ({}):\n{}",
                self.port,
                self.log.display(),
                log_tail(&self.log, 40)
            );
        }
        if !keep_tmp() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers for tests
// ---------------------------------------------------------------------------------------------

/// Sends PING on an already-open connection to check it still works.
pub fn assert_pong(c: &mut redis::Connection) {
    let r: String = redis::cmd("PING").query(c).expect("PING");
    assert_eq!(r, "PONG");
}

/// Connects to `port` and returns true if the TCP connect is refused (nothing listening).
pub fn port_closed(port: u16) -> bool {
    TcpStream::connect((LOCALHOST, port)).is_err()
}

/// Writes `bytes` into a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

/// Unwraps a result, panicking with `what`, the error and the proxy's log tail.
pub trait OrProxyLog<T> {
    fn or_log(self, proxy: &Proxy, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrProxyLog<T> for Result<T, E> {
    #[track_caller]
    fn or_log(self, proxy: &Proxy, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => proxy.fail(&format!("{what}: {e}")),
        }
    }
}

/// `n` keys (`{tag}:name{i}`) that all live in `slot`.
pub fn keys_in_slot(slot: u16, name: &str, n: usize) -> Vec<String> {
    let tag = tag_for_slot(slot);
    (0..n).map(|i| format!("{{{tag}}}:{name}{i}")).collect()
}

/// A key in a slot owned by `master`, found by trying `prefix0`, `prefix1`, ...
pub fn key_owned_by(cluster: &Cluster, master: u16, prefix: &str) -> String {
    let slot = cluster.first_slot_of(master);
    let view = cluster.nodes_view(master);
    let ranges = view
        .iter()
        .find(|n| n.port == master)
        .map(|n| n.slots.clone())
        .unwrap_or_default();
    for i in 0..100_000 {
        let k = format!("{prefix}{i}");
        let s = key_slot(k.as_bytes());
        if ranges.iter().any(|&(a, b)| (a..=b).contains(&s)) {
            return k;
        }
    }
    panic!("no key for master {master} (first slot {slot})");
}
