//! Client-side caching (CLIENT TRACKING) through the proxy.
//!
//! The proxy remembers which of its clients read which keys (default mode), or which
//! prefixes a client listens to (BCAST), in a table per worker. The nodes tell it what
//! changed: while any client of the worker tracks, each master's fan-in connection
//! (`fanin/`, RESP3) runs `CLIENT TRACKING ON BCAST`, so the master pushes the name of
//! every key it modifies, expires or evicts (batched per event loop, a FLUSHALL as one null).
//! Each name is looked up in the table and the clients that read it get Redis's
//! invalidation: a RESP3 `invalidate` push, or, with `REDIRECT id`, a `__redis__:invalidate`
//! message to that other client (RESP2).
//!
//! Why the proxy keeps the table rather than letting each node track through the client's
//! connections: the proxy's node connections are shared by every client, so a node can only
//! say "a key read on this connection changed", never which client read it; and a client's
//! reads reach every master, over shared, dedicated and replica connections, after MOVED and
//! ASK. One BCAST stream per master per worker covers all of that, writes made outside the
//! proxy included.
//!
//! ```text
//!   CLIENT TRACKING ON [REDIRECT id] [BCAST [PREFIX p]...] [OPTIN|OPTOUT] [NOLOOP]
//!       --> the client's state (errors in Redis's words); the first tracking client of the
//!           worker turns BCAST on at every master's fan-in connection
//!   a read-only command of a tracking client (default mode; OPTIN after CLIENT CACHING
//!       YES, OPTOUT unless CLIENT CACHING NO) --> its keys -> the client, in the table
//!   a key name from a master --> each client that read it (the entry goes: a client reads
//!       it again to be told again) and each BCAST client with a matching prefix, told
//!   a null from a master (FLUSHALL), or a fan-in connection lost or (re)established
//!       --> every tracking client told to flush everything (a gap may hide changes)
//!   more keys than `tracking_max_keys` --> the oldest entries' clients told, entries gone
//! ```
//!
//! An invalidation for a client with replies still on their way goes after them (a read
//! in flight when the key changed must not be cached after its invalidation); a client
//! blocked on a node (BLPOP) is told at once.
//!
//! NOLOOP: a client's own write ends its interest in those keys without telling it, as
//! Redis does (default mode); in BCAST mode the next invalidation of a key the client wrote
//! is not sent to it.

use bytes::Bytes;
use slab::Slab;

use crate::command::{flag, Args};
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::resp::encode::{self, Proto};
use crate::route::Routed;

pub(crate) mod table;

use table::{check_on, client_caching, message, parse, push, trackinginfo, TrackingRequest};

impl Core {
    /// CLIENT TRACKING (without REDIRECT), CACHING, TRACKINGINFO, GETREDIR: taken at once,
    /// so that the commands pipelined behind them are taken under the new state; the reply
    /// (None: it has its place reserved, answered later: with REDIRECT, once every client
    /// is at hand, `tracking_redirect`; or once every master tracks).
    pub(crate) fn client_tracking(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        args: &FrameArgs<'_>,
    ) -> Option<Vec<u8>> {
        let refuse = |e: String| Some(ProxyError::Redis(e).to_frame());
        let sub = args.arg(1).to_ascii_uppercase();
        match &sub[..] {
            b"TRACKING" => {}
            b"CACHING" => return Some(client_caching(c, args)),
            b"TRACKINGINFO" => return Some(trackinginfo(c.tracking.as_deref(), c.proto)),
            _ => {
                // GETREDIR
                let id = c.tracking.as_deref().map_or(-1, |t| t.redirect as i64);
                let mut out = Vec::new();
                encode::integer(&mut out, id);
                return Some(out);
            }
        }
        let req = match parse(args) {
            Ok(r) => r,
            Err(e) => return refuse(e),
        };
        if !req.on {
            c.tracking = None;
            self.tracking_forget(cref);
            return Some(b"+OK\r\n".to_vec());
        }
        if req.redirect.is_some_and(|id| id != 0) {
            let seq = c.reserve();
            let argv = (0..args.argc()).map(|i| args.arg(i).to_vec()).collect();
            let l = crate::route::Local::ClientTracking;
            self.deferred.push((cref, seq, l, argv, c.last_cmd));
            return None;
        }
        let reply = self.tracking_on(c, cref, req, None);
        if reply.is_empty() {
            let seq = c.reserve();
            self.tracking.waiting.push((cref, seq));
            return None;
        }
        Some(reply)
    }

