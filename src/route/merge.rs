//! The merge of a split or fanned-out request's replies into the one reply the client
//! gets, as one Redis would have answered: MGET in key order, sums, concatenations, SCAN
//! cursors, INFO summed over the masters, and errors that say which node failed.

use crate::compute::sets::merge_sets;
use crate::error::ProxyError;
use crate::resp::encode::{self, Proto};
use crate::resp::parse_int;
use crate::resp::reply::elements;
use crate::route::split::{encode_scan_cursor, Merge};
use bytes::{BufMut, Bytes, BytesMut};

pub(crate) fn is_error(f: &[u8]) -> bool {
    matches!(f.first(), Some(b'-') | Some(b'!'))
}

pub(crate) fn int_of(f: &[u8]) -> Option<i64> {
    if f.first() != Some(&b':') {
        return None;
    }
    parse_int(f.get(1..f.len().checked_sub(2)?)?)
}

pub(crate) fn is_null(f: &[u8]) -> bool {
    f == b"$-1\r\n" || f == b"_\r\n" || f == b"*-1\r\n"
}

/// Merges whose every case returned above; kept as a value, not a panic.
pub(crate) fn unreachable_merge() -> Bytes {
    error_frame(ProxyError::InternalMerge)
}

pub(crate) fn merge_named(parts: &[Bytes], nodes: &[String]) -> Bytes {
    let failed: Vec<usize> = (0..parts.len()).filter(|&i| is_error(&parts[i])).collect();
    let Some(&first) = failed.first() else {
        return parts
            .first()
            .cloned()
            .unwrap_or_else(|| error_frame(ProxyError::NoReply));
    };
    if failed.len() == parts.len() && parts.iter().all(|p| p == &parts[first]) {
        return parts[first].clone();
    }
    let name = |i: usize| nodes.get(i).map(String::as_str).unwrap_or("?");
    let err = String::from_utf8_lossy(&parts[first][1..])
        .trim_end()
        .to_string();
    let ok: Vec<&str> = (0..parts.len())
        .filter(|i| !failed.contains(i))
        .map(name)
        .collect();
    error_frame(ProxyError::PartlyApplied {
        node: name(first).to_string(),
        err,
        applied: if ok.is_empty() {
            "none".to_string()
        } else {
            ok.join(", ")
        },
    })
}

pub(crate) fn merge_slowlog(parts: &[Bytes], nodes: &[String], count: i64) -> Bytes {
    // (timestamp, id, node index, entry's element ranges, part index)
    let mut entries = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        let Some((_, els)) = elements(p) else {
            return error_frame(ProxyError::UnexpectedReply("SLOWLOG reply from a node"));
        };
        for r in els {
            let entry = &p[r.clone()];
            let Some((_, fields)) = elements(entry) else {
                continue;
            };
            let int = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| int_of(&entry[f.clone()]))
                    .unwrap_or(0)
            };
            // Each node numbers its entries from 0: the proxy's id is unique over the
            // nodes and keeps each node's order (node id times the number of nodes, plus
            // the node's place).
            let id = int(0)
                .saturating_mul(parts.len() as i64)
                .saturating_add(pi as i64);
            entries.push((int(1), id, pi, r));
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    if count >= 0 {
        entries.truncate(count as usize);
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, entries.len());
    for (_, id, pi, r) in entries {
        let entry = &parts[pi][r];
        let Some((tag, fields)) = elements(entry) else {
            continue;
        };
        out.put_u8(tag);
        out.put_slice(format!("{}\r\n", fields.len()).as_bytes());
        for (i, f) in fields.into_iter().enumerate() {
            if i == 0 {
                encode::integer(&mut out, id);
            } else if i == 4 {
                encode::bulk(
                    &mut out,
                    nodes.get(pi).map(String::as_bytes).unwrap_or(b"?"),
                );
            } else {
                out.put_slice(&entry[f]);
            }
        }
    }
    out.freeze()
}

pub(crate) fn error_frame(e: ProxyError) -> Bytes {
    Bytes::from(e.to_frame())
}

