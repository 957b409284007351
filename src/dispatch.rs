//! One routed request to what serves it: a slot's master (or replica), a split over slots,
//! a fan-out to every master, SCAN, INFO, a cluster view, or the proxy itself.

use crate::command::{Args, Command};
use crate::config::ClusterView;
use crate::conn::client::{Client, ReplyMode};
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::local::monitor::monitor_line;
use crate::local::{self, ServerInfo};
use crate::reactor::Core;
use crate::resp::encode::{self};
use crate::route::split::{self, Merge};
use crate::route::{Local, Route};
use crate::tx::is_tx_command;
use bytes::{Bytes, BytesMut};
use log::{trace, warn};
use std::ops::Range;
use std::time::Duration;

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
        (route, cmd): (Route, Option<&'static Command>),
    ) {
        let args = FrameArgs {
            frame: &frame,
            ranges,
        };
        self.stats.commands += 1;
        c.last_request = self.now;
        c.last_cmd = cmd.map(|c| c.name).unwrap_or("unknown");
        if !self.monitors.is_empty() || self.monitor_elsewhere {
            monitor_line(&mut self.monitor_feed, c.addr, &args);
        }
        trace!(
            "client {} {:?}: {:?}",
            c.id,
            String::from_utf8_lossy(args.arg(0)),
            route
        );
        let name = cmd.map(|c| c.name).unwrap_or("");
        // CLIENT REPLY: this command's reply is dropped under OFF, or once after SKIP.
        c.silent = match c.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                c.reply_mode = ReplyMode::On;
                true
            }
        };
        self.route_request(c, cref, frame.clone(), &args, route, name);
        c.silent = false;
    }

    pub(crate) fn route_request(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        route: Route,
        name: &str,
    ) {
        if c.tx.is_some() || is_tx_command(name) {
            self.transaction(c, cref, frame.clone(), name, route);
            return;
        }
        if c.pubsub.is_some()
            || matches!(
                name,
                "SUBSCRIBE"
                    | "PSUBSCRIBE"
                    | "SSUBSCRIBE"
                    | "UNSUBSCRIBE"
                    | "PUNSUBSCRIBE"
                    | "SUNSUBSCRIBE"
            )
        {
            self.pubsub(c, cref, frame.clone(), name, args, route);
            return;
        }
        if matches!(
            name,
            "PUBLISH" | "PUBSUB|CHANNELS" | "PUBSUB|NUMSUB" | "PUBSUB|NUMPAT"
        ) {
            if let Some(home) = self.pubsub_home() {
                self.send_new(c, cref, home, frame.clone(), None);
                return;
            }
        }
        self.execute(c, cref, frame.clone(), args, route);
    }

    pub(crate) fn execute(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        route: Route,
    ) {
        match route {
            Route::Local(
                l @ (Local::ClientInfo | Local::ClientList | Local::ClientKill | Local::Proxy),
            ) => {
                // Needs every client, or may stop the proxy: answered after this client's
                // requests are parsed, in order, through its reply queue.
                let seq = c.reserve();
                let argv = (0..args.argc()).map(|i| args.arg(i).to_vec()).collect();
                self.deferred.push((cref, seq, l, argv, c.last_cmd));
            }
            Route::Local(Local::Monitor) => {
                c.reply_now(b"+OK\r\n");
                if !self.monitors.contains(&cref) {
                    self.monitors.push(cref);
                    self.totals.monitor_started(self.worker);
                }
            }
            Route::Local(l) => {
                let info = ServerInfo {
                    version: &self.server_version,
                };
                local::answer(l, args, c, &info);
            }
            Route::Slot(slot) => match self.topo.owner(slot) {
                Some(node) => self.send_new(c, cref, node, frame, Some(slot)),
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::ReadSlot(slot) => match self.topo.owner(slot) {
                Some(master) => match self.read_node(master) {
                    Ok(node) => self.send_new(c, cref, node, frame, Some(slot)),
                    Err(e) => c.reply_now(&e.to_frame()),
                },
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::AnyMaster => match self.any_master() {
                Some(node) => self.send_new(c, cref, node, frame, None),
                None => c.reply_now(&no_master().to_frame()),
            },
            Route::Blocking(slot) => match self.topo.owner(slot) {
                Some(node) => {
                    let seq = c.reserve();
                    self.send_client(c, cref, seq, 0, node, frame, Some(slot), true);
                }
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::Split { per_key, merge } => {
                // MGET and EXISTS read: their parts follow read_from like any read.
                let read = matches!(merge, Merge::Mget { .. })
                    || args.arg(0).eq_ignore_ascii_case(b"EXISTS");
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
            Route::FanOut(mut merge) => {
                if args.argc() == 3
                    && args.arg(0).eq_ignore_ascii_case(b"SCRIPT")
                    && args.arg(1).eq_ignore_ascii_case(b"LOAD")
                {
                    self.remember_script(args.arg(2));
                }
                let masters = self.topo.masters_sorted();
                if masters.is_empty() {
                    c.reply_now(&no_master().to_frame());
                    return;
                }
                if let Merge::FirstNonNull { start } = &mut merge {
                    self.any_rr = self.any_rr.wrapping_add(1);
                    *start = (self.any_rr % masters.len()) as u32;
                }
                let seq = c.reserve_parts(masters.len(), merge);
                for (k, m) in masters.into_iter().enumerate() {
                    self.send_part(c, cref, seq, k as u32, Some(m), frame.clone(), None);
                }
            }
            Route::FanOutAll(mut merge) => {
                if args.argc() == 2
                    && args.arg(0).eq_ignore_ascii_case(b"CONFIG")
                    && args.arg(1).eq_ignore_ascii_case(b"RESETSTAT")
                {
                    self.totals.reset(self.worker, self.stats);
                }
                if args.argc() >= 2 && args.arg(0).eq_ignore_ascii_case(b"SCRIPT") {
                    if args.arg(1).eq_ignore_ascii_case(b"LOAD") && args.argc() == 3 {
                        self.remember_script(args.arg(2));
                    } else if args.arg(1).eq_ignore_ascii_case(b"FLUSH") {
                        // A client that flushes scripts must see NOSCRIPT afterwards, as from
                        // Redis: nothing is loaded again behind its back.
                        self.scripts.clear();
                        self.scripts_bytes = 0;
                    }
                }
                let nodes = self.topo.nodes_sorted();
                if nodes.is_empty() {
                    c.reply_now(&no_master().to_frame());
                    return;
                }
                let names: Vec<String> = nodes
                    .iter()
                    .map(|&n| self.addr_map.public(&self.topo.node(n).addr).to_string())
                    .collect();
                match &mut merge {
                    Merge::AllOkNamed { nodes } | Merge::Slowlog { nodes, .. } => *nodes = names,
                    _ => {}
                }
                let seq = c.reserve_parts(nodes.len(), merge);
                for (k, n) in nodes.into_iter().enumerate() {
                    self.send_part(c, cref, seq, k as u32, Some(n), frame.clone(), None);
                }
            }
            Route::Scan => self.scan(c, cref, args),
            Route::Info => self.info(c, cref, args, frame.clone()),
            Route::Cluster(view) => {
                if self.cfg.cluster_view == ClusterView::Proxy {
                    c.reply_now(&crate::topology::view::proxy_answer(
                        view,
                        &self.announce,
                        c.proto,
                    ));
                    return;
                }
                let Some(node) = self.any_master() else {
                    c.reply_now(&no_master().to_frame());
                    return;
                };
                if self.addr_map.is_empty() {
                    self.send_new(c, cref, node, frame, None);
                } else {
                    let map = self.addr_map.clone();
                    let seq = c.reserve_parts(1, Merge::Rewrite { view, map });
                    self.send_part(c, cref, seq, 0, Some(node), frame, None);
                }
            }
            Route::Admin(inner) => {
                if self.cfg.allow_admin_commands {
                    self.execute(c, cref, frame, args, *inner);
                } else {
                    let mut name = String::from_utf8_lossy(args.arg(0)).to_uppercase();
                    let has_subs = crate::route::has_subcommands(&name);
                    if has_subs && args.argc() > 1 {
                        name.push(' ');
                        name.push_str(&String::from_utf8_lossy(args.arg(1)).to_uppercase());
                    }
                    c.reply_now(
                        &ProxyError::Other(format!(
                            "ERR {name} is not allowed through the proxy (allow_admin_commands)"
                        ))
                        .to_frame(),
                    );
                }
            }
            Route::Refuse(e) => c.reply_now(&e.to_frame()),
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
            c.reply_now(&ProxyError::Other("ERR invalid cursor".into()).to_frame());
            return;
        };
        if masters.is_empty() {
            return c.reply_now(&no_master().to_frame());
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
        let merge = Merge::Scan {
            master: idx,
            masters: masters.len() as u32,
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

pub(crate) fn no_master() -> ProxyError {
    ProxyError::Other("CLUSTERDOWN no master is known to the proxy".into())
}