    /// CLIENT TRACKING ON REDIRECT id: the id must be a client of this worker (ids are
    /// the process's; another worker's clients are out of reach of this one's
    /// invalidations, and the error says so).
    pub(crate) fn tracking_redirect(
        &mut self,
        clients: &mut Slab<Client>,
        cref: ClientRef,
        argv: &[Vec<u8>],
    ) -> Vec<u8> {
        let refuse = |e: &str| ProxyError::Redis(e.into()).to_frame();
        let req = match parse(argv) {
            Ok(r) => r,
            Err(e) => return ProxyError::Redis(e).to_frame(),
        };
        let id = req.redirect.unwrap_or(0);
        let workers = self.cfg.workers.max(1) as u64;
        let target = clients
            .iter()
            .find(|(_, o)| o.id == id)
            .map(|(idx, o)| ClientRef { idx, gen: o.gen });
        let Some(target) = target else {
            if id > 0 && (id - 1) % workers != self.worker as u64 {
                return refuse("ERR the client ID you want redirect to is served by another worker of the proxy (redirect to a client of the same worker, or set workers: 1)");
            }
            return refuse("ERR The client ID you want redirect to does not exist");
        };
        let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
            return Vec::new();
        };
        self.tracking_on(c, cref, req, Some(target))
    }

    /// CLIENT TRACKING ON, checked and applied.
    fn tracking_on(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        req: TrackingRequest,
        target: Option<ClientRef>,
    ) -> Vec<u8> {
        if let Err(e) = check_on(&req, c.tracking.as_deref()) {
            return ProxyError::Redis(e).to_frame();
        }
        let t = c.tracking.get_or_insert_with(Default::default);
        t.bcast = req.bcast;
        t.optin |= req.optin;
        t.optout |= req.optout;
        t.noloop |= req.noloop;
        t.prefixes.extend(req.prefixes);
        t.redirect = req.redirect.unwrap_or(0);
        t.target = target;
        t.broken = false;
        let bcast = t.bcast;
        let first = !self.tracking.active();
        if !self.tracking.clients.contains(&cref) {
            self.tracking.clients.push(cref);
        }
        if bcast && !self.tracking.bcast.contains(&cref) {
            self.tracking.bcast.push(cref);
        }
        if first {
            self.fanin_tracking(true);
        }
        if !self.fanin.ready {
            // Answered once every master tracks, so that nothing the client reads after
            // its OK can change unseen.
            return Vec::new();
        }
        b"+OK\r\n".to_vec()
    }

    /// The CLIENT TRACKING ON answers that waited: every master tracks now, or (`early`)
    /// the wait is over without it, and a flush is due when they all do.
    pub(crate) fn tracking_answer_waiting(&mut self, clients: &mut Slab<Client>, early: bool) {
        if early {
            self.tracking.flush_when_ready |= !self.tracking.waiting.is_empty();
        } else if std::mem::take(&mut self.tracking.flush_when_ready) {
            self.tracking_flush(clients);
        }
        for (to, seq) in std::mem::take(&mut self.tracking.waiting) {
            let Some(c) = clients.get_mut(to.idx).filter(|c| c.gen == to.gen) else {
                continue;
            };
            c.complete(seq, 0, Bytes::from_static(b"+OK\r\n"));
            if c.paused && c.wants_input(&self.wake.limits) {
                c.paused = false;
                self.wake.resume_clients.push(to.idx);
            }
            if !c.dirty {
                c.dirty = true;
                self.wake.dirty_clients.push(to.idx);
            }
        }
    }

    /// A tracking client's request: the keys of a read are remembered (as its mode
    /// says), a NOLOOP client's writes end its interest; CLIENT CACHING's flag is used up
    /// by any command but CLIENT's own, outside MULTI.
    pub(crate) fn track_request(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        args: &FrameArgs<'_>,
        routed: &Routed,
    ) {
        let Some(cmd) = routed.cmd else { return };
        let Some(t) = c.tracking.as_deref_mut() else {
            return;
        };
        let caching = t.caching;
        if !cmd.name.starts_with("CLIENT") && !c.tx.as_ref().is_some_and(|x| x.multi) {
            t.caching = None;
        }
        let (bcast, noloop) = (t.bcast, t.noloop);
        if cmd.has(flag::READONLY) && !bcast {
            let wanted = if t.optin {
                caching == Some(true)
            } else if t.optout {
                caching != Some(false)
            } else {
                true
            };
            if wanted {
                crate::command::for_each_key(cmd, args, |i| {
                    self.remember(cref, args.arg(i));
                    true
                });
                self.bound_table();
            }
        } else if cmd.has(flag::WRITE) && noloop {
            crate::command::for_each_key(cmd, args, |i| {
                let key = args.arg(i);
                if bcast {
                    let list = self
                        .tracking
                        .own_writes
                        .entry(Bytes::copy_from_slice(key))
                        .or_default();
                    if !list.contains(&cref) {
                        list.push(cref);
                    }
                } else if let Some(list) = self.tracking.keys.get_mut(key) {
                    if let Some(i) = list.iter().position(|r| *r == cref) {
                        list.swap_remove(i);
                        self.tracking.items -= 1;
                        if list.is_empty() {
                            self.tracking.keys.remove(key);
                        }
                    }
                }
                true
            });
        }
    }

    fn remember(&mut self, cref: ClientRef, key: &[u8]) {
        let t = &mut self.tracking;
        match t.keys.get_mut(key) {
            Some(list) => {
                if !list.contains(&cref) {
                    list.push(cref);
                    t.items += 1;
                }
            }
            None => {
                let k = Bytes::copy_from_slice(key);
                t.order.push_back(k.clone());
                t.keys.insert(k, vec![cref]);
                t.items += 1;
            }
        }
    }

    /// Over `tracking_max_keys`: the oldest keys' clients are told (as Redis does when its
    /// tracking table is full), and the entries go.
    fn bound_table(&mut self) {
        let max = self.cfg.tracking_max_keys.max(1);
        while self.tracking.keys.len() > max {
            let Some(k) = self.tracking.order.pop_front() else {
                break;
            };
            if let Some(list) = self.tracking.keys.remove(&k) {
                self.tracking.items -= list.len();
                self.tracking.evicted.push((k, list));
            }
        }
    }

    /// A client stops tracking (OFF, RESET, gone): its entries go lazily (skipped and
    /// dropped when their key is next invalidated), its place in the lists now.
    pub(crate) fn tracking_forget(&mut self, cref: ClientRef) {
        let t = &mut self.tracking;
        if !t.clients.contains(&cref) {
            return;
        }
        t.clients.retain(|r| *r != cref);
        t.bcast.retain(|r| *r != cref);
        if t.clients.is_empty() {
            t.keys.clear();
            t.order.clear();
            t.items = 0;
            t.own_writes.clear();
            self.fanin_tracking(false);
        }
    }

    /// Keys a master says changed (`None`: everything, a FLUSHALL or a gap), to the
    /// clients that track them.
    pub(crate) fn tracking_invalidate(
        &mut self,
        clients: &mut Slab<Client>,
        keys: Option<Vec<Bytes>>,
    ) {
        let Some(keys) = keys else {
            return self.tracking_flush(clients);
        };
        // Each client's keys of this batch go in one invalidation, as Redis batches a
        // BCAST client's (one MSET, one push).
        let mut told: std::collections::HashMap<ClientRef, Vec<Bytes>> = Default::default();
        let mut add = |to: ClientRef, key: &Bytes| told.entry(to).or_default().push(key.clone());
        for key in keys {
            if let Some(list) = self.tracking.keys.remove(&key) {
                self.tracking.items -= list.len();
                for to in list {
                    add(to, &key);
                }
            }
            if !self.tracking.bcast.is_empty() {
                let skip = self.tracking.own_writes.remove(&key).unwrap_or_default();
                for to in self.tracking.bcast.clone() {
                    if skip.contains(&to) {
                        continue;
                    }
                    let matches = clients
                        .get(to.idx)
                        .filter(|c| c.gen == to.gen)
                        .and_then(|c| c.tracking.as_deref())
                        .is_some_and(|t| {
                            t.prefixes.is_empty() || t.prefixes.iter().any(|p| key.starts_with(p))
                        });
                    if matches {
                        add(to, &key);
                    }
                }
            }
        }
        for (to, ks) in told {
            self.tell(clients, to, Some(&ks));
        }
        self.tell_evicted(clients);
    }

    /// The entries pushed out by the bound, told.
    pub(crate) fn tell_evicted(&mut self, clients: &mut Slab<Client>) {
        for (k, list) in std::mem::take(&mut self.tracking.evicted) {
            for to in list {
                self.tell(clients, to, Some(std::slice::from_ref(&k)));
            }
        }
    }

    /// Every tracking client told to flush its whole cache, the table emptied.
    pub(crate) fn tracking_flush(&mut self, clients: &mut Slab<Client>) {
        if !self.tracking.active() {
            return;
        }
        self.tracking.keys.clear();
        self.tracking.order.clear();
        self.tracking.items = 0;
        self.tracking.own_writes.clear();
        for to in self.tracking.clients.clone() {
            self.tell(clients, to, None);
        }
    }

    /// One invalidation to one client, where its mode sends it.
    fn tell(&mut self, clients: &mut Slab<Client>, to: ClientRef, key: Option<&[Bytes]>) {
        let Some(c) = clients.get(to.idx).filter(|c| c.gen == to.gen) else {
            return;
        };
        let Some(t) = c.tracking.as_deref() else {
            return;
        };
        let (redirect, target, proto) = (t.redirect, t.target, c.proto);
        if redirect == 0 {
            if proto == Proto::Resp3 {
                let mut out = Vec::new();
                push(&mut out, key);
                self.deliver_push(clients, to, out);
            }
            // RESP2 without REDIRECT: nowhere to send it, as on Redis.
            return;
        }
        let live = target.and_then(|r| {
            clients
                .get(r.idx)
                .filter(|o| o.gen == r.gen && o.id == redirect)
        });
        match live {
            Some(o) => {
                let mut out = Vec::new();
                match o.proto {
                    Proto::Resp3 => push(&mut out, key),
                    // A RESP2 client gets it only while subscribed, as on Redis.
                    Proto::Resp2 if o.pubsub.is_some() => message(&mut out, key),
                    Proto::Resp2 => return,
                }
                let r = target.unwrap_or(to);
                self.deliver_push(clients, r, out);
            }
            None => {
                // The target left: the client is told once, in RESP3, as Redis tells it.
                let Some(t) = clients
                    .get_mut(to.idx)
                    .and_then(|c| c.tracking.as_deref_mut())
                else {
                    return;
                };
                if t.broken {
                    return;
                }
                t.broken = true;
                if proto == Proto::Resp3 {
                    let mut out = b">2\r\n$20\r\ntracking-redir-broken\r\n".to_vec();
                    encode::integer(&mut out, redirect as i64);
                    self.deliver_push(clients, to, out);
                }
            }
        }
    }

    /// A push to a client: after the replies it still waits for (a read in flight when
    /// the key changed must not be cached after its invalidation), or at once when it
    /// waits for none or is blocked on a node.
    fn deliver_push(&mut self, clients: &mut Slab<Client>, to: ClientRef, frame: Vec<u8>) {
        let blocked = self.holds_connection(to);
        let Some(c) = clients.get_mut(to.idx) else {
            return;
        };
        if c.pending() == 0 || blocked {
            c.reply_now(&frame);
        } else {
            let seq = c.reserve_push();
            c.complete(seq, 0, Bytes::from(frame));
        }
        if !c.dirty {
            c.dirty = true;
            self.wake.dirty_clients.push(to.idx);
        }
        if c.output_len() > self.wake.limits.hard_output {
            self.wake.kill.push((to, crate::reactor::Kill::OutputLimit));
        }
    }
}
