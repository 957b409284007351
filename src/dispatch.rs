//! One routed request to what serves it: a slot's master (or replica), a split over slots,
//! a fan-out to every master, SCAN, INFO, a cluster view, or the proxy itself. Transactions
//! and subscriptions are handed to `tx` and `pubsub` by the router's `Kind`.

use crate::command::Args;
use crate::config::ClusterView;
use crate::conn::client::{Client, ReplyMode};
use crate::conn::role::BackendRole;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::local::monitor::monitor_line;
use crate::local::{self, ServerInfo};
use crate::reactor::Core;
use crate::resp::encode;
use crate::route::split::{self, Merge};
use crate::route::{Kind, Local, Route, Routed};
use crate::slot::Slot;
use crate::topology::view::View;
use bytes::{Bytes, BytesMut};
use log::{trace, warn};
use std::ops::Range;
use std::time::Duration;

/// Whether a request frame's command name is `name` (any case).
fn args_name_is(frame: &[u8], name: &[u8]) -> bool {
    let mut p = crate::resp::request::RequestParser::new();
    match p.parse(frame) {
        Ok(Some(_)) => p
            .args()
            .first()
            .and_then(|r| frame.get(r.clone()))
            .is_some_and(|a| a.eq_ignore_ascii_case(name)),
        _ => false,
    }
}

/// Bounds on the scripts remembered for NOSCRIPT recovery, so clients cannot grow it
/// without limit.
pub(crate) const MAX_SCRIPTS: usize = 10_000;

pub(crate) const MAX_SCRIPT_BYTES: usize = 16 << 20;

