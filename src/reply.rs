//! The node side of a turn: replies split off a node connection go to their client, or
//! through the redirect state machine (`inflight::on_error`): MOVED, ASK, TRYAGAIN,
//! NOSCRIPT; broken and timed-out connections fail what they carried.

use crate::conn::backend::{self, BackendState, NodeClientId};
use crate::conn::client::Client;
use crate::conn::role::BackendRole;
use crate::error::ProxyError;
use crate::inflight::{self, Attempt, ClientRef, InFlight, Next, Owner};
use crate::inflight::{Reason, HOLD_POLL};
use crate::lograte::{left_out, Kind};
use crate::reactor::{Core, Kill, Reactor, Wake};
use crate::resp::encode::{self, Proto};
use crate::resp::reply::elements;
use crate::resp::reply::{classify_error, ErrorKind, Redirect};
use crate::resp::request::{Frame, RequestParser};
use crate::route::split::Merge;
use crate::slot::Slot;
use crate::timer::TimerKind;
use crate::topology::RefreshState;
use crate::topology::{NodeId, Role};
use bytes::{Bytes, BytesMut};
use log::{debug, error, info, warn};
use slab::Slab;
use std::time::Duration;

/// How soon a refresh follows a MOVED: soon, but one refresh serves a burst of them.
pub(crate) const MOVED_REFRESH_DELAY: Duration = Duration::from_millis(50);

pub(crate) const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

impl Reactor {
    pub(crate) fn backend_event(
        &mut self,
        idx: usize,
        readable: bool,
        writable: bool,
        stop_short: bool,
    ) {
        let Some(b) = self.core.backends.get_mut(idx) else {
            return;
        };
        if writable {
            let was_connecting = matches!(b.state, BackendState::Connecting { .. });
            if let backend::Verdict::Broken(why) = b.on_writable() {
                self.core.backend_failed(&mut self.clients, idx, &why);
                return;
            }
            if was_connecting && b.state == BackendState::Ready {
                let node = b.node;
                let addr = &self.core.topo.node(node).addr;
                if self.core.pool.mark_up(node) {
                    let now = self.core.now;
                    if let Some(n) = self.core.log_gate.admit(node.0, Kind::Reachable, now) {
                        info!("node {addr} reachable again{}", left_out(n));
                    }
                    self.core.release_held(&mut self.clients);
                } else {
                    debug!("connected to node {addr}");
                }
            }
        }
        if readable {
            self.backend_input(idx, stop_short);
        }
    }

    pub(crate) fn backend_input(&mut self, idx: usize, stop_short: bool) {
        let Some(b) = self.core.backends.get_mut(idx) else {
            return;
        };
        let mut replies = std::mem::take(&mut self.core.replies);
        let (verdict, more) = b.on_readable(&mut self.core.scratch, stop_short, &mut replies);
        // A TLS handshake moved on: its records, or requests held for it, go out this turn.
        let flush = b.needs_flush();
        let (node, proto) = (b.node, b.proto);
        if !b.unblocks.is_empty() && b.node_client_id != NodeClientId::Asked {
            // The node's id for this connection is in: CLIENT UNBLOCKs that waited for it
            // go out with this turn's deferred requests.
            let waiting = std::mem::take(&mut b.unblocks);
            self.core.requeue_unblocks(waiting, false);
        }
        for (req, frame) in replies.drain(..) {
            self.core
                .on_reply(&mut self.clients, node, proto, req, frame);
        }
        self.core.replies = replies;
        if let backend::Verdict::Broken(why) = verdict {
            self.core.backend_failed(&mut self.clients, idx, &why);
            return;
        }
        if flush {
            self.core.mark_backend(idx);
        }
        if more {
            self.core.resume_backends.push(idx);
        } else {
            self.core.release_dedicated(idx);
        }
    }
}

