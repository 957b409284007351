//! Writes whose keys span slots (`cross_slot_writes: true`), in stages: read what the
//! write needs, then write the destination, then (for moves) remove the source only once
//! the destination has acknowledged. A value that was acknowledged never exists nowhere:
//! a failure between the stages leaves it in both places, and the error says so. Not
//! atomic: another client may see the destination written before the source is removed.
//!
//! Each stage's requests are built here; `step` takes a stage's replies and says what
//! comes next, a pure function tested without sockets.

use bytes::{Bytes, BytesMut};

use super::double::{write_double, DoubleStyle};
use super::sets::{merge_sets, SetOp};
use super::{bulk, hll, is_error, redis_error, unexpected, zset};
use crate::resp::encode::{self, Proto};
use crate::resp::reply::elements;
use crate::resp::value::{decode, Value};
use crate::slot::{key_slot, Slot};

/// One request of a stage. `pre`: requests sent just before it on the same connection,
/// whose replies are not the client's (MULTI and the writes of a MULTI ... EXEC, so that
/// the destination is replaced atomically on its node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub slot: Slot,
    pub pre: Vec<Bytes>,
    pub frame: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// SUNIONSTORE, SINTERSTORE, SDIFFSTORE: the sources read per slot (SDIFF's later
    /// slots as SUNIONs), the result written with MULTI, DEL, SADD, EXEC.
    SetStore { op: SetOp },
    /// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: computed as ZUNION..., written with MULTI,
    /// DEL, ZADD, EXEC (scores written with 17 digits, which read back exactly).
    ZStore(zset::ZsetOp),
    /// RENAME, RENAMENX, COPY: DUMP and PTTL of the source, RESTORE on the destination's
    /// node (the TTL kept), then for a rename the source removed.
    Move { rename: bool, replace: bool },
    /// SMOVE: the member checked, added to the destination, then removed from the source.
    SMove,
    /// LMOVE, RPOPLPUSH: the end element read, pushed to the destination, then removed
    /// from the source (LREM of that element from that end: never another element).
    LMove { from_left: bool, to_left: bool },
    /// PFMERGE: the destination's and the sources' registers, written back with SET
    /// KEEPTTL (as PFMERGE keeps the destination's TTL).
    PfMerge,
    /// BITOP: the sources read, the result written with SET (or the destination deleted).
    BitOp(BitOp),
    /// MSETNX: EXISTS on every key, then MSET per slot only if none existed. Two clients
    /// racing may both see the keys absent: documented.
    MSetNx { pairs: usize },
    /// ZRANGESTORE: the range read with its scores (BYLEX: the members, then their scores
    /// with ZMSCORE, as ZRANGE BYLEX gives no scores), then written as the STORE forms are.
    ZRangeStore { bylex: bool },
    /// LMPOP, ZMPOP: each key's length (LLEN, ZCARD: a key of another type is refused in
    /// key order, as Redis does), then the pop on the first non-empty key's node.
    MPop { zset: bool },
}

/// A staged write: its kind, the keys it names, its stage, and what an earlier stage
/// learned (the count to answer, the element moved).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub kind: Kind,
    /// The command's name as the client wrote it, upper case, for errors.
    pub name: String,
    /// The destination (`keys[0]` for STORE forms, PFMERGE, BITOP; the second key of a
    /// move) and the sources, as the command names them.
    pub dst: Vec<u8>,
    pub srcs: Vec<Vec<u8>>,
    /// SMOVE's member; MSETNX's arguments (key, value, ...).
    pub extra: Vec<Vec<u8>>,
    pub stage: u8,
    pub carry: Option<Bytes>,
    pub count: i64,
}

/// What comes after a stage.
#[derive(Debug, PartialEq)]
pub enum Step {
    Answer(Bytes),
    Send(Vec<Request>),
}

fn cmd(words: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    encode::command(&mut out, words);
    out.freeze()
}

fn req(key: &[u8], words: &[&[u8]]) -> Request {
    Request {
        slot: key_slot(key),
        pre: Vec::new(),
        frame: cmd(words),
    }
}

