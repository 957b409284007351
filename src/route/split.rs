//! Requests that become several: multi-key commands split by slot, keyless commands fanned
//! out to every master (their merges are `merge.rs`'s), and SCAN's cursors. Pure functions
//! over bytes, testable without sockets.

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
    /// One master's SCAN reply; its cursor is re-encoded as a proxy cursor. A master that
    /// finished with fewer than `want` keys (COUNT) passes them on in `carried` (each a
    /// reply element, as the node sent it) and the call goes on to the next master, as
    /// one Redis would fill the page.
    Scan {
        master: u32,
        masters: u32,
        want: u32,
        carried: Vec<bytes::Bytes>,
    },
    /// A read across slots computed by the proxy from each key's value (ZUNION, PFCOUNT,
    /// LCS, XREAD...): `compute::finish` makes the answer, errors included.
    Compute(Box<crate::compute::Computed>),
    /// SUNION, SINTER, SDIFF over keys of several slots, computed by the proxy from each
    /// slot's part (that slot's keys under the same command; for SDIFF the first key's
    /// part is an SDIFF, the others SUNIONs of theirs, subtracted).
    Sets(SetOp),
    /// The smallest integer (WAIT), or each element's smallest (WAITAOF's pair).
    Min,
    /// The sum, plus a correction (SPUBLISH: the proxy's subscribers for its one fan-in
    /// subscription, `fanin/`).
    Offset(i64),
    /// PUBSUB SHARDNUMSUB from every master: each channel's counts summed over the parts,
    /// plus its correction (the proxy's subscribers for its one fan-in subscription).
    ShardNumsub(Vec<i64>),
    /// The first non-null reply, starting from a part chosen by the caller (RANDOMKEY).
    FirstNonNull { start: u32 },
    /// A node's CONFIG GET reply with the nodes' passwords (`requirepass`, `masterauth`)
    /// replaced by `(redacted)`: `backend_auth` stays between the proxy and the nodes.
    Redact,
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

pub use crate::compute::sets::SetOp;

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
    fn union(_: usize) -> Merge {
        Merge::Sets(SetOp::Union)
    }
    fn inter(_: usize) -> Merge {
        Merge::Sets(SetOp::Inter)
    }
    fn diff(_: usize) -> Merge {
        Merge::Sets(SetOp::Diff)
    }
    match name {
        "MGET" => Some((1, mget)),
        "SUNION" => Some((1, union)),
        "SINTER" => Some((1, inter)),
        "SDIFF" => Some((1, diff)),
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
    // SDIFF: the first key's slot computes its own difference; every other slot only the
    // union of its keys, which the merge subtracts.
    let diff = matches!(merge, Merge::Sets(SetOp::Diff));
    let parts = groups
        .into_iter()
        .enumerate()
        .map(|(g, (slot, firsts))| {
            let mut out = BytesMut::new();
            encode::array_header(&mut out, 1 + firsts.len() * per_key);
            encode::bulk(&mut out, if diff && g > 0 { b"SUNION" } else { name });
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
