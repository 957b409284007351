//! Multi-key reads whose keys span slots, which no single node can answer: the proxy reads
//! each key from its owner (one pipelined round, the reads of one node sharing its
//! connection) and computes what one Redis would answer, with the same ordering rules,
//! errors and reply shapes in RESP2 and RESP3. The keys are read at slightly different
//! instants, not atomically; docs/commands.md says so.
//!
//! `plan` decides at routing time (options parsed, refusals in Redis's words), `parts`
//! builds the reads, `finish` turns their replies into the client's answer.

pub mod double;
pub mod hll;
pub mod lcs;
pub mod sets;
pub mod write;
pub mod zset;

pub use write::Request;

use crate::resp::reply::bulk;
use bytes::{Bytes, BytesMut};

use crate::command::Args;
use crate::error::ProxyError;
use crate::resp::encode::{self, Proto};
use crate::resp::reply::elements;
use crate::resp::value::{decode, Value};
use crate::slot::key_slot;
use double::DoubleStyle;
use sets::SetOp;

/// The largest LCS table the proxy builds (4 bytes per cell): two strings of about 4 KB.
/// Redis's own bound is proto-max-bulk-len (512 MB), too much for a proxy of a few MB that
/// serves every other client from the same thread.
pub const LCS_MAX_TABLE: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// ZUNION, ZINTER, ZDIFF, ZINTERCARD: each key read both as a sorted set and as a set
    /// (a set's members count with score 1), so one round learns its type and value.
    Zset(zset::ZsetOp),
    /// SINTERCARD: one SINTER per slot, intersected and counted up to the limit.
    SInterCard { numkeys: usize, limit: u64 },
    /// PFCOUNT of several keys: each key's raw value (GET), registers merged.
    PfCount,
    /// LCS: both strings (GET); the options are parsed after the types are checked, as
    /// Redis does.
    Lcs { options: Vec<Vec<u8>> },
    /// XREAD without BLOCK: one XREAD per stream, the replies joined in the keys' order.
    Xread { streams: usize },
    /// A write across slots, in stages (`cross_slot_writes`).
    Write(Box<write::Write>),
}

/// A computed command: what to do, and how the nodes write doubles (for scores).
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub op: Op,
    pub style: DoubleStyle,
}

// Weights are never NaN (refused when parsed), so equality is an equivalence.
impl Eq for Computed {}

impl Computed {
    /// A write: allowed by `cross_slot_writes`, and run in stages.
    pub fn is_write(&self) -> bool {
        matches!(self.op, Op::Write(_))
    }
}