fn int(n: i64) -> Bytes {
    let mut out = Vec::new();
    encode::integer(&mut out, n);
    Bytes::from(out)
}

fn int_of(f: &[u8]) -> Option<i64> {
    match decode(f).ok()? {
        Value::Int(n) => Some(n),
        _ => None,
    }
}

const MULTI: &[u8] = b"MULTI";

impl Write {
    /// The first stage's requests.
    pub fn first(&self) -> Vec<Request> {
        match &self.kind {
            Kind::SetStore { op } => {
                // Each slot's sources under one command, as SUNION... across slots reads.
                let mut groups: Vec<(Slot, Vec<&[u8]>)> = Vec::new();
                for k in &self.srcs {
                    let s = key_slot(k);
                    match groups.iter_mut().find(|(g, _)| *g == s) {
                        Some((_, ks)) => ks.push(k),
                        None => {
                            let name: &[u8] = match (op, groups.is_empty()) {
                                (SetOp::Union, _) | (SetOp::Diff, false) => b"SUNION",
                                (SetOp::Inter, _) => b"SINTER",
                                (SetOp::Diff, true) => b"SDIFF",
                            };
                            groups.push((s, vec![name, k]));
                        }
                    }
                }
                groups
                    .into_iter()
                    .map(|(slot, words)| Request {
                        slot,
                        pre: Vec::new(),
                        frame: cmd(&words),
                    })
                    .collect()
            }
            Kind::ZStore(_) => self
                .srcs
                .iter()
                .flat_map(|k| {
                    [
                        req(k, &[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]),
                        req(k, &[b"SMEMBERS", k]),
                    ]
                })
                .collect(),
            Kind::Move { .. } => {
                let s = &self.srcs[0];
                vec![req(s, &[b"DUMP", s]), req(s, &[b"PTTL", s])]
            }
            Kind::SMove => {
                let s = &self.srcs[0];
                vec![
                    req(s, &[b"SISMEMBER", s, &self.extra[0]]),
                    req(s, &[b"EXISTS", s]),
                    req(&self.dst, &[b"TYPE", &self.dst]),
                ]
            }
            Kind::LMove { from_left, .. } => {
                let s = &self.srcs[0];
                let at: &[u8] = if *from_left { b"0" } else { b"-1" };
                vec![
                    req(s, &[b"LINDEX", s, at]),
                    req(&self.dst, &[b"TYPE", &self.dst]),
                ]
            }
            Kind::PfMerge => std::iter::once(&self.dst)
                .chain(&self.srcs)
                .map(|k| req(k, &[b"GET", k]))
                .collect(),
            Kind::BitOp(_) => self.srcs.iter().map(|k| req(k, &[b"GET", k])).collect(),
            Kind::ZRangeStore { bylex } => {
                let s = &self.srcs[0];
                let mut words: Vec<&[u8]> = vec![b"ZRANGE", s];
                words.extend(self.extra.iter().map(Vec::as_slice));
                if !bylex {
                    words.push(b"WITHSCORES");
                }
                vec![req(s, &words)]
            }
            Kind::MPop { zset } => {
                let len: &[u8] = if *zset { b"ZCARD" } else { b"LLEN" };
                self.srcs.iter().map(|k| req(k, &[len, k])).collect()
            }
            Kind::MSetNx { .. } => {
                let mut groups: Vec<(Slot, Vec<&[u8]>)> = Vec::new();
                for pair in self.extra.chunks(2) {
                    let s = key_slot(&pair[0]);
                    match groups.iter_mut().find(|(g, _)| *g == s) {
                        Some((_, ks)) => ks.push(&pair[0]),
                        None => groups.push((s, vec![b"EXISTS", &pair[0]])),
                    }
                }
                groups
                    .into_iter()
                    .map(|(slot, words)| Request {
                        slot,
                        pre: Vec::new(),
                        frame: cmd(&words),
                    })
                    .collect()
            }
        }
    }

