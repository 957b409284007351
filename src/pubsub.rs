//! Subscribed mode: a subscriber's own connection to one node whose frames stream to the
//! client, with the proxy's own replies ordered among them by PING echoes.

use crate::command::Args;
use crate::conn::client::{Client, StreamItem};
use crate::conn::pool::BackendRef;
use crate::conn::role::BackendRole;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::reactor::{Core, Kill};
use crate::resp::encode::{self, Proto};
use crate::route::{Channels, Kind, Local, Routed, SubOp};
use crate::topology::NodeId;
use bytes::Bytes;
use slab::Slab;

/// The PING argument that orders a subscriber's stream (`stream_push`).
pub(crate) const STREAM_MARK: &str = "__rcp_order__:";

impl Core {
    /// Pub/sub: a subscriber gets a connection of its own to one node and every frame on it
    /// (subscription replies, messages) streams to the client. Classic channels live on one
    /// fixed master (the cluster forwards every PUBLISH to every node, and PUBSUB CHANNELS /
    /// NUMSUB are asked there too); shard channels on their slot's master.
    pub(crate) fn pubsub(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        routed: Routed,
    ) {
        if let Some(r) = c.pubsub {
            if self.backends.get(r.idx).is_none_or(|b| b.gen != r.gen) {
                c.pubsub = None;
                return c.reply_now(&ProxyError::SubscriptionLost.to_frame());
            }
            return self.subscribed(c, cref, r, frame, args, routed);
        }
        match routed.kind {
            Kind::Sub(op @ SubOp::Unsubscribe(_)) => {
                c.reply_now(&not_subscribed(op, args, c.proto))
            }
            Kind::Sub(op) => self.subscribe(c, cref, frame, args, op),
            _ => {}
        }
    }

    /// A command of a client in subscribed mode.
    fn subscribed(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        r: BackendRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        routed: Routed,
    ) {
        match routed.kind {
            // Not before the replies of what came before it, still on their way.
            Kind::Quit | Kind::Reset => {
                let local = if routed.kind == Kind::Quit {
                    Local::Quit
                } else {
                    Local::Reset
                };
                self.stream_push(c, r, StreamItem::Leave(local));
                c.stream_wait = true;
            }
            // Shard channels live on the fan-in connections (`fanin/`), whatever their
            // shard: the proxy answers in the client's order.
            Kind::Sub(SubOp::Subscribe(Channels::Shard)) => {
                let channels: Vec<&[u8]> = (1..args.argc()).map(|i| args.arg(i)).collect();
                let replies = self.shard_subscribe(c, cref, &channels);
                self.stream_push(c, r, StreamItem::Reply(replies));
                c.stream_busy = true;
            }
            Kind::Sub(SubOp::Unsubscribe(Channels::Shard)) => {
                let channels: Vec<&[u8]> = (1..args.argc()).map(|i| args.arg(i)).collect();
                let replies = self.shard_unsubscribe(c, cref, &channels);
                self.stream_push(c, r, StreamItem::Reply(replies));
                // Whether subscribed mode is over is known once the replies before are in.
                self.stream_push(c, r, StreamItem::Settle);
                c.stream_wait = true;
            }
            // In RESP2 subscribed mode PING answers `[pong, arg]`; the node would not when
            // the client's subscriptions are all shard channels (none on this connection).
            Kind::Ping if c.proto == Proto::Resp2 => {
                let mut pong = Vec::new();
                encode::array_header(&mut pong, 2);
                encode::bulk(&mut pong, b"pong");
                encode::bulk(&mut pong, if args.argc() > 1 { args.arg(1) } else { b"" });
                self.stream_push(c, r, StreamItem::Reply(pong));
            }
            Kind::Sub(op) => {
                // Replies come back on the stream, after whatever this client still waits
                // for: in order, as from one server.
                self.on_stream(c, r, &frame);
                if matches!(op, SubOp::Unsubscribe(_)) {
                    self.stream_push(c, r, StreamItem::Resume);
                    c.stream_wait = true;
                }
            }
            Kind::Ping => self.on_stream(c, r, &frame),
            // The subscription connection speaks RESP3 and would go on pushing messages
            // in it: refused rather than mixing the two.
            Kind::Hello if c.proto == Proto::Resp3 && args.argc() > 1 && args.arg(1) != b"3" => {
                let e = ProxyError::HelloWhileSubscribed.to_frame();
                self.stream_push(c, r, StreamItem::Reply(e));
            }
            // RESP3 lets a subscriber run any command: routed as usual, once what it sent
            // on the stream before came back (`stream_order`).
            _ if c.proto == Proto::Resp3 => {
                self.execute(c, cref, frame, args, routed.route, routed.kind)
            }
            _ => {
                let shown = String::from_utf8_lossy(args.arg(0)).to_ascii_lowercase();
                let e = ProxyError::SubscribedContext(shown).to_frame();
                self.stream_push(c, r, StreamItem::Reply(e));
            }
        }
    }

