//! The first view of the cluster, fetched before the reactor starts: ask each configured
//! node in turn for CLUSTER NODES until one answers. Blocking is fine here; nothing else is
//! running yet.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use crate::auth::NodeCredentials;
use crate::resp::reply::ReplyParser;
use crate::resp::value::{self, Value};
use crate::topology::{self, SlotRange};

pub struct Discovery {
    pub ranges: Vec<SlotRange>,
    /// The node that answered.
    pub from: String,
    /// The cluster's Redis version, from that node's INFO.
    pub version: String,
    /// That node's COMMAND reply, to learn the commands the built-in table lacks.
    pub commands: Value,
}

/// Tries every seed; the error names each one and why it did not do.
/// TLS towards the nodes: `backend_tls`'s configuration and the name to verify.
pub type NodeTls<'a> = Option<(&'a Arc<rustls::ClientConfig>, Option<&'a str>)>;

pub fn discover(
    seeds: &[String],
    timeout: Duration,
    creds: Option<&NodeCredentials>,
    tls: NodeTls<'_>,
) -> Result<Discovery, String> {
    let mut tried = Vec::new();
    for seed in seeds {
        match ask(seed, timeout, creds, tls) {
            Ok(d) => return Ok(d),
            Err(e) => tried.push(format!("{seed} ({e})")),
        }
    }
    Err(format!(
        "no Redis Cluster node answered; tried {}",
        tried.join(", ")
    ))
}

fn ask(
    seed: &str,
    timeout: Duration,
    creds: Option<&NodeCredentials>,
    tls: NodeTls<'_>,
) -> Result<Discovery, String> {
    let addr = topology::resolve(seed).ok_or("address does not resolve")?;
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    let io_timeout = Some(timeout.max(Duration::from_secs(2)));
    s.set_read_timeout(io_timeout).map_err(|e| e.to_string())?;
    s.set_write_timeout(io_timeout).map_err(|e| e.to_string())?;
    match tls {
        Some((config, name)) => {
            let host = addr.ip().to_string();
            let session = crate::conn::tls::client_session(config, name, &host)?;
            let stream = rustls::StreamOwned::new(session, s);
            ask_over(seed, stream, creds).map_err(|e| {
                let hint = if e.contains("CertificateRequired") {
                    " (the nodes want a client certificate: set backend_tls.cert_file and key_file, or tls-auth-clients no on the nodes)"
                } else {
                    ""
                };
                format!("over TLS: {e}{hint}")
            })
        }
        None => ask_over(seed, s, creds).map_err(|e| {
            // A TLS-only node drops a plain connection at its first bytes.
            if e.contains("reset by peer") || e.contains("connection closed") {
                format!("{e} (if the nodes speak TLS only, set backend_tls)")
            } else {
                e
            }
        }),
    }
}

fn ask_over<S: Read + Write>(
    seed: &str,
    mut s: S,
    creds: Option<&NodeCredentials>,
) -> Result<Discovery, String> {
    let mut buf = BytesMut::new();
    if let Some(c) = creds {
        s.write_all(&c.auth()).map_err(|e| e.to_string())?;
        if let Value::Error(e) = read_reply(&mut s, &mut buf)? {
            return Err(format!(
                "the node refused the proxy's credentials (backend_auth): {}",
                String::from_utf8_lossy(&e)
            ));
        }
    }
    s.write_all(
        b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n*1\r\n$7\r\nCOMMAND\r\n",
    )
    .map_err(|e| e.to_string())?;
    let slots = read_reply(&mut s, &mut buf)?;
    let info = read_reply(&mut s, &mut buf)?;
    // A node that cannot list its commands still routes with the built-in table.
    let commands = read_reply(&mut s, &mut buf).unwrap_or(Value::Nil);
    if let Value::Error(e) = &slots {
        let e = String::from_utf8_lossy(e);
        return Err(if e.contains("cluster support disabled") {
            "not in cluster mode (cluster-enabled no)".to_string()
        } else if e.starts_with("NOAUTH") {
            format!("{e} (the node needs a password: set backend_auth)")
        } else {
            e.into_owned()
        });
    }
    let text = match &slots {
        Value::Str(t) => String::from_utf8_lossy(t).into_owned(),
        _ => return Err("CLUSTER NODES reply is not text".into()),
    };
    let ranges = topology::parse_cluster_nodes(&text, seed)?;
    if ranges.is_empty() {
        return Err("the node knows no slot owners (cluster not created yet?)".into());
    }
    let version = info
        .as_str()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "7.0.0".to_string());
    Ok(Discovery {
        ranges,
        from: seed.to_string(),
        version,
        commands,
    })
}

fn read_reply<S: Read>(s: &mut S, buf: &mut BytesMut) -> Result<Value, String> {
    let mut parser = ReplyParser::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(n) = parser.parse(buf).map_err(|e| e.to_string())? {
            let frame = buf.split_to(n);
            return value::decode(&frame).map_err(|e| e.to_string());
        }
        if buf.len() > 64 * 1024 * 1024 {
            return Err("reply too large".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}
