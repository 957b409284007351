//! Node -> its shared backend connections (one set per protocol), and each node's health:
//! a node whose connection failed is `Down` until its backoff passes, so requests for it
//! fail at once instead of piling up behind a dead address.

use std::time::{Duration, Instant};

use crate::resp::encode::Proto;
use crate::topology::NodeId;

/// A backend connection in the slab, checked by generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendRef {
    pub idx: usize,
    pub gen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// The last connection failed `tries` times in a row; no new one before `until`.
    Down {
        until: Instant,
        tries: u32,
    },
}

#[derive(Debug)]
pub struct NodeConns {
    /// Shared connections for RESP2 clients and for RESP3 clients: `backend_connections`
    /// places each once used. A client always uses place `client % len`; a failed
    /// connection leaves its place empty (refilled on next use) rather than shifting the
    /// others, which would move clients to another connection while their earlier
    /// requests are still in flight on the old one, and so reorder them.
    pub sets: [Vec<Option<BackendRef>>; 2],
    /// Dedicated connections (for blocking commands) not in use, per protocol.
    pub idle_dedicated: [Vec<BackendRef>; 2],
    /// Shared connections retired behind a slow command, still draining, per protocol.
    pub retired: [Vec<BackendRef>; 2],
    pub health: Health,
}

impl Default for NodeConns {
    fn default() -> Self {
        NodeConns {
            sets: [Vec::new(), Vec::new()],
            idle_dedicated: [Vec::new(), Vec::new()],
            retired: [Vec::new(), Vec::new()],
            health: Health::Up,
        }
    }
}

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub fn proto_index(p: Proto) -> usize {
    match p {
        Proto::Resp2 => 0,
        Proto::Resp3 => 1,
    }
}

#[derive(Default)]
pub struct Pool {
    nodes: Vec<NodeConns>,
}

impl Pool {
    pub fn node(&mut self, id: NodeId) -> &mut NodeConns {
        let i = id.0 as usize;
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, NodeConns::default);
        }
        &mut self.nodes[i]
    }

    pub fn health(&self, id: NodeId) -> Health {
        self.nodes
            .get(id.0 as usize)
            .map(|n| n.health)
            .unwrap_or(Health::Up)
    }

    /// Whether a new connection to the node may be tried now.
    pub fn may_connect(&self, id: NodeId, now: Instant) -> bool {
        match self.health(id) {
            Health::Up => true,
            Health::Down { until, .. } => now >= until,
        }
    }

    pub fn is_down(&self, id: NodeId) -> bool {
        matches!(self.health(id), Health::Down { .. })
    }

    pub fn mark_up(&mut self, id: NodeId) -> bool {
        let n = self.node(id);
        let was_down = matches!(n.health, Health::Down { .. });
        n.health = Health::Up;
        was_down
    }

    /// Records a failure; returns the backoff chosen.
    pub fn mark_down(&mut self, id: NodeId, now: Instant) -> Duration {
        let n = self.node(id);
        let tries = match n.health {
            Health::Up => 1,
            Health::Down { tries, .. } => tries.saturating_add(1),
        };
        let wait = BACKOFF_BASE
            .saturating_mul(1 << (tries - 1).min(5))
            .min(BACKOFF_MAX);
        n.health = Health::Down {
            until: now + wait,
            tries,
        };
        wait
    }

    pub fn remove(&mut self, id: NodeId, proto: Proto, b: BackendRef) {
        let n = self.node(id);
        for place in n.sets[proto_index(proto)].iter_mut() {
            if *place == Some(b) {
                *place = None;
            }
        }
        n.idle_dedicated[proto_index(proto)].retain(|r| *r != b);
        n.retired[proto_index(proto)].retain(|r| *r != b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_resets() {
        let mut p = Pool::default();
        let n = NodeId(3);
        let now = Instant::now();
        assert!(p.may_connect(n, now));
        let a = p.mark_down(n, now);
        let b = p.mark_down(n, now);
        assert!(b > a);
        assert!(!p.may_connect(n, now));
        assert!(p.may_connect(n, now + BACKOFF_MAX));
        for _ in 0..20 {
            assert!(p.mark_down(n, now) <= BACKOFF_MAX);
        }
        assert!(p.mark_up(n));
        assert!(!p.is_down(n));
    }
}
