//! The proxy binary under test (`Proxy`): its generated config, starting it in front of a
//! cluster (or given seeds) and waiting for PING, connections to it, its log, signals, and
//! teardown on Drop.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::conn::redis_conn;
use super::process::{die_with_parent, free_port, keep_tmp, unique_temp_dir, LOCALHOST};
use super::resp::{log_tail, poll_until, RawClient};

/// The proxy binary cargo built for this test run.
pub fn proxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_redis-cluster-proxy")
}

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
                answers(proxy.port, Duration::from_millis(500)).then_some(true)
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

/// Whether the proxy answers on its port: PONG, or NOAUTH where it requires a password.
fn answers(port: u16, timeout: Duration) -> bool {
    let Ok(mut c) = RawClient::connect(port, timeout) else {
        return false;
    };
    c.send_cmd(&["PING"]);
    match c.read_reply() {
        Ok(r) => {
            r.text().as_deref() == Some("PONG")
                || r.error_text().is_some_and(|e| e.starts_with("NOAUTH"))
        }
        Err(_) => false,
    }
}