impl Core {
    /// A reply from `from` for `req`: redirect it, or deliver it.
    pub(crate) fn on_reply(
        &mut self,
        clients: &mut Slab<Client>,
        from: NodeId,
        proto: Proto,
        req: InFlight,
        frame: Bytes,
    ) {
        let (client, seq, part) = match req.owner {
            Owner::Client { client, seq, part } => {
                if self.cfg.metrics_address.is_some() {
                    let us = self.now.saturating_duration_since(req.sent_at).as_micros();
                    self.latency
                        .record(req.family, usize::from(from.0), us as u64);
                    if frame.first() == Some(&b'-') {
                        // Errors are few: the command is found again from the request.
                        let mut p = crate::resp::request::RequestParser::new();
                        let cmd = match p.parse(&req.req) {
                            Ok(Some(_)) => {
                                let args: Vec<&[u8]> = p
                                    .args()
                                    .iter()
                                    .filter_map(|r| req.req.get(r.clone()))
                                    .collect();
                                crate::command::lookup(args.as_slice())
                            }
                            _ => None,
                        };
                        self.counts.node_error(cmd, &frame);
                    }
                }
                (client, seq, part)
            }
            Owner::Stream(to) => return self.stream_frame(clients, to, frame),
            Owner::FanIn => return self.fanin_frame(clients, from, frame),
            Owner::Refresh => return self.refresh_done(clients, from, &frame),
            Owner::Internal | Owner::Hello | Owner::Auth | Owner::NodeClientId => {
                return self.own_reply(from, &req.owner, &frame)
            }
        };
        if req.write && frame.first() != Some(&b'-') {
            // Where the write was made, after any redirection: WAIT asks there.
            if let Some(c) = clients.get_mut(client.idx).filter(|c| c.gen == client.gen) {
                if !c.wrote_to.contains(&from) {
                    c.wrote_to.push(from);
                }
            }
        }
        if frame.first() != Some(&b'-') || req.role.held() {
            // A SCAN page that a master ended short goes on to the next master.
            // (SCAN parts have no slot: a keyed reply costs no lookup here.)
            if req.slot.is_none()
                && frame.starts_with(b"*2\r\n")
                && self.scan_goes_on(clients, client, seq, &frame, &req.req)
            {
                return;
            }
            deliver(clients, &mut self.wake, client, seq, part, frame);
            return;
        }
        if frame.starts_with(b"-NOAUTH") && self.creds.is_none() {
            self.warn_noauth(from);
        }
        // The node did not run it and says why (no master for the slot yet, an election, a
        // migration, a load from disk): held until the cluster mends.
        if self.cfg.auto_redirect && !self.cfg.failover_wait.is_zero() && worth_holding(&frame) {
            self.stats.retries += 1;
            debug!(
                "{} from {}; held",
                String::from_utf8_lossy(&frame).trim_end(),
                self.topo.node(from).addr
            );
            if frame.starts_with(b"-CLUSTERDOWN") {
                self.request_refresh(Duration::ZERO);
            }
            let reason = Reason::Answered(frame);
            if let Err(failed) = self.hold_request(req, proto, Some(from), reason, HOLD_POLL) {
                let (req, frame) = *failed;
                deliver_frame(clients, &mut self.wake, req, frame);
            }
            return;
        }
        let kind = classify_error(&frame);
        let next = inflight::on_error(
            req.attempt,
            kind.clone(),
            self.cfg.auto_redirect,
            self.cfg.max_redirects,
            self.now,
        );
        let from_addr = self.topo.node(from).addr.clone();
        let reply = match next {
            Next::Deliver => Some(self.passed_on(kind, &from_addr, &frame)),
            Next::Moved {
                slot,
                addr,
                attempt,
            } => {
                self.moved(clients, (from_addr, proto), req, (slot, addr), attempt);
                None
            }
            Next::Ask { addr, attempt } => {
                self.ask(clients, (from_addr, proto), req, addr, attempt);
                None
            }
            Next::Retry { attempt } => {
                debug!(
                    "{} from {from_addr}; retrying after a backoff",
                    String::from_utf8_lossy(&frame).trim_end()
                );
                self.park(req, proto, attempt, &kind);
                None
            }
            Next::LoadScript { attempt } => {
                let body = script_sha(&req.req).and_then(|sha| self.scripts.get(&sha).cloned());
                let Some(body) = body else {
                    return deliver(clients, &mut self.wake, client, seq, part, frame);
                };
                debug!("NOSCRIPT from {from_addr}: loading the script there and retrying");
                let mut req = req;
                req.attempt = attempt;
                let mut load = BytesMut::new();
                encode::command(&mut load, &[b"SCRIPT", b"LOAD", &body]);
                self.resend(clients, from, proto, req, Some(load.freeze()));
                None
            }
            Next::GiveUp { max } => {
                let last = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
                warn!("giving up after {max} redirections: {last}");
                Some(Bytes::from(
                    ProxyError::TooManyRedirects { max, last }.to_frame(),
                ))
            }
        };
        if let Some(reply) = reply {
            deliver(clients, &mut self.wake, client, seq, part, reply);
        }
    }