/// Whether the command's keys in several slots can be computed, and its plan; Err: the
/// refusal Redis would give before reading any key.
pub fn plan<A: Args + ?Sized>(name: &str, args: &A) -> Option<Result<Computed, ProxyError>> {
    let all: Vec<&[u8]> = (0..args.argc()).map(|i| args.arg(i)).collect();
    let op = match name {
        "ZUNION" | "ZINTER" | "ZDIFF" | "ZINTERCARD" => {
            let kind = match name {
                "ZUNION" => zset::Kind::Union,
                "ZINTER" => zset::Kind::Inter,
                "ZDIFF" => zset::Kind::Diff,
                _ => zset::Kind::InterCard,
            };
            zset::parse(kind, &all, false).map(Op::Zset)
        }
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            let kind = match name {
                "ZUNIONSTORE" => zset::Kind::Union,
                "ZINTERSTORE" => zset::Kind::Inter,
                _ => zset::Kind::Diff,
            };
            // Parsed as ZUNION with the destination in the name's place.
            zset::parse(kind, &all[1..], true).map(|z| {
                let srcs = all[3..3 + z.numkeys].iter().map(|k| k.to_vec()).collect();
                write_op(name, write::Kind::ZStore(z), all[1], srcs, Vec::new())
            })
        }
        "SUNIONSTORE" | "SINTERSTORE" | "SDIFFSTORE" => {
            let op = match name {
                "SUNIONSTORE" => SetOp::Union,
                "SINTERSTORE" => SetOp::Inter,
                _ => SetOp::Diff,
            };
            let srcs = all[2..].iter().map(|k| k.to_vec()).collect();
            Ok(write_op(
                name,
                write::Kind::SetStore { op },
                all[1],
                srcs,
                Vec::new(),
            ))
        }
        "RENAME" | "RENAMENX" => Ok(write_op(
            name,
            write::Kind::Move {
                rename: true,
                replace: name == "RENAME",
            },
            all[2],
            vec![all[1].to_vec()],
            Vec::new(),
        )),
        "COPY" => copy(&all),
        "SMOVE" => Ok(write_op(
            name,
            write::Kind::SMove,
            all[2],
            vec![all[1].to_vec()],
            vec![all[3].to_vec()],
        )),
        "LMOVE" | "RPOPLPUSH" => lmove(name, &all),
        "PFMERGE" => Ok(write_op(
            name,
            write::Kind::PfMerge,
            all[1],
            all[2..].iter().map(|k| k.to_vec()).collect(),
            Vec::new(),
        )),
        "BITOP" => bitop(&all),
        "LMPOP" | "ZMPOP" => mpop(name, &all),
        "ZRANGESTORE" => {
            // WITHSCORES is ZRANGE's, not ZRANGESTORE's: refused as Redis refuses it.
            if all[3..]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(b"WITHSCORES"))
            {
                Err("ERR syntax error".to_string())
            } else {
                let bylex = all[3..].iter().any(|a| a.eq_ignore_ascii_case(b"BYLEX"));
                Ok(write_op(
                    name,
                    write::Kind::ZRangeStore { bylex },
                    all[1],
                    vec![all[2].to_vec()],
                    all[3..].iter().map(|a| a.to_vec()).collect(),
                ))
            }
        }
        "MSETNX" => Ok(write_op(
            name,
            write::Kind::MSetNx {
                pairs: (all.len() - 1) / 2,
            },
            all[1],
            Vec::new(),
            all[1..].iter().map(|a| a.to_vec()).collect(),
        )),
        "SINTERCARD" => sintercard(&all),
        "PFCOUNT" => Ok(Op::PfCount),
        "LCS" => Ok(Op::Lcs {
            options: all.iter().skip(3).map(|a| a.to_vec()).collect(),
        }),
        "XREAD" => xread(&all),
        _ => return None,
    };
    Some(
        op.map(|op| Computed {
            op,
            style: DoubleStyle::G17,
        })
        .map_err(ProxyError::Redis),
    )
}

fn write_op(
    name: &str,
    kind: write::Kind,
    dst: &[u8],
    srcs: Vec<Vec<u8>>,
    extra: Vec<Vec<u8>>,
) -> Op {
    Op::Write(Box::new(write::Write {
        kind,
        name: name.to_string(),
        dst: dst.to_vec(),
        srcs,
        extra,
        stage: 0,
        carry: None,
        count: 0,
    }))
}

/// COPY source destination [DB 0] [REPLACE]: a cluster has database 0 only.
fn copy(all: &[&[u8]]) -> Result<Op, String> {
    let mut replace = false;
    let mut i = 3;
    while i < all.len() {
        if all[i].eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
            i += 1;
        } else if all[i].eq_ignore_ascii_case(b"DB") && i + 1 < all.len() {
            match int(all[i + 1]) {
                Some(0) => {}
                Some(_) => {
                    return Err(
                        "ERR Copying to another database is not allowed in cluster mode".into(),
                    )
                }
                None => return Err("ERR value is not an integer or out of range".into()),
            }
            i += 2;
        } else {
            return Err("ERR syntax error".into());
        }
    }
    Ok(write_op(
        "COPY",
        write::Kind::Move {
            rename: false,
            replace,
        },
        all[2],
        vec![all[1].to_vec()],
        Vec::new(),
    ))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, and RPOPLPUSH (RIGHT, LEFT).