    /// A request whose reply comes back on the subscriber's stream.
    fn on_stream(&mut self, c: &mut Client, r: BackendRef, frame: &[u8]) {
        self.backends[r.idx].push_raw(frame);
        self.mark_backend(r.idx);
        c.stream_busy = true;
    }

    /// The first subscription: a connection of the client's own to the classic channels'
    /// master, which carries its classic subscriptions and orders its replies (its shard
    /// channels live on the fan-in connections).
    fn subscribe(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        op: SubOp,
    ) {
        let Some(node) = self.pubsub_home() else {
            return c.reply_now(&ProxyError::NoMaster.to_frame());
        };
        let idx = match self.connect_one(node, c.proto) {
            Ok(idx) => idx,
            Err(e) => return c.reply_now(&e.to_frame()),
        };
        let b = &mut self.backends[idx];
        b.role = BackendRole::Stream { client: cref };
        let bref = BackendRef { idx, gen: b.gen };
        self.hold((cref, bref));
        c.pubsub = Some(bref);
        c.stream_busy = true;
        if op == SubOp::Subscribe(Channels::Shard) {
            let channels: Vec<&[u8]> = (1..args.argc()).map(|i| args.arg(i)).collect();
            let replies = self.shard_subscribe(c, cref, &channels);
            self.stream_push(c, bref, StreamItem::Reply(replies));
        } else {
            self.backends[idx].push_raw(&frame);
            self.mark_backend(idx);
        }
    }

    /// Something of the proxy's in its place among the frames streaming from the node: it
    /// is released by the echo of a PING queued behind the client's earlier commands on the
    /// subscription connection (see `stream_frame`).
    pub(crate) fn stream_push(&mut self, c: &mut Client, r: BackendRef, item: StreamItem) {
        c.stream_marks += 1;
        let mark = format!("{STREAM_MARK}{}", c.stream_marks);
        c.stream_items.push_back((c.stream_marks, item));
        let mut ping = Vec::new();
        encode::array_header(&mut ping, 2);
        encode::bulk(&mut ping, b"PING");
        encode::bulk(&mut ping, mark.as_bytes());
        self.backends[r.idx].push_raw(&ping);
        self.mark_backend(r.idx);
    }

    /// A RESP3 subscriber's command answered elsewhere than on the stream waits until what
    /// it sent on the stream before came back, so that their replies keep their order.
    /// Returns whether it waits.
    pub(crate) fn stream_order(&mut self, c: &mut Client, kind: Kind) -> bool {
        let Some(r) = c
            .pubsub
            .filter(|_| c.stream_busy && c.proto == Proto::Resp3)
        else {
            return false;
        };
        if matches!(kind, Kind::Sub(_) | Kind::Ping | Kind::Quit | Kind::Reset) {
            return false;
        }
        if self.backends.get(r.idx).is_none_or(|b| b.gen != r.gen) {
            return false;
        }
        c.stream_busy = false;
        self.stream_push(c, r, StreamItem::Resume);
        c.stream_wait = true;
        true
    }