    /// A SCAN reply whose master has no more keys while the page holds fewer than COUNT:
    /// its keys are carried and the same SCAN goes to the next master from cursor 0, for
    /// the same reply place, so a small keyspace comes back whole in one call (as from one
    /// Redis) and MATCH and TYPE hold across the boundary.
    fn scan_goes_on(
        &mut self,
        clients: &mut Slab<Client>,
        cref: ClientRef,
        seq: u64,
        frame: &Bytes,
        sent: &[u8],
    ) -> bool {
        let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
            return false;
        };
        let Some(&mut Merge::Scan {
            master,
            masters,
            want,
            ref carried,
        }) = c.merge_mut(seq)
        else {
            return false;
        };
        let Some((_, els)) = elements(frame).filter(|(_, e)| e.len() == 2) else {
            return false;
        };
        let cursor_done = frame.get(els[0].clone()) == Some(&b"$1\r\n0\r\n"[..]);
        let page = frame.slice(els[1].clone());
        let Some((_, keys)) = elements(&page) else {
            return false;
        };
        let next = master + 1;
        let masters_now = self.topo.masters_sorted();
        // The last master, a full page, or a topology that changed under the iteration:
        // the page is answered as it is.
        if !cursor_done
            || next >= masters
            || masters_now.len() as u32 != masters
            || carried.len() + keys.len() >= want as usize
        {
            return false;
        }
        // The same SCAN (MATCH, COUNT, TYPE) from cursor 0 on the next master.
        let mut p = RequestParser::new();
        if !matches!(p.parse(sent), Ok(Some(Frame::Multibulk { .. }))) {
            return false;
        }
        let args: Vec<&[u8]> = p
            .args()
            .iter()
            .filter_map(|r| sent.get(r.clone()))
            .collect();
        if args.len() < 2 {
            return false;
        }
        let mut out = BytesMut::new();
        encode::array_header(&mut out, args.len());
        for (i, a) in args.iter().enumerate() {
            encode::bulk(&mut out, if i == 1 { b"0" } else { a });
        }
        if let Some(Merge::Scan {
            master, carried, ..
        }) = c.merge_mut(seq)
        {
            carried.extend(keys.into_iter().map(|k| page.slice(k)));
            *master = next;
        }
        let node = masters_now[next as usize];
        self.send_client(
            c,
            cref,
            seq,
            0,
            node,
            out.freeze(),
            None,
            BackendRole::Shared,
        );
        true
    }

    /// A reply to the proxy's own ASKING, READONLY or HELLO 3: only a refusal is of note.
    fn own_reply(&self, from: NodeId, owner: &Owner, frame: &[u8]) {
        if frame.first() != Some(&b'-') {
            return;
        }
        let addr = &self.topo.node(from).addr;
        let why = String::from_utf8_lossy(frame);
        match owner {
            Owner::Hello => error!(
                "node {addr} refused HELLO 3 (RESP3 clients will get RESP2 replies): {}",
                why.trim_end()
            ),
            _ => debug!("node {addr} refused ASKING/READONLY: {}", why.trim_end()),
        }
    }

    /// An error the client gets as the node gave it (a redirect with `address_map`
    /// applied); the proxy still learns from a MOVED.
    fn passed_on(&mut self, kind: ErrorKind<'_>, from_addr: &str, frame: &Bytes) -> Bytes {
        let redirect = matches!(kind, ErrorKind::Redirect(_));
        if let ErrorKind::Redirect(Redirect::Moved { slot, addr }) = kind {
            let addr = full_addr(addr, from_addr);
            self.topo.set_owner(Slot(slot), &addr);
            self.request_refresh(MOVED_REFRESH_DELAY);
        }
        match self.addr_map.rewrite_redirect(frame) {
            Some(rewritten) if redirect => Bytes::from(rewritten),
            _ => frame.clone(),
        }
    }

    /// MOVED: the slot's new owner is recorded and the request re-sent there.
    fn moved(
        &mut self,
        clients: &mut Slab<Client>,
        (from_addr, proto): (String, Proto),
        mut req: InFlight,
        (slot, addr): (u16, &str),
        attempt: Attempt,
    ) {
        let addr = full_addr(addr, &from_addr);
        info!("MOVED slot {slot}: {from_addr} -> {addr}");
        self.stats.moved += 1;
        req.attempt = attempt;
        match self.topo.set_owner(Slot(slot), &addr) {
            Some(node) => {
                self.request_refresh(MOVED_REFRESH_DELAY);
                self.resend(clients, node, proto, req, None);
            }
            None => fail(clients, &mut self.wake, req, ProxyError::NodeTableFull),
        }
    }

    /// ASK: the request once more to the named node, behind ASKING.
    fn ask(
        &mut self,
        clients: &mut Slab<Client>,
        (from_addr, proto): (String, Proto),
        mut req: InFlight,
        addr: &str,
        attempt: Attempt,
    ) {
        let addr = full_addr(addr, &from_addr);
        debug!("ASK slot {:?}: {from_addr} -> {addr}", req.slot);
        self.stats.ask += 1;
        req.attempt = attempt;
        match self.topo.intern(&addr, Role::Master) {
            Some(node) => self.resend(clients, node, proto, req, Some(Bytes::from_static(ASKING))),
            None => fail(clients, &mut self.wake, req, ProxyError::NodeTableFull),
        }
    }

    /// TRYAGAIN or CLUSTERDOWN: the request waits out its backoff (`resend_parked`).
    fn park(&mut self, mut req: InFlight, proto: Proto, attempt: Attempt, kind: &ErrorKind<'_>) {
        self.stats.retries += 1;
        if let Attempt::Backoff { until, .. } = attempt {
            self.timers.add(until, TimerKind::Parked);
        }
        req.attempt = attempt;
        if matches!(kind, ErrorKind::ClusterDown) {
            self.request_refresh(Duration::ZERO);
        }
        self.parked.push((req, proto));
    }

    pub(crate) fn resend(
        &mut self,
        clients: &mut Slab<Client>,
        node: NodeId,
        proto: Proto,
        req: InFlight,
        prefix: Option<Bytes>,
    ) {
        let client_idx = match req.owner {
            Owner::Client { client, .. } => {
                // Its client left: a re-send would only run a command nobody waits for (a
                // BLPOP taking an element no one receives).
                if clients.get(client.idx).is_none_or(|c| c.gen != client.gen) {
                    return;
                }
                client.idx
            }
            _ => 0,
        };
        if let Err(failed) = self.send(node, proto, client_idx, req, prefix) {
            let (e, req) = *failed;
            if matches!(e, ProxyError::NodeUnavailable { .. }) {
                self.hold_or_fail(clients, req, proto, Some(node), Reason::Unusable(e));
            } else {
                fail(clients, &mut self.wake, req, e);
            }
        }
    }

    pub(crate) fn resend_parked(&mut self, clients: &mut Slab<Client>) {
        let now = self.now;
        let parked = std::mem::take(&mut self.parked);
        for (mut req, proto) in parked {
            let Attempt::Backoff { redirects, until } = req.attempt else {
                continue;
            };
            if until > now {
                self.parked.push((req, proto));
                continue;
            }
            req.attempt = Attempt::Sent { redirects };
            let node = match req.slot {
                Some(s) => self.topo.owner(s),
                None => self.any_master(),
            };
            match node {
                Some(node) => self.resend(clients, node, proto, req, None),
                None => {
                    let e = ProxyError::SlotUnserved(req.slot.map(|s| s.0).unwrap_or(0));
                    fail(clients, &mut self.wake, req, e);
                }
            }
        }
    }

    /// Drops a broken connection: its requests fail with an error naming the node, the node
    /// is marked down (new connections wait out a backoff), and the topology is refreshed.
    pub(crate) fn backend_failed(&mut self, clients: &mut Slab<Client>, idx: usize, why: &str) {
        let Some(mut b) = self.take_backend(idx) else {
            return;
        };
        let addr = self.topo.node(b.node).addr.clone();
        // A node closing an idle connection (its own `timeout`) is not a node failure.
        // Nor is a slow connection the proxy already moved other clients off: the node
        // answers them on the fresh one.
        let failure = matches!(b.state, BackendState::Connecting { .. })
            || (!b.inflight.is_empty() && b.retired.is_none());
        let wait = if failure {
            self.stats.node_failures += 1;
            self.pool.mark_down(b.node, self.now)
        } else {
            Duration::ZERO
        };
        self.unhold(|(_, d)| d.idx != idx || d.gen != b.gen);
        let unsent_from = b.unsent_from();
        if let BackendState::Connecting { .. } = b.state {
            if let Some(n) = self.log_gate.admit(b.node.0, Kind::ConnectFailed, self.now) {
                warn!(
                    "cannot connect to node {addr}: {why} (retry in {wait:?}){}",
                    left_out(n)
                )
            }
        }
        if b.auth_refused {
            self.reread_backend_password(&addr);
        }
        if let Some(to) = b.role.stream_client() {
            // The subscriber's connection is gone, and its subscriptions with it: closing the
            // client lets it reconnect and subscribe again, as after a server restart.
            self.wake.kill.push((to, Kill::SubscriptionLost));
        }
        if b.role == BackendRole::FanIn {
            // That master's changes go unseen until a new connection tracks again: every
            // tracking client flushes (as Redis's clients do when their connection drops).
            self.tracking_flush(clients);
        }
        let (node, proto) = (b.node, b.proto);
        let holding = !self.cfg.failover_wait.is_zero();
        // For the log: requests held to go again, failed in doubt, failed.
        let (mut again_n, mut doubt_n, mut failed_n) = (0, 0, 0);
        let ready = b.state == BackendState::Ready;
        for (i, req) in b.inflight.drain(..).enumerate() {
            match req.owner {
                Owner::Client { .. } => {
                    let unsent = i >= unsent_from;
                    let e = ProxyError::NodeUnavailable {
                        node: addr.clone(),
                        why: why.to_string(),
                    };
                    // What never left, or only reads, can go again; a write that may have
                    // run is never re-sent, and its client is told it is in doubt.
                    let again = matches!(req.role, BackendRole::Shared | BackendRole::Dedicated);
                    if again && (unsent || read_only(&req.req)) {
                        if holding {
                            again_n += 1;
                        } else {
                            failed_n += 1;
                        }
                        self.hold_or_fail(clients, req, proto, Some(node), Reason::Unusable(e));
                    } else if unsent {
                        failed_n += 1;
                        fail(clients, &mut self.wake, req, e);
                    } else {
                        doubt_n += 1;
                        self.stats.in_doubt += 1;
                        let e = ProxyError::InDoubt {
                            node: addr.clone(),
                            why: why.to_string(),
                        };
                        fail(clients, &mut self.wake, req, e);
                    }
                }
                Owner::Refresh => {
                    if let Some(n) = self.log_gate.admit(node.0, Kind::RefreshFailed, self.now) {
                        warn!("topology refresh from {addr} failed: {why}{}", left_out(n));
                    }
                    self.refresh = RefreshState::Idle;
                    self.request_refresh(Duration::ZERO);
                }
                Owner::Internal | Owner::Hello | Owner::Auth | Owner::NodeClientId => {}
                Owner::Stream(to) => self.wake.kill.push((to, Kill::SubscriptionLost)),
                Owner::FanIn => {}
            }
        }
        if ready {
            if let Some(n) = self.log_gate.admit(node.0, Kind::ConnectionLost, self.now) {
                warn!(
                    "connection to node {addr} lost: {why} (of its requests in flight: {again_n} held to go again, {doubt_n} failed as possibly applied, {failed_n} failed){}",
                    left_out(n)
                );
            }
        }
        if failure {
            self.request_refresh(Duration::ZERO);
        }
    }

    /// A node asks for a password the proxy does not give: at most one warning every 10 s.
    fn warn_noauth(&mut self, from: NodeId) {
        let due = self
            .noauth_warned
            .is_none_or(|at| self.now.duration_since(at) >= Duration::from_secs(10));
        if due {
            self.noauth_warned = Some(self.now);
            warn!(
                "node {} requires a password (NOAUTH): set backend_auth in the proxy's configuration",
                self.topo.node(from).addr
            );
        }
    }

    /// A node refused the proxy's password: when it comes from a file or the environment,
    /// it is read again, so a password changed on the nodes and in its file is taken on
    /// the next connection, without a restart.
    fn reread_backend_password(&mut self, node: &str) {
        let Some(mut auth) = self.cfg.backend_auth.clone() else {
            return;
        };
        if auth.password.is_some() {
            return;
        }
        if let Err(e) = auth.resolve() {
            warn!("node {node} refused the proxy's password, and reading it again failed: {e}");
            return;
        }
        let (Some(new), Some(old)) = (&auth.resolved, &self.cfg.backend_auth) else {
            return;
        };
        if old.resolved.as_ref() == Some(new) {
            return;
        }
        info!("node {node} refused the proxy's password: a new one was read from backend_auth's source, used from now on");
        self.creds = crate::auth::NodeCredentials::new(auth.user.as_deref(), new);
        self.cfg.backend_auth = Some(auth);
    }

    /// A backend's timer: connect timeout while connecting, reply timeout once ready.
    pub(crate) fn check_backend(&mut self, clients: &mut Slab<Client>, idx: usize, gen: u64) {
        let now = self.now;
        let (connect_to, reply_to) = (self.cfg.connect_timeout, self.cfg.backend_timeout);
        let Some(b) = self.backends.get_mut(idx).filter(|b| b.gen == gen) else {
            return;
        };
        b.timer_armed = false;
        let deadline = match b.state {
            BackendState::Connecting { since } => Some((since + connect_to, "connect timeout")),
            BackendState::Ready if !reply_to.is_zero() && b.role.timed() => b
                .inflight
                .front()
                .map(|r| (r.sent_at + reply_to, "no reply within backend_timeout")),
            BackendState::Ready => None,
        };
        match deadline {
            Some((at, why)) if at <= now => self.backend_failed(clients, idx, why),
            Some((at, _)) => {
                b.timer_armed = true;
                self.timers.add(at, TimerKind::Backend { idx, gen });
            }
            None => {}
        }
    }
}