fn lmove(name: &str, all: &[&[u8]]) -> Result<Op, String> {
    let side = |a: &[u8]| {
        if a.eq_ignore_ascii_case(b"LEFT") {
            Ok(true)
        } else if a.eq_ignore_ascii_case(b"RIGHT") {
            Ok(false)
        } else {
            Err("ERR syntax error".to_string())
        }
    };
    let (from_left, to_left) = if name == "RPOPLPUSH" {
        (false, true)
    } else {
        (side(all[3])?, side(all[4])?)
    };
    Ok(write_op(
        name,
        write::Kind::LMove { from_left, to_left },
        all[2],
        vec![all[1].to_vec()],
        Vec::new(),
    ))
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT n], ZMPOP numkeys key... MIN|MAX [COUNT n].
fn mpop(name: &str, all: &[&[u8]]) -> Result<Op, String> {
    let numkeys = match all.get(1).and_then(|a| int(a)) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    let zset = name == "ZMPOP";
    let rest = all.get(2 + numkeys..).unwrap_or_default();
    let (ends, count_ok) = match rest {
        [end] => (*end, true),
        [end, c, n] if c.eq_ignore_ascii_case(b"COUNT") => {
            if int(n).is_none_or(|n| n <= 0) {
                return Err("ERR count should be greater than 0".into());
            }
            (*end, true)
        }
        _ => (&b""[..], false),
    };
    let (a, b): (&[u8], &[u8]) = if zset {
        (b"MIN", b"MAX")
    } else {
        (b"LEFT", b"RIGHT")
    };
    if !count_ok || !(ends.eq_ignore_ascii_case(a) || ends.eq_ignore_ascii_case(b)) {
        return Err("ERR syntax error".into());
    }
    Ok(write_op(
        name,
        write::Kind::MPop { zset },
        all[2],
        all[2..2 + numkeys].iter().map(|k| k.to_vec()).collect(),
        rest.iter().map(|a| a.to_vec()).collect(),
    ))
}

/// How each command with keys in several slots is served, for docs/commands.md (its test
/// renders this table, and checks each row's example is routed as the row says).
pub const ACROSS_SLOTS: &[(&str, &str, &str)] = &[
    ("MGET", "split", "one MGET per slot; the values in the client's key order"),
    ("MSET", "split", "one MSET per slot; OK once every part is OK (not atomic across slots)"),
    ("DEL, UNLINK, EXISTS, TOUCH", "split", "one per slot; the counts summed"),
    ("SUNION, SINTER, SDIFF", "computed", "each slot's keys under one command (for SDIFF, SUNION for the slots after the first key's), the members combined by the proxy"),
    ("SINTERCARD", "computed", "one SINTER per slot, intersected and counted up to LIMIT"),
    ("ZUNION, ZINTER, ZDIFF, ZINTERCARD", "computed", "each key read whole (ZRANGE WITHSCORES, and SMEMBERS for a set), WEIGHTS, AGGREGATE, WITHSCORES and LIMIT applied as Redis applies them; scores written as the nodes' version writes them"),
    ("PFCOUNT", "computed", "each key's HyperLogLog read (GET), the registers merged and counted with Redis's estimator"),
    ("LCS", "computed", "both strings read (GET), the LCS computed as Redis computes it; the proxy builds tables up to 64 MiB (two strings of about 4 KB), larger ones get Redis's proto-max-bulk-len error"),
    ("XREAD without BLOCK", "computed", "one XREAD per stream, the replies joined in the keys' order"),
    ("SUNIONSTORE, SINTERSTORE, SDIFFSTORE", "write", "computed as SUNION..., then the destination replaced in one MULTI/DEL/SADD/EXEC on its node"),
    ("ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE", "write", "computed as ZUNION..., then the destination replaced in one MULTI/DEL/ZADD/EXEC (scores with 17 digits, read back exactly)"),
    ("RENAME, RENAMENX, COPY", "write", "DUMP and PTTL of the source, RESTORE on the destination's node with the TTL kept (REPLACE for RENAME and COPY ... REPLACE), then for a rename the source deleted; a failed delete leaves both and says so"),
    ("SMOVE", "write", "the member checked, added to the destination, then removed from the source"),
    ("LMOVE, RPOPLPUSH", "write", "the end element read, pushed to the destination, then that element removed from the source's same end (LREM), never another one"),
    ("PFMERGE", "write", "the destination's and the sources' registers merged, written with SET ... KEEPTTL (dense encoding)"),
    ("BITOP", "write", "the sources read, the result written with SET (an empty result deletes the destination)"),
    ("MSETNX", "write", "EXISTS on every key, then one MSET per slot only if none existed: two clients racing can both see the keys absent"),
    ("LMPOP, ZMPOP", "write", "each key's length in key order, then the pop on the first non-empty key's node"),
    ("ZRANGESTORE", "write", "the range read with its scores (BYLEX: the members, then ZMSCORE), then the destination replaced as for ZUNIONSTORE"),
    ("BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, BRPOPLPUSH, XREAD BLOCK", "refused", "CROSSSLOT, saying why: waiting on several nodes at once could pop an element on a node whose result then has nowhere to go"),
    ("others (EVAL, FCALL, XREADGROUP, GEOSEARCHSTORE, GEORADIUS ... STORE, SORT ... STORE, ...)", "refused", "CROSSSLOT, as from a cluster node: a script or function runs on one node; XREADGROUP's group state would change on some streams and not others; a geo or SORT store would need its scores recomputed"),
];

