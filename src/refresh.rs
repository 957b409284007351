//! The topology refresh: CLUSTER NODES from a live node (rotating, seeds as the last
//! resort), applied to the slot map; fast while degraded, every `refresh_interval` else.

use crate::conn::client::Client;
use crate::conn::role::BackendRole;
use crate::inflight::{Attempt, InFlight, Owner};
use crate::reactor::{Core, Kill};
use crate::resp::encode::Proto;
use crate::resp::value;
use crate::timer::TimerKind;
use crate::topology::RefreshState;
use crate::topology::{self, NodeId, Role};
use bytes::Bytes;
use log::{debug, info, trace, warn};
use slab::Slab;
use std::time::Duration;

/// CLUSTER NODES, not SLOTS: SLOTS leaves out replicas that have not replicated anything yet.
pub(crate) const CLUSTER_NODES: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n";

/// Refresh period while a master is unreachable or slots are uncovered, so a promoted
/// replica is found within about this long of the cluster's own failover.
pub(crate) const DEGRADED_REFRESH: Duration = Duration::from_millis(100);

/// After this long degraded, the period relaxes to `DEGRADED_REFRESH_SLOW`.
pub(crate) const DEGRADED_FAST_FOR: Duration = Duration::from_secs(30);

pub(crate) const DEGRADED_REFRESH_SLOW: Duration = Duration::from_secs(1);

impl Core {
    /// Asks for a refresh no later than `delay` from now; one refresh runs at a time.
    pub(crate) fn request_refresh(&mut self, delay: Duration) {
        let at = self.now + delay;
        match self.refresh {
            RefreshState::Scheduled { at: cur } if cur <= at => {}
            RefreshState::Running => self.refresh_again |= delay < self.cfg.refresh_interval,
            _ => {
                self.refresh = RefreshState::Scheduled { at };
                self.timers.add(at, TimerKind::Refresh);
            }
        }
    }

    pub(crate) fn degraded(&self) -> bool {
        self.topo.uncovered() > 0 || self.topo.masters().any(|m| self.pool.is_down(m))
    }