/// Replies that say the node did not run the request and that the cluster may soon be
/// able to: worth holding the request for (`hold.rs`).
pub(crate) fn worth_holding(frame: &[u8]) -> bool {
    [
        &b"-CLUSTERDOWN "[..],
        b"-TRYAGAIN ",
        b"-MASTERDOWN ",
        b"-LOADING ",
    ]
    .iter()
    .any(|p| frame.starts_with(p))
}

/// Whether a request is read-only by the command table (GET, not INCR, EVAL or BLPOP), so
/// that running it twice cannot change anything: only those are re-sent when a connection
/// broke with them in flight.
pub(crate) fn read_only(req: &[u8]) -> bool {
    let mut p = crate::resp::request::RequestParser::new();
    if !matches!(p.parse(req), Ok(Some(Frame::Multibulk { .. }))) {
        return false;
    }
    let args: Vec<&[u8]> = p.args().iter().filter_map(|r| req.get(r.clone())).collect();
    use crate::command::flag;
    crate::command::lookup(&args[..])
        .is_some_and(|c| c.has(flag::READONLY) && !c.has(flag::WRITE) && !c.has(flag::BLOCKING))
}

/// The digest an EVALSHA/EVALSHA_RO request names, lower-cased.
pub(crate) fn script_sha(req: &[u8]) -> Option<String> {
    let mut p = crate::resp::request::RequestParser::new();
    match p.parse(req).ok()?? {
        Frame::Multibulk { .. } => {}
        _ => return None,
    }
    let args = p.args();
    let name = req.get(args.first()?.clone())?;
    if !name.eq_ignore_ascii_case(b"EVALSHA") && !name.eq_ignore_ascii_case(b"EVALSHA_RO") {
        return None;
    }
    let sha = req.get(args.get(1)?.clone())?;
    Some(String::from_utf8_lossy(sha).to_ascii_lowercase())
}