/// BITOP AND|OR|XOR|NOT destination key...
fn bitop(all: &[&[u8]]) -> Result<Op, String> {
    let op = all[1];
    let op = if op.eq_ignore_ascii_case(b"AND") {
        write::BitOp::And
    } else if op.eq_ignore_ascii_case(b"OR") {
        write::BitOp::Or
    } else if op.eq_ignore_ascii_case(b"XOR") {
        write::BitOp::Xor
    } else if op.eq_ignore_ascii_case(b"NOT") {
        write::BitOp::Not
    } else {
        return Err("ERR syntax error".into());
    };
    if op == write::BitOp::Not && all.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    Ok(write_op(
        "BITOP",
        write::Kind::BitOp(op),
        all[2],
        all[3..].iter().map(|k| k.to_vec()).collect(),
        Vec::new(),
    ))
}

fn int(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

/// SINTERCARD numkeys key... [LIMIT n], refused as Redis refuses it.
fn sintercard(all: &[&[u8]]) -> Result<Op, String> {
    let numkeys = match all.get(1).and_then(|a| int(a)) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    if numkeys > all.len() - 2 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < all.len() {
        if all[i].eq_ignore_ascii_case(b"LIMIT") && i + 1 < all.len() {
            match int(all[i + 1]) {
                Some(n) if n >= 0 => limit = n as u64,
                _ => return Err("ERR LIMIT can't be negative".into()),
            }
            i += 2;
        } else {
            return Err("ERR syntax error".into());
        }
    }
    Ok(Op::SInterCard { numkeys, limit })
}

/// XREAD [COUNT n] STREAMS key... id...: the streams counted, unbalanced lists refused.
fn xread(all: &[&[u8]]) -> Result<Op, String> {
    let Some(s) = all.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS")) else {
        return Err("ERR syntax error".into());
    };
    let rest = all.len() - s - 1;
    if rest == 0 || rest % 2 != 0 {
        return Err("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.".into());
    }
    Ok(Op::Xread { streams: rest / 2 })
}

fn part(slot_key: &[u8], words: &[&[u8]]) -> Request {
    let mut out = BytesMut::new();
    encode::command(&mut out, words);
    Request {
        slot: key_slot(slot_key),
        pre: Vec::new(),
        frame: out.freeze(),
    }
}

/// The first requests: the reads that feed the computation, in the order `finish` (or a
/// write's next step) expects them.
pub fn parts<A: Args + ?Sized>(c: &Computed, args: &A) -> Vec<Request> {
    match &c.op {
        Op::Write(w) => w.first(),
        Op::Zset(z) => (0..z.numkeys)
            .flat_map(|i| {
                let k = args.arg(2 + i);
                [
                    part(k, &[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]),
                    part(k, &[b"SMEMBERS", k]),
                ]
            })
            .collect(),
        Op::SInterCard { numkeys, .. } => {
            // One SINTER per slot: a slot's keys are intersected by their node.
            let mut groups: Vec<(crate::slot::Slot, Vec<&[u8]>)> = Vec::new();
            for i in 0..*numkeys {
                let k = args.arg(2 + i);
                let s = key_slot(k);
                match groups.iter_mut().find(|(g, _)| *g == s) {
                    Some((_, keys)) => keys.push(k),
                    None => groups.push((s, vec![b"SINTER", k])),
                }
            }
            groups
                .into_iter()
                .map(|(slot, words)| {
                    let mut out = BytesMut::new();
                    encode::command(&mut out, &words);
                    Request {
                        slot,
                        pre: Vec::new(),
                        frame: out.freeze(),
                    }
                })
                .collect()
        }
        Op::PfCount => (1..args.argc())
            .map(|i| part(args.arg(i), &[b"GET", args.arg(i)]))
            .collect(),
        Op::Lcs { .. } => (1..3)
            .map(|i| part(args.arg(i), &[b"GET", args.arg(i)]))
            .collect(),
        Op::Xread { streams } => {
            let s = args.argc() - 2 * streams - 1;
            (0..*streams)
                .map(|i| {
                    let mut words: Vec<&[u8]> = (0..=s).map(|j| args.arg(j)).collect();
                    words.push(args.arg(s + 1 + i));
                    words.push(args.arg(s + 1 + streams + i));
                    part(args.arg(s + 1 + i), &words)
                })
                .collect()
        }
    }
}

