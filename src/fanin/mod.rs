//! A worker's fan-in connections: one per master, shared by its subscribers, for what a
//! Redis Cluster keeps on one node while a client of the proxy expects one server.
//!
//! **Keyspace and keyevent notifications.** A cluster publishes `__keyspace@<db>__:<key>`
//! and `__keyevent@<db>__:<event>` only on the node where the key lives (they never cross
//! the cluster bus), so a subscriber on one node hears a third of them. A client whose
//! (P)SUBSCRIBE can match those channels keeps its own subscription connection (its
//! replies, its counts, the order of its replies, and its home master's events, as before)
//! and is also entered here: the fan-in connections are subscribed to the union of such
//! channels and patterns of the worker's clients, and each notification goes to the clients
//! subscribed to it. Only notification channels are handed on from a fan-in connection:
//! anything PUBLISHed reaches every node anyway, and the client's own connection delivers it
//! once.
//!
//! **Shard channels.** Every SSUBSCRIBE is taken here, whatever the shard: the channel is
//! subscribed on its slot's master's fan-in connection (once for all the worker's clients),
//! the proxy answers the subscription itself (in its place among the client's replies, see
//! `pubsub::stream_push`), and SMESSAGEs go to the channel's clients. When the slot moves
//! (a migration, a failover) the node drops its subscribers with an SUNSUBSCRIBE; the proxy
//! subscribes again on the new owner, and the client never sees it.
//!
//! Shared connections rather than one per master per client: a thousand cache invalidators
//! cost the cluster a connection per master per worker, not three thousand, and a failover
//! re-subscribes one connection, not every client's.
//!
//! ```text
//!   a name wanted by its first client --> (P|S)SUBSCRIBE on the fan-in connection(s)
//!   its last client gone (unsubscribed, subscribed mode over, disconnected) --> (P|S)UNSUBSCRIBE;
//!       nothing left at all: the connections close
//!   every second while anything is held, and after a topology change: a connection to each
//!       master (new masters, broken connections), none to a node that is no longer one;
//!       shard channels whose owner changed, or that a node dropped, subscribed again
//! ```

use bytes::Bytes;
use slab::Slab;

use crate::conn::client::Client;
use crate::conn::pool::BackendRef;
use crate::conn::role::BackendRole;
use crate::inflight::ClientRef;
use crate::reactor::{Core, Kill};
use crate::resp::encode::Proto;
use crate::slot::key_slot;
use crate::topology::NodeId;

pub(crate) mod table;

use table::{command, notification_channel, notification_pattern, sub_reply, Name};

