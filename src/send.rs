//! The one way onto a node: a client's request goes on its shared connection (the same one
//! for the same client, so its order holds), or a dedicated one for a blocking command;
//! opening, lending and closing node connections.

use crate::config::ReadFrom;
use crate::conn::backend::{Backend, BackendState, NodeClientId, Prelude};
use crate::conn::client::Client;
use crate::conn::pool::{proto_index, BackendRef};
use crate::conn::role::{BackendRole, Idle};
use crate::error::ProxyError;
use crate::inflight::Reason;
use crate::inflight::{Attempt, ClientRef, InFlight, Owner};
use crate::lograte::{left_out, Kind};
use crate::reactor::{backend_token, Core};
use crate::resp::encode::Proto;
use crate::slot::Slot;
use crate::timer::TimerKind;
use crate::topology::{NodeId, Role};
use bytes::Bytes;
use log::{debug, info, warn};
use std::time::Duration;

const CLIENT_ID: &[u8] = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";

/// Dedicated connections for blocking commands: at most this many open, and this many kept
/// idle per node and protocol for reuse.
pub(crate) const MAX_DEDICATED: usize = 1024;

pub(crate) const MAX_IDLE_DEDICATED: usize = 8;

/// Slow shared connections retired and still draining, per node and protocol: past this,
/// requests queue on the slow one again rather than opening ever more connections.
pub(crate) const MAX_RETIRED: usize = 4;

impl Core {
    /// Sends a client's new request to `node`, reserving its place in the reply order.
    pub(crate) fn send_new(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        node: NodeId,
        frame: Bytes,
        slot: Option<Slot>,
    ) {
        let seq = c.reserve();
        self.send_part(c, cref, seq, 0, Some(node), frame, slot);
    }

