//! Keyspace and keyevent notifications from every master.
//!
//! A Redis Cluster publishes `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`
//! only on the node where the key lives (they never cross the cluster bus), so a subscriber
//! on one node hears a third of them. A client whose (P)SUBSCRIBE can match those channels
//! keeps its own subscription connection (its replies, its counts, the order of its
//! replies, and its home master's events, as before) and is also entered here: each worker
//! holds one fan-in connection per master, subscribed to the union of such channels and
//! patterns of its clients, and hands each notification to the clients subscribed to it.
//!
//! Shared fan-in connections rather than one per master per client: a thousand cache
//! invalidators cost the cluster a connection per master per worker, not three thousand,
//! and a failover re-subscribes one connection, not every client's.
//!
//! ```text
//!   client's (p)subscribe confirmed on its own connection --> entered (the first one for a
//!       name: (P)SUBSCRIBE on every fan-in connection)
//!   (p)unsubscribe confirmed / subscribed mode over / client gone --> left (the last one:
//!       (P)UNSUBSCRIBE; no name left: the connections close)
//!   every second while any name is held, and after a topology change: a connection to each
//!       master (new masters, broken connections), none to a node that is no longer one
//! ```
//!
//! Only messages whose channel is a keyspace or keyevent one are handed on from a fan-in
//! connection: anything PUBLISHed reaches every node anyway, and the client's own
//! connection delivers it once.

use std::collections::HashMap;

use bytes::Bytes;
use slab::Slab;

use crate::conn::client::Client;
use crate::conn::pool::BackendRef;
use crate::conn::role::BackendRole;
use crate::inflight::ClientRef;
use crate::reactor::{Core, Kill};
use crate::resp::encode::{self, Proto};
use crate::topology::NodeId;

const KEYSPACE: &[u8] = b"__keyspace@";
const KEYEVENT: &[u8] = b"__keyevent@";

/// A subscription name: a pattern (PSUBSCRIBE) or a channel (SUBSCRIBE).
type Name = (bool, Bytes);

/// The worker's fan-in connections and who listens through them.
#[derive(Default)]
pub(crate) struct FanIn {
    conns: Vec<(NodeId, BackendRef)>,
    subs: HashMap<Name, Vec<ClientRef>>,
    /// The once-a-second check is armed.
    pub(crate) armed: bool,
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
fn command(name: &[u8], args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::array_header(&mut out, 1 + args.len());
    encode::bulk(&mut out, name);
    for a in args {
        encode::bulk(&mut out, a);
    }
    out
}

impl Core {
    /// A subscriber's (un)subscription, confirmed by its own connection: `kind` is the
    /// reply's first element, lower-cased (`subscribe`, `punsubscribe`, ...), `name` the
    /// channel or pattern.
    pub(crate) fn fanin_track(&mut self, who: ClientRef, kind: &[u8], name: &[u8]) {
        let (pattern, on) = match kind {
            b"subscribe" => (false, true),
            b"unsubscribe" => (false, false),
            b"psubscribe" => (true, true),
            b"punsubscribe" => (true, false),
            _ => return,
        };
        let wanted = if pattern {
            notification_pattern(name)
        } else {
            notification_channel(name)
        };
        if !wanted {
            return;
        }
        let key = (pattern, Bytes::copy_from_slice(name));
        if on {
            let list = self.fanin.subs.entry(key.clone()).or_default();
            if list.contains(&who) {
                return;
            }
            list.push(who);
            if list.len() == 1 {
                let verb: &[u8] = if pattern { b"PSUBSCRIBE" } else { b"SUBSCRIBE" };
                self.fanin_send(&command(verb, &[&key.1]));
            }
            self.fanin_sync();
        } else {
            self.fanin_drop(who, Some(&key));
        }
    }

    /// `who` leaves `only` (None: every name it held).
    pub(crate) fn fanin_drop(&mut self, who: ClientRef, only: Option<&Name>) {
        if self.fanin.subs.is_empty() {
            return;
        }
        let mut emptied = Vec::new();
        for (key, list) in self.fanin.subs.iter_mut() {
            if only.is_some_and(|o| o != key) {
                continue;
            }
            list.retain(|c| *c != who);
            if list.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.fanin.subs.remove(&key);
            let verb: &[u8] = if key.0 {
                b"PUNSUBSCRIBE"
            } else {
                b"UNSUBSCRIBE"
            };
            self.fanin_send(&command(verb, &[&key.1]));
        }
        if self.fanin.subs.is_empty() {
            for (_, r) in std::mem::take(&mut self.fanin.conns) {
                if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                    self.take_backend(r.idx);
                }
            }
        }
    }