impl Core {
    /// A subscriber's (un)subscription, confirmed by its own connection: `kind` is the
    /// reply's first element, lower-cased (`subscribe`, `punsubscribe`, ...), `name` the
    /// channel or pattern.
    pub(crate) fn fanin_track(&mut self, who: ClientRef, home: NodeId, kind: &[u8], name: &[u8]) {
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
                self.fanin_send_notifying(&command(verb, &[&key.1]));
            }
            self.fanin.homes.insert(who, home);
            self.fanin_sync();
        } else {
            self.fanin_drop(who, Some(&key));
        }
    }

    /// SSUBSCRIBE: the client joins each channel (subscribed on its master's fan-in
    /// connection when it is the first); the replies, Redis's, with the client's count of
    /// shard channels, are returned for the caller to place in the client's order.
    pub(crate) fn shard_subscribe(
        &mut self,
        c: &mut Client,
        who: ClientRef,
        channels: &[&[u8]],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for &ch in channels {
            let entry = self
                .fanin
                .shard
                .entry(Bytes::copy_from_slice(ch))
                .or_default();
            if !entry.clients.contains(&who) {
                entry.clients.push(who);
                c.subscriptions[2] += 1;
            }
            sub_reply(
                &mut out,
                c.proto,
                b"ssubscribe",
                Some(ch),
                c.subscriptions[2],
            );
        }
        self.fanin_sync();
        out
    }

    /// For a node's count of each shard channel's subscribers: the proxy's clients in place
    /// of its one fan-in subscription (this worker's; another worker's counts as one).
    pub(crate) fn shard_adjust<'a>(&self, channels: impl Iterator<Item = &'a [u8]>) -> Vec<i64> {
        channels
            .map(|ch| match self.fanin.shard.get(ch) {
                Some(s) if s.on.is_some() => s.clients.len() as i64 - 1,
                Some(s) => s.clients.len() as i64,
                None => 0,
            })
            .collect()
    }

    /// SUNSUBSCRIBE of these channels (none: every one of the client's); Redis's replies.
    pub(crate) fn shard_unsubscribe(
        &mut self,
        c: &mut Client,
        who: ClientRef,
        channels: &[&[u8]],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let names: Vec<Bytes> = if channels.is_empty() {
            let mut mine: Vec<Bytes> = self
                .fanin
                .shard
                .iter()
                .filter(|(_, s)| s.clients.contains(&who))
                .map(|(k, _)| k.clone())
                .collect();
            mine.sort();
            mine
        } else {
            channels
                .iter()
                .map(|ch| Bytes::copy_from_slice(ch))
                .collect()
        };
        if names.is_empty() {
            sub_reply(&mut out, c.proto, b"sunsubscribe", None, c.subscriptions[2]);
        }
        for ch in names {
            if self.shard_leave(who, &ch) {
                c.subscriptions[2] = c.subscriptions[2].saturating_sub(1);
            }
            sub_reply(
                &mut out,
                c.proto,
                b"sunsubscribe",
                Some(&ch),
                c.subscriptions[2],
            );
        }
        out
    }

    /// `who` leaves one shard channel (the last one out unsubscribes it); whether it was in.
    fn shard_leave(&mut self, who: ClientRef, ch: &Bytes) -> bool {
        let Some(s) = self.fanin.shard.get_mut(ch) else {
            return false;
        };
        let Some(i) = s.clients.iter().position(|c| *c == who) else {
            return false;
        };
        s.clients.swap_remove(i);
        if s.clients.is_empty() {
            let on = s.on;
            self.fanin.shard.remove(ch);
            if let Some(node) = on {
                self.shard_unsubscribe_on(node, ch);
            }
            self.fanin_close_if_idle();
        }
        true
    }

    /// `who` leaves `only` (None: every name it held, shard channels included).
    pub(crate) fn fanin_drop(&mut self, who: ClientRef, only: Option<&Name>) {
        if self.fanin.idle() {
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
            self.fanin_send_notifying(&command(verb, &[&key.1]));
        }
        if !self.fanin.subs.values().any(|l| l.contains(&who))
            && self.fanin.homes.remove(&who).is_some()
        {
            self.notify_sync();
        }
        if only.is_none() {
            let mine: Vec<Bytes> = self
                .fanin
                .shard
                .iter()
                .filter(|(_, s)| s.clients.contains(&who))
                .map(|(k, _)| k.clone())
                .collect();
            for ch in mine {
                self.shard_leave(who, &ch);
            }
        }
        self.fanin_close_if_idle();
    }

    /// The proxy's own SUNSUBSCRIBE of `ch` on `node`'s connection, noted (see `unsub_sent`).
    fn shard_unsubscribe_on(&mut self, node: NodeId, ch: &Bytes) {
        if self.fanin_send_to(node, &command(b"SUNSUBSCRIBE", &[ch])) {
            *self.fanin.unsub_sent.entry((node, ch.clone())).or_default() += 1;
        }
    }

    fn fanin_close_if_idle(&mut self) {
        if self.fanin.idle() {
            self.fanin.unsub_sent.clear();
            for (_, r) in std::mem::take(&mut self.fanin.conns) {
                if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                    self.take_backend(r.idx);
                }
            }
        }
    }

    /// To the connections that carry the notification names.
    fn fanin_send_notifying(&mut self, frame: &[u8]) {
        for r in self.fanin.notifying.clone() {
            if let Some(b) = self.backends.get_mut(r.idx).filter(|b| b.gen == r.gen) {
                b.push_raw(frame);
                self.mark_backend(r.idx);
            }
        }
    }

    /// Each connection carries the notification names where some subscriber's own
    /// connection is elsewhere, and not otherwise.
    fn notify_sync(&mut self) {
        let (channels, patterns): (Vec<Bytes>, Vec<Bytes>) = {
            let (c, p): (Vec<&Name>, Vec<&Name>) = self.fanin.subs.keys().partition(|k| !k.0);
            (
                c.into_iter().map(|k| k.1.clone()).collect(),
                p.into_iter().map(|k| k.1.clone()).collect(),
            )
        };
        let conns = self.fanin.conns.clone();
        self.fanin
            .notifying
            .retain(|r| conns.iter().any(|(_, c)| c == r));
        for (node, r) in conns {
            let want = !self.fanin.subs.is_empty() && self.fanin.homes.values().any(|h| *h != node);
            let has = self.fanin.notifying.contains(&r);
            if want == has {
                continue;
            }
            let (sub, psub): (&[u8], &[u8]) = if want {
                (b"SUBSCRIBE", b"PSUBSCRIBE")
            } else {
                (b"UNSUBSCRIBE", b"PUNSUBSCRIBE")
            };
            for (verb, names) in [(sub, &channels), (psub, &patterns)] {
                if !names.is_empty() {
                    let args: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
                    self.fanin_send_to(node, &command(verb, &args));
                }
            }
            if want {
                self.fanin.notifying.push(r);
            } else {
                self.fanin.notifying.retain(|x| *x != r);
            }
        }
    }

    fn fanin_send_all(&mut self, frame: &[u8]) {
        for i in 0..self.fanin.conns.len() {
            let node = self.fanin.conns[i].0;
            self.fanin_send_to(node, frame);
        }
    }

    /// Whether the frame could be queued on `node`'s fan-in connection.
    fn fanin_send_to(&mut self, node: NodeId, frame: &[u8]) -> bool {
        let Some(&(_, r)) = self.fanin.conns.iter().find(|(n, _)| *n == node) else {
            return false;
        };
        let Some(b) = self.backends.get_mut(r.idx).filter(|b| b.gen == r.gen) else {
            return false;
        };
        b.push_raw(frame);
        self.mark_backend(r.idx);
        true
    }

    /// A fan-in connection to every master, none to other nodes, and each shard channel
    /// subscribed on its slot's master: after a topology change, and once a second while
    /// anything is held (a broken connection comes back then).
    pub(crate) fn fanin_sync(&mut self) {
        if self.fanin.idle() {
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
        let live: Vec<NodeId> = self.fanin.conns.iter().map(|(n, _)| *n).collect();
        self.fanin.confirmed.retain(|n| live.contains(n));
        self.fanin.unsub_sent.retain(|(n, _), _| live.contains(n));
        // Shard channels carried by a connection that is gone are subscribed again.
        let conns = self.fanin.conns.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        for s in self.fanin.shard.values_mut() {
            if s.on.is_some_and(|n| !conns.contains(&n)) {
                s.on = None;
            }
        }
        for node in masters {
            if self.fanin.conns.iter().any(|(n, _)| *n == node) {
                continue;
            }
            // A node that cannot be reached now is tried again on the next check. RESP3:
            // tracking's invalidations come as pushes on the connection itself.
            let Ok(idx) = self.connect_one(node, Proto::Resp3) else {
                continue;
            };
            let b = &mut self.backends[idx];
            b.role = BackendRole::FanIn;
            if self.fanin.tracking {
                b.push_raw(&command(b"CLIENT", &[b"TRACKING", b"ON", b"BCAST"]));
            }
            let r = BackendRef { idx, gen: b.gen };
            self.mark_backend(idx);
            self.fanin.conns.push((node, r));
        }
        self.notify_sync();
        self.shard_sync();
        if !self.fanin.armed {
            self.fanin.armed = true;
            self.timers.add(
                self.now + std::time::Duration::from_secs(1),
                crate::timer::TimerKind::FanIn,
            );
        }
    }

    /// Each shard channel on its slot's master: subscribed where it is not yet, moved
    /// where the slot moved. One the node dropped is taken again once the proxy sees
    /// another owner, or after two seconds (a drop the map does not show, such as a
    /// failed migration).
    fn shard_sync(&mut self) {
        let mut moves: Vec<(Bytes, Option<NodeId>, NodeId)> = Vec::new();
        for (ch, s) in &self.fanin.shard {
            let Some(owner) = self.topo.owner(key_slot(ch)) else {
                continue;
            };
            if s.on == Some(owner) {
                continue;
            }
            if let Some((from, at)) = s.dropped {
                let waited = self.now.saturating_duration_since(at);
                if from == owner && waited < std::time::Duration::from_secs(2) {
                    continue;
                }
            }
            moves.push((ch.clone(), s.on, owner));
        }
        for (ch, old, owner) in moves {
            if !self.fanin_send_to(owner, &command(b"SSUBSCRIBE", &[&ch])) {
                continue;
            }
            if let Some(old) = old {
                self.shard_unsubscribe_on(old, &ch);
            }
            if let Some(s) = self.fanin.shard.get_mut(&ch) {
                s.on = Some(owner);
                s.dropped = None;
            }
        }
    }

    /// The once-a-second check.
    pub(crate) fn fanin_tick(&mut self, clients: &mut Slab<Client>) {
        self.fanin.armed = false;
        if self.fanin.tracking && self.tracking.prune(clients) {
            self.fanin_tracking(false);
        }
        // A master that never confirms (down, say) does not hold tracking clients for
        // long: they are answered, told to flush once every master did.
        let waited = self.fanin.since.is_some_and(|t| {
            self.now.saturating_duration_since(t) >= std::time::Duration::from_secs(1)
        });
        if self.fanin.tracking && !self.fanin.ready && waited {
            self.tracking_answer_waiting(clients, true);
        }
        self.tell_evicted(clients);
        self.fanin_sync();
    }

    /// The first tracking client of the worker came (`on`), or the last left: every
    /// master's connection starts or stops telling the proxy each key it changes.
    pub(crate) fn fanin_tracking(&mut self, on: bool) {
        if self.fanin.tracking == on {
            return;
        }
        self.fanin.tracking = on;
        self.fanin.confirmed.clear();
        self.fanin.ready = false;
        self.fanin.since = on.then_some(self.now);
        let verb: &[u8] = if on { b"ON" } else { b"OFF" };
        let args: &[&[u8]] = if on {
            &[b"TRACKING", verb, b"BCAST"]
        } else {
            &[b"TRACKING", verb]
        };
        self.fanin_send_all(&command(b"CLIENT", args));
        if on {
            self.fanin_sync();
        } else {
            self.fanin_close_if_idle();
        }
    }

    /// A frame on a fan-in connection to `from`. A notification goes to every client
    /// subscribed to its pattern or channel whose own connection is not to `from` (that
    /// one delivered it already); a shard message to the channel's clients; an
    /// SUNSUBSCRIBE the proxy did not ask for (the slot left the node) has the channel
    /// subscribed again on its new owner; the rest (subscription replies) is dropped.
    pub(crate) fn fanin_frame(&mut self, clients: &mut Slab<Client>, from: NodeId, frame: Bytes) {
        if frame.starts_with(b"+OK") && self.fanin.tracking {
            // CLIENT TRACKING ON BCAST took effect on this master.
            if !self.fanin.confirmed.contains(&from) {
                self.fanin.confirmed.push(from);
            }
            if self.fanin.ready {
                // A connection re-established (or a new master): what clients read
                // meanwhile may have changed unseen, so they start afresh.
                return self.tracking_flush(clients);
            }
            let masters = self.topo.masters_sorted();
            if masters.iter().all(|m| self.fanin.confirmed.contains(m)) {
                self.fanin.ready = true;
                self.tracking_answer_waiting(clients, false);
            }
            return;
        }
        if frame.first() == Some(&b'-') {
            log::debug!(
                "fan-in connection to {}: {}",
                self.topo.node(from).addr,
                String::from_utf8_lossy(&frame).trim_end()
            );
            return;
        }
        let Some((_, els)) = crate::resp::reply::elements(&frame) else {
            return;
        };
        let text = |i: usize| -> Option<&[u8]> {
            let r = els.get(i)?.clone();
            crate::resp::reply::bulk(&frame[r]).flatten()
        };
        let Some(kind) = text(0) else { return };
        if kind == b"invalidate" && els.len() == 2 {
            // Keys this master changed (an array), or everything (null: a FLUSHALL).
            let keys = crate::resp::reply::elements(&frame[els[1].clone()]).map(|(_, ks)| {
                let arr = &frame[els[1].clone()];
                ks.into_iter()
                    .filter_map(|r| crate::resp::reply::bulk(&arr[r]).flatten())
                    .map(Bytes::copy_from_slice)
                    .collect::<Vec<_>>()
            });
            return self.tracking_invalidate(clients, keys);
        }
        if kind.eq_ignore_ascii_case(b"smessage") && els.len() == 3 {
            let Some(ch) = text(1) else { return };
            let list = match self.fanin.shard.get(ch) {
                Some(s) if s.on == Some(from) => s.clients.clone(),
                _ => return,
            };
            let gone = self.fanin_deliver(clients, &list, &frame, None);
            for to in gone {
                self.fanin_drop(to, None);
            }
            return;
        }
        if kind.eq_ignore_ascii_case(b"sunsubscribe") && els.len() == 3 {
            let Some(ch) = text(1) else { return };
            let sent = (from, Bytes::copy_from_slice(ch));
            if let Some(n) = self.fanin.unsub_sent.get_mut(&sent) {
                // The reply to the proxy's own SUNSUBSCRIBE.
                *n -= 1;
                if *n == 0 {
                    self.fanin.unsub_sent.remove(&sent);
                }
                return;
            }
            if let Some(s) = self.fanin.shard.get_mut(ch).filter(|s| s.on == Some(from)) {
                s.on = None;
                s.dropped = Some((from, self.now));
                log::debug!(
                    "shard channel {} dropped by {}; subscribing again on its slot's owner",
                    String::from_utf8_lossy(ch),
                    self.topo.node(from).addr
                );
                self.request_refresh(std::time::Duration::ZERO);
            }
            return;
        }
        let (key, channel) = match (kind, els.len()) {
            (b"pmessage", 4) => ((true, text(1)), text(2)),
            (b"message", 3) => ((false, text(1)), text(1)),
            _ => return,
        };
        let (Some(name), Some(channel)) = (key.1, channel) else {
            return;
        };
        if !notification_channel(channel) {
            return;
        }
        let key = (key.0, Bytes::copy_from_slice(name));
        let Some(list) = self.fanin.subs.get(&key).cloned() else {
            return;
        };
        let gone = self.fanin_deliver(clients, &list, &frame, Some(from));
        for to in gone {
            self.fanin_drop(to, None);
        }
    }

    /// Hands a message to each client of `list` still subscribed (not those whose own
    /// connection is to `skip`); returns the clients gone meanwhile.
    fn fanin_deliver(
        &mut self,
        clients: &mut Slab<Client>,
        list: &[ClientRef],
        frame: &[u8],
        skip: Option<NodeId>,
    ) -> Vec<ClientRef> {
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
            if skip.is_some() && self.backends.get(own.idx).map(|b| b.node) == skip {
                continue;
            }
            // The connection speaks RESP3 (pushes); a RESP2 subscriber gets the same
            // elements as an array.
            match c.proto {
                Proto::Resp3 => c.reply_now(frame),
                Proto::Resp2 => {
                    let mut arr = Vec::with_capacity(frame.len());
                    arr.push(b'*');
                    arr.extend_from_slice(&frame[1..]);
                    c.reply_now(&arr);
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
        gone
    }
}
