//! The metrics endpoint (`metrics_address`): Prometheus's text format on `GET /metrics`,
//! `GET /healthz` (200 while the process runs) and `GET /readyz` (200 once the first slot
//! map is loaded and until a stop begins; 503 otherwise), for a balancer's health check.
//!
//! It runs on a thread of its own with blocking sockets, one connection at a time (a
//! scrape is one small request every few seconds): nothing of it touches the reactors'
//! request path. It reads the process-wide figures the workers publish once per poll turn
//! (`Totals`), so one endpoint covers every worker. HTTP/1.1 with keep-alive; a request
//! is bounded (8 KB, 5 s); anything but GET of these paths gets 404, or 400 when it is not
//! HTTP at all, and the connection is closed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::totals::Totals;

/// The largest request head taken.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a connection may take to send a request (and how long it may stay idle).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn serve(listener: TcpListener, totals: Arc<Totals>, started: Instant) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = connection(stream, &totals, started) {
                    debug!("metrics: connection ended: {e}");
                }
            }
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn connection(mut s: TcpStream, totals: &Totals, started: Instant) -> std::io::Result<()> {
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let Some(head_len) = read_head(&mut s, &mut buf)? else {
            return Ok(()); // the client closed, or timed out idle
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, path, version) = (words.next(), words.next(), words.next());
        let close = head.to_ascii_lowercase().contains("\r\nconnection: close");
        let (status, body) = match (method, path, version) {
            (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/1.") => match (m, p) {
                ("GET", "/metrics") => ("200 OK", render(totals, started)),
                ("GET", "/healthz") => ("200 OK", "ok\n".to_string()),
                ("GET", "/readyz") if totals.ready() => ("200 OK", "ready\n".to_string()),
                ("GET", "/readyz") => ("503 Service Unavailable", "not ready\n".to_string()),
                _ => ("404 Not Found", "not found\n".to_string()),
            },
            _ => ("400 Bad Request", "bad request\n".to_string()),
        };
        let bad = status.starts_with("400");
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if bad || close { "Connection: close\r\n" } else { "" }
        );
        s.write_all(reply.as_bytes())?;
        if bad || close {
            return Ok(());
        }
    }
}

/// Reads up to the end of a request head (`\r\n\r\n`); None when the peer closed first.
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > MAX_REQUEST {
            // Too long for a request head: answered as a bad request.
            return Ok(Some(buf.len()));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
}