/// A redirect's address, completed with the replying node's host when the cluster left it
/// out (`:7001`, from a node that does not know its own IP).
pub(crate) fn full_addr(addr: &str, from: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => {
            let host = crate::config::split_host_port(from)
                .map(|(h, _)| h)
                .unwrap_or("127.0.0.1");
            format!("{host}:{port}")
        }
        None => addr.to_string(),
    }
}

/// Puts a reply in its client's queue, if the client is still the one that asked.
pub(crate) fn deliver(
    clients: &mut Slab<Client>,
    wake: &mut Wake,
    cref: ClientRef,
    seq: u64,
    part: u32,
    frame: Bytes,
) {
    let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
        return;
    };
    if !c.complete(seq, part, frame) {
        error!(
            "client {}: reply for an unknown request {seq} dropped",
            c.id
        );
        return;
    }
    if !c.staged.is_empty() {
        wake.staged.push(cref);
    }
    if !c.dirty {
        c.dirty = true;
        wake.dirty_clients.push(cref.idx);
    }
    if c.output_len() > wake.limits.hard_output {
        wake.kill.push((cref, Kill::OutputLimit));
    } else if c.paused && c.wants_input(&wake.limits) {
        c.paused = false;
        wake.resume_clients.push(cref.idx);
    }
}

pub(crate) fn fail(clients: &mut Slab<Client>, wake: &mut Wake, req: InFlight, e: ProxyError) {
    deliver_frame(clients, wake, req, Bytes::from(e.to_frame()));
}

/// Answers a request with `frame` (an error line), if a client waits for it.
pub(crate) fn deliver_frame(
    clients: &mut Slab<Client>,
    wake: &mut Wake,
    req: InFlight,
    frame: Bytes,
) {
    if let Owner::Client { client, seq, part } = req.owner {
        deliver(clients, wake, client, seq, part, frame);
    }
}
