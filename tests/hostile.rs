//! Hostile clients: exact answers to absurd frames (huge declared lengths, deep nesting, NUL
//! bytes in inline commands); garbage from thousands of short-lived connections while
//! well-behaved clients check their results; a client that pipelines big GETs and never reads;
//! 10,000 idle connections plus one over `max_clients`; `client_timeout` against idle and
//! slowloris clients. The proxy must stay up, keep serving the good clients correctly, and
//! keep its memory (VmRSS of the process, read from /proc) bounded.
//!
//! A watchdog SIGKILLs the proxy when its RSS passes a runaway cap or it stops answering PING,
//! so a looping proxy cannot eat the machine's memory; the failure names the inputs sent just
//! before. The garbage is seeded (HOSTILE_SEED=N to replay another sequence). The tests take
//! a file-wide lock around their measured part so memory and timings are not disturbed by one
//! another (clusters still start in parallel).

mod common;

use common::*;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn serial() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

/// xorshift64*: a tiny seeded generator (no dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn seed_from_env(default: u64) -> u64 {
    std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The pid of the proxy process, found by its `--config <path>` argument in /proc/*/cmdline
/// (the harness keeps its Child private).
fn proxy_pid(proxy: &Proxy) -> u32 {
    let want = proxy.config_path.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(e) = e else { continue };
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.split(|&b| b == 0).any(|a| a == want.as_bytes()) {
            return pid;
        }
    }
    proxy.fail(&format!("no process with --config {want} in /proc"))
}

/// A `Vm*:` field of /proc/<pid>/status, in kB.
fn vm_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn rss_kb(proxy: &Proxy, pid: u32) -> u64 {
    vm_kb(pid, "VmRSS").unwrap_or_else(|| proxy.fail(&format!("cannot read VmRSS of pid {pid}")))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Raises this process's RLIMIT_NOFILE soft limit to its hard limit; fails clearly when the
/// hard limit is below `need`.
fn raise_nofile(need: u64) -> libc::rlim_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) },
        0,
        "getrlimit(RLIMIT_NOFILE): {}",
        io::Error::last_os_error()
    );
    assert!(
        r.rlim_max >= need as libc::rlim_t,
        "this test needs {need} open files but the hard RLIMIT_NOFILE is {} \
         (raise it, e.g. `ulimit -Hn 65536` as root or in /etc/security/limits.conf)",
        r.rlim_max
    );
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) },
            0,
            "setrlimit(RLIMIT_NOFILE, {}): {}",
            r.rlim_max,
            io::Error::last_os_error()
        );
    }
    r.rlim_cur
}

/// Closes with a RST instead of a FIN (SO_LINGER 0): an abortive close, and no TIME_WAIT.
fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn is_closed_err(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Parses every complete reply in `buf`; Err on bytes that are not RESP. Returns the
/// replies and how many bytes were left incomplete at the end.
fn parse_all(buf: &[u8]) -> Result<(Vec<Resp>, usize), String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_resp(&buf[pos..]) {
            Ok(Some((v, used))) => {
                out.push(v);
                pos += used;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "{} at byte {pos} of {:?}",
                    e.0,
                    String::from_utf8_lossy(&buf[pos..buf.len().min(pos + 120)])
                ))
            }
        }
    }
    Ok((out, buf.len() - pos))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
    Timeout,
}

/// Reads until EOF, a reset, `idle` without data, `total` overall or `cap` bytes.
fn read_until_end(
    s: &mut TcpStream,
    idle: Duration,
    total: Duration,
    cap: usize,
) -> (Vec<u8>, End) {
    let _ = s.set_read_timeout(Some(idle));
    let deadline = Instant::now() + total;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if Instant::now() >= deadline || buf.len() >= cap {
            return (buf, End::Timeout);
        }
        match s.read(&mut chunk) {
            Ok(0) => return (buf, End::Eof),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return (buf, End::Timeout),
            Err(_) => return (buf, End::Reset),
        }
    }
}

/// `bytes` as an escaped string, cut at `max` bytes.
fn esc(bytes: &[u8], max: usize) -> String {
    let mut s: String = bytes[..bytes.len().min(max)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > max {
        s += &format!("... ({} bytes)", bytes.len());
    }
    s
}

/// The state letter of /proc/<pid>/stat (R running, S sleeping, ...).
fn proc_state(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            st.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(String::from)
        })
        .unwrap_or_else(|| "?".into())
}

fn sigkill(pid: u32) {
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Watches the proxy while a test attacks it: samples VmRSS every 100 ms and PINGs it on a
/// fresh connection every 500 ms. A runaway (RSS over `cap_kb`, or no PONG for 4 s) gets the
/// proxy SIGKILLed at once, so a bug cannot eat the machine's memory, and sets `abort`.
struct Watchdog {
    stop: Arc<AtomicBool>,
    tripped: Arc<Mutex<Option<String>>>,
    peak_kb: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(pid: u32, port: u16, cap_kb: u64, abort: Arc<AtomicBool>) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let tripped = Arc::new(Mutex::new(None));
        let peak_kb = Arc::new(AtomicU64::new(0));
        let (st, tr, pk) = (stop.clone(), tripped.clone(), peak_kb.clone());
        // PINGs run in their own thread so a hung proxy cannot slow the RSS sampling down.
        let born = Instant::now();
        let last_pong_ms = Arc::new(AtomicU64::new(0));
        {
            let (st, lp) = (stop.clone(), last_pong_ms.clone());
            std::thread::spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    if ping_port(port, Duration::from_millis(1000)) {
                        lp.store(born.elapsed().as_millis() as u64, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
        let handle = std::thread::spawn(move || {
            let trip = |why: String| {
                sigkill(pid);
                *tr.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                abort.store(true, Ordering::SeqCst);
            };
            while !st.load(Ordering::SeqCst) {
                let Some(rss) = vm_kb(pid, "VmRSS") else {
                    trip("the proxy process is gone".into());
                    return;
                };
                pk.fetch_max(rss, Ordering::SeqCst);
                if rss > cap_kb {
                    trip(format!(
                        "the proxy's RSS reached {:.0} MB (runaway cap {:.0} MB; process state {}); killed",
                        mb(rss),
                        mb(cap_kb),
                        proc_state(pid)
                    ));
                    return;
                }
                let silent =
                    born.elapsed().as_millis() as u64 - last_pong_ms.load(Ordering::SeqCst);
                if silent > 4000 {
                    trip(format!(
                        "the proxy answered no PING for {silent} ms (process state {}, RSS {:.0} MB); killed",
                        proc_state(pid),
                        mb(rss)
                    ));
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog {
            stop,
            tripped,
            peak_kb,
            handle: Some(handle),
        }
    }

    fn tripped(&self) -> Option<String> {
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops watching; (peak VmRSS seen in kB, why it tripped if it did).
    fn finish(mut self) -> (u64, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (self.peak_kb.load(Ordering::SeqCst), self.tripped())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Garbage hammer
// ---------------------------------------------------------------------------------------------

fn nested(depth: usize) -> Vec<u8> {
    b"*1\r\n".repeat(depth)
}

/// One hostile payload: (name of the kind, bytes).
fn garbage(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    match rng.below(12) {
        0 | 1 => {
            let n = 1 + rng.below(2000);
            ("random bytes", rng.bytes(n))
        }
        2 | 3 => {
            // Random bytes over the RESP alphabet: reaches deeper parser states.
            const A: &[u8] = b"*$\r\n\r\n0123456789-+:_ \"'\\xabGETSPINGL\0";
            let n = 1 + rng.below(600);
            let v = (0..n).map(|_| *rng.pick(A)).collect();
            ("RESP-alphabet soup", v)
        }
        4 => {
            // A valid command cut at a random point.
            let key = format!("hostile:trunc:{}", rng.below(1000));
            let val = {
                let n = rng.below(3000);
                rng.bytes(n)
            };
            let full = encode_cmd(&[b"SET".as_slice(), key.as_bytes(), &val]);
            let cut = rng.below(full.len());
            ("truncated frame", full[..cut].to_vec())
        }
        5 => {
            let v: &[&[u8]] = &[
                b"*2147483647\r\n",
                b"*2147483648\r\n",
                b"*4294967296\r\n",
                b"*9223372036854775807\r\n",
                b"*99999999999999999999999999\r\n",
                b"*-7\r\n",
                b"$4294967296\r\n",
                b"*1\r\n$4294967296\r\n",
                b"*1\r\n$536870913\r\n",
                b"*1\r\n$-2\r\n",
                b"*1\r\n$9223372036854775808\r\n",
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc",
            ];
            let mut b = rng.pick(v).to_vec();
            if rng.below(2) == 0 {
                b.extend({
                    let n = rng.below(64);
                    rng.bytes(n)
                });
            }
            ("huge declared length", b)
        }
        6 => {
            let mut b = b"*1\r\n$536870912\r\n".to_vec();
            b.extend({
                let n = 1 + rng.below(4096);
                rng.bytes(n)
            });
            ("512 MB bulk, a few bytes, close", b)
        }
        7 => {
            let d = 1 + rng.below(20_000);
            ("nested arrays", nested(d))
        }
        8 => {
            let v: &[&[u8]] = &[
                b"\0",
                b"\0\0\0\0\0\0\0\0\r\n",
                b"PI\0NG\r\n",
                b"*1\r\n$4\r\nPI\0G\r\n",
                b"*\0\r\n",
                b"*1\r\n$\0\r\n",
                b"GET \0key\0\r\n",
            ];
            let mut b = rng.pick(v).to_vec();
            if rng.below(3) == 0 {
                b.extend(std::iter::repeat_n(0u8, rng.below(5000)));
            }
            ("NUL bytes", b)
        }
        9 => {
            let v: &[&[u8]] = &[b"a", b"1", b" ", b"\""];
            let unit = rng.pick(v);
            let mut b = match rng.below(3) {
                0 => Vec::new(),
                1 => b"*".to_vec(),
                _ => b"*1\r\n$".to_vec(),
            };
            b.extend(unit.repeat(60_000 + rng.below(20_000)));
            ("over-long line", b)
        }
        10 => {
            let v: &[&[u8]] = &[
                b"SET \"abc\r\n",
                b"SET 'abc\r\n",
                b"GET \"\\x4\"\r\n",
                b"\"\"\r\n",
                b"\r\n\r\n\r\n",
                b"*0\r\n*0\r\n",
                b"*1\r\n+PING\r\n",
                b"*1\r\n:1\r\n",
                b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
            ];
            ("odd framing", rng.pick(v).to_vec())
        }
        _ => {
            // Valid commands with garbage after them.
            let mut b = b"PING\r\n*1\r\n$4\r\nPING\r\n".to_vec();
            b.extend({
                let n = 1 + rng.below(300);
                rng.bytes(n)
            });
            ("valid then garbage", b)
        }
    }
}

#[derive(Default)]
struct HammerStats {
    conns: AtomicUsize,
    connect_failures: AtomicUsize,
    protocol_errors: AtomicUsize,
    other_replies: AtomicUsize,
    eof: AtomicUsize,
    reset: AtomicUsize,
    timeout: AtomicUsize,
    /// Connections we half-closed (FIN sent) that the proxy had not closed 1.5 s later.
    half_closed_left_open: AtomicUsize,
    bytes_sent: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// The last inputs sent, over all threads, with when (to name the culprit of a hang).
    recent: Mutex<std::collections::VecDeque<(Instant, String)>>,
}

impl HammerStats {
    fn recent_inputs(&self) -> String {
        let now = Instant::now();
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, d)| format!("{:>5} ms ago  {d}", now.duration_since(*t).as_millis()))
            .collect::<Vec<_>>()
            .join("\n  ")
    }
}

fn hammer_one(port: u16, tid: usize, rng: &mut Rng, st: &HammerStats) {
    let (kind, bytes) = garbage(rng);
    {
        let mut r = st.recent.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= 15 {
            r.pop_front();
        }
        r.push_back((
            Instant::now(),
            format!("[thread {tid}] {kind}: {}", esc(&bytes, 100)),
        ));
    }
    let mut s = match TcpStream::connect_timeout(&addr(port), Duration::from_secs(2)) {
        Ok(s) => s,
        Err(_) => {
            st.connect_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    st.conns.fetch_add(1, Ordering::Relaxed);
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let rst = rng.below(3) == 0;
    if rst {
        set_linger_zero(&s);
    }
    // Sometimes in small pieces, to cross the parser's partial-input paths.
    if rng.below(4) == 0 && bytes.len() > 1 {
        let mut pos = 0;
        while pos < bytes.len() {
            let n = (1 + rng.below(64)).min(bytes.len() - pos);
            if s.write_all(&bytes[pos..pos + n]).is_err() {
                break;
            }
            pos += n;
        }
    } else {
        let _ = s.write_all(&bytes);
    }
    st.bytes_sent
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let half_close = rng.below(5) != 0;
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let idle = if half_close {
        Duration::from_millis(1500)
    } else {
        Duration::from_millis(100)
    };
    let (buf, end) = read_until_end(&mut s, idle, Duration::from_secs(2), 1 << 20);
    match end {
        End::Eof => st.eof.fetch_add(1, Ordering::Relaxed),
        End::Reset => st.reset.fetch_add(1, Ordering::Relaxed),
        End::Timeout => st.timeout.fetch_add(1, Ordering::Relaxed),
    };
    let fail = |msg: String| {
        let mut f = st.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < 20 {
            f.push(format!(
                "{kind} ({} bytes, starts \"{}\"): {msg}",
                bytes.len(),
                esc(&bytes, 60)
            ));
        }
    };
    if half_close && end == End::Timeout {
        st.half_closed_left_open.fetch_add(1, Ordering::Relaxed);
        fail(format!(
            "still open 1.5 s after the client's FIN (got \"{}\")",
            esc(&buf, 100)
        ));
    }
    match parse_all(&buf) {
        Err(e) => fail(format!("the proxy sent bytes that are not RESP: {e}")),
        Ok((replies, rest)) => {
            if rest > 0 && end == End::Eof {
                fail(format!(
                    "clean EOF after an incomplete reply ({rest} bytes)"
                ));
            }
            for r in &replies {
                match r.error_text() {
                    Some(e) if e.starts_with("ERR Protocol error") => {
                        st.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        st.other_replies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // A protocol error must be the last thing on the connection.
            if let Some(i) = replies.iter().position(
                |r| matches!(r.error_text(), Some(e) if e.starts_with("ERR Protocol error")),
            ) {
                if i + 1 != replies.len() {
                    fail(format!(
                        "replies after a protocol error: {:?}",
                        &replies[i..]
                    ));
                }
            }
        }
    }
    drop(s);
}

/// A well-behaved client: SET/GET of its own keys with binary values it checks.
fn normal_client(
    port: u16,
    id: usize,
    stop: Arc<AtomicBool>,
    log: std::path::PathBuf,
) -> Result<(usize, Duration), String> {
    let mut c =
        RawClient::connect(port, Duration::from_secs(10)).map_err(|e| format!("connect: {e}"))?;
    c.log = Some(log);
    let mut rng = Rng::new(1000 + id as u64);
    let mut ops = 0;
    let mut worst = Duration::ZERO;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let t = Instant::now();
        if i % 10 == 0 {
            // A pipelined batch: 20 SETs then 20 GETs in one write.
            let mut batch = Vec::new();
            let mut want = Vec::new();
            for j in 0..20 {
                let key = format!("hostile:normal:{id}:p{j}");
                let val = {
                    let n = rng.below(2048);
                    rng.bytes(n)
                };
                batch.extend(encode_cmd(&[b"SET".as_slice(), key.as_bytes(), &val]));
                want.push((key, val));
            }
            for (k, _) in &want {
                batch.extend(encode_cmd(&[b"GET".as_slice(), k.as_bytes()]));
            }
            c.stream
                .write_all(&batch)
                .map_err(|e| format!("batch write: {e}"))?;
            for (k, _) in &want {
                match c.read_reply() {
                    Ok(Resp::Simple(s)) if s == "OK" => {}
                    other => return Err(format!("pipelined SET {k}: {other:?}")),
                }
            }
            for (k, v) in &want {
                match c.read_reply() {
                    Ok(Resp::Bulk(b)) if &b == v => {}
                    other => {
                        return Err(format!(
                            "pipelined GET {k}: want {} bytes, got {:?}",
                            v.len(),
                            other.map(|r| format!("{:?}", r).chars().take(200).collect::<String>())
                        ))
                    }
                }
            }
            ops += 40;
        } else {
            let key = format!("hostile:normal:{id}:{}", i % 64);
            let val = {
                let n = rng.below(4096);
                rng.bytes(n)
            };
            c.send_cmd(&[b"SET".as_slice(), key.as_bytes(), &val]);
            match c.read_reply() {
                Ok(Resp::Simple(s)) if s == "OK" => {}
                other => return Err(format!("SET {key}: {other:?}")),
            }
            c.send_cmd(&[b"GET".as_slice(), key.as_bytes()]);
            match c.read_reply() {
                Ok(Resp::Bulk(b)) if b == val => {}
                other => {
                    return Err(format!(
                        "GET {key}: want {} bytes, got {}",
                        val.len(),
                        format!("{other:?}").chars().take(200).collect::<String>()
                    ))
                }
            }
            ops += 2;
        }
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((ops, worst))
}

/// Sends `bytes` then a PING on one connection and wants the PONG as the last reply within
/// 2 s (plus a PONG on a fresh connection); on a hang it SIGKILLs the proxy (a runaway loop
/// may be eating memory) and fails, naming the input, the CPU state and the RSS growth.
fn must_stay_responsive(proxy: &Proxy, pid: u32, what: &str, bytes: &[u8]) -> Vec<Resp> {
    let rss0 = rss_kb(proxy, pid);
    let mut s = TcpStream::connect_timeout(&addr(proxy.port), Duration::from_secs(2))
        .unwrap_or_else(|e| proxy.fail(&format!("{what}: connect: {e}")));
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut input = bytes.to_vec();
    input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let _ = s.write_all(&input);
    let t = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let replies = loop {
        if let Ok((r, 0)) = parse_all(&buf) {
            if r.last() == Some(&Resp::Simple("PONG".into())) {
                break r;
            }
            if matches!(r.last().and_then(|x| x.error_text()), Some(e) if e.starts_with("ERR Protocol error"))
            {
                break r;
            }
        }
        if t.elapsed() > Duration::from_secs(2) {
            let rss1 = vm_kb(pid, "VmRSS").unwrap_or(0);
            let state = proc_state(pid);
            let fresh = ping_port(proxy.port, Duration::from_millis(500));
            sigkill(pid);
            proxy.fail(&format!(
                "{what}: after the {}-byte input \"{}\" (then a PING) the proxy sent \"{}\" and no PONG \
                 within 2 s; a fresh connection's PING {}; process state {state}, VmRSS {:.1} MB -> \
                 {:.1} MB in 2 s (proxy SIGKILLed by the test)",
                bytes.len(),
                esc(bytes, 80),
                esc(&buf, 200),
                if fresh { "was answered" } else { "was not answered either" },
                mb(rss0),
                mb(rss1)
            ));
        }
        match s.read(&mut chunk) {
            Ok(0) => break parse_all(&buf).map(|(r, _)| r).unwrap_or_default(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break parse_all(&buf).map(|(r, _)| r).unwrap_or_default(),
        }
    };
    if let Err(e) = parse_all(&buf) {
        proxy.fail(&format!("{what}: the reply is not RESP: {e}"));
    }
    if !ping_port(proxy.port, Duration::from_secs(2)) {
        proxy.fail(&format!(
            "{what}: a fresh connection's PING is not answered afterwards"
        ));
    }
    replies
}

/// Exact answers for the headline hostile frames, one connection each; NUL bytes and other
/// odd bytes in inline commands; a declared 512 MB bulk is not allocated up front.
#[test]
fn hostile_frames_get_exact_answers() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "log_level: info\n");
    let _g = serial();
    let t0 = Instant::now();
    let pid = proxy_pid(&proxy);

    // Inline commands with NUL bytes and other control bytes: whatever the answer (Redis
    // ends an inline argument list at a NUL), the proxy must answer and keep serving.
    let odd_inline: Vec<(&str, &[u8])> = vec![
        ("inline NUL alone", b"\0\r\n"),
        ("inline PING then NUL", b"PING\0\r\n"),
        ("inline NUL inside a word", b"PI\0NG\r\n"),
        ("inline NUL between arguments", b"GET \0key\r\n"),
        ("inline NUL after a space", b"ECHO a \0\r\n"),
        ("inline NUL inside double quotes", b"ECHO \"a\0b\"\r\n"),
        ("inline NUL inside single quotes", b"ECHO 'a\0b'\r\n"),
        ("inline vertical tab", b"\x0bPING\r\n"),
        ("inline form feed", b"\x0cPING\r\n"),
        ("inline only blanks", b" \t \r\n"),
        ("inline 0xff bytes", b"\xff\xfe\r\n"),
    ];
    for (what, bytes) in odd_inline {
        let r = must_stay_responsive(&proxy, pid, what, bytes);
        eprintln!("[hostile] {what} \"{}\": {:?}", esc(bytes, 40), r);
    }

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bulk length 512 MB + 1",
            b"*1\r\n$536870913\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            "bulk length 4 GiB",
            b"*1\r\n$4294967296\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            "multibulk count 2^31",
            b"*2147483648\r\n".to_vec(),
            "ERR Protocol error: invalid multibulk length",
        ),
        ("nested arrays", nested(10_000), "ERR Protocol error"),
        (
            "inline line over 64 KB",
            vec![b'a'; 70_000],
            "ERR Protocol error",
        ),
        (
            "header line over 64 KB",
            [b"*".as_slice(), &vec![b'1'; 70_000]].concat(),
            "ERR Protocol error",
        ),
        (
            "unbalanced quotes inline",
            b"SET \"abc\r\n".to_vec(),
            "ERR Protocol error",
        ),
    ];
    for (what, bytes, want) in cases {
        let mut c = proxy.raw_timeout(Duration::from_secs(5));
        c.label = what.into();
        // The proxy may close before reading everything: ignore write errors.
        let _ = c.stream.write_all(&bytes);
        match c.read_reply() {
            Ok(r) => match r.error_text() {
                Some(e) if e.starts_with(want) => {}
                _ => proxy.fail(&format!("{what}: want -{want}..., got {r:?}")),
            },
            Err(e) => proxy.fail(&format!("{what}: no reply: {}", resp::describe_end(&e))),
        }
        if let Err(e) = c.wait_eof() {
            proxy.fail(&format!("{what}: not closed after the protocol error: {e}"));
        }
    }

    // A declared 512 MB bulk (the maximum, valid) with some bytes sent: no reply yet, the
    // connection waits; 20 of them held at once must not make the proxy reserve the memory.
    let before = rss_kb(&proxy, pid);
    let vsz_before = vm_kb(pid, "VmSize").unwrap_or(0);
    let mut held = Vec::new();
    let mut sent = 0;
    for i in 0..20 {
        let mut c = proxy.raw_timeout(Duration::from_secs(2));
        c.send(b"*3\r\n$3\r\nSET\r\n$8\r\nbig:held\r\n$536870912\r\n");
        let body = vec![b'x'; 1000 + i * 10_000];
        c.send(&body);
        sent += body.len();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    for (i, c) in held.iter_mut().enumerate() {
        c.set_timeout(Duration::from_millis(20));
        match c.read_reply() {
            Err(ReadEnd::Timeout { pending }) if pending.is_empty() => {}
            Err(e) => proxy.fail(&format!(
                "held 512 MB bulk #{i}: want silence, got {}",
                resp::describe_end(&e)
            )),
            Ok(r) => proxy.fail(&format!("held 512 MB bulk #{i}: want silence, got {r:?}")),
        }
    }
    let during = rss_kb(&proxy, pid);
    let vsz_during = vm_kb(pid, "VmSize").unwrap_or(0);
    eprintln!(
        "[hostile] 20 connections each inside a declared 512 MB bulk ({:.1} MB sent in all): \
         VmRSS {:.1} -> {:.1} MB, VmSize {:.1} -> {:.1} MB",
        sent as f64 / 1048576.0,
        mb(before),
        mb(during),
        mb(vsz_before),
        mb(vsz_during)
    );
    assert!(
        during < before + 32 * 1024,
        "20 connections inside a declared 512 MB bulk grew the proxy's RSS from {before} to {during} kB"
    );
    drop(held);
    proxy.assert_running();
    assert!(
        ping_port(proxy.port, Duration::from_secs(2)),
        "PING at the end"
    );
    eprintln!("[hostile] hostile frames: test body {:?}", t0.elapsed());
}

#[test]
fn garbage_hammer_while_normal_clients_work() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "log_level: info\n");
    let _g = serial();
    let t0 = Instant::now();
    let pid = proxy_pid(&proxy);
    let port = proxy.port;

    // Warm up (the first requests open node connections and size buffers).
    {
        let mut c = proxy.raw();
        for i in 0..200 {
            let k = format!("hostile:warm:{i}");
            assert_eq!(c.cmd(&["SET", &k, "v"]), Resp::Simple("OK".into()));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kb(&proxy, pid);

    let abort = Arc::new(AtomicBool::new(false));
    let dog = Watchdog::start(pid, port, 512 * 1024, abort.clone());
    let normals: Vec<_> = (0..2)
        .map(|id| {
            let stop = abort.clone();
            let log = proxy.log.clone();
            std::thread::spawn(move || normal_client(port, id, stop, log))
        })
        .collect();

    const THREADS: usize = 3;
    let stats = Arc::new(HammerStats::default());
    let seed = seed_from_env(0x5EED_0001);
    eprintln!("[hostile] garbage hammer seed {seed} (HOSTILE_SEED to replay)");
    let hammer_for = Duration::from_secs(12);
    const PER_THREAD: usize = 2500;
    let hammers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stats, abort) = (stats.clone(), abort.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                let end = Instant::now() + hammer_for;
                for _ in 0..PER_THREAD {
                    if Instant::now() >= end || abort.load(Ordering::SeqCst) {
                        break;
                    }
                    hammer_one(port, t, &mut rng, &stats);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while hammers.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let in_flight = stats.recent_inputs();
    if let Some(why) = dog.tripped() {
        abort.store(true, Ordering::SeqCst);
        proxy.fail(&format!(
            "{why}\nthe last hostile inputs sent before (the culprit is among the earlier ones):\n  {in_flight}"
        ));
    }
    for h in hammers {
        h.join().expect("hammer thread panicked");
    }
    abort.store(true, Ordering::SeqCst);
    let mut normal_ops = 0;
    for (i, h) in normals.into_iter().enumerate() {
        match h.join() {
            Ok(Ok((ops, worst))) => {
                eprintln!(
                    "[hostile] normal client {i}: {ops} checked ops, slowest round {worst:?}"
                );
                normal_ops += ops;
            }
            Ok(Err(e)) => proxy.fail(&format!(
                "normal client {i}: {e}\n(watchdog: {:?}; the last hostile inputs:\n  {in_flight})",
                dog.tripped()
            )),
            Err(_) => proxy.fail(&format!("normal client {i} panicked")),
        }
    }
    let (peak, tripped) = dog.finish();
    if let Some(why) = tripped {
        proxy.fail(&format!("{why}\nthe last hostile inputs:\n  {in_flight}"));
    }

    let failures = stats.failures.lock().unwrap().clone();
    let conns = stats.conns.load(Ordering::Relaxed);
    eprintln!(
        "[hostile] hammer: {conns} connections ({} connect failures), {:.1} MB sent; \
         {} protocol errors, {} other replies; ends: {} EOF, {} reset, {} still open at timeout ({} of them half-closed by us)",
        stats.connect_failures.load(Ordering::Relaxed),
        stats.bytes_sent.load(Ordering::Relaxed) as f64 / 1048576.0,
        stats.protocol_errors.load(Ordering::Relaxed),
        stats.other_replies.load(Ordering::Relaxed),
        stats.eof.load(Ordering::Relaxed),
        stats.reset.load(Ordering::Relaxed),
        stats.timeout.load(Ordering::Relaxed),
        stats.half_closed_left_open.load(Ordering::Relaxed),
    );

    proxy.assert_running();
    let mut c = proxy.raw();
    assert_eq!(
        c.cmd(&["PING"]),
        Resp::Simple("PONG".into()),
        "PING after the hammer"
    );
    assert_eq!(
        c.cmd(&["SET", "hostile:after", "ok"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["GET", "hostile:after"]), Resp::Bulk(b"ok".to_vec()));
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kb(&proxy, pid);
    let hwm = vm_kb(pid, "VmHWM").unwrap_or(0);
    eprintln!(
        "[hostile] proxy VmRSS before {:.1} MB, peak sampled {:.1} MB, VmHWM {:.1} MB, after {:.1} MB; \
         test body {:?}",
        mb(rss_before),
        mb(peak),
        mb(hwm),
        mb(rss_after),
        t0.elapsed()
    );

    if !failures.is_empty() {
        proxy.fail(&format!(
            "hostile connections got wrong answers:\n{}",
            failures.join("\n")
        ));
    }
    assert!(
        stats.connect_failures.load(Ordering::Relaxed) == 0,
        "{} connects to the proxy failed during the hammer",
        stats.connect_failures.load(Ordering::Relaxed)
    );
    assert!(conns >= 1000, "only {conns} hostile connections were made");
    assert!(normal_ops > 0, "the normal clients did nothing");
    assert!(
        rss_after < 64 * 1024,
        "proxy RSS after the hammer is {:.1} MB (want < 64 MB; before: {:.1} MB)",
        mb(rss_after),
        mb(rss_before)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A client that pipelines big GETs and never reads
// ---------------------------------------------------------------------------------------------

/// A client doing SET/GET rounds on its own keys (checked) until `stop`; returns each
/// round's (start, end).
fn checking_client(
    port: u16,
    name: &'static str,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
    log: std::path::PathBuf,
) -> std::thread::JoinHandle<Result<Vec<(Instant, Instant)>, String>> {
    std::thread::spawn(move || {
        let mut c = RawClient::connect(port, Duration::from_secs(20))
            .map_err(|e| format!("{name}: connect: {e}"))?;
        c.log = Some(log);
        let mut rounds = Vec::new();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let t = Instant::now();
            let k = &keys[i % keys.len()];
            let v = format!("value-{i}");
            c.send_cmd(&["SET", k, &v]);
            match c.read_reply() {
                Ok(Resp::Simple(s)) if s == "OK" => {}
                r => return Err(format!("{name}: SET {k} after {:?}: {r:?}", t.elapsed())),
            }
            c.send_cmd(&["GET", k]);
            match c.read_reply() {
                Ok(Resp::Bulk(b)) if b == v.as_bytes() => {}
                r => return Err(format!("{name}: GET {k} after {:?}: {r:?}", t.elapsed())),
            }
            rounds.push((t, Instant::now()));
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(rounds)
    })
}

#[test]
fn non_reading_client_is_cut_at_the_output_limit() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "client_output_limit: 8mb\nlog_level: info\n");
    let _g = serial();
    let t0 = Instant::now();
    let pid = proxy_pid(&proxy);
    let port = proxy.port;

    let value: Vec<u8> = (0..100 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    {
        let mut c = proxy.raw();
        assert_eq!(
            c.cmd(&[b"SET".as_slice(), b"hostile:big", &value]),
            Resp::Simple("OK".into())
        );
        assert_eq!(c.cmd(&["GET", "hostile:big"]), Resp::Bulk(value.clone()));
    }
    // Two checking clients: one whose keys live on the big key's master (its requests share
    // the node connection with the flood's), one on another master.
    let big_master = cluster.slot_owner(key_slot(b"hostile:big"));
    let other_master = *cluster
        .masters()
        .iter()
        .find(|&&m| m != big_master)
        .expect("a second master");
    let same_keys: Vec<String> = (0..20)
        .map(|i| key_owned_by(&cluster, big_master, &format!("hostile:same{i}:")))
        .collect();
    let other_keys: Vec<String> = (0..20)
        .map(|i| key_owned_by(&cluster, other_master, &format!("hostile:other{i}:")))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kb(&proxy, pid);

    let stop = Arc::new(AtomicBool::new(false));
    let dog = Watchdog::start(pid, port, 512 * 1024, stop.clone());
    let same = checking_client(
        port,
        "client on the flooded node",
        same_keys,
        stop.clone(),
        proxy.log.clone(),
    );
    let other = checking_client(
        port,
        "client on another node",
        other_keys,
        stop.clone(),
        proxy.log.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));

    // The flood: 200,000 GETs of the 100 KB value in chunks of 1,000, never reading.
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
        .unwrap_or_else(|e| proxy.fail(&format!("connect: {e}")));
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let chunk: Vec<u8> = encode_cmd(&["GET", "hostile:big"]).repeat(1000);
    let mut sent_gets = 0usize;
    let mut stopped_by = String::from("all 200,000 GETs written");
    let flood_start = Instant::now();
    for _ in 0..200 {
        if flood_start.elapsed() > Duration::from_secs(30) || stop.load(Ordering::SeqCst) {
            stopped_by = "30 s flood deadline (or the watchdog)".into();
            break;
        }
        match s.write_all(&chunk) {
            Ok(()) => sent_gets += 1000,
            Err(e) if is_timeout(&e) => {
                stopped_by = "a write blocked for 2 s".into();
                break;
            }
            Err(e) => {
                stopped_by = format!("write failed: {e}");
                break;
            }
        }
    }
    let flood_written = flood_start.elapsed();

    // The proxy logs the disconnection.
    let warned = poll_until(Duration::from_secs(15), Duration::from_millis(20), || {
        (proxy.log_count("over client_output_limit") > 0).then(Instant::now)
    });
    let Some(cut_seen) = warned else {
        stop.store(true, Ordering::SeqCst);
        let (_, tripped) = dog.finish();
        proxy.fail(&format!(
            "no 'over client_output_limit' warning within 15 s after the flood \
             ({sent_gets} GETs sent, stopped by: {stopped_by}; watchdog: {tripped:?})"
        ));
    };
    let line = proxy
        .log_text()
        .lines()
        .find(|l| l.contains("over client_output_limit"))
        .unwrap_or_default()
        .to_string();

    // The flood socket: whatever is buffered, then EOF or a reset.
    let (buf, end) = read_until_end(
        &mut s,
        Duration::from_secs(5),
        Duration::from_secs(20),
        1 << 30,
    );
    let parsed = parse_all(&buf);
    drop(s);

    // Keep the checking clients going a while after the cut.
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::SeqCst);
    let (peak, tripped) = dog.finish();
    if let Some(why) = tripped {
        proxy.fail(&format!("during the flood: {why}"));
    }
    let mut summaries = Vec::new();
    let mut results = Vec::new();
    for (name, h) in [("same node", same), ("other node", other)] {
        let rounds = match h.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => proxy.fail(&format!("a checking client saw a wrong result: {e}")),
            Err(_) => proxy.fail("a checking client panicked"),
        };
        let worst = rounds
            .iter()
            .map(|(a, b)| b.duration_since(*a))
            .max()
            .unwrap_or_default();
        let during = rounds
            .iter()
            .filter(|(_, b)| *b >= flood_start && *b <= cut_seen)
            .count();
        let after = rounds.iter().filter(|(a, _)| *a > cut_seen).count();
        summaries.push(format!(
            "{name}: {} rounds, {during} completed between the flood's start and the cut, \
             {after} after, slowest SET+GET {worst:?}",
            rounds.len()
        ));
        results.push((name, during, after, worst));
    }
    let node_mem = {
        let info: String = cluster.query(big_master, &["INFO", "memory"]);
        let m = parse_info(&info);
        format!(
            "flooded node {big_master}: used_memory_peak {}, used_memory now {}",
            m.get("used_memory_peak_human")
                .map(|s| s.trim())
                .unwrap_or("?"),
            m.get("used_memory_human").map(|s| s.trim()).unwrap_or("?")
        )
    };
    summaries.push(node_mem);
    proxy.assert_running();
    let mut c = proxy.raw();
    assert_eq!(
        c.cmd(&["SET", "hostile:after2", "x"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["GET", "hostile:after2"]), Resp::Bulk(b"x".to_vec()));
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kb(&proxy, pid);
    let hwm = vm_kb(pid, "VmHWM").unwrap_or(0);
    eprintln!(
        "[hostile] flood: {sent_gets} GETs written in {flood_written:?} ({stopped_by}); cut seen \
         {:?} after the flood's start; log: {line}\n\
         [hostile] flood socket then gave {} bytes ({} complete replies) and ended with {end:?}\n\
         [hostile] {}\n\
         [hostile] proxy VmRSS before {:.1} MB, peak sampled {:.1} MB, VmHWM {:.1} MB, after {:.1} MB; \
         test body {:?}",
        cut_seen.duration_since(flood_start),
        buf.len(),
        parsed.as_ref().map(|(r, _)| r.len()).unwrap_or(0),
        summaries.join("\n[hostile] "),
        mb(rss_before),
        mb(peak),
        mb(hwm),
        mb(rss_after),
        t0.elapsed()
    );
    match parsed {
        Ok((replies, _)) => {
            if let Some(r) = replies.iter().find(|r| **r != Resp::Bulk(value.clone())) {
                proxy.fail(&format!(
                    "the flood socket got a reply other than the value: {}",
                    format!("{r:?}").chars().take(200).collect::<String>()
                ));
            }
        }
        Err(e) => proxy.fail(&format!(
            "the flood socket got bytes that are not RESP: {e}"
        )),
    }
    assert!(
        matches!(end, End::Eof | End::Reset),
        "the flood connection was not closed by the proxy (read ended with {end:?})"
    );
    for (name, _during, after, worst) in &results {
        assert!(
            *after > 0,
            "the {name} client completed nothing after the cut"
        );
        assert!(
            *worst < Duration::from_secs(8),
            "the {name} client waited {worst:?} for one SET+GET during the flood (bound 8 s)"
        );
    }
    assert!(
        hwm < 200 * 1024,
        "proxy peak RSS {:.1} MB during the flood (want < 200 MB)",
        mb(hwm)
    );
    assert!(
        rss_after < 200 * 1024,
        "proxy RSS {:.1} MB after the flood",
        mb(rss_after)
    );
}

// ---------------------------------------------------------------------------------------------
// 3. 10,000 idle connections, then one more
// ---------------------------------------------------------------------------------------------

#[test]
fn ten_thousand_idle_clients_then_max_clients() {
    const N: usize = 10_000;
    let limit = raise_nofile(N as u64 + 500);
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "max_clients: 10000\nlog_level: info\n");
    let _g = serial();
    let t0 = Instant::now();
    let pid = proxy_pid(&proxy);
    let port = proxy.port;
    let fit_line = proxy
        .log_text()
        .lines()
        .find(|l| l.contains("open files limit"))
        .unwrap_or("(no 'open files limit' line in the log)")
        .to_string();
    eprintln!("[hostile] test process RLIMIT_NOFILE {limit}; proxy: {fit_line}");

    {
        let mut c = proxy.raw();
        assert_eq!(
            c.cmd(&["SET", "hostile:idle", "1"]),
            Resp::Simple("OK".into())
        );
        assert_eq!(c.cmd(&["GET", "hostile:idle"]), Resp::Bulk(b"1".to_vec()));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kb(&proxy, pid);

    let open_start = Instant::now();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(N);
    for i in 0..N {
        if open_start.elapsed() > Duration::from_secs(90) {
            proxy.fail(&format!("only {i} connections opened in 90 s"));
        }
        match TcpStream::connect_timeout(&addr(port), Duration::from_secs(5)) {
            Ok(s) => conns.push(s),
            Err(e) => proxy.fail(&format!("connection #{i} failed: {e}")),
        }
    }
    let open_time = open_start.elapsed();

    let ping = |s: &mut TcpStream, what: &str, proxy: &Proxy| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        if let Err(e) = s.write_all(b"*1\r\n$4\r\nPING\r\n") {
            proxy.fail(&format!("{what}: PING write failed: {e}"));
        }
        let mut b = [0u8; 64];
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            match s.read(&mut b) {
                Ok(0) => proxy.fail(&format!("{what}: EOF instead of PONG (got {got:?})")),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) => proxy.fail(&format!(
                    "{what}: no PONG: {e} (got {:?})",
                    String::from_utf8_lossy(&got)
                )),
            }
        }
        if got != b"+PONG\r\n" {
            proxy.fail(&format!(
                "{what}: want +PONG, got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    };
    // The last one answering means every earlier one was accepted (the backlog is FIFO).
    ping(&mut conns[N - 1], "connection #9999", &proxy);
    std::thread::sleep(Duration::from_millis(500));
    let rss_with = rss_kb(&proxy, pid);

    // None of them was refused or closed: nothing to read on any.
    let mut unexpected = Vec::new();
    for (i, s) in conns.iter().enumerate().take(N - 1) {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match s.peek(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(n) => {
                if unexpected.len() < 5 {
                    unexpected.push(format!("#{i}: {:?}", String::from_utf8_lossy(&b[..n])))
                }
            }
            Err(e) => {
                if unexpected.len() < 5 {
                    unexpected.push(format!("#{i}: {e}"))
                }
            }
        }
        s.set_nonblocking(false).unwrap();
    }
    if !unexpected.is_empty() {
        proxy.fail(&format!(
            "idle connections were refused or closed: {}",
            unexpected.join("; ")
        ));
    }
    // The proxy's own count, via PROXY INFO on one of them.
    let info = {
        let s = &mut conns[0];
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&encode_cmd(&["PROXY", "INFO"])).unwrap();
        let (buf, _) = read_until_end(
            s,
            Duration::from_millis(500),
            Duration::from_secs(10),
            1 << 16,
        );
        parse_all(&buf)
            .ok()
            .and_then(|(r, _)| r.first().and_then(|r| r.text()))
            .unwrap_or_default()
    };
    let connected = parse_info(&info).get("connected_clients").cloned();
    eprintln!("[hostile] PROXY INFO connected_clients: {connected:?}");
    if let Some(n) = &connected {
        assert_eq!(
            n.trim(),
            N.to_string(),
            "connected_clients with {N} idle clients"
        );
    }

    // One more: refused with the Redis error, then closed.
    let mut extra = RawClient::connect(port, Duration::from_secs(5))
        .unwrap_or_else(|e| proxy.fail(&format!("connect #10001: {e}")));
    match extra.read_reply() {
        Ok(Resp::Error(e)) if e == "ERR max number of clients reached" => {}
        other => proxy.fail(&format!(
            "connection #10001: want -ERR max number of clients reached, got {}",
            match other {
                Ok(r) => format!("{r:?}"),
                Err(e) => resp::describe_end(&e),
            }
        )),
    }
    if let Err(e) = extra.wait_eof() {
        proxy.fail(&format!(
            "connection #10001 not closed after the refusal: {e}"
        ));
    }
    drop(extra);
    assert!(
        proxy.log_count("max_clients (10000) reached") >= 1,
        "no refusal warning logged"
    );

    // A sample of the idle ones still answers.
    for i in (0..N).step_by(500).chain([N - 1]) {
        ping(&mut conns[i], &format!("idle connection #{i}"), &proxy);
    }
    proxy.assert_running();

    let per_conn_kb = (rss_with as f64 - rss_before as f64) / N as f64;
    eprintln!(
        "[hostile] {N} idle clients opened in {open_time:?}: proxy VmRSS {:.1} MB -> {:.1} MB, \
         {per_conn_kb:.2} KB per connection",
        mb(rss_before),
        mb(rss_with)
    );
    assert!(
        per_conn_kb < 64.0,
        "{per_conn_kb:.1} KB of proxy RSS per idle connection (sanity bound 64 KB)"
    );

    // Close them all; the slots free up and a new client is served.
    drop(conns);
    let served = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let mut c = RawClient::connect(port, Duration::from_secs(2)).ok()?;
        c.send(b"*1\r\n$4\r\nPING\r\n");
        matches!(c.read_reply(), Ok(Resp::Simple(ref s)) if s == "PONG").then_some(())
    });
    if served.is_none() {
        proxy.fail("no new client served within 15 s after the 10,000 closed");
    }
    std::thread::sleep(Duration::from_millis(300));
    eprintln!(
        "[hostile] after closing them: VmRSS {:.1} MB; test body {:?}",
        mb(rss_kb(&proxy, pid)),
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. client_timeout: idle and slowloris clients closed, an active one kept
// ---------------------------------------------------------------------------------------------

#[test]
fn client_timeout_closes_idle_and_slowloris_but_not_active() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster, "client_timeout: 1s\n");
    let _g = serial();
    let t0 = Instant::now();
    let port = proxy.port;

    // Idle: connects, sends nothing.
    let idle = std::thread::spawn(move || -> Result<Duration, String> {
        let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let t = Instant::now();
        let (buf, end) =
            read_until_end(&mut s, Duration::from_secs(6), Duration::from_secs(6), 1024);
        match end {
            End::Eof | End::Reset if buf.is_empty() => Ok(t.elapsed()),
            _ => Err(format!(
                "ended with {end:?} after {:?}, data {buf:?}",
                t.elapsed()
            )),
        }
    });

    // Slowloris: one byte of a request every 300 ms, never completing it in time.
    let slow = std::thread::spawn(move || -> Result<(Duration, usize), String> {
        let req = encode_cmd(&["GET", "hostile:slowloris:a-key-long-enough-to-take-a-while"]);
        let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let t = Instant::now();
        for (i, b) in req.iter().enumerate() {
            if t.elapsed() > Duration::from_secs(8) {
                break;
            }
            if let Err(e) = s.write_all(&[*b]) {
                return if is_closed_err(&e) {
                    Ok((t.elapsed(), i))
                } else {
                    Err(format!("write: {e}"))
                };
            }
            // Wait 300 ms, watching for the close.
            let mut x = [0u8; 256];
            match s.read(&mut x) {
                Ok(0) => return Ok((t.elapsed(), i + 1)),
                Ok(n) => return Err(format!("unexpected data {:?}", &x[..n])),
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_closed_err(&e) => return Ok((t.elapsed(), i + 1)),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Err(format!(
            "still open after {:?} ({} of {} bytes trickled)",
            t.elapsed(),
            req.len(),
            req.len()
        ))
    });

    // Active: PING every 200 ms for 4 s.
    let active = std::thread::spawn(move || -> Result<usize, String> {
        let mut c = RawClient::connect(port, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(4) {
            c.send(b"*1\r\n$4\r\nPING\r\n");
            match c.read_reply() {
                Ok(Resp::Simple(s)) if s == "PONG" => n += 1,
                r => {
                    return Err(format!(
                        "PING #{n} at {:?}: {}",
                        t.elapsed(),
                        match r {
                            Ok(v) => format!("{v:?}"),
                            Err(e) => resp::describe_end(&e),
                        }
                    ))
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Still open after 4 s: one more round trip.
        c.send(b"*1\r\n$4\r\nPING\r\n");
        match c.read_reply() {
            Ok(Resp::Simple(s)) if s == "PONG" => Ok(n + 1),
            r => Err(format!("final PING: {r:?}")),
        }
    });

    let idle_r = idle.join().expect("idle thread panicked");
    let slow_r = slow.join().expect("slowloris thread panicked");
    let active_r = active.join().expect("active thread panicked");
    eprintln!(
        "[hostile] client_timeout 1s: idle {idle_r:?}, slowloris {slow_r:?}, active {active_r:?}; \
         test body {:?}",
        t0.elapsed()
    );
    proxy.assert_running();
    match idle_r {
        Ok(d) if d >= Duration::from_millis(900) && d <= Duration::from_secs(3) => {}
        Ok(d) => proxy.fail(&format!("idle client closed after {d:?} (want 1 s .. 3 s)")),
        Err(e) => proxy.fail(&format!("idle client: {e}")),
    }
    match slow_r {
        Ok((d, _)) if d >= Duration::from_millis(900) && d <= Duration::from_secs(3) => {}
        Ok((d, bytes)) => proxy.fail(&format!(
            "slowloris client closed after {d:?} and {bytes} bytes (want 1 s .. 3 s)"
        )),
        Err(e) => proxy.fail(&format!("slowloris client: {e}")),
    }
    match active_r {
        Ok(n) if n >= 10 => {}
        Ok(n) => proxy.fail(&format!("active client only got {n} PONGs in 4 s")),
        Err(e) => proxy.fail(&format!("active client was disturbed: {e}")),
    }
}

/// A client that pipelines small requests and never reads: once its replies back up
/// (client_output_limit / 8 unsent, or client_max_pending waiting) the proxy stops reading
/// it, so the rest of what it sends waits in its socket (its writes block) instead of
/// piling up in the proxy's memory. Other clients are served meanwhile.
#[test]
fn non_reading_client_with_small_replies_is_not_read_without_bound() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "client_output_limit: 8mb\n");
    let _g = serial();
    let pid = proxy_pid(&proxy);
    let rss_before = rss_kb(&proxy, pid);
    let mut s = TcpStream::connect_timeout(&addr(proxy.port), Duration::from_secs(5))
        .unwrap_or_else(|e| proxy.fail(&format!("connect: {e}")));
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = s.local_addr().unwrap().to_string();
    // About 370 KB per write; replies are 5 bytes ($-1).
    let chunk = encode_cmd(&["GET", "hostile:missing"]).repeat(10_000);
    let limit = 300usize << 20;
    let mut sent = 0usize;
    let mut blocked = false;
    let start = Instant::now();
    while sent < limit && start.elapsed() < Duration::from_secs(60) {
        match s.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(e) if is_timeout(&e) => {
                blocked = true;
                break;
            }
            Err(e) => proxy.fail(&format!("flood write failed after {sent} bytes: {e}")),
        }
    }
    assert!(
        blocked,
        "{} MB of requests written by a client that reads nothing, and the proxy kept \
         reading them",
        sent >> 20
    );
    let mut c = proxy.raw();
    let list = c.cmd(&["CLIENT", "LIST"]).text().unwrap_or_default();
    let line = list
        .lines()
        .find(|l| l.contains(&format!("addr={me} ")))
        .unwrap_or_else(|| {
            proxy.fail(&format!("flooding client {me} not in CLIENT LIST:\n{list}"))
        });
    let field = |name: &str| -> u64 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| proxy.fail(&format!("no {name}= in {line}")))
    };
    let (qbuf, omem) = (field("qbuf"), field("omem"));
    assert!(
        qbuf <= 1 << 20,
        "query buffer of the flooding client: {qbuf} bytes ({line})"
    );
    assert!(
        omem <= 2 << 20,
        "output of the flooding client: {omem} bytes ({line})"
    );
    assert_eq!(
        c.cmd(&["SET", "hostile:other", "1"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["GET", "hostile:other"]), Resp::Bulk(b"1".to_vec()));
    let rss_after = rss_kb(&proxy, pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "proxy RSS grew from {:.1} MB to {:.1} MB after {} MB of unread requests",
        mb(rss_before),
        mb(rss_after),
        sent >> 20
    );
}

/// More connections waiting in the listen backlog than the proxy accepts in one go: all of
/// them are accepted, without another connection arriving to wake the listener again (the
/// poll is edge-triggered). Made certain by stopping the proxy while they connect.
#[test]
fn a_full_backlog_is_accepted_to_the_end() {
    const N: usize = 1000;
    raise_nofile(N as u64 + 200);
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "socket:\n  backlog: 2048\n");
    let _g = serial();
    let pid = proxy_pid(&proxy);
    let signal = |sig: libc::c_int| {
        // SAFETY: kill(2) on the proxy's pid, which this test started through the harness.
        assert_eq!(
            unsafe { libc::kill(pid as libc::pid_t, sig) },
            0,
            "kill {sig}"
        );
    };
    signal(libc::SIGSTOP);
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        match TcpStream::connect_timeout(&addr(proxy.port), Duration::from_secs(5)) {
            Ok(s) => conns.push(s),
            Err(e) => {
                signal(libc::SIGCONT);
                proxy.fail(&format!("connection #{i} to the stopped proxy failed: {e}"));
            }
        }
    }
    let last = conns.last_mut().unwrap();
    last.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    signal(libc::SIGCONT);
    last.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while !got.ends_with(b"\r\n") {
        match last.read(&mut b) {
            Ok(0) => proxy.fail("the last connection was closed"),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => proxy.fail(&format!(
                "the last of {N} connections waiting in the backlog was never answered: {e}"
            )),
        }
    }
    assert_eq!(got, b"+PONG\r\n");
}