/// The text exposition format: each family with HELP and TYPE.
pub fn render(totals: &Totals, started: Instant) -> String {
    let sums = totals.published();
    let c = sums.counters;
    let (masters, nodes) = totals.cluster();
    let ready = if totals.ready() { 1 } else { 0 };
    let uptime = started.elapsed().as_secs();
    // (name, type, help, value): one table, so every family has its HELP and TYPE.
    let families: [(&str, &str, &str, u64); 25] = [
        ("up", "gauge", "1 while the proxy runs.", 1),
        (
            "ready",
            "gauge",
            "1 once the first slot map is loaded and until a stop begins.",
            ready,
        ),
        (
            "uptime_seconds",
            "gauge",
            "Seconds since the proxy started.",
            uptime,
        ),
        (
            "clients_connected",
            "gauge",
            "Clients connected now.",
            sums.connected as u64,
        ),
        (
            "clients_blocked",
            "gauge",
            "Clients waiting on a blocking command.",
            sums.blocked,
        ),
        (
            "clients_accepted_total",
            "counter",
            "Client connections accepted.",
            c.connections_received,
        ),
        (
            "clients_rejected_total",
            "counter",
            "Client connections refused (max_clients, protected mode).",
            c.rejected,
        ),
        (
            "commands_total",
            "counter",
            "Commands taken from clients.",
            c.commands,
        ),
        (
            "redirects_moved_total",
            "counter",
            "MOVED redirections followed.",
            c.moved,
        ),
        (
            "redirects_ask_total",
            "counter",
            "ASK redirections followed.",
            c.ask,
        ),
        (
            "retries_total",
            "counter",
            "Requests retried after TRYAGAIN or CLUSTERDOWN.",
            c.retries,
        ),
        (
            "node_connection_failures_total",
            "counter",
            "Node connections that failed or broke.",
            c.node_failures,
        ),
        (
            "topology_refreshes_total",
            "counter",
            "Topology refreshes that brought a slot map.",
            c.refreshes,
        ),
        (
            "auth_failures_total",
            "counter",
            "AUTH and HELLO AUTH refused.",
            c.auth_failures,
        ),
        (
            "acl_denied_total",
            "counter",
            "Requests refused by a user's ACL rules.",
            c.acl_denied,
        ),
        (
            "requests_held",
            "gauge",
            "Requests waiting for a node or a new master (failover_wait).",
            c.held.saturating_sub(c.unheld),
        ),
        (
            "requests_held_total",
            "counter",
            "Requests that waited for a node or a new master.",
            c.held,
        ),
        (
            "requests_held_expired_total",
            "counter",
            "Held requests failed when failover_wait ran out.",
            c.held_expired,
        ),
        (
            "requests_in_doubt_total",
            "counter",
            "Writes failed as possibly applied: their connection broke after they were sent.",
            c.in_doubt,
        ),
        (
            "slow_connections_retired_total",
            "counter",
            "Shared node connections other clients were moved off, behind a slow command.",
            c.slow_retired,
        ),
        (
            "cross_slot_computed_total",
            "counter",
            "Read-only commands over keys of several slots computed by the proxy (SUNION, ...).",
            c.cross_slot_computed,
        ),
        (
            "cross_slot_writes_total",
            "counter",
            "Writes over keys of several slots done by the proxy in stages (cross_slot_writes).",
            c.cross_slot_writes,
        ),
        (
            "cluster_masters",
            "gauge",
            "Masters owning slots, as the proxy sees the cluster.",
            masters as u64,
        ),
        (
            "cluster_nodes",
            "gauge",
            "Nodes known (masters and replicas).",
            nodes as u64,
        ),
        (
            "workers",
            "gauge",
            "Reactor threads.",
            totals.workers() as u64,
        ),
    ];
    let mut out = String::with_capacity(3072);
    for (name, kind, help, value) in families {
        let name = format!("redis_cluster_proxy_{name}");
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    let lat = totals.latency();
    use std::fmt::Write;
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = write!(
            out,
            "# HELP redis_cluster_proxy_{name} {help}\n# TYPE redis_cluster_proxy_{name} {kind}\n"
        );
    };
    family(
        "bytes_received_total",
        "counter",
        "Bytes read from clients (the RESP they sent).",
    );
    family(
        "bytes_sent_total",
        "counter",
        "Bytes written to clients (the RESP they received).",
    );
    let _ = writeln!(
        out,
        "redis_cluster_proxy_bytes_received_total {}",
        c.bytes_in
    );
    let _ = writeln!(out, "redis_cluster_proxy_bytes_sent_total {}", c.bytes_out);
    let _ = write!(
        out,
        "# HELP redis_cluster_proxy_requests_in_flight Requests written to nodes and not answered yet (published once a second).\n\
         # TYPE redis_cluster_proxy_requests_in_flight gauge\nredis_cluster_proxy_requests_in_flight {}\n\
         # HELP redis_cluster_proxy_slot_map_epoch The highest config epoch of the slot map in use.\n\
         # TYPE redis_cluster_proxy_slot_map_epoch gauge\nredis_cluster_proxy_slot_map_epoch {}\n",
        lat.inflight, lat.epoch
    );
    let _ = write!(
        out,
        "# HELP redis_cluster_proxy_node_connections Node connections by node, state and role.\n\
         # TYPE redis_cluster_proxy_node_connections gauge\n"
    );
    for (node, state, role, n) in &lat.conns {
        let _ = writeln!(
            out,
            "redis_cluster_proxy_node_connections{{node=\"{node}\",state=\"{state}\",role=\"{role}\"}} {n}"
        );
    }
    let _ = write!(
        out,
        "# HELP redis_cluster_proxy_command_calls_total Commands by name and outcome (error: the node answered an error).\n\
         # TYPE redis_cluster_proxy_command_calls_total counter\n"
    );
    for (name, calls, errs) in &lat.commands {
        let name = name.to_ascii_lowercase().replace('|', " ");
        let ok = calls.saturating_sub(*errs);
        let _ = writeln!(
            out,
            "redis_cluster_proxy_command_calls_total{{command=\"{name}\",outcome=\"ok\"}} {ok}\n\
             redis_cluster_proxy_command_calls_total{{command=\"{name}\",outcome=\"error\"}} {errs}"
        );
    }
    let _ = write!(
        out,
        "# HELP redis_cluster_proxy_errors_total Error replies by code, from the nodes or the proxy's own refusals.\n\
         # TYPE redis_cluster_proxy_errors_total counter\n"
    );
    for (source, code, n) in &lat.errors {
        let _ = writeln!(
            out,
            "redis_cluster_proxy_errors_total{{source=\"{source}\",kind=\"{code}\"}} {n}"
        );
    }
    let rows: Vec<(&str, crate::latency::Hist)> = crate::latency::FAMILIES
        .iter()
        .copied()
        .zip(lat.families)
        .collect();
    crate::latency::render(
        &mut out,
        "redis_cluster_proxy_command_duration_seconds",
        "Time from sending a client's request to a node to its reply, by command family (published by each worker once a second).",
        "family",
        &rows,
    );
    let rows: Vec<(&str, crate::latency::Hist)> =
        lat.nodes.iter().map(|(a, h)| (a.as_str(), *h)).collect();
    crate::latency::render(
        &mut out,
        "redis_cluster_proxy_node_duration_seconds",
        "Time from sending a client's request to a node to its reply, by node.",
        "node",
        &rows,
    );
    out
}
