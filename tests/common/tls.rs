//! TLS material for the tests: certificates made by openssl at test time, and a Redis
//! Cluster that speaks only TLS (`port 0`, `tls-port`, `tls-cluster yes`), driven with
//! redis-cli --tls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::cluster::ClusterPermit;
use super::process::{
    die_with_parent, free_port, redis_cli_bin, redis_server_bin, run_with_timeout, unique_temp_dir,
};
use super::resp::poll_until;

/// A CA, a certificate for 127.0.0.1 (`server.pem`/`server.key`) and a client certificate
/// (`client.pem`/`client.key`) signed by it, in a directory removed on drop.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "openssl {args:?} (scripts/install-deps.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn make_certs() -> Certs {
    let dir = unique_temp_dir("rcp-tls");
    let d = dir.as_path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rcp test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        let (key, csr, pem, extf) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        std::fs::write(d.join(&extf), ext).unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extf,
                "-out",
                &pem,
            ],
        );
    }
    Certs { dir }
}

/// redis-cli --tls against one node of a TLS cluster; its output, trimmed.
pub fn tls_cli(certs: &Certs, port: u16, args: &[&str]) -> String {
    let mut cmd = Command::new(redis_cli_bin());
    cmd.args(["--tls", "--cacert", &certs.path("ca.pem")])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Redis Cluster of masters that speak TLS only, on each node's `tls-port`.
pub struct TlsCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
    _permit: ClusterPermit,
}

impl TlsCluster {
    pub fn start(certs: &Certs, masters: usize) -> TlsCluster {
        let permit = ClusterPermit::acquire();
        let dir = unique_temp_dir("rcp-tls-cluster");
        let mut c = TlsCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
            _permit: permit,
        };
        for _ in 0..masters {
            c.spawn(certs);
        }
        let mut create = Command::new(redis_cli_bin());
        create.args([
            "--tls",
            "--cacert",
            &certs.path("ca.pem"),
            "--cluster",
            "create",
        ]);
        for p in &c.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        create.arg("--cluster-yes");
        let out = run_with_timeout(&mut create, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "redis-cli --tls --cluster create:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            c.ports
                .iter()
                .all(|&p| tls_cli(certs, p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "the TLS cluster never reported cluster_state:ok"
        );
        c
    }

    fn spawn(&mut self, certs: &Certs) {
        let port = free_port();
        let ndir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&ndir).unwrap();
        let mut cmd = Command::new(redis_server_bin());
        cmd.args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", &certs.path("server.pem")])
        .args(["--tls-key-file", &certs.path("server.key")])
        .args(["--tls-ca-cert-file", &certs.path("ca.pem")])
        .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
        .args(["--tls-auth-clients", "no"])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args([
            "--cluster-node-timeout",
            "2000",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ])
        .arg("--dir")
        .arg(&ndir)
        .current_dir(&ndir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("redis-server");
        self.children.push(child);
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            (tls_cli(certs, port, &["PING"]) == "PONG").then_some(())
        });
        assert!(
            up.is_some(),
            "redis-server with tls-port {port} did not answer (is it built with TLS?)"
        );
        self.ports.push(port);
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