    /// Sends one part of a split or fanned-out request; a part that cannot be sent is
    /// answered with its error, which the merge turns into the whole reply's error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_part(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        seq: u64,
        part: u32,
        node: Option<NodeId>,
        frame: Bytes,
        slot: Option<Slot>,
    ) {
        match node {
            Some(node) => {
                self.send_client(c, cref, seq, part, node, frame, slot, BackendRole::Shared)
            }
            None => {
                // No node serves the slot (yet): held until one does, as for a node down.
                self.request_refresh(Duration::ZERO);
                let mut req =
                    self.client_request(cref, seq, part, frame, slot, BackendRole::Shared);
                req.family = c.family;
                req.write = c.writes;
                let e = ProxyError::SlotUnserved(slot.map(|s| s.0).unwrap_or(0));
                self.hold_client(c, req, None, Reason::Unusable(e));
            }
        }
    }

    fn client_request(
        &self,
        client: ClientRef,
        seq: u64,
        part: u32,
        frame: Bytes,
        slot: Option<Slot>,
        role: BackendRole,
    ) -> InFlight {
        InFlight {
            owner: Owner::Client { client, seq, part },
            req: frame,
            slot,
            attempt: Attempt::Sent { redirects: 0 },
            sent_at: self.now,
            role,
            held_since: None,
            family: crate::latency::OTHER,
            write: false,
        }
    }

    /// Holds a client's request that cannot go to its node now (see `hold.rs`), or answers
    /// it with `e` when holding is off.
    fn hold_client(&mut self, c: &mut Client, req: InFlight, node: Option<NodeId>, reason: Reason) {
        if let Err(failed) = self.hold_request(req, c.proto, node, reason, Duration::ZERO) {
            let (req, frame) = *failed;
            if let Owner::Client { seq, part, .. } = req.owner {
                c.complete(seq, part, frame);
            }
        }
    }

    /// Sends a client's request (or part of one) for reply place `seq`; a request that
    /// cannot be sent is answered with its error. `dedicated`: on a connection of its own
    /// (a blocking command).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_client(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        seq: u64,
        part: u32,
        node: NodeId,
        frame: Bytes,
        slot: Option<Slot>,
        role: BackendRole,
    ) {
        let mut req = self.client_request(cref, seq, part, frame, slot, role);
        req.family = c.family;
        req.write = c.writes;
        // Behind the client's held requests: its requests reach the node in its order.
        if self.has_held(cref) {
            return self.hold_client(c, req, Some(node), Reason::Behind);
        }
        if let Err(failed) = self.send(node, c.proto, cref.idx, req, None) {
            let (e, req) = *failed;
            if matches!(e, ProxyError::NodeUnavailable { .. }) {
                self.hold_client(c, req, Some(node), Reason::Unusable(e));
            } else {
                c.complete(seq, part, Bytes::from(e.to_frame()));
            }
        }
    }

    /// Queues a request on the node's shared connection for this client, preceded by
    /// `prefix` (ASKING; a staged write's MULTI and its writes) whose replies are the
    /// proxy's. On failure the request comes back with the error.
    pub(crate) fn send(
        &mut self,
        node: NodeId,
        proto: Proto,
        client_idx: usize,
        req: InFlight,
        prefix: impl IntoIterator<Item = Bytes>,
    ) -> Result<(), Box<(ProxyError, InFlight)>> {
        let chosen = if req.role.blocking() {
            self.dedicated_backend(node, proto)
        } else {
            self.backend_for(node, proto, client_idx)
        };
        let idx = match chosen {
            Ok(idx) => idx,
            Err(e) => return Err(Box::new((e, req))),
        };
        if let (true, Owner::Client { client, .. }) = (req.role.blocking(), &req.owner) {
            self.hold((
                *client,
                BackendRef {
                    idx,
                    gen: self.backends[idx].gen,
                },
            ));
        }
        let now = self.now;
        let timeout = self.cfg.backend_timeout;
        let b = &mut self.backends[idx];
        if req.role.blocking() && b.node_client_id == NodeClientId::Unknown {
            // The node's id for this connection, which CLIENT UNBLOCK must name: asked once
            // per connection, pipelined ahead of its first blocking command (no round trip
            // of its own, a few bytes), so it is known by the time the command blocks.
            // Asking at UNBLOCK time cannot work: the connection is blocked then.
            b.push(
                Bytes::from_static(CLIENT_ID),
                Owner::NodeClientId,
                None,
                now,
            );
            b.node_client_id = NodeClientId::Asked;
        }
        for p in prefix {
            b.push(p, Owner::Internal, req.slot, now);
        }
        b.push_request(req, now);
        if !b.timer_armed && !timeout.is_zero() && b.role.timed() {
            b.timer_armed = true;
            let gen = b.gen;
            self.timers
                .add(now + timeout, TimerKind::Backend { idx, gen });
        }
        self.mark_backend(idx);
        Ok(())
    }

    /// The shared connection a client's requests to `node` use: always the same one for the
    /// same client, so its requests to one node are executed in the order it sent them.
    pub(crate) fn backend_for(
        &mut self,
        node: NodeId,
        proto: Proto,
        client_idx: usize,
    ) -> Result<usize, ProxyError> {
        let p = proto_index(proto);
        if !self.pool.node(node).retired[p].is_empty() {
            if let Some(idx) = self.retired_for(node, p, client_idx) {
                return Ok(idx);
            }
        }
        let places = self.cfg.backend_connections;
        let set = &mut self.pool.node(node).sets[p];
        if set.len() != places {
            set.resize(places, None);
        }
        let i = client_idx % places;
        if let Some(r) = set[i] {
            if !self.is_slow(r.idx) || self.pool.node(node).retired[p].len() >= MAX_RETIRED {
                return Ok(r.idx);
            }
            self.retire(node, p, i, r);
        }
        let idx = self.connect_one(node, proto)?;
        let gen = self.backends[idx].gen;
        self.pool.node(node).sets[p][i] = Some(BackendRef { idx, gen });
        Ok(idx)
    }

    /// Whether the oldest request on a shared connection has waited `slow_command_threshold`:
    /// a script that loops, a node paused by CLIENT PAUSE. One comparison per request.
    fn is_slow(&self, idx: usize) -> bool {
        let t = self.cfg.slow_command_threshold;
        let b = &self.backends[idx];
        !t.is_zero()
            && b.state == BackendState::Ready
            && b.inflight
                .front()
                .is_some_and(|f| self.now.duration_since(f.sent_at) >= t)
    }

    /// Takes a slow shared connection out of its place, so the next request opens a fresh
    /// one; the clients with requests on it keep using it until it drains (their order).
    fn retire(&mut self, node: NodeId, p: usize, place: usize, r: BackendRef) {
        let b = &mut self.backends[r.idx];
        let mut clients: Vec<usize> = b
            .inflight
            .iter()
            .filter_map(|f| match f.owner {
                Owner::Client { client, .. } => Some(client.idx),
                _ => None,
            })
            .collect();
        clients.sort_unstable();
        clients.dedup();
        let waited = b
            .inflight
            .front()
            .map_or(Duration::ZERO, |f| self.now.duration_since(f.sent_at));
        b.retired = Some(clients);
        let conns = self.pool.node(node);
        conns.sets[p][place] = None;
        conns.retired[p].push(r);
        self.stats.slow_retired += 1;
        info!(
            "node {}: a request has waited {waited:?} on a shared connection (a slow command, a paused node); other clients go on a new connection",
            self.topo.node(node).addr
        );
    }

    /// The retired connection a client's earlier requests wait on, if any.
    fn retired_for(&mut self, node: NodeId, p: usize, client_idx: usize) -> Option<usize> {
        let retired = &self.pool.node(node).retired[p];
        retired.iter().find_map(|r| {
            let b = self.backends.get(r.idx).filter(|b| b.gen == r.gen)?;
            let clients = b.retired.as_ref()?;
            clients.binary_search(&client_idx).ok().map(|_| r.idx)
        })
    }

    /// A connection of its own for a blocking command: an idle dedicated one to the node, or
    /// a new one. Bounded, so clients cannot open connections to the nodes without limit.
    pub(crate) fn dedicated_backend(
        &mut self,
        node: NodeId,
        proto: Proto,
    ) -> Result<usize, ProxyError> {
        let p = proto_index(proto);
        while let Some(r) = self.pool.node(node).idle_dedicated[p].pop() {
            if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                return Ok(r.idx);
            }
        }
        let open = self.backends.iter().filter(|(_, b)| b.role.own()).count();
        if open >= MAX_DEDICATED {
            return Err(ProxyError::TooManyBlocking(MAX_DEDICATED));
        }
        let idx = self.connect_one(node, proto)?;
        self.backends[idx].role = BackendRole::Dedicated;
        Ok(idx)
    }

    /// After a reply: a dedicated connection with nothing left in flight goes back to the
    /// node's idle list (or is closed when enough are idle).
    pub(crate) fn release_dedicated(&mut self, idx: usize) {
        let Some(b) = self.backends.get(idx) else {
            return;
        };
        if b.retired.is_some() {
            if b.inflight.is_empty() {
                debug!("closing a drained slow connection");
                self.take_backend(idx);
            }
            return;
        }
        // Held by a transaction or a subscriber: never lent while theirs.
        let idle = b.role.on_idle();
        if idle == Idle::Keep || !b.inflight.is_empty() {
            return;
        }
        let (node, proto, r) = (b.node, b.proto, BackendRef { idx, gen: b.gen });
        self.unhold(|(_, d)| *d != r);
        if idle == Idle::Close {
            self.take_backend(idx);
            return;
        }
        let idle = &mut self.pool.node(node).idle_dedicated[proto_index(proto)];
        if idle.contains(&r) {
            return;
        }
        if idle.len() < MAX_IDLE_DEDICATED {
            idle.push(r);
        } else {
            self.take_backend(idx);
        }
    }

    /// Takes a connection out of the slab, the poll and the pool (closing it); what it
    /// carried is the caller's to settle.
    pub(crate) fn take_backend(&mut self, idx: usize) -> Option<Backend> {
        if !self.backends.contains(idx) {
            return None;
        }
        let mut b = self.backends.remove(idx);
        b.deregister(&self.registry);
        if !b.unblocks.is_empty() {
            // CLIENT UNBLOCKs waiting for this connection's node id: answered from what is
            // left (the blocked command went with the connection).
            let waiting = std::mem::take(&mut b.unblocks);
            self.requeue_unblocks(waiting, true);
        }
        self.pool
            .remove(b.node, b.proto, BackendRef { idx, gen: b.gen });
        Some(b)
    }

    /// A client left: the blocking commands it was waiting on would hold their connections
    /// forever (BLPOP 0), so those connections are closed.
    pub(crate) fn client_gone(&mut self, cref: ClientRef) {
        if self.busy_dedicated.is_empty() {
            return;
        }
        let mine: Vec<BackendRef> = self
            .busy_dedicated
            .iter()
            .filter(|(c, _)| *c == cref)
            .map(|(_, b)| *b)
            .collect();
        self.unhold(|(c, _)| *c != cref);
        for r in mine {
            if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                debug!("closing the blocking command of a departed client");
                self.take_backend(r.idx);
            }
        }
    }

    /// Starts one connection to the node (not yet in any pool list).
    pub(crate) fn connect_one(&mut self, node: NodeId, proto: Proto) -> Result<usize, ProxyError> {
        let n = self.topo.node(node);
        if !self.pool.may_connect(node, self.now) {
            return Err(ProxyError::NodeUnavailable {
                node: n.addr.clone(),
                why: "its last connection failed; retrying shortly".into(),
            });
        }
        let Some(addr) = n.sockaddr else {
            return Err(ProxyError::NodeUnavailable {
                node: n.addr.clone(),
                why: "its address does not resolve".into(),
            });
        };
        let entry = self.backends.vacant_entry();
        let idx = entry.key();
        self.next_gen += 1;
        let gen = self.next_gen;
        match Backend::connect(
            &self.registry,
            backend_token(idx),
            gen,
            node,
            addr,
            proto,
            Prelude {
                readonly: self.cfg.read_from != ReadFrom::Master,
                creds: self.creds.as_ref(),
                tls: self
                    .backend_tls
                    .as_mut()
                    .map(|t| t.for_node(std::time::Instant::now())),
            },
            &self.cfg.socket,
            self.now,
        ) {
            Ok(mut b) => {
                b.timer_armed = true;
                entry.insert(b);
                self.timers.add(
                    self.now + self.cfg.connect_timeout,
                    TimerKind::Backend { idx, gen },
                );
                debug!(
                    "connecting to node {} ({proto:?})",
                    self.topo.node(node).addr
                );
                Ok(idx)
            }
            Err(e) => {
                let addr = self.topo.node(node).addr.clone();
                let now = self.now;
                if let Some(n) = self.log_gate.admit(node.0, Kind::ConnectFailed, now) {
                    warn!("cannot connect to node {addr}: {e}{}", left_out(n));
                }
                self.pool.mark_down(node, self.now);
                self.request_refresh(Duration::ZERO);
                Err(ProxyError::NodeUnavailable {
                    node: addr,
                    why: e.to_string(),
                })
            }
        }
    }

    /// The node that serves a read for `master`'s slots under `read_from`: one of its
    /// replicas (round-robin over those not down), or the master itself.
    pub(crate) fn read_node(&mut self, master: NodeId) -> Result<NodeId, ProxyError> {
        if self.cfg.read_from == ReadFrom::Master {
            return Ok(master);
        }
        let reps = &self.topo.node(master).replicas;
        let n = reps.len();
        self.any_rr = self.any_rr.wrapping_add(1);
        let pick = (0..n)
            .map(|k| reps[(self.any_rr + k) % n])
            .find(|&r| !self.pool.is_down(r) && self.topo.node(r).role == Role::Replica);
        match (pick, self.cfg.read_from) {
            (Some(r), _) => Ok(r),
            (None, ReadFrom::PreferReplica) => Ok(master),
            (None, _) => Err(ProxyError::NodeUnavailable {
                node: self.topo.node(master).addr.clone(),
                why: "no replica of it is up (read_from: replica)".into(),
            }),
        }
    }

    pub(crate) fn any_master(&mut self) -> Option<NodeId> {
        let masters: usize = self.topo.masters().count();
        if masters == 0 {
            return None;
        }
        self.any_rr = self.any_rr.wrapping_add(1);
        // Prefer a master that is not known to be down.
        (0..masters)
            .filter_map(|k| self.topo.masters().nth((self.any_rr + k) % masters))
            .find(|&m| !self.pool.is_down(m))
            .or_else(|| self.topo.masters().nth(self.any_rr % masters))
    }

    /// Whether the client holds a connection of its own (a blocking command's, or its
    /// subscriptions'), whose reply or stream may never end.
    pub(crate) fn holds_connection(&self, cref: ClientRef) -> bool {
        self.busy_dedicated.iter().any(|(c, _)| *c == cref)
    }

    /// Whether a connection held for one client carries a blocking command (not its
    /// subscriptions or its transaction).
    pub(crate) fn is_blocking(&self, r: BackendRef) -> bool {
        self.backends
            .get(r.idx)
            .is_some_and(|b| b.gen == r.gen && b.role.blocking())
    }

    pub(crate) fn hold(&mut self, held: (ClientRef, BackendRef)) {
        self.busy_dedicated.push(held);
        self.held_changed = true;
    }

    pub(crate) fn unhold(&mut self, keep: impl FnMut(&(ClientRef, BackendRef)) -> bool) {
        let before = self.busy_dedicated.len();
        self.busy_dedicated.retain(keep);
        self.held_changed |= self.busy_dedicated.len() != before;
    }
}