    /// The master classic subscriptions go to: the first in address order, so PUBSUB
    /// CHANNELS / NUMSUB asked through the proxy see them.
    pub(crate) fn pubsub_home(&self) -> Option<NodeId> {
        self.topo.masters_sorted().into_iter().next()
    }

    /// A frame on a subscriber's connection, to its client. The unsubscription that leaves
    /// no subscription ends subscribed mode, as on Redis, and the connection is closed.
    pub(crate) fn stream_frame(&mut self, clients: &mut Slab<Client>, to: ClientRef, frame: Bytes) {
        // Frames read in one go behind the end of subscribed mode are not the client's.
        let Some(c) = clients
            .get_mut(to.idx)
            .filter(|c| c.gen == to.gen && c.pubsub.is_some())
        else {
            return;
        };
        // An echo is the proxy's, never the client's: it releases the reply it orders, or is
        // dropped when that went out already (subscribed mode ended before it came back).
        let released = match stream_mark(&frame) {
            Some(n) if c.stream_items.front().is_some_and(|(m, _)| *m == n) => {
                c.stream_items.pop_front().map(|(_, item)| item)
            }
            Some(_) => return,
            None => None,
        };
        match released {
            Some(item) => self.release(c, to.idx, item),
            None => c.reply_now(&frame),
        }
        if !c.dirty {
            c.dirty = true;
            self.wake.dirty_clients.push(to.idx);
        }
        if c.output_len() > self.wake.limits.hard_output {
            self.wake.kill.push((to, Kill::OutputLimit));
        }
        if let Some(els) = crate::resp::reply::elements(&frame).map(|(_, e)| e) {
            let kind = els.first().map(|r| frame[r.clone()].to_ascii_lowercase());
            if let (Some(k), [_, name, n]) = (kind.as_deref(), &els[..]) {
                count_subscriptions(c, k, &frame[n.clone()]);
                let verb = crate::resp::reply::bulk(&frame[els[0].clone()]).flatten();
                let name = crate::resp::reply::bulk(&frame[name.clone()]).flatten();
                let home = c
                    .pubsub
                    .and_then(|r| self.backends.get(r.idx))
                    .map(|b| b.node);
                if let (Some(verb), Some(name), Some(home)) = (verb, name, home) {
                    self.fanin_track(to, home, &verb.to_ascii_lowercase(), name);
                }
            }
            let unsub = kind
                .as_deref()
                .is_some_and(|k| k.ends_with(b"unsubscribe\r\n") && k.starts_with(b"$"));
            // Shard channels (on the fan-in connections) keep subscribed mode going.
            let none_left = c.subscriptions[2] == 0;
            if unsub && none_left && els.len() == 3 && &frame[els[2].clone()] == b":0\r\n" {
                // Subscribed mode is over and the connection closes: replies still waiting
                // for their echo were sent after this unsubscription, so they follow it now.
                // The next command (waiting since the unsubscription) runs as on any connection.
                self.leave_stream(c, to.idx);
            }
        }
    }

    pub(crate) fn release(&mut self, c: &mut Client, idx: usize, item: StreamItem) {
        match item {
            StreamItem::Reply(reply) => c.reply_now(&reply),
            StreamItem::Resume => self.end_stream_wait(c, idx),
            StreamItem::Settle if c.subscriptions == [0; 3] => self.leave_stream(c, idx),
            StreamItem::Settle => self.end_stream_wait(c, idx),
            StreamItem::Leave(local) => {
                self.leave_stream(c, idx);
                self.answer_quit_or_reset(c, local);
            }
        }
    }

