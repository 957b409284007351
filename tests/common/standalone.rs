//! A standalone (non-cluster) redis-server, the reference a test compares the proxy's
//! replies with.

use super::cluster::Server;
use super::conn::ping_port;
use super::process::{free_port, redis_server_bin, unique_temp_dir, valkey_server_bin, LOCALHOST};
use super::resp::{poll_until, RawClient};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Standalone {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl Standalone {
    pub fn start() -> Standalone {
        Standalone::start_on(Server::Redis)
    }

    /// A standalone server of the same kind as the cluster it is compared with.
    pub fn start_on(server: Server) -> Standalone {
        let bin = match server {
            Server::Redis => redis_server_bin(),
            Server::Valkey => valkey_server_bin(),
        };
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let dir = unique_temp_dir("rcp-standalone");
            let mut cmd = Command::new(bin);
            cmd.args(["--port", &port.to_string(), "--bind", LOCALHOST])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn standalone redis-server");
            let mut s = Standalone {
                port,
                child: Some(child),
                dir,
            };
            let up = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
                if let Ok(Some(st)) = s.child.as_mut().unwrap().try_wait() {
                    return Some(Err(format!("exited with {st}")));
                }
                ping_port(port, Duration::from_millis(500)).then_some(Ok(()))
            });
            match up {
                Some(Ok(())) => return s,
                other => last = format!("standalone redis-server on {port}: {other:?}"),
            }
        }
        panic!("{last}");
    }

    pub fn raw(&self) -> RawClient {
        let mut c = RawClient::connect(self.port, Duration::from_secs(30)).unwrap();
        c.label = format!("standalone 127.0.0.1:{}", self.port);
        c
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