fn is_error(f: &[u8]) -> bool {
    matches!(f.first(), Some(b'-' | b'!'))
}

fn wrongtype(f: &[u8]) -> bool {
    f.starts_with(b"-WRONGTYPE")
}

fn redis_error(text: &str) -> Bytes {
    Bytes::from(ProxyError::Redis(text.to_string()).to_frame())
}

/// The client's answer from the reads' replies (`replies[i]` answers `parts(..)[i]`).
pub fn finish(c: &Computed, replies: &[Bytes], proto: Proto) -> Bytes {
    match &c.op {
        Op::Zset(z) => finish_zset(z, replies, proto, c.style),
        Op::SInterCard { limit, .. } => finish_sintercard(replies, *limit),
        Op::PfCount => finish_pfcount(replies),
        Op::Lcs { options } => finish_lcs(replies, proto, options),
        Op::Xread { .. } => finish_xread(replies, proto),
        // A write answers through its steps (`write::Write::step`), never merged at once.
        Op::Write(_) => unexpected(),
    }
}

/// A bulk string's bytes from a decoded reply element.
fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn unexpected() -> Bytes {
    Bytes::from(
        ProxyError::UnexpectedReply("reply from a node to a computed command's read").to_frame(),
    )
}

/// A sorted set's pairs from ZRANGE WITHSCORES: flat in RESP2, pairs in RESP3.
fn zset_pairs(v: Value) -> Option<Vec<(Vec<u8>, f64)>> {
    let Value::Array(items) = v else { return None };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(first) = it.next() {
        let (m, s) = match first {
            Value::Array(pair) if pair.len() == 2 => {
                let mut p = pair.into_iter();
                (p.next()?, p.next()?)
            }
            m => (m, it.next()?),
        };
        let Value::Str(m) = m else { return None };
        let score = double::parse_double(text(&s)?)?;
        out.push((m, score));
    }
    Some(out)
}

fn finish_zset(z: &zset::ZsetOp, replies: &[Bytes], proto: Proto, style: DoubleStyle) -> Bytes {
    let inputs = match zset_inputs(z, replies) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut out = Vec::new();
    match zset::compute(z, inputs) {
        Ok(pairs) => zset::reply(&mut out, &pairs, z.withscores, proto, style),
        Err(card) => encode::integer(&mut out, card as i64),
    }
    Bytes::from(out)
}

/// Each key's value from its two reads (ZRANGE WITHSCORES, SMEMBERS), or the error Redis
/// gives first: a key of another type, then the options' error.
fn zset_inputs(z: &zset::ZsetOp, replies: &[Bytes]) -> Result<Vec<zset::Input>, Bytes> {
    let mut inputs = Vec::with_capacity(z.numkeys);
    for pair in replies.chunks(2) {
        let [as_zset, as_set] = pair else {
            return Err(unexpected());
        };
        let pairs = if !is_error(as_zset) {
            match decode(as_zset).ok().and_then(zset_pairs) {
                Some(p) => p,
                None => return Err(unexpected()),
            }
        } else if wrongtype(as_zset) && !is_error(as_set) {
            // A set: its members score 1.
            match decode(as_set) {
                Ok(Value::Array(ms)) => {
                    let mut p = Vec::with_capacity(ms.len());
                    for m in ms {
                        let Value::Str(m) = m else {
                            return Err(unexpected());
                        };
                        p.push((m, 1.0));
                    }
                    p
                }
                _ => return Err(unexpected()),
            }
        } else if wrongtype(as_zset) {
            return Err(as_set.clone());
        } else {
            return Err(as_zset.clone());
        };
        inputs.push(zset::Input { pairs });
    }
    if let Some(e) = &z.error {
        return Err(redis_error(e));
    }
    Ok(inputs)
}

