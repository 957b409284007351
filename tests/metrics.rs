//! The metrics endpoint: /metrics in Prometheus's text format (checked with
//! prometheus_client's own parser), agreeing with INFO and moving as commands run;
//! /healthz and /readyz; a garbage request gets 400 and the endpoint goes on serving.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn scrape(addr: &str) -> HashMap<String, f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/scrape.py");
    let mut py = Command::new("python3");
    py.arg(script).arg(addr);
    let out = run_with_timeout(&mut py, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("SCRAPE OK"),
        "tests/py/scrape.py (needs prometheus-client: scripts/install-deps.sh):\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn http(addr: &str, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn metrics_are_scraped_and_agree_with_info() {
    let cluster = Cluster::start_masters(3);
    let addr = format!("127.0.0.1:{}", free_port());
    let proxy = Proxy::start(&cluster, &format!("metrics_address: \"{addr}\"\n"));
    let before = scrape(&addr);
    assert_eq!(before["redis_cluster_proxy_ready"], 1.0);
    assert_eq!(before["redis_cluster_proxy_cluster_masters"], 3.0);
    let mut c = proxy.raw();
    for i in 0..50 {
        assert_eq!(
            c.cmd(&["SET", &format!("m:{i}"), "v"]).text().as_deref(),
            Some("OK")
        );
    }
    let after = scrape(&addr);
    let commands = "redis_cluster_proxy_commands_total";
    assert!(
        after[commands] >= before[commands] + 50.0,
        "{} -> {}",
        before[commands],
        after[commands]
    );
    // As INFO counts them (INFO itself is one more command).
    let info = parse_info(&c.cmd(&["INFO", "proxy"]).text().unwrap_or_default());
    let info_commands: f64 = info["total_commands_processed"].parse().unwrap();
    let now = scrape(&addr);
    assert!(
        (now[commands] - info_commands).abs() <= 1.0,
        "metrics {} vs INFO {info_commands}",
        now[commands]
    );
    assert_eq!(
        now["redis_cluster_proxy_clients_connected"],
        info["connected_clients"].parse::<f64>().unwrap()
    );
    // Latency histograms (published once a second): the 50 SETs counted under "string",
    // and under each master's address; buckets cumulative (checked by scrape.py).
    let family = "redis_cluster_proxy_command_duration_seconds_count{family=\"string\"}";
    let seen = poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let m = scrape(&addr);
        (m.get(family).copied().unwrap_or(0.0) >= 50.0).then_some(m)
    });
    let m = seen.unwrap_or_else(|| panic!("no 50 string commands in {family}"));
    let per_node: f64 = cluster
        .masters()
        .iter()
        .map(|p| {
            let k = format!(
                "redis_cluster_proxy_node_duration_seconds_count{{node=\"127.0.0.1:{p}\"}}"
            );
            m.get(&k).copied().unwrap_or(0.0)
        })
        .sum();
    assert!(per_node >= 50.0, "per node: {per_node}");
    // An error from a node and a refusal of the proxy's, by command and by kind; bytes;
    // connections; the slot map's epoch.
    let r = c.cmd(&["INCR", "m:1"]);
    assert!(
        r.error_text().is_some_and(|e| e.starts_with("ERR")),
        "{r:?}"
    );
    let r = c.cmd(&["MSETNX", "m:1", "a", "m:2", "b"]);
    assert!(
        r.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{r:?}"
    );
    let node_err = "redis_cluster_proxy_errors_total{source=\"node\",kind=\"ERR\"}";
    let proxy_err = "redis_cluster_proxy_errors_total{source=\"proxy\",kind=\"CROSSSLOT\"}";
    let incr_err = "redis_cluster_proxy_command_calls_total{command=\"incr\",outcome=\"error\"}";
    // Refused by the proxy: an error outcome of its command too.
    let msetnx_err =
        "redis_cluster_proxy_command_calls_total{command=\"msetnx\",outcome=\"error\"}";
    let counted = poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let m = scrape(&addr);
        [node_err, proxy_err, incr_err, msetnx_err]
            .iter()
            .all(|k| m.get(*k).copied().unwrap_or(0.0) >= 1.0)
            .then_some(m)
    });
    let counted = counted.unwrap_or_else(|| panic!("errors by kind and command not counted"));
    let set_ok = "redis_cluster_proxy_command_calls_total{command=\"set\",outcome=\"ok\"}";
    assert!(counted[set_ok] >= 50.0, "{}", counted[set_ok]);
    assert!(counted["redis_cluster_proxy_bytes_received_total"] > 50.0 * 20.0);
    assert!(counted["redis_cluster_proxy_bytes_sent_total"] >= 50.0 * 5.0);
    let shared_ready: f64 = counted
        .iter()
        .filter(|(k, _)| {
            k.starts_with("redis_cluster_proxy_node_connections{")
                && k.contains("state=\"ready\"")
                && k.contains("role=\"shared\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(
        shared_ready >= 3.0,
        "a ready shared connection per master: {shared_ready}"
    );
    assert!(counted.contains_key("redis_cluster_proxy_slot_map_epoch"));
    assert!(counted.contains_key("redis_cluster_proxy_requests_in_flight"));
    let info = parse_info(&c.cmd(&["INFO", "proxy"]).text().unwrap_or_default());
    assert!(
        info["total_net_input_bytes"].parse::<f64>().unwrap()
            >= counted["redis_cluster_proxy_bytes_received_total"]
    );
    let le = "redis_cluster_proxy_command_duration_seconds_bucket{family=\"string\",le=\"+Inf\"}";
    assert_eq!(m.get(le), m.get(family), "the +Inf bucket is the count");

    // Health and readiness; a garbage request gets 400 and the endpoint keeps serving.
    assert!(http(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 200"));
    assert!(http(
        &addr,
        b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 200"));
    assert!(
        http(&addr, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 404")
    );
    assert!(http(&addr, b"\x16\x03\x01 garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(http(&addr, &vec![b'A'; 20_000]).starts_with("HTTP/1.1 400"));
    assert!(
        http(&addr, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 200")
    );
    // Keep-alive: two requests on one connection.
    let two = http(
        &addr,
        b"GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2, "{two}");
}
