//! Requests that become several: multi-key commands split by slot, keyless commands fanned
//! out to every master, and the merge of their parts' replies into the one reply a single
//! Redis server would give. Pure functions over bytes, testable without sockets.

use bytes::{Bytes, BytesMut};

use crate::command::Args;
use crate::resp::encode::{self};
use crate::slot::{key_slot, Slot};
use crate::topology::view::View;
use crate::topology::AddressMap;

/// How the parts' replies become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Integers added up (DEL, UNLINK, EXISTS, TOUCH, DBSIZE).
    Sum,
    /// Every part must succeed; the reply is the first part's (MSET's OK, FLUSHALL's OK,
    /// SCRIPT LOAD's digest).
    AllSame,
    /// As AllSame, but a failure names the node that failed and those that succeeded
    /// (`nodes[i]` sent part i): CONFIG SET. Failing everywhere alike gives the node's error.
    AllOkNamed { nodes: Vec<String> },
    /// The first success, else the first error (SCRIPT KILL: one master runs the script).
    AnyOk,
    /// SLOWLOG GET: every node's entries, newest first, at most `count` (-1: all), the
    /// client-address field replaced by the node's address (`nodes[i]` sent part i).
    Slowlog { count: i64, nodes: Vec<String> },
    /// MGET: `order[i]` is (part, index within that part's array) of the client's i-th key.
    Mget { order: Vec<(u32, u32)> },
    /// Arrays concatenated (KEYS).
    Concat,
    /// Arrays of 0/1 combined element-wise with AND (SCRIPT EXISTS: 1 only where every
    /// master has the script).
    And,
    /// One master's SCAN reply; its cursor is re-encoded as a proxy cursor.
    Scan { master: u32, masters: u32 },
    /// The first non-null reply, starting from a part chosen by the caller (RANDOMKEY).
    FirstNonNull { start: u32 },
    /// A node's CLUSTER NODES/SLOTS/SHARDS reply with its addresses made public.
    Rewrite { view: View, map: AddressMap },
    /// INFO from every master: the first master's sections, stats, commandstats and the
    /// keyspace summed over all, `server` and `clients` (when not empty) in place of the
    /// node's, and the proxy's own section (when not empty) appended; all already rendered.
    Info {
        proxy: String,
        server: String,
        clients: String,
    },
}

/// Part of a split request: its own frame, and the slot that routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub slot: Slot,
    pub frame: Bytes,
}

/// Makes the merge for a split command, given its arguments per key.
pub type MergeFor = fn(usize) -> Merge;

/// The multi-key commands the proxy splits by slot, and how many arguments one key
/// carries (MSET: key and value).
pub fn splittable(name: &str) -> Option<(usize, MergeFor)> {
    fn sum(_: usize) -> Merge {
        Merge::Sum
    }
    fn same(_: usize) -> Merge {
        Merge::AllSame
    }
    fn mget(_: usize) -> Merge {
        Merge::Mget { order: Vec::new() }
    }
    match name {
        "MGET" => Some((1, mget)),
        "DEL" | "UNLINK" | "EXISTS" | "TOUCH" => Some((1, sum)),
        "MSET" => Some((2, same)),
        _ => None,
    }
}

/// Groups a multi-key command's keys by slot, keeping the client's order within each group,
/// and builds one request per slot. `per_key` is 1 (DEL k1 k2) or 2 (MSET k1 v1 k2 v2).
/// For MGET the merge learns where each key's value will be found.
pub fn split<A: Args + ?Sized>(args: &A, per_key: usize, merge: Merge) -> (Vec<Part>, Merge) {
    let name = args.arg(0);
    let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
    // Slot -> group, so a command with a million keys is not quadratic.
    let mut index: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    let mut order = Vec::new();
    let mut i = 1;
    while i + per_key <= args.argc() {
        let slot = key_slot(args.arg(i));
        let g = *index.entry(slot.0).or_insert_with(|| {
            groups.push((slot, Vec::new()));
            groups.len() - 1
        });
        order.push((g as u32, groups[g].1.len() as u32));
        groups[g].1.push(i);
        i += per_key;
    }
    let parts = groups
        .into_iter()
        .map(|(slot, firsts)| {
            let mut out = BytesMut::new();
            encode::array_header(&mut out, 1 + firsts.len() * per_key);
            encode::bulk(&mut out, name);
            for f in firsts {
                for k in 0..per_key {
                    encode::bulk(&mut out, args.arg(f + k));
                }
            }
            Part {
                slot,
                frame: out.freeze(),
            }
        })
        .collect();
    let merge = match merge {
        Merge::Mget { .. } => Merge::Mget { order },
        m => m,
    };
    (parts, merge)
}

