//! Client-side caching (CLIENT TRACKING) through the proxy.
//!
//! The proxy remembers which of its clients read which keys (default mode), or which
//! prefixes a client listens to (BCAST), in a table per worker. The nodes tell it what
//! changed: while any client of the worker tracks, each master's fan-in connection
//! (`fanin.rs`, RESP3) runs `CLIENT TRACKING ON BCAST`, so the master pushes the name of
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

use std::collections::{HashMap, VecDeque};

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

/// A client's CLIENT TRACKING state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientTracking {
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES/NO, for the next command.
    pub caching: Option<bool>,
    /// REDIRECT: the other client's id (0: none) and where it is in this worker.
    pub redirect: u64,
    pub target: Option<ClientRef>,
    /// The redirect target went away.
    pub broken: bool,
}

/// What CLIENT TRACKING ON asks, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrackingRequest {
    pub on: bool,
    pub redirect: Option<u64>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

fn syntax() -> String {
    "ERR syntax error".into()
}

/// CLIENT TRACKING's arguments (from `on|off`), checked as Redis checks them.
pub fn parse<A: Args + ?Sized>(args: &A) -> Result<TrackingRequest, String> {
    let mut r = TrackingRequest::default();
    let onoff = args.arg(2);
    r.on = if onoff.eq_ignore_ascii_case(b"on") {
        true
    } else if onoff.eq_ignore_ascii_case(b"off") {
        false
    } else {
        return Err(syntax());
    };
    let mut i = 3;
    while i < args.argc() {
        let a = args.arg(i);
        let more = i + 1 < args.argc();
        if a.eq_ignore_ascii_case(b"REDIRECT") && more {
            if r.redirect.is_some() {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            let id = std::str::from_utf8(args.arg(i + 1))
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| "ERR value is not an integer or out of range".to_string())?;
            r.redirect = Some(id.max(0) as u64);
            i += 1;
        } else if a.eq_ignore_ascii_case(b"BCAST") {
            r.bcast = true;
        } else if a.eq_ignore_ascii_case(b"OPTIN") {
            r.optin = true;
        } else if a.eq_ignore_ascii_case(b"OPTOUT") {
            r.optout = true;
        } else if a.eq_ignore_ascii_case(b"NOLOOP") {
            r.noloop = true;
        } else if a.eq_ignore_ascii_case(b"PREFIX") && more {
            r.prefixes.push(Bytes::copy_from_slice(args.arg(i + 1)));
            i += 1;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    Ok(r)
}

/// The checks of CLIENT TRACKING ON against the client's state, in Redis's order.
pub fn check_on(r: &TrackingRequest, now: Option<&ClientTracking>) -> Result<(), String> {
    if !r.bcast && !r.prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if let Some(t) = now {
        if t.bcast != r.bcast {
            return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
    }
    if r.bcast && (r.optin || r.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if r.optin && r.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if let Some(t) = now {
        if (r.optin && t.optout) || (r.optout && t.optin) {
            return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
    }
    if r.bcast {
        let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
        for (i, p) in r.prefixes.iter().enumerate() {
            if let Some(old) = now.and_then(|t| t.prefixes.iter().find(|o| overlap(o, p))) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(old)
                ));
            }
            if let Some(other) = r.prefixes[i + 1..].iter().find(|o| overlap(o, p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(other)
                ));
            }
        }
    }
    Ok(())
}

/// The worker's tracking table.
#[derive(Default)]
pub(crate) struct Table {
    /// Default-mode reads: key -> the clients told when it changes.
    keys: HashMap<Bytes, Vec<ClientRef>>,
    /// Keys in the order they entered, for the bound (`tracking_max_keys`); a key may
    /// appear again after it left and came back (skipped when not in `keys`).
    order: VecDeque<Bytes>,
    /// (key, client) pairs in `keys`.
    items: usize,
    /// Tracking clients of this worker, and those in BCAST mode.
    clients: Vec<ClientRef>,
    bcast: Vec<ClientRef>,
    /// BCAST NOLOOP clients' own writes, not told on the next invalidation of the key.
    own_writes: HashMap<Bytes, Vec<ClientRef>>,
    /// Entries pushed out by the bound, to be told.
    evicted: Vec<(Bytes, Vec<ClientRef>)>,
    /// CLIENT TRACKING ON answers waiting for every master to track (the first client's,
    /// or while a master has not confirmed yet): (client, its reply's place).
    pub(crate) waiting: Vec<(ClientRef, u64)>,
    /// Some were answered before every master confirmed: a flush is due once they did.
    flush_when_ready: bool,
}

impl Table {
    pub(crate) fn active(&self) -> bool {
        !self.clients.is_empty()
    }

    /// INFO's figures (this worker's): tracking clients, keys, (key, client) pairs.
    pub(crate) fn figures(&self) -> (usize, usize, usize) {
        (self.clients.len(), self.keys.len(), self.items)
    }

    /// Clients that stopped tracking without saying (RESET) leave the lists.
    pub(crate) fn prune(&mut self, clients: &Slab<Client>) -> bool {
        let live = |r: &ClientRef| {
            clients
                .get(r.idx)
                .is_some_and(|c| c.gen == r.gen && c.tracking.is_some())
        };
        self.clients.retain(live);
        self.bcast.retain(live);
        self.clients.is_empty()
    }
}

/// A RESP3 invalidation push for one key, or for everything (None).
fn push(out: &mut Vec<u8>, key: Option<&[u8]>) {
    out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    match key {
        Some(k) => {
            out.extend_from_slice(b"*1\r\n");
            encode::bulk(out, k);
        }
        None => out.extend_from_slice(b"_\r\n"),
    }
}

/// The same as a `__redis__:invalidate` message to a RESP2 subscriber.
fn message(out: &mut Vec<u8>, key: Option<&[u8]>) {
    out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    match key {
        Some(k) => {
            out.extend_from_slice(b"*1\r\n");
            encode::bulk(out, k);
        }
        None => out.extend_from_slice(b"$-1\r\n"),
    }
}

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
        for key in keys {
            if let Some(list) = self.tracking.keys.remove(&key) {
                self.tracking.items -= list.len();
                for to in list {
                    self.tell(clients, to, Some(&key));
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
                        self.tell(clients, to, Some(&key));
                    }
                }
            }
        }
        self.tell_evicted(clients);
    }

    /// The entries pushed out by the bound, told.
    pub(crate) fn tell_evicted(&mut self, clients: &mut Slab<Client>) {
        for (k, list) in std::mem::take(&mut self.tracking.evicted) {
            for to in list {
                self.tell(clients, to, Some(&k));
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
    fn tell(&mut self, clients: &mut Slab<Client>, to: ClientRef, key: Option<&[u8]>) {
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

/// CLIENT CACHING YES|NO: the next command's reads are (not) remembered.
fn client_caching(c: &mut Client, args: &FrameArgs<'_>) -> Vec<u8> {
    let refuse = |e: &str| ProxyError::Redis(e.into()).to_frame();
    let Some(t) = c.tracking.as_deref_mut().filter(|t| t.optin || t.optout) else {
        return refuse("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    let arg = if args.argc() > 2 {
        args.arg(2).to_ascii_uppercase()
    } else {
        Vec::new()
    };
    match &arg[..] {
        b"YES" if !t.optin => {
            refuse("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        }
        b"NO" if !t.optout => {
            refuse("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        }
        b"YES" | b"NO" => {
            t.caching = Some(&arg[..] == b"YES");
            b"+OK\r\n".to_vec()
        }
        _ => refuse("ERR syntax error"),
    }
}

/// A set's header: RESP3 `~`, RESP2 an array.
fn set_header(out: &mut Vec<u8>, n: usize, proto: Proto) {
    out.push(if proto == Proto::Resp3 { b'~' } else { b'*' });
    encode::decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// CLIENT TRACKINGINFO.
fn trackinginfo(t: Option<&ClientTracking>, proto: Proto) -> Vec<u8> {
    let mut out = Vec::new();
    encode::map_header(&mut out, 3, proto);
    encode::bulk(&mut out, b"flags");
    let mut flags: Vec<&str> = Vec::new();
    match t {
        None => flags.push("off"),
        Some(t) => {
            flags.push("on");
            if t.bcast {
                flags.push("bcast");
            }
            if t.optin {
                flags.push("optin");
                if t.caching == Some(true) {
                    flags.push("caching-yes");
                }
            }
            if t.optout {
                flags.push("optout");
                if t.caching == Some(false) {
                    flags.push("caching-no");
                }
            }
            if t.noloop {
                flags.push("noloop");
            }
            if t.broken {
                flags.push("broken_redirect");
            }
        }
    }
    set_header(&mut out, flags.len(), proto);
    for f in flags {
        encode::bulk(&mut out, f.as_bytes());
    }
    encode::bulk(&mut out, b"redirect");
    encode::integer(&mut out, t.map_or(-1, |t| t.redirect as i64));
    encode::bulk(&mut out, b"prefixes");
    let prefixes = t.map(|t| &t.prefixes[..]).unwrap_or_default();
    encode::array_header(&mut out, prefixes.len());
    for p in prefixes {
        encode::bulk(&mut out, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Result<TrackingRequest, String> {
        let argv: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        parse(&argv[..])
    }

    #[test]
    fn tracking_requests_are_checked_as_redis_checks_them() {
        let on =
            |line: &str, now: Option<&ClientTracking>| req(line).and_then(|r| check_on(&r, now));
        assert!(on("CLIENT TRACKING on", None).is_ok());
        assert_eq!(req("CLIENT TRACKING foo").unwrap_err(), "ERR syntax error");
        assert_eq!(
            req("CLIENT TRACKING on noloop bogus").unwrap_err(),
            "ERR syntax error"
        );
        assert_eq!(
            on("CLIENT TRACKING on prefix a", None).unwrap_err(),
            "ERR PREFIX option requires BCAST mode to be enabled"
        );
        assert_eq!(
            on("CLIENT TRACKING on bcast optin", None).unwrap_err(),
            "ERR OPTIN and OPTOUT are not compatible with BCAST"
        );
        assert_eq!(
            on("CLIENT TRACKING on optin optout", None).unwrap_err(),
            "ERR You can't specify both OPTIN mode and OPTOUT mode"
        );
        assert_eq!(
            on("CLIENT TRACKING on bcast prefix a prefix ab", None).unwrap_err(),
            "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap."
        );
        let bcast_a = ClientTracking {
            bcast: true,
            prefixes: vec![Bytes::from_static(b"a")],
            ..Default::default()
        };
        assert_eq!(
            on("CLIENT TRACKING on bcast prefix ab", Some(&bcast_a)).unwrap_err(),
            "ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single client must not overlap."
        );
        assert!(on("CLIENT TRACKING on bcast prefix b noloop", Some(&bcast_a)).is_ok());
        let optin = ClientTracking {
            optin: true,
            ..Default::default()
        };
        assert!(on("CLIENT TRACKING on bcast", Some(&optin))
            .unwrap_err()
            .contains("switch BCAST"));
        assert!(on("CLIENT TRACKING on optout", Some(&optin))
            .unwrap_err()
            .contains("switch OPTIN/OPTOUT"));
        assert_eq!(
            req("CLIENT TRACKING on redirect x").unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            req("CLIENT TRACKING on redirect 7").unwrap().redirect,
            Some(7)
        );
    }

    #[test]
    fn trackinginfo_is_redis_shaped() {
        let r2 = trackinginfo(None, Proto::Resp2);
        assert_eq!(
            r2,
            b"*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n"
        );
        let t = ClientTracking {
            optin: true,
            caching: Some(true),
            ..Default::default()
        };
        let r3 = trackinginfo(Some(&t), Proto::Resp3);
        assert!(r3.starts_with(
            b"%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n"
        ));
        let mut out = Vec::new();
        push(&mut out, Some(b"k"));
        assert_eq!(out, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
    }
}