/// Merges the parts' replies (in part order). Any part's error is the whole reply: a
/// partial result must never look complete.
pub fn merge(m: &Merge, parts: &[Bytes], proto: Proto) -> Bytes {
    match m {
        Merge::AnyOk => {
            return parts
                .iter()
                .find(|p| !is_error(p))
                .or_else(|| parts.first())
                .cloned()
                .unwrap_or_else(|| error_frame(ProxyError::NoReply))
        }
        Merge::AllOkNamed { nodes } => return merge_named(parts, nodes),
        // Which error wins is Redis's order of checks, which the computation knows.
        Merge::Compute(c) => return crate::compute::finish(c, parts, proto),
        _ => {}
    }
    if let Some(e) = parts.iter().find(|p| is_error(p)) {
        return e.clone();
    }
    match m {
        Merge::AnyOk | Merge::AllOkNamed { .. } | Merge::Compute(_) => unreachable_merge(),
        Merge::Slowlog { count, nodes } => merge_slowlog(parts, nodes, *count),
        Merge::Sum => merge_sum(parts),
        Merge::AllSame => parts
            .first()
            .cloned()
            .unwrap_or_else(|| error_frame(ProxyError::NoReply)),
        Merge::Mget { order } => merge_mget(parts, order, proto),
        Merge::Concat => merge_concat(parts),
        Merge::Sets(op) => merge_sets(parts, *op, proto),
        Merge::And => merge_and(parts),
        Merge::Scan {
            master,
            masters,
            carried,
            ..
        } => merge_scan(parts, *master, *masters, carried),
        Merge::Redact => match parts.first() {
            Some(p) => redact_config(p),
            None => error_frame(ProxyError::NoReply),
        },
        Merge::Rewrite { view, map } => match parts.first() {
            Some(p) => crate::topology::view::rewrite(*view, p, map),
            None => error_frame(ProxyError::NoReply),
        },
        Merge::Info {
            proxy,
            server,
            clients,
        } => crate::route::info::merge_info_parts(parts, proxy, server, clients, proto),
        Merge::FirstNonNull { start } => merge_first_non_null(parts, *start, proto),
        Merge::Min => merge_min(parts),
        Merge::Offset(n) => match int_of(&merge_sum(parts)) {
            Some(total) => {
                let mut out = Vec::new();
                encode::integer(&mut out, total.saturating_add(*n).max(0));
                Bytes::from(out)
            }
            None => merge_sum(parts),
        },
        Merge::ShardNumsub(adjust) => merge_shard_numsub(parts, adjust),
    }
}

/// SHARDNUMSUB's `[channel, count, ...]` from every master: counts summed by position (a
/// channel's subscribers are on its slot's master, the others answer 0), each corrected.
fn merge_shard_numsub(parts: &[Bytes], adjust: &[i64]) -> Bytes {
    let mut totals = vec![0i64; adjust.len()];
    let mut names: Vec<Bytes> = Vec::new();
    for p in parts {
        let Some((_, els)) = elements(p) else {
            return error_frame(ProxyError::UnexpectedReply("SHARDNUMSUB reply from a node"));
        };
        for (i, pair) in els.chunks(2).enumerate() {
            if let (Some(t), [name, n]) = (totals.get_mut(i), pair) {
                *t += int_of(&p[n.clone()]).unwrap_or(0);
                if names.len() <= i {
                    names.push(p.slice(name.clone()));
                }
            }
        }
    }
    let mut out = Vec::new();
    encode::array_header(&mut out, 2 * names.len());
    for (i, name) in names.iter().enumerate() {
        out.extend_from_slice(name);
        encode::integer(&mut out, totals[i].saturating_add(adjust[i]).max(0));
    }
    Bytes::from(out)
}

/// WAIT's counts: the smallest (the writes are on every replica count only that far);
/// WAITAOF's [local, replicas] pairs element by element.
pub(crate) fn merge_min(parts: &[Bytes]) -> Bytes {
    let mut acc: Option<Vec<i64>> = None;
    let mut array = false;
    for p in parts {
        let vals: Vec<i64> = match int_of(p) {
            Some(n) => vec![n],
            None => match elements(p) {
                Some((_, els)) => {
                    array = true;
                    els.into_iter().filter_map(|r| int_of(&p[r])).collect()
                }
                None => return error_frame(ProxyError::UnexpectedReply("WAIT reply from a node")),
            },
        };
        acc = Some(match acc {
            None => vals,
            Some(a) => a.into_iter().zip(vals).map(|(x, y)| x.min(y)).collect(),
        });
    }
    let acc = acc.unwrap_or_default();
    let mut out = BytesMut::new();
    if array {
        encode::array_header(&mut out, acc.len());
    }
    for v in acc {
        encode::integer(&mut out, v);
    }
    out.freeze()
}

pub(crate) fn merge_sum(parts: &[Bytes]) -> Bytes {
    let mut total: i64 = 0;
    for p in parts {
        match int_of(p) {
            Some(n) => total = total.saturating_add(n),
            None => {
                return error_frame(ProxyError::UnexpectedReply(
                    "reply from a node while merging",
                ))
            }
        }
    }
    let mut out = Vec::new();
    encode::integer(&mut out, total);
    Bytes::from(out)
}

