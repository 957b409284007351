//! TLS for clients: `tls_port` beside `proxy_port`, with certificates made here by openssl
//! (a CA, the proxy's certificate for 127.0.0.1, a client certificate). redis-cli --tls,
//! redis-py ssl=True (RESP2 and RESP3), mTLS with and without a client certificate, plain
//! RESP sent to the TLS port and TLS sent to the plain port: only the offender is closed.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn tls_yaml(certs: &Certs, port: u16, mtls: bool) -> String {
    let mut y = format!(
        "tls_port: {port}\ntls:\n  cert_file: {}\n  key_file: {}\n",
        certs.path("server.pem"),
        certs.path("server.key")
    );
    if mtls {
        y += &format!("  ca_file: {}\n", certs.path("ca.pem"));
    }
    y
}

fn cli(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(redis_cli_bin());
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

#[test]
fn clients_reach_the_proxy_over_tls() {
    let certs = make_certs();
    let cluster = Cluster::start_masters(3);
    let tls_port = free_port();
    let mut proxy = Proxy::start(&cluster, &tls_yaml(&certs, tls_port, false));
    let ca = certs.path("ca.pem");

    // redis-cli --tls, keys on every master.
    for i in 0..10 {
        let k = format!("tls:{i}");
        let (ok, out) = cli(
            tls_port,
            &["--tls", "--cacert", &ca, "SET", &k, &i.to_string()],
        );
        assert!(ok && out == "OK", "redis-cli --tls SET: {out}");
    }
    let (_, out) = cli(
        tls_port,
        &["--tls", "--cacert", &ca, "MGET", "tls:1", "tls:2", "tls:9"],
    );
    assert_eq!(out, "1\n2\n9");
    // The plain port goes on as before.
    let (_, out) = cli(proxy.port, &["GET", "tls:3"]);
    assert_eq!(out, "3");

    // redis-py with ssl=True, RESP2 and RESP3.
    let script = format!(
        "import redis\nfor p in (2, 3):\n    r = redis.Redis(host='127.0.0.1', port={tls_port}, ssl=True, ssl_ca_certs='{ca}', protocol=p, decode_responses=True)\n    assert r.set('tls:py', p) and r.get('tls:py') == str(p), p\n    big = 'x' * 300000 + str(p)\n    assert r.set('tls:big', big) and r.get('tls:big') == big, 'a large value both ways: several TLS records, more than one write'\nprint('TLS PY OK')\n"
    );
    let mut py = Command::new("python3");
    py.args(["-c", &script]);
    let out = run_with_timeout(&mut py, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("TLS PY OK"),
        "redis-py over TLS (scripts/install-deps.sh):\n{text}"
    );

    // Plain RESP sent to the TLS port: that client is closed, nobody else is.
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        // A TLS alert, perhaps, then the end of the stream: never a RESP reply.
        let mut got = Vec::new();
        let end = raw.read_to_end(&mut got);
        let reset = matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(
            end.is_ok() || reset,
            "plain RESP on the TLS port must be closed: {end:?}"
        );
        assert!(!got.starts_with(b"+") && !got.starts_with(b"-"), "{got:?}");
    }
    // TLS sent to the plain port: a protocol error for that client only.
    let (ok, _) = cli(proxy.port, &["--tls", "--cacert", &ca, "PING"]);
    assert!(!ok, "TLS on the plain port cannot succeed");
    let (_, out) = cli(tls_port, &["--tls", "--cacert", &ca, "PING"]);
    assert_eq!(out, "PONG");
    proxy.assert_running();
}

#[test]
fn mutual_tls_wants_a_client_certificate_signed_by_the_ca() {
    let certs = make_certs();
    let cluster = Cluster::start_masters(3);
    let tls_port = free_port();
    let mut proxy = Proxy::start(&cluster, &tls_yaml(&certs, tls_port, true));
    let ca = certs.path("ca.pem");
    let (ok, out) = cli(tls_port, &["--tls", "--cacert", &ca, "PING"]);
    assert!(
        !ok || out != "PONG",
        "no client certificate must be refused: {out}"
    );
    let (ok, out) = cli(
        tls_port,
        &[
            "--tls",
            "--cacert",
            &ca,
            "--cert",
            &certs.path("client.pem"),
            "--key",
            &certs.path("client.key"),
            "PING",
        ],
    );
    assert!(ok && out == "PONG", "with the client certificate: {out}");
    proxy.assert_running();

    // A certificate file that is not there is a configuration error naming the key.
    let dir = unique_temp_dir("rcp-tls-check");
    let cfg = write_file(
        &dir,
        "config.yaml",
        format!(
            "redis_nodes: [\"127.0.0.1:1\"]\ntls_port: {}\ntls:\n  cert_file: {}/nope.pem\n  key_file: {}\n",
            free_port(),
            dir.display(),
            certs.path("server.key")
        )
        .as_bytes(),
    );
    let mut cmd = Command::new(proxy_bin());
    cmd.arg("--config").arg(&cfg).arg("--check");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("tls.cert_file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