    /// Sends CLUSTER NODES to a known node that is not down (rotating), falling back to the
    /// configured seeds, so the view survives the loss of any one node, seeds included.
    pub(crate) fn start_refresh(&mut self) {
        // While degraded, down masters whose backoff has passed are probed with a connection,
        // so one that comes back is used again without waiting for a client to try it.
        if self.degraded() {
            let down: Vec<NodeId> = self
                .topo
                .masters()
                .filter(|&m| self.pool.is_down(m) && self.pool.may_connect(m, self.now))
                .collect();
            for m in down {
                let _ = self.backend_for(m, Proto::Resp2, 0);
            }
        }
        let mut candidates: Vec<NodeId> = self
            .topo
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role != Role::Gone)
            .map(|(i, _)| NodeId(i as u16))
            .filter(|&id| !self.pool.is_down(id))
            .collect();
        if candidates.is_empty() {
            let seeds = self.seeds.clone();
            for s in seeds {
                let id = self.topo.intern(&s, Role::Gone);
                if let Some(id) = id.filter(|&id| self.pool.may_connect(id, self.now)) {
                    candidates.push(id);
                }
            }
        }
        self.refresh_rr = self.refresh_rr.wrapping_add(1);
        let n = candidates.len();
        for k in 0..n {
            let node = candidates[(self.refresh_rr + k) % n];
            let req = InFlight {
                owner: Owner::Refresh,
                req: Bytes::from_static(CLUSTER_NODES),
                slot: None,
                attempt: Attempt::Sent { redirects: 0 },
                sent_at: self.now,
                role: BackendRole::Shared,
                held_since: None,
                family: crate::latency::OTHER,
                write: false,
            };
            if self
                .send(node, Proto::Resp2, self.refresh_rr, req, None)
                .is_ok()
            {
                trace!("topology refresh from {}", self.topo.node(node).addr);
                self.refresh = RefreshState::Running;
                return;
            }
        }
        warn!("topology refresh: no node could be asked; retrying");
        self.refresh = RefreshState::Idle;
        self.request_refresh(DEGRADED_REFRESH_SLOW);
    }

    pub(crate) fn refresh_done(&mut self, clients: &mut Slab<Client>, from: NodeId, frame: &[u8]) {
        self.refresh = RefreshState::Idle;
        let asked = self.topo.node(from).addr.clone();
        let parsed = value::decode(frame)
            .map_err(|e| e.to_string())
            .and_then(|v| match v {
                value::Value::Str(t) => {
                    topology::parse_cluster_nodes(&String::from_utf8_lossy(&t), &asked)
                }
                value::Value::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
                _ => Err("CLUSTER NODES reply is not text".into()),
            });
        match parsed {
            Ok(ranges) if !ranges.is_empty() => {
                let change = self.topo.apply(&ranges);
                if let Some((theirs, ours)) = change.stale {
                    // A node cut off from the majority still names the masters it knew.
                    info!(
                        "topology from {asked} is older than the one in use (config epoch {theirs} < {ours}): not applied"
                    );
                    self.refresh_again = true;
                }
                self.stats.refreshes += 1;
                if self.worker == 0 {
                    let live = self.topo.nodes().iter().filter(|n| n.role != Role::Gone);
                    self.totals.set_cluster(self.topo.masters().count(), live.count());
                }
                if !change.is_empty() {
                    // One line per change, naming where slots went: a failover reads
                    // "5461 slots: 127.0.0.1:7000 -> 127.0.0.1:7004".
                    let moves: Vec<String> = change
                        .moves
                        .iter()
                        .map(|(from, to, n)| format!("{n} slots: {from} -> {to}"))
                        .collect();
                    info!(
                        "topology from {asked}: {} slots changed owner{}{}{}",
                        change.slots_moved,
                        if moves.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", moves.join(", "))
                        },
                        if change.nodes_added.is_empty() {
                            String::new()
                        } else {
                            format!(", nodes added {:?}", change.nodes_added)
                        },
                        if change.nodes_gone.is_empty() {
                            String::new()
                        } else {
                            format!(", nodes gone {:?}", change.nodes_gone)
                        },
                    );
                }
                self.close_gone_idle();
                if !change.is_empty() {
                    self.fanin_sync();
                    self.release_held(clients);
                }
            }
            Ok(_) => warn!("topology refresh from {asked}: the node reports no slots"),
            Err(e) if e.starts_with("NOAUTH") && self.creds.is_none() => warn!(
                "topology refresh from {asked} failed: {e} (the node needs a password: set backend_auth)"
            ),
            Err(e) => {
                let kind = crate::lograte::Kind::RefreshFailed;
                if let Some(n) = self.log_gate.admit(from.0, kind, self.now) {
                    warn!(
                        "topology refresh from {asked} failed: {e}{}",
                        crate::lograte::left_out(n)
                    );
                }
            }
        }
        let degraded = self.degraded();
        let next = if !self.held.is_empty() {
            crate::inflight::HOLD_REFRESH
        } else if degraded || self.refresh_again {
            let since = *self.degraded_since.get_or_insert(self.now);
            if self.now.duration_since(since) > DEGRADED_FAST_FOR {
                DEGRADED_REFRESH_SLOW
            } else {
                DEGRADED_REFRESH
            }
        } else {
            self.cfg.refresh_interval
        };
        if !degraded {
            self.degraded_since = None;
        }
        self.refresh_again = false;
        self.request_refresh(next);
    }

    /// Closes idle connections to nodes that left the cluster.
    pub(crate) fn close_gone_idle(&mut self) {
        let gone: Vec<usize> = self
            .backends
            .iter()
            .filter(|(_, b)| {
                b.inflight.is_empty() && !b.role.held() && self.topo.node(b.node).role == Role::Gone
            })
            .map(|(i, _)| i)
            .collect();
        for idx in gone {
            let Some(b) = self.take_backend(idx) else {
                continue;
            };
            if let Some(to) = b.role.stream_client() {
                // Its subscriptions leave with the node: the client reconnects and subscribes
                // again, as after a restart.
                self.wake.kill.push((to, Kill::SubscriptionLost));
            }
            debug!(
                "closed connection to departed node {}",
                self.topo.node(b.node).addr
            );
        }
    }
}