    /// The next step from the replies to this stage's requests (in their order).
    pub fn step(&mut self, replies: &[Bytes], proto: Proto) -> Step {
        self.stage += 1;
        match (self.stage, self.kind.clone()) {
            (1, Kind::SetStore { op }) => {
                if let Some(e) = replies.iter().find(|r| is_error(r)) {
                    return Step::Answer(e.clone());
                }
                let merged = merge_sets(replies, op, Proto::Resp2);
                let Some((_, els)) = elements(&merged) else {
                    return Step::Answer(merged);
                };
                let members: Vec<&[u8]> = els
                    .into_iter()
                    .filter_map(|r| bulk(&merged[r]).flatten())
                    .collect();
                self.count = members.len() as i64;
                let mut words: Vec<&[u8]> = vec![b"SADD", &self.dst];
                words.extend(members);
                self.replace(words)
            }
            (1, Kind::ZStore(z)) => {
                let pairs = match super::zset_inputs(&z, replies) {
                    Ok(inputs) => match zset::compute(&z, inputs) {
                        Ok(p) => p,
                        Err(_) => return Step::Answer(unexpected()),
                    },
                    Err(e) => return Step::Answer(e),
                };
                self.write_pairs(pairs)
            }
            (1, Kind::ZRangeStore { bylex }) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(Bytes::copy_from_slice(r));
                }
                let Ok(v) = decode(r) else {
                    return Step::Answer(unexpected());
                };
                if bylex {
                    let Value::Array(ms) = v else {
                        return Step::Answer(unexpected());
                    };
                    let members: Vec<Vec<u8>> = ms
                        .into_iter()
                        .filter_map(|m| match m {
                            Value::Str(m) => Some(m),
                            _ => None,
                        })
                        .collect();
                    if members.is_empty() {
                        return self.write_pairs(Vec::new());
                    }
                    let s = &self.srcs[0];
                    let mut words: Vec<&[u8]> = vec![b"ZMSCORE", s];
                    words.extend(members.iter().map(Vec::as_slice));
                    let frame = req(s, &words);
                    self.extra = members;
                    return Step::Send(vec![frame]);
                }
                match super::zset_pairs(v) {
                    Some(pairs) => self.write_pairs(pairs),
                    None => Step::Answer(unexpected()),
                }
            }
            (2, Kind::ZRangeStore { bylex: true }) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(Bytes::copy_from_slice(r));
                }
                let Ok(Value::Array(scores)) = decode(r) else {
                    return Step::Answer(unexpected());
                };
                // A member removed since the range was read has no score: left out.
                let members = std::mem::take(&mut self.extra);
                let pairs = members
                    .into_iter()
                    .zip(scores)
                    .filter_map(|(m, s)| match s {
                        Value::Str(t) => super::double::parse_double(&t).map(|s| (m, s)),
                        _ => None,
                    })
                    .collect();
                self.write_pairs(pairs)
            }
            (2, Kind::ZRangeStore { bylex: false }) | (3, Kind::ZRangeStore { bylex: true }) => {
                let r = one(replies);
                if is_error(r) || r.starts_with(b"*-1") || r.starts_with(b"_") {
                    return Step::Answer(self.unchanged(r));
                }
                Step::Answer(int(self.count))
            }
            (2, Kind::SetStore { .. } | Kind::ZStore(_)) => {
                let r = one(replies);
                if is_error(r) || r.starts_with(b"*-1") || r.starts_with(b"_") {
                    return Step::Answer(self.unchanged(r));
                }
                Step::Answer(int(self.count))
            }
            (1, Kind::Move { rename, replace }) => {
                let [dump, pttl] = replies else {
                    return Step::Answer(unexpected());
                };
                if is_error(dump) {
                    return Step::Answer(dump.clone());
                }
                let Some(Some(payload)) = bulk(dump) else {
                    // No source: RENAME's error, COPY's 0.
                    return Step::Answer(if rename {
                        redis_error("ERR no such key")
                    } else {
                        int(0)
                    });
                };
                let ttl = int_of(pttl).filter(|t| *t > 0).unwrap_or(0).to_string();
                let mut words: Vec<&[u8]> = vec![b"RESTORE", &self.dst, ttl.as_bytes(), payload];
                if replace {
                    words.push(b"REPLACE");
                }
                Step::Send(vec![req(&self.dst, &words)])
            }
            (2, Kind::Move { rename, replace }) => {
                let r = one(replies);
                if r.starts_with(b"-BUSYKEY") && !replace {
                    return Step::Answer(int(0));
                }
                if is_error(r) {
                    return Step::Answer(self.unchanged(r));
                }
                if !rename {
                    return Step::Answer(int(1));
                }
                let s = &self.srcs[0];
                Step::Send(vec![req(s, &[b"DEL", s])])
            }
            (3, Kind::Move { replace, .. }) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.both(r));
                }
                Step::Answer(if replace {
                    Bytes::from_static(b"+OK\r\n")
                } else {
                    int(1)
                })
            }
            (1, Kind::SMove) => {
                let [member, exists, dst_type] = replies else {
                    return Step::Answer(unexpected());
                };
                if is_error(member) {
                    return Step::Answer(member.clone());
                }
                if int_of(exists) == Some(0) {
                    return Step::Answer(int(0));
                }
                if !type_is(dst_type, b"set") {
                    return Step::Answer(wrongtype_error());
                }
                if int_of(member) != Some(1) {
                    return Step::Answer(int(0));
                }
                Step::Send(vec![req(&self.dst, &[b"SADD", &self.dst, &self.extra[0]])])
            }
            (2, Kind::SMove) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.unchanged(r));
                }
                let s = &self.srcs[0];
                Step::Send(vec![req(s, &[b"SREM", s, &self.extra[0]])])
            }
            (3, Kind::SMove) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.both(r));
                }
                Step::Answer(int(1))
            }
            (1, Kind::LMove { to_left, .. }) => {
                let [elem, dst_type] = replies else {
                    return Step::Answer(unexpected());
                };
                if is_error(elem) {
                    return Step::Answer(elem.clone());
                }
                let Some(Some(e)) = bulk(elem) else {
                    let mut out = Vec::new();
                    encode::null(&mut out, proto);
                    return Step::Answer(Bytes::from(out));
                };
                if !type_is(dst_type, b"list") {
                    return Step::Answer(wrongtype_error());
                }
                let push: &[u8] = if to_left { b"LPUSH" } else { b"RPUSH" };
                let frame = req(&self.dst, &[push, &self.dst, e]);
                self.carry = Some(Bytes::copy_from_slice(e));
                Step::Send(vec![frame])
            }
            (2, Kind::LMove { from_left, .. }) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.unchanged(r));
                }
                let s = &self.srcs[0];
                let e = self.carry.clone().unwrap_or_default();
                let count: &[u8] = if from_left { b"1" } else { b"-1" };
                Step::Send(vec![req(s, &[b"LREM", s, count, &e])])
            }
            (3, Kind::LMove { .. }) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.both(r));
                }
                let mut out = Vec::new();
                encode::bulk(&mut out, &self.carry.clone().unwrap_or_default());
                Step::Answer(Bytes::from(out))
            }
            (1, Kind::PfMerge) => {
                let values = match string_values(replies) {
                    Ok(v) => v,
                    Err(e) => return Step::Answer(e),
                };
                let regs = match hll::merge_registers(&values) {
                    Ok(r) => r,
                    Err(e) => return Step::Answer(Bytes::from_static(e.error_frame())),
                };
                let v = hll::dense_value(&regs);
                Step::Send(vec![req(&self.dst, &[b"SET", &self.dst, &v, b"KEEPTTL"])])
            }
            (2, Kind::PfMerge) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.unchanged(r));
                }
                Step::Answer(Bytes::from_static(b"+OK\r\n"))
            }
            (1, Kind::BitOp(op)) => {
                let mut values: Vec<&[u8]> = Vec::with_capacity(replies.len());
                for r in replies {
                    if is_error(r) {
                        return Step::Answer(r.clone());
                    }
                    match bulk(r) {
                        Some(v) => values.push(v.unwrap_or_default()),
                        None => return Step::Answer(unexpected()),
                    }
                }
                let result = bitop(op, &values);
                self.count = result.len() as i64;
                if result.is_empty() {
                    return Step::Send(vec![req(&self.dst, &[b"DEL", &self.dst])]);
                }
                Step::Send(vec![req(&self.dst, &[b"SET", &self.dst, &result])])
            }
            (2, Kind::BitOp(_)) => {
                let r = one(replies);
                if is_error(r) {
                    return Step::Answer(self.unchanged(r));
                }
                Step::Answer(int(self.count))
            }
            (1, Kind::MSetNx { .. }) => {
                let mut existing = 0;
                for r in replies {
                    if is_error(r) {
                        return Step::Answer(r.clone());
                    }
                    existing += int_of(r).unwrap_or(0);
                }
                if existing > 0 {
                    return Step::Answer(int(0));
                }
                let mut groups: Vec<(Slot, Vec<&[u8]>)> = Vec::new();
                for pair in self.extra.chunks(2) {
                    let s = key_slot(&pair[0]);
                    match groups.iter_mut().find(|(g, _)| *g == s) {
                        Some((_, ws)) => ws.extend([pair[0].as_slice(), pair[1].as_slice()]),
                        None => groups.push((s, vec![b"MSET", &pair[0], &pair[1]])),
                    }
                }
                Step::Send(
                    groups
                        .into_iter()
                        .map(|(slot, words)| Request {
                            slot,
                            pre: Vec::new(),
                            frame: cmd(&words),
                        })
                        .collect(),
                )
            }
            (2, Kind::MSetNx { .. }) => {
                let failed = replies.iter().filter(|r| is_error(r)).count();
                match replies.iter().find(|r| is_error(r)) {
                    None => Step::Answer(int(1)),
                    Some(e) if failed == replies.len() => Step::Answer(self.unchanged(e)),
                    Some(e) => Step::Answer(redis_error(&format!(
                        "ERR MSETNX set the keys of {} of {} slots, not the others: {}",
                        replies.len() - failed,
                        replies.len(),
                        err_text(e)
                    ))),
                }
            }
            (1, Kind::MPop { zset }) => {
                for (r, k) in replies.iter().zip(&self.srcs) {
                    if is_error(r) {
                        return Step::Answer(r.clone());
                    }
                    if int_of(r).unwrap_or(0) > 0 {
                        let name: &[u8] = if zset { b"ZMPOP" } else { b"LMPOP" };
                        let mut words: Vec<&[u8]> = vec![name, b"1", k];
                        words.extend(self.extra.iter().map(Vec::as_slice));
                        return Step::Send(vec![req(k, &words)]);
                    }
                }
                // Every key empty: a null array, as Redis answers a pop that found nothing.
                let mut out = Vec::new();
                match proto {
                    Proto::Resp2 => out.extend_from_slice(b"*-1\r\n"),
                    Proto::Resp3 => encode::null(&mut out, proto),
                }
                Step::Answer(Bytes::from(out))
            }
            (2, Kind::MPop { .. }) => Step::Answer(Bytes::copy_from_slice(one(replies))),
            _ => Step::Answer(unexpected()),
        }
    }

    /// A sorted set's pairs written to the destination (replaced), scores with 17 digits,
    /// which read back as the same doubles on every version of the server.
    fn write_pairs(&mut self, pairs: Vec<(Vec<u8>, f64)>) -> Step {
        self.count = pairs.len() as i64;
        let texts: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(_, s)| {
                let mut t = Vec::new();
                write_double(&mut t, *s, DoubleStyle::G17);
                t
            })
            .collect();
        let mut words: Vec<&[u8]> = vec![b"ZADD", &self.dst];
        for ((m, _), t) in pairs.iter().zip(&texts) {
            words.push(t);
            words.push(m);
        }
        self.replace(words)
    }

    /// The destination replaced atomically on its node: MULTI, DEL, the write, EXEC (the
    /// client's part is EXEC's reply); an empty result only deletes it, as Redis does.
    fn replace(&self, words: Vec<&[u8]>) -> Step {
        let slot = key_slot(&self.dst);
        if words.len() <= 2 {
            return Step::Send(vec![req(&self.dst, &[b"DEL", &self.dst])]);
        }
        Step::Send(vec![Request {
            slot,
            pre: vec![cmd(&[MULTI]), cmd(&[b"DEL", &self.dst]), cmd(&words)],
            frame: cmd(&[b"EXEC"]),
        }])
    }

    /// The destination's write failed: nothing was changed, or (its connection lost after
    /// it was sent) it may have been written; the sources are unchanged either way.
    fn unchanged(&self, r: &[u8]) -> Bytes {
        let e = err_text(r);
        let what = if in_doubt(&e) {
            "may or may not have written"
        } else {
            "changed nothing: it failed writing"
        };
        redis_error(&format!(
            "ERR {} across slots {what} '{}', and left its sources as they were: {e}",
            self.name,
            String::from_utf8_lossy(&self.dst),
        ))
    }

    /// A move whose copy was written but whose source could not be changed (or may not
    /// have been, its connection lost): the value is in the destination, perhaps in both.
    fn both(&self, r: &[u8]) -> Bytes {
        let e = err_text(r);
        let what = if in_doubt(&e) {
            "may or may not have removed it from"
        } else {
            "failed removing it from"
        };
        redis_error(&format!(
            "ERR {} across slots wrote '{}' but {what} '{}', which may still hold it: {e}",
            self.name,
            String::from_utf8_lossy(&self.dst),
            String::from_utf8_lossy(&self.srcs[0]),
        ))
    }
}