pub(crate) fn merge_mget(parts: &[Bytes], order: &[(u32, u32)], proto: Proto) -> Bytes {
    let mut split = Vec::with_capacity(parts.len());
    for p in parts {
        match elements(p) {
            Some((_, els)) => split.push(els),
            None => {
                return error_frame(ProxyError::UnexpectedReply(
                    "reply from a node while merging",
                ))
            }
        }
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, order.len());
    for &(part, idx) in order {
        let r = split
            .get(part as usize)
            .and_then(|els| els.get(idx as usize))
            .cloned();
        match r {
            Some(r) => out.put_slice(&parts[part as usize][r]),
            None => encode::null(&mut out, proto),
        }
    }
    out.freeze()
}

pub(crate) fn merge_concat(parts: &[Bytes]) -> Bytes {
    let mut total = 0;
    let mut bodies = Vec::with_capacity(parts.len());
    for p in parts {
        match elements(p) {
            Some((_, els)) => {
                total += els.len();
                if let (Some(first), Some(last)) = (els.first(), els.last()) {
                    bodies.push(&p[first.start..last.end]);
                }
            }
            None => {
                return error_frame(ProxyError::UnexpectedReply(
                    "reply from a node while merging",
                ))
            }
        }
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, total);
    for b in bodies {
        out.put_slice(b);
    }
    out.freeze()
}

pub(crate) fn merge_and(parts: &[Bytes]) -> Bytes {
    let mut acc: Vec<i64> = Vec::new();
    for (k, p) in parts.iter().enumerate() {
        let Some((_, els)) = elements(p) else {
            return error_frame(ProxyError::UnexpectedReply(
                "reply from a node while merging",
            ));
        };
        let vals: Vec<i64> = els
            .iter()
            .map(|r| int_of(&p[r.clone()]).unwrap_or(0))
            .collect();
        if k == 0 {
            acc = vals;
        } else {
            for (a, v) in acc.iter_mut().zip(vals) {
                *a = (*a != 0 && v != 0) as i64;
            }
        }
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, acc.len());
    for v in acc {
        encode::integer(&mut out, v);
    }
    out.freeze()
}

pub(crate) fn merge_scan(parts: &[Bytes], master: u32, masters: u32, carried: &[Bytes]) -> Bytes {
    let Some(p) = parts.first() else {
        return error_frame(ProxyError::NoReply);
    };
    let Some((_, els)) = elements(p).filter(|(_, e)| e.len() == 2) else {
        return error_frame(ProxyError::UnexpectedReply("SCAN reply from a node"));
    };
    let cursor_frame = &p[els[0].clone()];
    let cursor = crate::resp::value::decode(cursor_frame)
        .ok()
        .and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()));
    let Some(cursor) = cursor else {
        return error_frame(ProxyError::UnexpectedReply("SCAN cursor from a node"));
    };
    let next = if cursor == 0 {
        if master + 1 < masters {
            encode_scan_cursor(master + 1, 0)
        } else {
            Some(0)
        }
    } else {
        encode_scan_cursor(master, cursor)
    };
    let Some(next) = next else {
        return error_frame(ProxyError::ScanCursorTooLarge);
    };
    let mut out = BytesMut::new();
    encode::array_header(&mut out, 2);
    encode::bulk(&mut out, next.to_string().as_bytes());
    let page = &p[els[1].clone()];
    if carried.is_empty() {
        out.put_slice(page);
        return out.freeze();
    }
    let Some((_, keys)) = elements(page) else {
        return error_frame(ProxyError::UnexpectedReply("SCAN reply from a node"));
    };
    encode::array_header(&mut out, carried.len() + keys.len());
    for k in carried {
        out.put_slice(k);
    }
    for k in keys {
        out.put_slice(&page[k]);
    }
    out.freeze()
}

pub(crate) fn merge_first_non_null(parts: &[Bytes], start: u32, proto: Proto) -> Bytes {
    let n = parts.len();
    (0..n)
        .map(|k| &parts[(start as usize + k) % n.max(1)])
        .find(|p| !is_null(p))
        .or_else(|| parts.first())
        .cloned()
        .unwrap_or_else(|| {
            let mut out = Vec::new();
            encode::null(&mut out, proto);
            Bytes::from(out)
        })
}