/// The proxy's SCAN cursor: the master's index in the low bits, that master's own cursor
/// above them. Cursor 0 starts at master 0; a master's cursor 0 moves on to the next one.
pub const SCAN_MASTER_BITS: u32 = 10;

pub fn decode_scan_cursor(c: u64) -> (u32, u64) {
    (
        (c & ((1 << SCAN_MASTER_BITS) - 1)) as u32,
        c >> SCAN_MASTER_BITS,
    )
}

pub fn encode_scan_cursor(master: u32, node_cursor: u64) -> Option<u64> {
    if node_cursor >> (64 - SCAN_MASTER_BITS) != 0 {
        return None;
    }
    Some((node_cursor << SCAN_MASTER_BITS) | master as u64)
}

pub use crate::route::merge::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode::Proto;
    use crate::route::merge::merge_info;

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn split_groups_by_slot_in_order() {
        // {a}x and {a}y share a slot; b is elsewhere.
        let a = args("MGET {a}x b {a}y");
        let (parts, m) = split(a.as_slice(), 1, Merge::Mget { order: vec![] });
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].slot, key_slot(b"a"));
        assert_eq!(
            &parts[0].frame[..],
            b"*3\r\n$4\r\nMGET\r\n$4\r\n{a}x\r\n$4\r\n{a}y\r\n"
        );
        assert_eq!(&parts[1].frame[..], b"*2\r\n$4\r\nMGET\r\n$1\r\nb\r\n");
        assert_eq!(
            m,
            Merge::Mget {
                order: vec![(0, 0), (1, 0), (0, 1)]
            }
        );
        let merged = merge(
            &m,
            &[b("*2\r\n$2\r\nax\r\n$-1\r\n"), b("*1\r\n$1\r\nB\r\n")],
            Proto::Resp2,
        );
        assert_eq!(&merged[..], b"*3\r\n$2\r\nax\r\n$1\r\nB\r\n$-1\r\n");
    }

    #[test]
    fn mset_pairs() {
        let a = args("MSET {a}x 1 b 2");
        let (parts, m) = split(a.as_slice(), 2, Merge::AllSame);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            &parts[1].frame[..],
            b"*3\r\n$4\r\nMSET\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            &merge(&m, &[b("+OK\r\n"), b("+OK\r\n")], Proto::Resp2)[..],
            b"+OK\r\n"
        );
    }

    #[test]
    fn merges() {
        assert_eq!(
            &merge(&Merge::Sum, &[b(":1\r\n"), b(":2\r\n")], Proto::Resp2)[..],
            b":3\r\n"
        );
        assert_eq!(
            &merge(&Merge::Sum, &[b(":1\r\n"), b("-ERR x\r\n")], Proto::Resp2)[..],
            b"-ERR x\r\n"
        );
        assert_eq!(
            &merge(
                &Merge::Concat,
                &[
                    b("*1\r\n$1\r\na\r\n"),
                    b("*0\r\n"),
                    b("*2\r\n$1\r\nb\r\n$1\r\nc\r\n")
                ],
                Proto::Resp2
            )[..],
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(
            &merge(
                &Merge::And,
                &[b("*2\r\n:1\r\n:1\r\n"), b("*2\r\n:1\r\n:0\r\n")],
                Proto::Resp2
            )[..],
            b"*2\r\n:1\r\n:0\r\n"
        );
        assert_eq!(
            &merge(
                &Merge::FirstNonNull { start: 0 },
                &[b("$-1\r\n"), b("$1\r\nk\r\n")],
                Proto::Resp2
            )[..],
            b"$1\r\nk\r\n"
        );
    }

    #[test]
    fn info_keyspace_summed() {
        let a = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=100\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=6,expires=0,avg_ttl=0\r\n";
        let out = merge_info(
            &[a.into(), b.into()],
            "# Proxy\r\nproxy_version:x\r\n",
            "",
            "",
        );
        assert!(out.contains("db0:keys=8,expires=1,avg_ttl=100"), "{out}");
        assert_eq!(out.matches("# Keyspace").count(), 1, "{out}");
        assert!(out.contains("redis_version:7.0.15") && out.ends_with("proxy_version:x\r\n"));
        let only = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
        let ks = merge_info(&[only.into(), "# Keyspace\r\n".into()], "", "", "");
        assert!(
            ks.starts_with("# Keyspace") && !ks.contains("Server") && ks.contains("keys=1,"),
            "{ks}"
        );
    }

    #[test]
    fn named_failures() {
        let nodes = vec!["a:1".to_string(), "b:2".to_string()];
        let m = Merge::AllOkNamed { nodes };
        assert_eq!(
            &merge(&m, &[b("+OK\r\n"), b("+OK\r\n")], Proto::Resp2)[..],
            b"+OK\r\n"
        );
        let same = b("-ERR Unknown option or number of arguments for CONFIG SET - 'x'\r\n");
        assert_eq!(merge(&m, &[same.clone(), same.clone()], Proto::Resp2), same);
        let mixed = merge(&m, &[b("+OK\r\n"), b("-ERR no\r\n")], Proto::Resp2);
        assert_eq!(
            &mixed[..],
            b"-ERR failed on node b:2: ERR no (already applied on: a:1)\r\n"
        );
        assert_eq!(
            &merge(
                &Merge::AnyOk,
                &[b("-NOTBUSY x\r\n"), b("+OK\r\n")],
                Proto::Resp2
            )[..],
            b"+OK\r\n"
        );
    }

    #[test]
    fn slowlog_newest_first_tagged() {
        let entry = |id: i64, ts: i64| {
            format!("*6\r\n:{id}\r\n:{ts}\r\n:5\r\n*1\r\n$3\r\nGET\r\n$14\r\n127.0.0.1:5000\r\n$0\r\n\r\n")
        };
        let a = b(&format!("*2\r\n{}{}", entry(2, 200), entry(1, 100)));
        let c = b(&format!("*1\r\n{}", entry(7, 150)));
        let nodes = vec!["n1:1".to_string(), "n2:2".to_string()];
        let out = merge(&Merge::Slowlog { count: 2, nodes }, &[a, c], Proto::Resp2);
        let s = String::from_utf8_lossy(&out);
        assert!(s.starts_with("*2\r\n*6\r\n:2\r\n:200"), "{s}");
        assert!(
            s.contains(":7\r\n:150") && s.contains("n2:2") && !s.contains(":100"),
            "{s}"
        );
    }

    #[test]
    fn info_stats_summed_server_replaced() {
        let a = "# Server\r\nredis_version:7.0.15\r\ntcp_port:7000\r\n\r\n# Clients\r\nconnected_clients:7\r\ncluster_connections:10\r\n\r\n# Stats\r\ntotal_commands_processed:10\r\ninstantaneous_input_kbps:0.50\r\n\r\n# Commandstats\r\ncmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\ntcp_port:7001\r\n\r\n# Stats\r\ntotal_commands_processed:5\r\ninstantaneous_input_kbps:0.25\r\n\r\n# Commandstats\r\ncmdstat_get:calls=2,usec=2,usec_per_call=1.00,rejected_calls=0,failed_calls=1\r\ncmdstat_set:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";
        let out = merge_info(
            &[a.into(), b.into()],
            "",
            "# Server\r\nredis_version:7.0.15\r\ntcp_port:6379\r\n",
            "# Clients\r\nconnected_clients:3\r\n",
        );
        assert!(out.contains("total_commands_processed:15"), "{out}");
        assert!(
            out.contains("# Clients\r\nconnected_clients:3\r\n\r\n")
                && !out.contains("cluster_connections"),
            "{out}"
        );
        assert!(out.contains("instantaneous_input_kbps:0.75"), "{out}");
        assert!(
            out.contains(
                "cmdstat_get:calls=4,usec=12,usec_per_call=3.00,rejected_calls=0,failed_calls=1"
            ),
            "{out}"
        );
        assert!(out.contains("cmdstat_set:calls=1"), "{out}");
        assert!(
            out.contains("tcp_port:6379") && !out.contains("tcp_port:7000"),
            "{out}"
        );
    }

    #[test]
    fn scan_cursor() {
        let m = Merge::Scan {
            master: 0,
            masters: 3,
        };
        let r = merge(&m, &[b("*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n")], Proto::Resp2);
        let next = encode_scan_cursor(1, 0).unwrap().to_string();
        assert_eq!(
            &r[..],
            format!("*2\r\n${}\r\n{next}\r\n*1\r\n$1\r\na\r\n", next.len()).as_bytes()
        );
        let last = Merge::Scan {
            master: 2,
            masters: 3,
        };
        let r = merge(&last, &[b("*2\r\n$1\r\n0\r\n*0\r\n")], Proto::Resp2);
        assert_eq!(&r[..], b"*2\r\n$1\r\n0\r\n*0\r\n");
        let mid = merge(&last, &[b("*2\r\n$2\r\n17\r\n*0\r\n")], Proto::Resp2);
        let c = encode_scan_cursor(2, 17).unwrap();
        assert_eq!(decode_scan_cursor(c), (2, 17));
        assert!(std::str::from_utf8(&mid).unwrap().contains(&c.to_string()));
        assert_eq!(encode_scan_cursor(0, u64::MAX), None);
    }
}
