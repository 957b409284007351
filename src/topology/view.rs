//! What clients see of the cluster: CLUSTER NODES/SLOTS/SHARDS replies from a node with
//! internal addresses rewritten to public ones (`passthrough`), or the proxy's own answer as
//! a one-node cluster owning every slot (`proxy`), so cluster-mode clients keep every
//! connection on the proxy.

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::split_host_port;
use crate::resp::encode::{self, Proto};
use crate::resp::reply::elements;
use crate::resp::value::{self, Value};
use crate::topology::AddressMap;

/// The CLUSTER subcommands that describe the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Nodes,
    Slots,
    Shards,
    Info,
    MyId,
    /// CLUSTER REPLICAS / SLAVES: NODES-format lines.
    Replicas,
}

/// A 40-hex-digit node id for the proxy, stable for a given announced address.
pub fn proxy_id(announce: &str) -> String {
    let mut out = String::with_capacity(40);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..3u64 {
        for &b in announce.as_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h ^= round;
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

/// The proxy's own answer in the `proxy` view.
pub fn proxy_answer(view: View, announce: &str, proto: Proto) -> Vec<u8> {
    let (host, port) = split_host_port(announce).unwrap_or(("127.0.0.1", 6379));
    let id = proxy_id(announce);
    let mut out = Vec::with_capacity(256);
    match view {
        View::Slots => {
            encode::array_header(&mut out, 1);
            encode::array_header(&mut out, 3);
            encode::integer(&mut out, 0);
            encode::integer(&mut out, 16383);
            encode::array_header(&mut out, 3);
            encode::bulk(&mut out, host.as_bytes());
            encode::integer(&mut out, port as i64);
            encode::bulk(&mut out, id.as_bytes());
        }
        View::Shards => {
            encode::array_header(&mut out, 1);
            encode::map_header(&mut out, 2, proto);
            encode::bulk(&mut out, b"slots");
            encode::array_header(&mut out, 2);
            encode::integer(&mut out, 0);
            encode::integer(&mut out, 16383);
            encode::bulk(&mut out, b"nodes");
            encode::array_header(&mut out, 1);
            encode::map_header(&mut out, 7, proto);
            for (k, v) in [("id", id.as_str()), ("ip", host), ("endpoint", host)] {
                encode::bulk(&mut out, k.as_bytes());
                encode::bulk(&mut out, v.as_bytes());
            }
            encode::bulk(&mut out, b"port");
            encode::integer(&mut out, port as i64);
            encode::bulk(&mut out, b"role");
            encode::bulk(&mut out, b"master");
            encode::bulk(&mut out, b"replication-offset");
            encode::integer(&mut out, 0);
            encode::bulk(&mut out, b"health");
            encode::bulk(&mut out, b"online");
        }
        View::Nodes => {
            let line = format!("{id} {host}:{port}@0 myself,master - 0 0 1 connected 0-16383\n");
            encode::text(&mut out, &line, proto);
        }
        View::Replicas => encode::array_header(&mut out, 0),
        View::Info => {
            let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n\
                        cluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n\
                        cluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n\
                        cluster_current_epoch:1\r\ncluster_my_epoch:1\r\n";
            encode::text(&mut out, info, proto);
        }
        View::MyId => encode::bulk(&mut out, id.as_bytes()),
    }
    out
}

/// Rewrites the internal addresses of a node's CLUSTER NODES/SLOTS/SHARDS/REPLICAS reply.
/// A reply that is not of the expected shape (an error, say) passes unchanged.
pub fn rewrite(view: View, frame: &Bytes, map: &AddressMap) -> Bytes {
    if map.is_empty() {
        return frame.clone();
    }
    let out = match view {
        View::Nodes => rewrite_text(frame, map),
        View::Replicas => rewrite_each(frame, |el| rewrite_text(el, map)),
        View::Slots => rewrite_each(frame, |range| rewrite_slot_range(range, map)),
        View::Shards => rewrite_each(frame, |shard| rewrite_shard(shard, map)),
        View::Info | View::MyId => None,
    };
    out.unwrap_or_else(|| frame.clone())
}

fn rewrite_text(frame: &[u8], map: &AddressMap) -> Option<Bytes> {
    let verbatim = frame.first() == Some(&b'=');
    let Ok(Value::Str(body)) = value::decode(frame) else {
        return None;
    };
    let body = String::from_utf8(body).ok()?;
    let (prefix, text_part) = if verbatim {
        body.split_at(4.min(body.len()))
    } else {
        ("", body.as_str())
    };
    let new = format!("{prefix}{}", map.rewrite_nodes_text(text_part));
    let mut out = BytesMut::new();
    out.put_u8(if verbatim { b'=' } else { b'$' });
    out.put_slice(format!("{}\r\n", new.len()).as_bytes());
    out.put_slice(new.as_bytes());
    out.put_slice(b"\r\n");
    Some(out.freeze())
}

/// Rebuilds an aggregate with each element passed through `f`.
fn rewrite_each(frame: &[u8], f: impl Fn(&[u8]) -> Option<Bytes>) -> Option<Bytes> {
    let (tag, els) = elements(frame)?;
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_slice(format!("{}\r\n", els.len()).as_bytes());
    for r in els {
        let el = &frame[r];
        match f(el) {
            Some(new) => out.put_slice(&new),
            None => out.put_slice(el),
        }
    }
    Some(out.freeze())
}

/// `[start, end, [ip, port, id, ...], ...]`: each node entry's ip and port.
fn rewrite_slot_range(range: &[u8], map: &AddressMap) -> Option<Bytes> {
    let (tag, els) = elements(range)?;
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_slice(format!("{}\r\n", els.len()).as_bytes());
    for (i, r) in els.into_iter().enumerate() {
        let el = &range[r];
        if i >= 2 {
            if let Some(new) = rewrite_node_entry(el, map) {
                out.put_slice(&new);
                continue;
            }
        }
        out.put_slice(el);
    }
    Some(out.freeze())
}

fn rewrite_node_entry(entry: &[u8], map: &AddressMap) -> Option<Bytes> {
    let (tag, els) = elements(entry)?;
    if els.len() < 2 {
        return None;
    }
    let ip = value::decode(&entry[els[0].clone()]).ok()?;
    let port = value::decode(&entry[els[1].clone()]).ok()?.as_int()?;
    let internal = format!("{}:{port}", ip.as_str()?);
    let public = map.public(&internal);
    if public == internal {
        return None;
    }
    let (host, port) = split_host_port(public)?;
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_slice(format!("{}\r\n", els.len()).as_bytes());
    encode::bulk(&mut out, host.as_bytes());
    encode::integer(&mut out, port as i64);
    for r in &els[2..] {
        out.put_slice(&entry[r.clone()]);
    }
    Some(out.freeze())
}

/// A shard is a map (a flat array in RESP2) with `nodes`: maps with ip, port, endpoint.
fn rewrite_shard(shard: &[u8], map: &AddressMap) -> Option<Bytes> {
    rewrite_pairs(shard, |key, val| {
        if key != b"nodes" {
            return None;
        }
        rewrite_each(val, |node| rewrite_shard_node(node, map))
    })
}

fn rewrite_shard_node(node: &[u8], map: &AddressMap) -> Option<Bytes> {
    let (_, els) = elements(node)?;
    let mut ip = None;
    let mut port = None;
    for pair in els.chunks(2) {
        let [k, v] = pair else { continue };
        match &node[k.clone()] {
            b"$2\r\nip\r\n" => {
                ip = value::decode(&node[v.clone()])
                    .ok()?
                    .as_str()
                    .map(String::from)
            }
            b"$4\r\nport\r\n" => port = value::decode(&node[v.clone()]).ok()?.as_int(),
            _ => {}
        }
    }
    let internal = format!("{}:{}", ip?, port?);
    let public = map.public(&internal).to_string();
    if public == internal {
        return None;
    }
    let (host, pport) = split_host_port(&public)?;
    rewrite_pairs(node, |key, _| {
        let mut out = BytesMut::new();
        match key {
            b"ip" | b"endpoint" | b"hostname" => encode::bulk(&mut out, host.as_bytes()),
            b"port" => encode::integer(&mut out, pport as i64),
            _ => return None,
        }
        Some(out.freeze())
    })
}

/// Rebuilds a map (or flat key-value array), replacing the values `f` returns for a key
/// (given as the key's text).
fn rewrite_pairs(frame: &[u8], f: impl Fn(&[u8], &[u8]) -> Option<Bytes>) -> Option<Bytes> {
    let (_, els) = elements(frame)?;
    let header_end = crate::resp::find_crlf(frame, 1)? + 2;
    let mut out = BytesMut::new();
    out.put_slice(&frame[..header_end]);
    for pair in els.chunks(2) {
        let [k, v] = pair else {
            return None;
        };
        let key_frame = &frame[k.clone()];
        out.put_slice(key_frame);
        let key = match value::decode(key_frame) {
            Ok(Value::Str(s)) => s,
            _ => Vec::new(),
        };
        match f(&key, &frame[v.clone()]) {
            Some(new) => out.put_slice(&new),
            None => out.put_slice(&frame[v.clone()]),
        }
    }
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map() -> AddressMap {
        let mut m = BTreeMap::new();
        m.insert("127.0.0.1:7000".to_string(), "10.1.2.3:6000".to_string());
        AddressMap::new(m)
    }

    #[test]
    fn slots_rewritten() {
        let f = Bytes::from_static(
            b"*1\r\n*4\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nix\r\n",
        );
        let out = rewrite(View::Slots, &f, &map());
        assert_eq!(
            &out[..],
            b"*1\r\n*4\r\n:0\r\n:16383\r\n*3\r\n$8\r\n10.1.2.3\r\n:6000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nix\r\n"
        );
    }

    #[test]
    fn nodes_rewritten() {
        let text = "abc 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383\n";
        let f = Bytes::from(format!("${}\r\n{text}\r\n", text.len()));
        let out = rewrite(View::Nodes, &f, &map());
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains("10.1.2.3:6000@17000"));
        let v = format!("={}\r\ntxt:{text}\r\n", text.len() + 4);
        let out = rewrite(View::Nodes, &Bytes::from(v), &map());
        let s = std::str::from_utf8(&out).unwrap();
        assert!(
            s.starts_with('=') && s.contains("txt:abc 10.1.2.3:6000@17000"),
            "{s}"
        );
    }

    #[test]
    fn shards_rewritten() {
        for proto in [Proto::Resp2, Proto::Resp3] {
            // The proxy's own shard answer has the same shape as a node's.
            let own = proxy_answer(View::Shards, "127.0.0.1:7000", proto);
            let out = rewrite(View::Shards, &Bytes::from(own), &map());
            let s = String::from_utf8_lossy(&out);
            assert!(s.contains("10.1.2.3") && s.contains(":6000"), "{s}");
            assert!(!s.contains("127.0.0.1"), "{s}");
            assert!(crate::resp::reply::ReplyParser::new().parse(&out).unwrap() == Some(out.len()));
        }
    }

    #[test]
    fn proxy_answers_parse() {
        for view in [
            View::Slots,
            View::Shards,
            View::Nodes,
            View::Info,
            View::MyId,
            View::Replicas,
        ] {
            for proto in [Proto::Resp2, Proto::Resp3] {
                let f = proxy_answer(view, "127.0.0.1:6379", proto);
                assert_eq!(
                    crate::resp::reply::ReplyParser::new().parse(&f).unwrap(),
                    Some(f.len()),
                    "{view:?}"
                );
            }
        }
        assert_eq!(proxy_id("a:1").len(), 40);
        assert_eq!(proxy_id("a:1"), proxy_id("a:1"));
    }
}