    fn fanin_send(&mut self, frame: &[u8]) {
        for i in 0..self.fanin.conns.len() {
            let r = self.fanin.conns[i].1;
            if let Some(b) = self.backends.get_mut(r.idx).filter(|b| b.gen == r.gen) {
                b.push_raw(frame);
                self.mark_backend(r.idx);
            }
        }
    }

    /// A fan-in connection to every master, none to other nodes: after a topology change,
    /// and once a second while any name is held (a broken connection comes back then).
    pub(crate) fn fanin_sync(&mut self) {
        if self.fanin.subs.is_empty() {
            return;
        }
        let masters = self.topo.masters_sorted();
        let mut keep = Vec::with_capacity(masters.len());
        for (node, r) in std::mem::take(&mut self.fanin.conns) {
            let live = self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen);
            if live && masters.contains(&node) {
                keep.push((node, r));
            } else if live {
                self.take_backend(r.idx);
            }
        }
        self.fanin.conns = keep;
        for node in masters {
            if self.fanin.conns.iter().any(|(n, _)| *n == node) {
                continue;
            }
            // A node that cannot be reached now is tried again on the next check.
            let Ok(idx) = self.connect_one(node, Proto::Resp2) else {
                continue;
            };
            let b = &mut self.backends[idx];
            b.role = BackendRole::FanIn;
            let r = BackendRef { idx, gen: b.gen };
            let (channels, patterns): (Vec<&Name>, Vec<&Name>) =
                self.fanin.subs.keys().partition(|k| !k.0);
            for (verb, names) in [(&b"SUBSCRIBE"[..], channels), (b"PSUBSCRIBE", patterns)] {
                if !names.is_empty() {
                    let args: Vec<&[u8]> = names.iter().map(|k| &k.1[..]).collect();
                    b.push_raw(&command(verb, &args));
                }
            }
            self.mark_backend(idx);
            self.fanin.conns.push((node, r));
        }
        if !self.fanin.armed {
            self.fanin.armed = true;
            self.timers.add(
                self.now + std::time::Duration::from_secs(1),
                crate::timer::TimerKind::FanIn,
            );
        }
    }

    /// The once-a-second check.
    pub(crate) fn fanin_tick(&mut self) {
        self.fanin.armed = false;
        self.fanin_sync();
    }

    /// A frame on a fan-in connection to `from`: a notification goes to every client
    /// subscribed to its pattern or channel whose own connection is not to `from` (that
    /// one delivered it already); the rest (subscription replies) is dropped.
    pub(crate) fn fanin_frame(&mut self, clients: &mut Slab<Client>, from: NodeId, frame: Bytes) {
        let Some((_, els)) = crate::resp::reply::elements(&frame) else {
            return;
        };
        let text = |i: usize| -> Option<&[u8]> {
            let r = els.get(i)?.clone();
            crate::resp::reply::bulk(&frame[r]).flatten()
        };
        let (key, channel) = match (text(0), els.len()) {
            (Some(b"pmessage"), 4) => ((true, text(1)), text(2)),
            (Some(b"message"), 3) => ((false, text(1)), text(1)),
            _ => return,
        };
        let (Some(name), Some(channel)) = (key.1, channel) else {
            return;
        };
        if !notification_channel(channel) {
            return;
        }
        let key = (key.0, Bytes::copy_from_slice(name));
        let Some(list) = self.fanin.subs.get(&key) else {
            return;
        };
        let mut gone = Vec::new();
        for &to in list {
            let Some(c) = clients.get_mut(to.idx).filter(|c| c.gen == to.gen) else {
                gone.push(to);
                continue;
            };
            let Some(own) = c.pubsub else {
                gone.push(to);
                continue;
            };
            if self.backends.get(own.idx).is_some_and(|b| b.node == from) {
                continue;
            }
            match c.proto {
                Proto::Resp2 => c.reply_now(&frame),
                Proto::Resp3 => {
                    // The same message as a push.
                    let mut push = Vec::with_capacity(frame.len());
                    push.push(b'>');
                    push.extend_from_slice(&frame[1..]);
                    c.reply_now(&push);
                }
            }
            if !c.dirty {
                c.dirty = true;
                self.wake.dirty_clients.push(to.idx);
            }
            if c.output_len() > self.wake.limits.hard_output {
                self.wake.kill.push((to, Kill::OutputLimit));
            }
        }
        for to in gone {
            self.fanin_drop(to, None);
        }
    }
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