fn finish_sintercard(replies: &[Bytes], limit: u64) -> Bytes {
    if let Some(e) = replies.iter().find(|r| is_error(r)) {
        return e.clone();
    }
    let mut sets: Vec<Vec<&[u8]>> = Vec::with_capacity(replies.len());
    for r in replies {
        let Some((_, els)) = elements(r) else {
            return unexpected();
        };
        sets.push(els.into_iter().map(|e| &r[e]).collect());
    }
    // Counted from the smallest, as Redis does (it stops at the limit).
    sets.sort_by_key(|s| s.len());
    let mut n = 0u64;
    if let Some((first, rest)) = sets.split_first() {
        let rest: Vec<std::collections::HashSet<&[u8]>> =
            rest.iter().map(|s| s.iter().copied().collect()).collect();
        for m in first {
            if rest.iter().all(|s| s.contains(m)) {
                n += 1;
                if limit > 0 && n >= limit {
                    break;
                }
            }
        }
    }
    let mut out = Vec::new();
    encode::integer(&mut out, n as i64);
    Bytes::from(out)
}

fn finish_pfcount(replies: &[Bytes]) -> Bytes {
    // Redis checks the keys in order: an invalid value before a key of another type is
    // the error given.
    let mut values: Vec<&[u8]> = Vec::with_capacity(replies.len());
    for r in replies {
        if is_error(r) {
            if let (false, Err(e)) = (values.is_empty(), hll::merge_registers(&values)) {
                return Bytes::from_static(e.error_frame());
            }
            return r.clone();
        }
        match bulk(r) {
            Some(Some(v)) => values.push(v),
            Some(None) => {}
            None => return unexpected(),
        }
    }
    let mut out = Vec::new();
    match hll::merge_registers(&values) {
        Ok(regs) => encode::integer(&mut out, hll::count(&regs) as i64),
        Err(e) => return Bytes::from_static(e.error_frame()),
    }
    Bytes::from(out)
}

fn finish_lcs(replies: &[Bytes], proto: Proto, options: &[Vec<u8>]) -> Bytes {
    let [a, b] = replies else {
        return unexpected();
    };
    if wrongtype(a) || wrongtype(b) {
        return redis_error("ERR The specified keys must contain string values");
    }
    if let Some(e) = [a, b].into_iter().find(|r| is_error(r)) {
        return e.clone();
    }
    let (Some(a), Some(b)) = (bulk(a), bulk(b)) else {
        return unexpected();
    };
    let opts: Vec<&[u8]> = options.iter().map(Vec::as_slice).collect();
    let o = match lcs::parse_options(&opts) {
        Ok(o) => o,
        Err(e) => return redis_error(&e),
    };
    let out = lcs::lcs_reply(
        a.unwrap_or_default(),
        b.unwrap_or_default(),
        &o,
        proto == Proto::Resp3,
        LCS_MAX_TABLE,
    );
    // Redis's words name its own bound; here the bound is the proxy's, and one hash tag
    // lets the node compute it under its own.
    if out.starts_with(b"-ERR Insufficient memory, transient memory for LCS exceeds") {
        return redis_error(&format!(
            "ERR Insufficient memory, transient memory for LCS exceeds the proxy's limit ({} MiB): \
             its keys are in different slots, so the proxy computes it; give them one hash tag \
             to have their node compute it",
            LCS_MAX_TABLE >> 20
        ));
    }
    Bytes::from(out)
}