/// CONFIG GET's pairs (a flat array in RESP2, a map in RESP3) with the values of the
/// password parameters replaced.
fn redact_config(frame: &Bytes) -> Bytes {
    let Some((tag, els)) = elements(frame) else {
        return frame.clone();
    };
    let secret = |k: &[u8]| {
        let name = &k[k.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)..];
        name.eq_ignore_ascii_case(b"requirepass\r\n")
            || name.eq_ignore_ascii_case(b"masterauth\r\n")
    };
    if !els.chunks(2).any(|kv| secret(&frame[kv[0].clone()])) {
        return frame.clone();
    }
    let mut out = BytesMut::with_capacity(frame.len());
    let header_end = els.first().map_or(frame.len(), |r| r.start);
    out.put_slice(&frame[..header_end]);
    let _ = tag;
    for kv in els.chunks(2) {
        out.put_slice(&frame[kv[0].clone()]);
        if let Some(v) = kv.get(1) {
            if secret(&frame[kv[0].clone()]) {
                encode::bulk(&mut out, b"(redacted)");
            } else {
                out.put_slice(&frame[v.clone()]);
            }
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::split::{decode_scan_cursor, split, SetOp};
    use crate::slot::key_slot;

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
    fn config_passwords_are_redacted() {
        let resp2 = b("*4\r\n$11\r\nrequirepass\r\n$3\r\nsec\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
        assert_eq!(
            &merge(&Merge::Redact, &[resp2], Proto::Resp2)[..],
            b"*4\r\n$11\r\nrequirepass\r\n$10\r\n(redacted)\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
        let resp3 = b("%1\r\n$10\r\nmasterauth\r\n$3\r\nsec\r\n");
        assert_eq!(
            &merge(&Merge::Redact, &[resp3], Proto::Resp3)[..],
            b"%1\r\n$10\r\nmasterauth\r\n$10\r\n(redacted)\r\n"
        );
        let other = b("*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
        assert_eq!(
            merge(&Merge::Redact, std::slice::from_ref(&other), Proto::Resp2),
            other
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
        // Ids made unique over the nodes: 2 of node 0 -> 4, 7 of node 1 -> 15.
        assert!(s.starts_with("*2\r\n*6\r\n:4\r\n:200"), "{s}");
        assert!(
            s.contains(":15\r\n:150") && s.contains("n2:2") && !s.contains(":100"),
            "{s}"
        );
    }

    #[test]
    fn set_operations_over_slots() {
        let a = b("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
        let b2 = b("*2\r\n$1\r\nb\r\n$1\r\nd\r\n");
        let c3 = b("~2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        let u = merge(
            &Merge::Sets(SetOp::Union),
            &[a.clone(), b2.clone()],
            Proto::Resp2,
        );
        assert_eq!(
            &u[..],
            b"*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n"
        );
        let i = merge(
            &Merge::Sets(SetOp::Inter),
            &[a.clone(), c3.clone()],
            Proto::Resp3,
        );
        assert_eq!(&i[..], b"~2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        let d = merge(
            &Merge::Sets(SetOp::Diff),
            &[a.clone(), b2.clone()],
            Proto::Resp2,
        );
        assert_eq!(&d[..], b"*2\r\n$1\r\na\r\n$1\r\nc\r\n");
        let empty = merge(
            &Merge::Sets(SetOp::Inter),
            &[a.clone(), b("*0\r\n")],
            Proto::Resp2,
        );
        assert_eq!(&empty[..], b"*0\r\n");
        let wrong = b("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        assert_eq!(
            merge(
                &Merge::Sets(SetOp::Union),
                &[a, wrong.clone()],
                Proto::Resp2
            ),
            wrong
        );
    }

    #[test]
    fn scan_cursor() {
        let m = Merge::Scan {
            master: 0,
            masters: 3,
            want: 10,
            carried: Vec::new(),
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
            want: 10,
            carried: vec![b("$1\r\nz\r\n")],
        };
        // Keys carried from earlier masters come first.
        let r = merge(
            &last,
            &[b("*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n")],
            Proto::Resp2,
        );
        assert_eq!(&r[..], b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nz\r\n$1\r\na\r\n");
        let mid = merge(&last, &[b("*2\r\n$2\r\n17\r\n*0\r\n")], Proto::Resp2);
        let c = encode_scan_cursor(2, 17).unwrap();
        assert_eq!(decode_scan_cursor(c), (2, 17));
        assert!(std::str::from_utf8(&mid).unwrap().contains(&c.to_string()));
        assert_eq!(encode_scan_cursor(0, u64::MAX), None);
    }
}
