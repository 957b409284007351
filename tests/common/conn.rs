//! Connections to a node or the proxy for the harness and the tests: a redis-rs connection
//! with timeouts, a PING over a plain socket, INFO's `field:value` lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use super::process::LOCALHOST;
use super::resp::{RawClient, Resp};

/// A redis-rs connection to 127.0.0.1:port with connect/read/write timeouts.
pub fn redis_conn(port: u16, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{LOCALHOST}:{port}/"))?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// A redis-rs connection that authenticates with `password` when there is one.
pub fn node_conn(
    port: u16,
    timeout: Duration,
    password: Option<&str>,
) -> redis::RedisResult<redis::Connection> {
    let Some(password) = password else {
        return redis_conn(port, timeout);
    };
    let mut con = redis_conn(port, timeout)?;
    redis::cmd("AUTH").arg(password).query::<()>(&mut con)?;
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

/// Sends PING on an already-open connection to check it still works.
pub fn assert_pong(c: &mut redis::Connection) {
    let r: String = redis::cmd("PING").query(c).expect("PING");
    assert_eq!(r, "PONG");
}

/// Connects to `port` and returns true if the TCP connect is refused (nothing listening).
pub fn port_closed(port: u16) -> bool {
    TcpStream::connect((LOCALHOST, port)).is_err()
}