fn finish_xread(replies: &[Bytes], proto: Proto) -> Bytes {
    if let Some(e) = replies.iter().find(|r| is_error(r)) {
        return e.clone();
    }
    let mut inner: Vec<&[u8]> = Vec::new();
    for r in replies {
        if r.starts_with(b"*-1") || r.starts_with(b"_") {
            continue;
        }
        let Some((_, els)) = elements(r) else {
            return unexpected();
        };
        let (Some(first), Some(last)) = (els.first(), els.last()) else {
            continue;
        };
        // One stream's [key, entries]: as an array's element (RESP2) or a map's pair.
        inner.push(&r[first.start..last.end]);
    }
    let mut out = Vec::new();
    match (inner.is_empty(), proto) {
        // No stream has news: a null array in RESP2, a null in RESP3, as Redis answers.
        (true, Proto::Resp2) => out.extend_from_slice(b"*-1\r\n"),
        (true, Proto::Resp3) => encode::null(&mut out, proto),
        // Each stream is one element `*2 key entries` (RESP2) or one pair of the map.
        (false, Proto::Resp2) => encode::array_header(&mut out, inner.len()),
        (false, Proto::Resp3) => encode::map_header(&mut out, inner.len(), proto),
    }
    for i in inner {
        out.extend_from_slice(i);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{route, Route};

    /// Each row of ACROSS_SLOTS (what docs/commands.md says) is how the router takes an
    /// example of it with keys in several slots ("a", "b", "c", "d" hash apart).
    #[test]
    fn across_slots_table_matches_routing() {
        let examples = [
            ("MGET a b", "split"),
            ("MSET a 1 b 2", "split"),
            ("DEL a b", "split"),
            ("SUNION a b", "computed"),
            ("SINTERCARD 2 a b", "computed"),
            ("ZUNION 2 a b", "computed"),
            ("ZINTERCARD 2 a b", "computed"),
            ("PFCOUNT a b", "computed"),
            ("LCS a b", "computed"),
            ("XREAD STREAMS a b 0 0", "computed"),
            ("SUNIONSTORE c a b", "write"),
            ("ZUNIONSTORE d 2 a b", "write"),
            ("RENAME a b", "write"),
            ("RENAMENX a b", "write"),
            ("COPY a b", "write"),
            ("SMOVE a b m", "write"),
            ("LMOVE a b LEFT RIGHT", "write"),
            ("RPOPLPUSH a b", "write"),
            ("PFMERGE a b", "write"),
            ("BITOP AND c a b", "write"),
            ("MSETNX a 1 b 2", "write"),
            ("LMPOP 2 a b LEFT", "write"),
            ("ZMPOP 2 a b MIN", "write"),
            ("BLPOP a b 0", "refused"),
            ("XREAD BLOCK 0 STREAMS a b 0 0", "refused"),
            ("EVAL s 2 a b", "refused"),
            ("ZRANGESTORE a b 0 1", "write"),
            ("GEOSEARCHSTORE a b FROMLONLAT 0 0 BYRADIUS 1 km", "refused"),
        ];
        for (line, want) in examples {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            let got = match route(args.as_slice()) {
                Route::Split {
                    merge: crate::route::split::Merge::Sets(_),
                    ..
                } => "computed",
                Route::Split { .. } => "split",
                Route::Compute(c) if c.is_write() => "write",
                Route::Compute(_) => "computed",
                Route::Refuse(ProxyError::CrossSlot | ProxyError::CrossSlotBlocking) => "refused",
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(got, want, "{line}");
            let name = line.split(' ').next().unwrap_or_default();
            let listed = ACROSS_SLOTS
                .iter()
                .any(|(names, how, _)| *how == want && names.split([',', ' ']).any(|n| n == name));
            assert!(
                listed || want == "refused",
                "{name} is not listed as {want}"
            );
        }
    }

    #[test]
    fn bitop_pads_shorter_sources_with_zeros() {
        use write::{bitop, BitOp};
        assert_eq!(bitop(BitOp::And, &[b"\xff\x0f", b"\x0f"]), b"\x0f\x00");
        assert_eq!(bitop(BitOp::Or, &[b"\x01", b"", b"\x02\x04"]), b"\x03\x04");
        assert_eq!(bitop(BitOp::Xor, &[b"\xff", b"\x0f"]), b"\xf0");
        assert_eq!(bitop(BitOp::Not, &[b"\x0f"]), b"\xf0");
        assert!(bitop(BitOp::And, &[b"", b""]).is_empty());
    }
}
