//! CLIENT UNBLOCK id [TIMEOUT|ERROR] through the proxy. The id is the proxy's (what CLIENT
//! ID answers through it). A client's blocking command waits on a dedicated connection
//! (`Core::busy_dedicated`), which its node knows by another id: `Backend::node_client_id`,
//! asked with CLIENT ID ahead of the first blocking command on that connection (`Core::send`).
//! The proxy sends CLIENT UNBLOCK <that id> [reason] to that node, whose `:1` or `:0` is the
//! answer; the blocked client gets its node's reply as usual (a nil for TIMEOUT,
//! `-UNBLOCKED ...` for ERROR).
//!
//! ```text
//!   args bad --> Redis's error          not this worker's client / not blocked --> :0
//!   node id Known --> CLIENT UNBLOCK to the node (its reply is the answer)
//!   node id Asked (CLIENT ID in flight) --> waits on the connection (`Backend::unblocks`),
//!       run again once the id is in or the connection is gone (then :0)
//!   node id Refused (no CLIENT ID for the proxy's user) --> :0
//! ```
//! Client ids are handed out per worker (worker w of N: w+1, w+1+N, ...), and a worker
//! reaches only its own node connections: with `workers` > 1, a client of another worker
//! gets `:0`, as an id that is not blocked does.

use crate::conn::backend::{NodeClientId, WaitingUnblock};
use crate::conn::role::BackendRole;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::reactor::{Core, Reactor};
use crate::resp::encode;
use crate::route::Local;
use bytes::BytesMut;

const ZERO: &[u8] = b":0\r\n";

/// CLIENT UNBLOCK's arguments, checked in Redis's order (the reason first, then the id):
/// the id and the reason as given, or Redis's error.
fn unblock_args(argv: &[Vec<u8>]) -> Result<(i64, Option<&[u8]>), ProxyError> {
    if argv.len() > 4 {
        let sub = String::from_utf8_lossy(argv.get(1).map_or(&[][..], |a| a)).into_owned();
        return Err(ProxyError::ClientSubcommandArity(sub));
    }
    let reason = argv.get(3).map(Vec::as_slice);
    if let Some(r) = reason {
        if !r.eq_ignore_ascii_case(b"TIMEOUT") && !r.eq_ignore_ascii_case(b"ERROR") {
            return Err(ProxyError::UnblockReason);
        }
    }
    let id = argv
        .get(2)
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(ProxyError::NotAnInteger)?;
    Ok((id, reason))
}

impl Reactor {
    /// CLIENT UNBLOCK for the client `me` (reply place `seq`): the answer, or `None` when
    /// it comes from the node (or later, see the module's diagram).
    pub(crate) fn client_unblock(
        &mut self,
        me: ClientRef,
        seq: u64,
        argv: &[Vec<u8>],
    ) -> Option<Vec<u8>> {
        let (id, reason) = match unblock_args(argv) {
            Ok(a) => a,
            Err(e) => return Some(e.to_frame()),
        };
        let target = self
            .clients
            .iter()
            .find(|(_, c)| i64::try_from(c.id) == Ok(id))
            .map(|(idx, c)| ClientRef { idx, gen: c.gen });
        let Some(target) = target else {
            return Some(ZERO.to_vec());
        };
        let core = &mut self.core;
        let held = core
            .busy_dedicated
            .iter()
            .find(|(c, b)| *c == target && core.is_blocking(*b))
            .map(|(_, b)| *b);
        let Some(b) = held.and_then(|r| core.backends.get_mut(r.idx).filter(|b| b.gen == r.gen))
        else {
            return Some(ZERO.to_vec());
        };
        let node_id = match b.node_client_id {
            NodeClientId::Known(n) => n,
            NodeClientId::Asked => {
                b.unblocks.push(WaitingUnblock {
                    client: me,
                    seq,
                    argv: argv.to_vec(),
                });
                return None;
            }
            NodeClientId::Unknown | NodeClientId::Refused => return Some(ZERO.to_vec()),
        };
        let node = b.node;
        let mut frame = BytesMut::new();
        let n = if reason.is_some() { 4 } else { 3 };
        encode::array_header(&mut frame, n);
        encode::bulk(&mut frame, b"CLIENT");
        encode::bulk(&mut frame, b"UNBLOCK");
        encode::bulk(&mut frame, node_id.to_string().as_bytes());
        if let Some(r) = reason {
            encode::bulk(&mut frame, r);
        }
        let c = self.clients.get_mut(me.idx).filter(|c| c.gen == me.gen)?;
        // The unblocker's last dispatched command may have been a write; this is not one
        // (WAIT must not count this node as written to).
        let writes = std::mem::replace(&mut c.writes, false);
        // On the unblocker's shared connection to that node: never behind the blocked
        // command, which has a connection of its own.
        self.core.send_client(
            c,
            me,
            seq,
            0,
            node,
            frame.freeze(),
            None,
            BackendRole::Shared,
        );
        c.writes = writes;
        None
    }
}

impl Core {
    /// CLIENT UNBLOCKs that waited on a connection for its node id, run again with the
    /// turn's deferred requests: the id is in now, or the connection is gone (then the
    /// target is no longer blocked there and the answer is `:0`). `wake`: the connection
    /// went away outside a read, so the next turn must come at once to answer them.
    pub(crate) fn requeue_unblocks(&mut self, waiting: Vec<WaitingUnblock>, wake: bool) {
        for w in waiting {
            if wake {
                self.wake.resume_clients.push(w.client.idx);
            }
            self.deferred.push((
                w.client,
                w.seq,
                Local::ClientUnblock,
                w.argv,
                "client|unblock",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn arguments_as_redis_checks_them() {
        let ok = |a: &[&str]| unblock_args(&argv(a)).map(|(id, r)| (id, r.map(<[u8]>::to_vec)));
        assert_eq!(ok(&["CLIENT", "UNBLOCK", "5"]), Ok((5, None)));
        assert_eq!(ok(&["CLIENT", "UNBLOCK", "-1"]), Ok((-1, None)));
        assert_eq!(
            ok(&["client", "unblock", "7", "error"]),
            Ok((7, Some(b"error".to_vec())))
        );
        assert_eq!(
            ok(&["CLIENT", "UNBLOCK", "7", "TIMEOUT"]),
            Ok((7, Some(b"TIMEOUT".to_vec())))
        );
        assert_eq!(
            ok(&["CLIENT", "UNBLOCK", "abc"]),
            Err(ProxyError::NotAnInteger)
        );
        assert_eq!(
            ok(&["CLIENT", "UNBLOCK", "99999999999999999999"]),
            Err(ProxyError::NotAnInteger)
        );
        // The reason is checked before the id, as Redis does.
        assert_eq!(
            ok(&["CLIENT", "UNBLOCK", "abc", "foo"]),
            Err(ProxyError::UnblockReason)
        );
        assert_eq!(
            ok(&["CLIENT", "UNBLOCK", "5", "timeout", "x"]),
            Err(ProxyError::ClientSubcommandArity("UNBLOCK".into()))
        );
    }
}