/// The proxy's own error for a request whose connection was lost after it was sent.
fn in_doubt(e: &str) -> bool {
    e.contains("it may or may not have been applied")
}

fn one(replies: &[Bytes]) -> &[u8] {
    replies
        .first()
        .map(|b| &b[..])
        .unwrap_or(b"-ERR no reply\r\n")
}

fn err_text(r: &[u8]) -> String {
    let t = String::from_utf8_lossy(r);
    let t = t.trim_start_matches(['-', '!']).trim_end();
    match t.find("\r\n") {
        // A blob error: its length line first.
        Some(i) if r.starts_with(b"!") => t[i + 2..].to_string(),
        _ => t.to_string(),
    }
}

fn type_is(reply: &[u8], want: &[u8]) -> bool {
    let t = reply
        .strip_prefix(b"+")
        .and_then(|r| r.strip_suffix(b"\r\n"))
        .unwrap_or_default();
    t == b"none" || t == want
}

fn wrongtype_error() -> Bytes {
    Bytes::from_static(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
}

/// GET replies in order: the values of the keys that exist; the first error (an invalid
/// HyperLogLog before it wins, as Redis checks in order).
fn string_values(replies: &[Bytes]) -> Result<Vec<&[u8]>, Bytes> {
    let mut values: Vec<&[u8]> = Vec::with_capacity(replies.len());
    for r in replies {
        if is_error(r) {
            if let (false, Err(e)) = (values.is_empty(), hll::merge_registers(&values)) {
                return Err(Bytes::from_static(e.error_frame()));
            }
            return Err(r.clone());
        }
        match bulk(r) {
            Some(Some(v)) => values.push(v),
            Some(None) => {}
            None => return Err(unexpected()),
        }
    }
    Ok(values)
}

/// BITOP's result: as long as the longest source, shorter ones read as zero bytes.
pub fn bitop(op: BitOp, values: &[&[u8]]) -> Vec<u8> {
    let len = values.iter().map(|v| v.len()).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = |v: &&[u8]| v.get(i).copied().unwrap_or(0);
        *o = match op {
            BitOp::Not => !values.first().map(byte).unwrap_or(0),
            BitOp::And => values.iter().map(byte).fold(0xff, |a, b| a & b),
            BitOp::Or => values.iter().map(byte).fold(0, |a, b| a | b),
            BitOp::Xor => values.iter().map(byte).fold(0, |a, b| a ^ b),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename() -> Write {
        Write {
            kind: Kind::Move {
                rename: true,
                replace: true,
            },
            name: "RENAME".into(),
            dst: b"b".to_vec(),
            srcs: vec![b"a".to_vec()],
            extra: Vec::new(),
            stage: 0,
            carry: None,
            count: 0,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_rename_restores_with_the_ttl_then_deletes_the_source() {
        let mut w = rename();
        let first = w.first();
        assert_eq!(first.len(), 2);
        let Step::Send(restore) = w.step(&[b("$3\r\nxyz\r\n"), b(":1500\r\n")], Proto::Resp2)
        else {
            panic!("no RESTORE")
        };
        assert_eq!(
            restore[0].frame,
            cmd(&[b"RESTORE", b"b", b"1500", b"xyz", b"REPLACE"])
        );
        let Step::Send(del) = w.step(&[b("+OK\r\n")], Proto::Resp2) else {
            panic!("no DEL")
        };
        assert_eq!(del[0].frame, cmd(&[b"DEL", b"a"]));
        assert_eq!(
            w.step(&[b(":1\r\n")], Proto::Resp2),
            Step::Answer(b("+OK\r\n"))
        );
    }

    #[test]
    fn a_failure_half_way_says_what_was_done() {
        let mut w = rename();
        w.step(&[b("$3\r\nxyz\r\n"), b(":-1\r\n")], Proto::Resp2);
        w.step(&[b("+OK\r\n")], Proto::Resp2);
        let doubt = b("-ERR cluster node n:1 unavailable (reset) after the command was sent to it: it may or may not have been applied\r\n");
        let Step::Answer(e) = w.step(&[doubt], Proto::Resp2) else {
            panic!("no answer")
        };
        let e = String::from_utf8_lossy(&e).into_owned();
        assert!(
            e.starts_with(
                "-ERR RENAME across slots wrote 'b' but may or may not have removed it from 'a'"
            ),
            "{e}"
        );
        // A RESTORE refused: nothing changed, the source left alone.
        let mut w = rename();
        w.step(&[b("$3\r\nxyz\r\n"), b(":-1\r\n")], Proto::Resp2);
        let Step::Answer(e) = w.step(
            &[b("-ERR DUMP payload version or checksum are wrong\r\n")],
            Proto::Resp2,
        ) else {
            panic!("no answer")
        };
        assert!(String::from_utf8_lossy(&e).contains("changed nothing"));
        // No source: RENAME's own error.
        let mut w = rename();
        assert_eq!(
            w.step(&[b("$-1\r\n"), b(":-2\r\n")], Proto::Resp2),
            Step::Answer(b("-ERR no such key\r\n"))
        );
    }

    #[test]
    fn a_store_replaces_the_destination_in_one_transaction() {
        let mut w = Write {
            kind: Kind::SetStore { op: SetOp::Union },
            name: "SUNIONSTORE".into(),
            dst: b"d".to_vec(),
            srcs: vec![b"a".to_vec(), b"b".to_vec()],
            extra: Vec::new(),
            stage: 0,
            carry: None,
            count: 0,
        };
        let Step::Send(write) = w.step(
            &[b("*1\r\n$1\r\nx\r\n"), b("*2\r\n$1\r\nx\r\n$1\r\ny\r\n")],
            Proto::Resp2,
        ) else {
            panic!("no write")
        };
        assert_eq!(write[0].pre[0], cmd(&[b"MULTI"]));
        assert_eq!(write[0].pre[1], cmd(&[b"DEL", b"d"]));
        assert_eq!(write[0].pre[2], cmd(&[b"SADD", b"d", b"x", b"y"]));
        assert_eq!(write[0].frame, cmd(&[b"EXEC"]));
        assert_eq!(
            w.step(&[b("*2\r\n:0\r\n:2\r\n")], Proto::Resp2),
            Step::Answer(b(":2\r\n"))
        );
    }
}