impl Core {
    /// Queues one routed request (or answers it).
    pub(crate) fn dispatch(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        ranges: &[Range<usize>],
        routed: Routed,
    ) {
        let args = FrameArgs {
            frame: &frame,
            ranges,
        };
        self.stats.commands += 1;
        c.last_request = self.now;
        c.last_cmd = routed.name();
        c.family = crate::latency::family(routed.cmd);
        c.writes = routed
            .cmd
            .is_some_and(|cmd| cmd.has(crate::command::flag::WRITE));
        if let (true, Some(cmd)) = (self.cfg.metrics_address.is_some(), routed.cmd) {
            self.counts.call(cmd);
        }
        if !self.monitors.is_empty() || self.monitor_elsewhere {
            monitor_line(&mut self.monitor_feed, c.addr, &args);
        }
        trace!(
            "client {} {:?}: {:?}",
            c.id,
            String::from_utf8_lossy(args.arg(0)),
            routed.route
        );
        // CLIENT REPLY: this command's reply is dropped under OFF, or once after SKIP.
        c.silent = match c.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                c.reply_mode = ReplyMode::On;
                true
            }
        };
        // Authentication and ACL, where `auth` is configured: one test otherwise.
        if !self.acl_open {
            if let Some(e) = self.acl_refusal(c, &args, &routed) {
                c.reply_now(&e.to_frame());
                c.silent = false;
                return;
            }
        }
        if c.tracking.is_some() {
            self.track_request(c, cref, &args, &routed);
        }
        let counted = match (self.cfg.metrics_address.is_some(), routed.cmd) {
            (true, Some(cmd)) => Some((cmd, crate::error::refused_so_far())),
            _ => None,
        };
        self.take(c, cref, frame.clone(), &args, routed);
        if let Some((cmd, before)) = counted {
            // Refused by the proxy while dispatched (CROSSSLOT, a syntax error, ...): an
            // error outcome, as a node's error reply is.
            if crate::error::refused_so_far() != before {
                self.counts.refused(cmd);
            }
        }
        c.silent = false;
    }

    /// The feature that takes the request: a transaction, subscribed mode, or the route.
    fn take(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        routed: Routed,
    ) {
        if self.tx_takes(c, &routed) {
            return self.transaction(c, cref, frame, routed);
        }
        if c.pubsub.is_some() || matches!(routed.kind, Kind::Sub(_)) {
            return self.pubsub(c, cref, frame, args, routed);
        }
        if let (Kind::SPublish, true) = (routed.kind, args.argc() == 3) {
            // The proxy's subscribers of the channel count for its one fan-in subscription.
            let adjust = self.shard_adjust(std::iter::once(args.arg(1)));
            let owner = self.topo.owner(crate::slot::key_slot(args.arg(1)));
            if let (Some(&n), Some(owner)) = (adjust.first().filter(|n| **n != 0), owner) {
                return self.send_to_each(c, cref, &[owner], frame, Merge::Offset(n), routed.kind);
            }
        }
        if let Kind::Publish { .. } = routed.kind {
            if let Some(home) = self.pubsub_home() {
                return self.send_new(c, cref, home, frame, None);
            }
        }
        self.execute(c, cref, frame, args, routed.route, routed.kind);
    }

    pub(crate) fn execute(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        route: Route,
        kind: Kind,
    ) {
        match route {
            Route::Local(l) => self.local(c, cref, args, l),
            Route::Slot(slot) => self.slot_owner(c, cref, frame, slot, false),
            Route::ReadSlot(slot) => self.slot_owner(c, cref, frame, slot, true),
            Route::AnyMaster => match self.any_master() {
                Some(node) if kind == Kind::ConfigGet => {
                    let seq = c.reserve_parts(1, Merge::Redact);
                    self.send_part(c, cref, seq, 0, Some(node), frame, None);
                }
                Some(node) => self.send_new(c, cref, node, frame, None),
                None => c.reply_now(&ProxyError::NoMaster.to_frame()),
            },
            Route::Blocking(slot) => match self.topo.owner(slot) {
                Some(node) => {
                    let seq = c.reserve();
                    self.send_client(
                        c,
                        cref,
                        seq,
                        0,
                        node,
                        frame,
                        Some(slot),
                        BackendRole::Dedicated,
                    );
                }
                None => self.unserved(c, slot),
            },
            Route::Split { per_key, merge } => self.split(c, cref, args, per_key, merge, kind),
            Route::Compute(computed) => self.compute(c, cref, args, computed),
            Route::FanOut(merge) => {
                self.effects(kind, args);
                self.fan_out(c, cref, frame, merge, kind);
            }
            Route::FanOutAll(merge) => {
                self.effects(kind, args);
                self.fan_out_all(c, cref, frame, merge, kind);
            }
            Route::Scan => self.scan(c, cref, args),
            Route::Info => self.info(c, cref, args, frame),
            Route::Wait => self.wait(c, cref, frame),
            Route::Cluster(view) => self.cluster_view(c, cref, frame, view),
            Route::Admin(inner) if self.cfg.allow_admin_commands => {
                self.execute(c, cref, frame, args, *inner, kind)
            }
            Route::Admin(_) => {
                let name = crate::route::shown_name(args);
                c.reply_now(&ProxyError::AdminRefused(name).to_frame())
            }
            Route::Refuse(e) => c.reply_now(&e.to_frame()),
        }
    }

    /// What the proxy answers itself.
    fn local(&mut self, c: &mut Client, cref: ClientRef, args: &FrameArgs<'_>, l: Local) {
        match l {
            Local::ClientInfo
            | Local::ClientList
            | Local::ClientKill
            | Local::ClientUnblock
            | Local::Proxy => {
                // Needs every client, or may stop the proxy: answered after this client's
                // requests are parsed, in order, through its reply queue.
                let seq = c.reserve();
                let argv = (0..args.argc()).map(|i| args.arg(i).to_vec()).collect();
                self.deferred.push((cref, seq, l, argv, c.last_cmd));
            }
            Local::Auth => self.auth(c, args),
            Local::ClientPause => self.client_pause(c, args),
            Local::ShardNumsub => {
                let adjust = self.shard_adjust((2..args.argc()).map(|i| args.arg(i)));
                let masters = self.topo.masters_sorted();
                if adjust.is_empty() || masters.is_empty() {
                    return c.reply_now(b"*0\r\n");
                }
                let frame = Bytes::copy_from_slice(args.frame);
                let kind = Kind::Plain;
                self.send_to_each(c, cref, &masters, frame, Merge::ShardNumsub(adjust), kind);
            }
            Local::ClientTracking => {
                if let Some(reply) = self.client_tracking(c, cref, args) {
                    c.reply_now(&reply)
                }
            }
            Local::Acl => self.acl(c, args),
            Local::Hello if self.hello_auth(c, args).is_err() => {
                c.reply_now(&ProxyError::WrongPass.to_frame())
            }
            Local::Monitor => {
                c.reply_now(b"+OK\r\n");
                if !self.monitors.contains(&cref) {
                    self.monitors.push(cref);
                    self.totals.monitor_started(self.worker);
                }
            }
            l => {
                let info = ServerInfo {
                    version: &self.server_version,
                };
                local::answer(l, args, c, &info);
            }
        }
    }

    /// To the slot's master, or for a read to the node `read_from` picks.
    fn slot_owner(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        slot: Slot,
        read: bool,
    ) {
        let Some(master) = self.topo.owner(slot) else {
            return self.unserved(c, slot);
        };
        let node = if read {
            match self.read_node(master) {
                Ok(node) => node,
                Err(e) => return c.reply_now(&e.to_frame()),
            }
        } else {
            master
        };
        self.send_new(c, cref, node, frame, Some(slot));
    }

    /// No node serves the slot: the client hears so, and the map is refreshed at once.
    fn unserved(&mut self, c: &mut Client, slot: Slot) {
        c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
        self.request_refresh(Duration::ZERO);
    }

    /// One request per slot, merged. MGET and EXISTS read: their parts follow `read_from`
    /// like any read.
    fn split(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        args: &FrameArgs<'_>,
        per_key: usize,
        merge: Merge,
        kind: Kind,
    ) {
        let read = matches!(merge, Merge::Mget { .. } | Merge::Sets(_)) || kind == Kind::ReadSplit;
        if matches!(merge, Merge::Sets(_)) {
            self.stats.cross_slot_computed += 1;
        }
        let (parts, merge) = split::split(args, per_key, merge);
        let seq = c.reserve_parts(parts.len(), merge);
        for (k, part) in parts.into_iter().enumerate() {
            let mut node = self.topo.owner(part.slot);
            if let (true, Some(master)) = (read, node) {
                match self.read_node(master) {
                    Ok(n) => node = Some(n),
                    Err(e) => {
                        c.complete(seq, k as u32, Bytes::from(e.to_frame()));
                        continue;
                    }
                }
            }
            self.send_part(c, cref, seq, k as u32, node, part.frame, Some(part.slot));
        }
    }

    /// WAIT/WAITAOF on the client's connections to each master it wrote to since its last
    /// WAIT (where its writes were made: those connections' offsets cover them); the
    /// smallest count answers. With no write, one master answers.
    fn wait(&mut self, c: &mut Client, cref: ClientRef, frame: Bytes) {
        let mut nodes = std::mem::take(&mut c.wrote_to);
        // A master that lost its slots since is no longer where those writes are.
        let masters = self.topo.masters_sorted();
        nodes.retain(|n| masters.contains(n));
        if nodes.is_empty() {
            match self.any_master() {
                // Nothing written: WAIT counts the replicas that have offset 0, every one a
                // master has. A master's own answer is that, unless it was demoted a moment
                // ago and the proxy has not seen it yet; so only WAITAOF (whose local part
                // only a node knows) asks one.
                Some(n) if args_name_is(&frame, b"WAITAOF") => nodes.push(n),
                Some(n) => {
                    let replicas = self.topo.node(n).replicas.len();
                    return c.reply_now(format!(":{replicas}\r\n").as_bytes());
                }
                None => return c.reply_now(&ProxyError::NoMaster.to_frame()),
            }
        }
        let seq = c.reserve_parts(nodes.len(), Merge::Min);
        for (k, &n) in nodes.iter().enumerate() {
            self.send_client(
                c,
                cref,
                seq,
                k as u32,
                n,
                frame.clone(),
                None,
                BackendRole::Shared,
            );
        }
    }

    /// The proxy's own state that goes with a fanned-out command: counters reset, scripts
    /// remembered or forgotten.
    fn effects(&mut self, kind: Kind, args: &FrameArgs<'_>) {
        match kind {
            Kind::ResetStat => self.totals.reset(self.worker, self.stats),
            Kind::ScriptLoad => self.remember_script(args.arg(2)),
            Kind::ScriptFlush => {
                // A client that flushes scripts must see NOSCRIPT afterwards, as from
                // Redis: nothing is loaded again behind its back.
                self.scripts.clear();
                self.scripts_bytes = 0;
            }
            _ => {}
        }
    }

    /// To every master, the replies merged.
    fn fan_out(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        mut merge: Merge,
        kind: Kind,
    ) {
        let masters = self.topo.masters_sorted();
        if masters.is_empty() {
            return c.reply_now(&ProxyError::NoMaster.to_frame());
        }
        match &mut merge {
            Merge::FirstNonNull { start } => {
                self.any_rr = self.any_rr.wrapping_add(1);
                *start = (self.any_rr % masters.len()) as u32;
            }
            Merge::Slowlog { nodes, .. } => {
                *nodes = masters
                    .iter()
                    .map(|&n| self.addr_map.public(&self.topo.node(n).addr).to_string())
                    .collect()
            }
            _ => {}
        }
        self.send_to_each(c, cref, &masters, frame, merge, kind);
    }

    /// To every node, masters and replicas, the replies merged (named, where the merge says
    /// which node failed).
    fn fan_out_all(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        mut merge: Merge,
        kind: Kind,
    ) {
        let nodes = self.topo.nodes_sorted();
        if nodes.is_empty() {
            return c.reply_now(&ProxyError::NoMaster.to_frame());
        }
        let names: Vec<String> = nodes
            .iter()
            .map(|&n| self.addr_map.public(&self.topo.node(n).addr).to_string())
            .collect();
        if let Merge::AllOkNamed { nodes } = &mut merge {
            *nodes = names
        }
        self.send_to_each(c, cref, &nodes, frame, merge, kind);
    }

    /// One part per node, merged by `merge`; a control command (SCRIPT KILL, ...) goes on a
    /// connection of its own, never behind a slow command.
    fn send_to_each(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        nodes: &[crate::topology::NodeId],
        frame: Bytes,
        merge: Merge,
        kind: Kind,
    ) {
        let seq = c.reserve_parts(nodes.len(), merge);
        let role = match kind {
            Kind::Control => BackendRole::Dedicated,
            _ => BackendRole::Shared,
        };
        for (k, &n) in nodes.iter().enumerate() {
            self.send_client(c, cref, seq, k as u32, n, frame.clone(), None, role);
        }
    }

    /// CLUSTER NODES/SLOTS/...: the proxy's own view, or a master's with addresses mapped.
    fn cluster_view(&mut self, c: &mut Client, cref: ClientRef, frame: Bytes, view: View) {
        if self.cfg.cluster_view == ClusterView::Proxy {
            let answer = crate::topology::view::proxy_answer(view, &self.announce, c.proto);
            return c.reply_now(&answer);
        }
        let Some(node) = self.any_master() else {
            return c.reply_now(&ProxyError::NoMaster.to_frame());
        };
        if self.addr_map.is_empty() {
            self.send_new(c, cref, node, frame, None);
        } else {
            let map = self.addr_map.clone();
            let seq = c.reserve_parts(1, Merge::Rewrite { view, map });
            self.send_part(c, cref, seq, 0, Some(node), frame, None);
        }
    }

    pub(crate) fn remember_script(&mut self, body: &[u8]) {
        let sha = crate::sha1::sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return;
        }
        if self.scripts.len() >= MAX_SCRIPTS || self.scripts_bytes + body.len() > MAX_SCRIPT_BYTES {
            warn!("script cache full ({MAX_SCRIPTS} scripts, {MAX_SCRIPT_BYTES} bytes): {sha} not remembered");
            return;
        }
        self.scripts_bytes += body.len();
        self.scripts.insert(sha, Bytes::copy_from_slice(body));
    }

    /// SCAN over the cluster: the proxy's cursor names a master (in address order) and that
    /// master's cursor; the request goes to that master with its own cursor.
    pub(crate) fn scan(&mut self, c: &mut Client, cref: ClientRef, args: &FrameArgs<'_>) {
        let masters = self.topo.masters_sorted();
        // As Redis's strtoul: a negative number wraps around (-1 is the largest cursor).
        let cursor = std::str::from_utf8(args.arg(1)).ok().and_then(|s| {
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<i64>().ok().map(|n| n as u64))
        });
        let Some((idx, node_cursor)) = cursor.map(split::decode_scan_cursor) else {
            c.reply_now(&ProxyError::InvalidCursor.to_frame());
            return;
        };
        if masters.is_empty() {
            return c.reply_now(&ProxyError::NoMaster.to_frame());
        }
        let Some(&node) = masters.get(idx as usize) else {
            // A number the proxy did not hand out (or from before masters went away): the
            // iteration is over, as Redis takes any number for a cursor without an error.
            return c.reply_now(b"*2\r\n$1\r\n0\r\n*0\r\n");
        };
        let mut out = BytesMut::new();
        encode::array_header(&mut out, args.argc());
        encode::bulk(&mut out, args.arg(0));
        encode::bulk(&mut out, node_cursor.to_string().as_bytes());
        for i in 2..args.argc() {
            encode::bulk(&mut out, args.arg(i));
        }
        // COUNT, as Redis reads it (the last one wins; 10 by default): how many keys a page
        // gathers over masters before it is answered. A bad COUNT is the node's to refuse.
        let mut want = 10u32;
        let mut i = 2;
        while i + 1 < args.argc() {
            if args.arg(i).eq_ignore_ascii_case(b"COUNT") {
                if let Some(n) = std::str::from_utf8(args.arg(i + 1))
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    want = n;
                }
            }
            i += 2;
        }
        let merge = Merge::Scan {
            master: idx,
            masters: masters.len() as u32,
            want,
            carried: Vec::new(),
        };
        let seq = c.reserve_parts(1, merge);
        self.send_part(c, cref, seq, 0, Some(node), out.freeze(), None);
    }

    /// Answers QUIT or RESET (neither takes arguments) as on any connection.
    pub(crate) fn answer_quit_or_reset(&self, c: &mut Client, local: Local) {
        let info = ServerInfo {
            version: &self.server_version,
        };
        let name: [&[u8]; 1] = [match local {
            Local::Quit => b"QUIT",
            _ => b"RESET",
        }];
        local::answer(local, name.as_slice(), c, &info);
    }
}
