//! SUNION, SINTER, SDIFF over the members each slot's part answered: shared by the split
//! reads (`route::merge`) and the STORE forms (`write`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProxyError;
use crate::resp::encode::{self, Proto};
use crate::resp::reply::elements;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Inter,
    Diff,
}

/// SUNION/SINTER/SDIFF from each slot's part: members as the nodes sent them (bulk
/// strings), in the order first seen; a set in RESP3, an array in RESP2, as Redis answers.
pub fn merge_sets(parts: &[Bytes], op: SetOp, proto: Proto) -> Bytes {
    let mut sets: Vec<Vec<&[u8]>> = Vec::with_capacity(parts.len());
    for p in parts {
        let Some((_, els)) = elements(p) else {
            return Bytes::from(ProxyError::UnexpectedReply("set members from a node").to_frame());
        };
        sets.push(els.into_iter().map(|r| &p[r]).collect());
    }
    let mut seen = std::collections::HashSet::new();
    let mut out_members: Vec<&[u8]> = Vec::new();
    match op {
        SetOp::Union => {
            for m in sets.iter().flatten() {
                if seen.insert(*m) {
                    out_members.push(m);
                }
            }
        }
        SetOp::Inter | SetOp::Diff => {
            let Some((first, rest)) = sets.split_first() else {
                return Bytes::from(ProxyError::NoReply.to_frame());
            };
            let rest: Vec<std::collections::HashSet<&[u8]>> =
                rest.iter().map(|s| s.iter().copied().collect()).collect();
            for m in first {
                let keep = match op {
                    SetOp::Inter => rest.iter().all(|s| s.contains(m)),
                    _ => !rest.iter().any(|s| s.contains(m)),
                };
                if keep && seen.insert(*m) {
                    out_members.push(m);
                }
            }
        }
    }
    let mut out = BytesMut::new();
    match proto {
        Proto::Resp3 => {
            out.put_u8(b'~');
            out.put_slice(out_members.len().to_string().as_bytes());
            out.put_slice(b"\r\n");
        }
        Proto::Resp2 => encode::array_header(&mut out, out_members.len()),
    }
    for m in out_members {
        out.put_slice(m);
    }
    out.freeze()
}
