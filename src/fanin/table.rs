//! The fan-in's table (`fanin/mod.rs`): its connections, the names they carry and who
//! listens to each; and the pure parts: which names are notifications, the frames sent.

use std::collections::HashMap;

use crate::conn::pool::BackendRef;
use crate::inflight::ClientRef;
use crate::resp::encode::{self, Proto};
use crate::topology::NodeId;
use bytes::Bytes;

const KEYSPACE: &[u8] = b"__keyspace@";
const KEYEVENT: &[u8] = b"__keyevent@";

/// A subscription name: a pattern (PSUBSCRIBE) or a channel (SUBSCRIBE).
pub(crate) type Name = (bool, Bytes);

/// The worker's fan-in connections and who listens through them.
#[derive(Default)]
pub(crate) struct FanIn {
    pub(crate) conns: Vec<(NodeId, BackendRef)>,
    /// Notification channels and patterns.
    pub(crate) subs: HashMap<Name, Vec<ClientRef>>,
    /// Each notification subscriber's own subscription node: it hears that node's events
    /// there, so a fan-in connection subscribes the names only on nodes where some
    /// subscriber's own connection is not (none, usually, on the subscriptions' master: its
    /// PUBLISH and NUMSUB counts then count each client once, as one server would).
    pub(crate) homes: HashMap<ClientRef, NodeId>,
    /// The fan-in connections that carry the notification names now.
    pub(crate) notifying: Vec<BackendRef>,
    /// Shard channels.
    pub(crate) shard: HashMap<Bytes, Shard>,
    /// SUNSUBSCRIBEs the proxy sent whose reply is still to come, by node and channel: that
    /// reply is not a node dropping the channel (it may be subscribed there again by then).
    pub(crate) unsub_sent: HashMap<(NodeId, Bytes), u32>,
    /// The once-a-second check is armed.
    pub(crate) armed: bool,
    /// Some client of the worker tracks keys (`tracking/`): every connection runs
    /// CLIENT TRACKING ON BCAST.
    pub(crate) tracking: bool,
    /// The masters whose connection confirmed it (its +OK came).
    pub(crate) confirmed: Vec<NodeId>,
    /// Every master confirmed once since tracking began: a confirmation after that is a
    /// connection re-established, across which changes may have gone unseen.
    pub(crate) ready: bool,
    /// When tracking began (the wait for the confirmations is bounded).
    pub(crate) since: Option<std::time::Instant>,
}

/// A shard channel's subscribers and where it is subscribed.
#[derive(Default)]
pub(crate) struct Shard {
    pub(crate) clients: Vec<ClientRef>,
    /// The master whose fan-in connection carries its SSUBSCRIBE (None: not yet, or the
    /// node dropped it).
    pub(crate) on: Option<NodeId>,
    /// The node dropped its subscribers (the slot left it), at this time.
    pub(crate) dropped: Option<(NodeId, std::time::Instant)>,
}

impl FanIn {
    pub(crate) fn idle(&self) -> bool {
        self.subs.is_empty() && self.shard.is_empty() && !self.tracking
    }
}

/// Whether a SUBSCRIBE channel is a notification one.
pub(crate) fn notification_channel(ch: &[u8]) -> bool {
    ch.starts_with(KEYSPACE) || ch.starts_with(KEYEVENT)
}

/// Whether a PSUBSCRIBE pattern may match a notification channel: its literal part before
/// the first special character (`*`, `?`, `[`, `\`) leads into, or starts with,
/// `__keyspace@` or `__keyevent@`. Conservative: a pattern let in that matches nothing
/// only costs a subscription on each master.
pub(crate) fn notification_pattern(p: &[u8]) -> bool {
    let lit = p
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .map_or(p, |i| &p[..i]);
    let wild = lit.len() < p.len();
    [KEYSPACE, KEYEVENT]
        .iter()
        .any(|pre| lit.starts_with(pre) || (wild && pre.starts_with(lit)))
}

/// The RESP2 frame of a command with these arguments.
pub(crate) fn command(name: &[u8], args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::array_header(&mut out, 1 + args.len());
    encode::bulk(&mut out, name);
    for a in args {
        encode::bulk(&mut out, a);
    }
    out
}

/// A (un)subscription reply as Redis writes it: `[kind, channel or nil, count]`.
pub(crate) fn sub_reply(
    out: &mut Vec<u8>,
    proto: Proto,
    kind: &[u8],
    ch: Option<&[u8]>,
    count: u64,
) {
    out.extend_from_slice(match proto {
        Proto::Resp3 => b">3\r\n",
        Proto::Resp2 => b"*3\r\n",
    });
    encode::bulk(out, kind);
    match ch {
        Some(ch) => encode::bulk(out, ch),
        None => encode::null(out, proto),
    }
    encode::integer(out, count as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_names_are_fanned_in() {
        for p in [
            "*",
            "__key*",
            "__keyspace@0__:*",
            "__keyevent@*__:expired",
            "__k?y*",
            "_*",
            "__keyspace@0__:user:[ab]*",
        ] {
            assert!(notification_pattern(p.as_bytes()), "{p}");
        }
        for p in ["news.*", "__keyspace", "__keyspacex*", "x*", "__rcp*x", ""] {
            assert!(!notification_pattern(p.as_bytes()), "{p}");
        }
        assert!(notification_channel(b"__keyevent@0__:expired"));
        assert!(notification_channel(b"__keyspace@3__:k"));
        assert!(!notification_channel(b"news"));
    }
}