    /// Subscribed mode is over: what still waits for its turn follows at once (it was sent
    /// after what ended it), and the subscription connection closes.
    pub(crate) fn leave_stream(&mut self, c: &mut Client, idx: usize) {
        if let Some(r) = c.pubsub.take() {
            self.unhold(|(_, b)| *b != r);
            self.take_backend(r.idx);
            self.fanin_drop(ClientRef { idx, gen: c.gen }, None);
        }
        while let Some((_, item)) = c.stream_items.pop_front() {
            self.release(c, idx, item);
        }
        c.subscriptions = [0; 3];
        c.stream_busy = false;
        self.end_stream_wait(c, idx);
    }

    pub(crate) fn end_stream_wait(&mut self, c: &mut Client, idx: usize) {
        c.stream_wait = false;
        if c.paused && c.wants_input(&self.wake.limits) {
            c.paused = false;
            self.wake.resume_clients.push(idx);
        }
    }
}

/// Keeps a subscriber's counts from a node's (un)subscription reply: `kind` is its first
/// element (`$9\r\nsubscribe\r\n`, lower-cased), `count` its last (`:2\r\n`). A channel or
/// pattern reply counts both together, a shard channel reply those alone.
pub(crate) fn count_subscriptions(c: &mut Client, kind: &[u8], count: &[u8]) {
    let Some(n) = count
        .strip_prefix(b":")
        .and_then(|n| n.strip_suffix(b"\r\n"))
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok())
    else {
        return;
    };
    let name = kind.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
    let [sub, psub, ssub] = &mut c.subscriptions;
    match name {
        b"subscribe\r\n" | b"unsubscribe\r\n" => *sub = n.saturating_sub(*psub),
        b"psubscribe\r\n" | b"punsubscribe\r\n" => *psub = n.saturating_sub(*sub),
        b"ssubscribe\r\n" | b"sunsubscribe\r\n" => *ssub = n,
        _ => {}
    }
}

/// The mark of a frame from a subscription connection that echoes a `stream_push` PING:
/// RESP2 subscribed mode answers `["pong", arg]`, RESP3 (and a connection no longer
/// subscribed) the argument itself.
pub(crate) fn stream_mark(frame: &[u8]) -> Option<u64> {
    // Never a message or a push, whatever its payload.
    let echo_form = frame.starts_with(b"*2\r\n$4\r\npong\r\n") || frame.first() == Some(&b'$');
    if frame.len() >= 80 || !echo_form {
        return None;
    }
    let body = frame.strip_suffix(b"\r\n")?;
    let at = body
        .windows(STREAM_MARK.len())
        .rposition(|w| w == STREAM_MARK.as_bytes())?;
    crate::resp::parse_int(&body[at + STREAM_MARK.len()..]).and_then(|n| u64::try_from(n).ok())
}

/// UNSUBSCRIBE and kin outside subscribed mode: what Redis answers, one reply per channel
/// (or one without).
fn not_subscribed(op: SubOp, args: &FrameArgs<'_>, proto: Proto) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = op.reply_kind().as_bytes();
    if args.argc() == 1 {
        crate::fanin::table::sub_reply(&mut out, proto, kind, None, 0);
    }
    for i in 1..args.argc() {
        crate::fanin::table::sub_reply(&mut out, proto, kind, Some(args.arg(i)), 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::stream_mark;

    #[test]
    fn stream_marks_are_the_proxys_echoes_only() {
        let resp2 = b"*2\r\n$4\r\npong\r\n$15\r\n__rcp_order__:7\r\n";
        assert_eq!(stream_mark(resp2), Some(7));
        assert_eq!(stream_mark(b"$16\r\n__rcp_order__:12\r\n"), Some(12));
        // A message or push that carries the same text is the client's.
        let message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$15\r\n__rcp_order__:7\r\n";
        assert_eq!(stream_mark(message), None);
        assert_eq!(
            stream_mark(b">2\r\n$4\r\npong\r\n$15\r\n__rcp_order__:7\r\n"),
            None
        );
        assert_eq!(stream_mark(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"), None);
        assert_eq!(stream_mark(b""), None);
    }
}
