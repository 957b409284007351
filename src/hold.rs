//! The hold queue: requests that cannot be served right now because their node is down
//! (refused, reset, timed out) or answered CLUSTERDOWN, MASTERDOWN, TRYAGAIN or LOADING.
//! They wait, each client's in its order, while the topology is polled every
//! `HOLD_POLL`; when a live master serves their slot (a replica promoted, the node back)
//! they go there. Past `failover_wait` the client gets an error naming the node and the
//! time waited. A request that may already have run is never held: `backend_failed`
//! holds only those that surely never left the proxy, and read-only ones.
//!
//! ```text
//!   send fails / node down / CLUSTERDOWN.. --> Held --owner up--> sent again (history kept)
//!                                                |--failover_wait--> WaitedTooLong error
//!                                                +--client gone--> dropped
//! ```

use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::{ClientRef, Held, InFlight, Owner, Reason, HOLD_POLL, HOLD_REFRESH};
use crate::reactor::Core;
use crate::reply::fail;
use crate::resp::encode::Proto;
use crate::timer::TimerKind;
use crate::topology::NodeId;
use bytes::Bytes;
use log::{debug, info};
use slab::Slab;
use std::time::{Duration, Instant};

impl Core {
    /// Puts a request in the hold queue, or, when holding is off (`failover_wait: 0`) or its
    /// time is up, gives it back with the error its client gets.
    pub(crate) fn hold_request(
        &mut self,
        mut req: InFlight,
        proto: Proto,
        node: Option<NodeId>,
        reason: Reason,
        retry_in: Duration,
    ) -> Result<(), Box<(InFlight, Bytes)>> {
        let wait = self.cfg.failover_wait;
        let since = *req.held_since.get_or_insert(self.now);
        if wait.is_zero() || !matches!(req.owner, Owner::Client { .. }) {
            return Err(Box::new((req, reason.into_frame())));
        }
        if self.now.duration_since(since) >= wait {
            let e = self.waited_too_long(node, since, &reason);
            return Err(Box::new((req, Bytes::from(e.to_frame()))));
        }
        let route = req
            .slot
            .or_else(|| node.and_then(|n| self.topo.a_slot_of(n)));
        self.arm_hold();
        self.stats.held += 1;
        self.keep_held(Held {
            req,
            proto,
            node,
            route,
            not_before: self.now + retry_in,
            reason,
        });
        self.request_refresh(HOLD_REFRESH);
        Ok(())
    }

    /// Holds a request, or answers it with its error at once (see `hold_request`).
    pub(crate) fn hold_or_fail(
        &mut self,
        clients: &mut Slab<Client>,
        req: InFlight,
        proto: Proto,
        node: Option<NodeId>,
        reason: Reason,
    ) {
        if let Err(failed) = self.hold_request(req, proto, node, reason, Duration::ZERO) {
            let (req, frame) = *failed;
            crate::reply::deliver_frame(clients, &mut self.wake, req, frame);
        }
    }

    fn waited_too_long(&self, node: Option<NodeId>, since: Instant, reason: &Reason) -> ProxyError {
        let node = node.map(|n| self.topo.node(n).addr.as_str());
        ProxyError::WaitedTooLong {
            what: reason.text(node),
            waited_ms: self.now.duration_since(since).as_millis() as u64,
        }
    }

    /// Whether the client has requests in the hold queue: its new ones wait behind them, so
    /// its requests still reach a node in the order it sent them.
    pub(crate) fn has_held(&self, cref: ClientRef) -> bool {
        !self.held_by.is_empty() && self.held_by.contains_key(&cref)
    }

    fn keep_held(&mut self, h: Held) {
        if let Some(c) = h.client() {
            *self.held_by.entry(c).or_default() += 1;
        }
        self.held.push_back(h);
    }

    /// Sends every held request whose slot a usable node now serves, in the order they were
    /// held; fails those whose `failover_wait` ran out. Runs on the hold timer, after a
    /// topology change and when a node is reachable again.
    pub(crate) fn release_held(&mut self, clients: &mut Slab<Client>) {
        if self.held.is_empty() {
            return;
        }
        let wait = self.cfg.failover_wait;
        let mut queue = std::mem::take(&mut self.held);
        // Counted again as entries go back into the queue.
        self.held_by.clear();
        let mut sent = 0usize;
        let mut expired: Option<(usize, ProxyError)> = None;
        // A client with an earlier request still held keeps its later ones held too.
        let mut waiting: std::collections::HashSet<ClientRef> = Default::default();
        while let Some(h) = queue.pop_front() {
            let Some(cref) = h.client() else { continue };
            if clients.get(cref.idx).is_none_or(|c| c.gen != cref.gen) {
                self.stats.unheld += 1;
                continue;
            }
            let since = h.req.held_since.unwrap_or(self.now);
            if self.now.duration_since(since) >= wait {
                let e = self.waited_too_long(h.node, since, &h.reason);
                self.stats.unheld += 1;
                self.stats.held_expired += 1;
                fail(clients, &mut self.wake, h.req, e.clone());
                let n = expired.as_ref().map_or(0, |(n, _)| *n);
                expired = Some((n + 1, e));
                continue;
            }
            let target = match h.route {
                Some(slot) => self.topo.owner(slot),
                None => h.node,
            };
            let usable = target.filter(|&n| self.pool.may_connect(n, self.now));
            let (Some(node), true) = (usable, h.not_before <= self.now && !waiting.contains(&cref))
            else {
                waiting.insert(cref);
                self.keep_held(h);
                continue;
            };
            self.stats.unheld += 1;
            sent += 1;
            let before = self.held.len();
            self.resend(clients, node, h.proto, h.req, None);
            if self.held.len() > before {
                waiting.insert(cref);
            }
        }
        // One line per pass, not one per request: a failover that outlasts the wait can
        // end thousands of them at once.
        if let Some((n, e)) = expired {
            info!("{n} held requests failed: {e}");
        }
        // Requests that were held again while this pass sent others (a send that failed at
        // once) came after the ones left here.
        if sent > 0 {
            debug!("{sent} held requests sent, {} still held", self.held.len());
        }
        if !self.held.is_empty() {
            self.arm_hold();
            self.request_refresh(HOLD_REFRESH);
        }
    }

    fn arm_hold(&mut self) {
        if !self.hold_armed {
            self.hold_armed = true;
            self.timers.add(self.now + HOLD_POLL, TimerKind::Hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::reply::{read_only, worth_holding};
    use crate::resp::encode;
    use bytes::BytesMut;

    fn req(args: &[&[u8]]) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode::command(&mut b, args);
        b.to_vec()
    }

    #[test]
    fn only_reads_are_sent_again_in_doubt() {
        for (args, again) in [
            (&[&b"GET"[..], b"k"][..], true),
            (&[b"mget", b"a", b"b"], true),
            (&[b"XRANGE", b"s", b"-", b"+"], true),
            (&[b"INCR", b"k"], false),
            (&[b"SET", b"k", b"v"], false),
            (&[b"EVAL", b"return 1", b"0"], false),
            // Blocking reads take what they return.
            (&[b"BLPOP", b"k", b"0"], false),
            (&[b"NOSUCHCOMMAND"], false),
        ] {
            assert_eq!(read_only(&req(args)), again, "{args:?}");
        }
        assert!(
            !read_only(b"GET k\r\n"),
            "an inline request is not re-parsed"
        );
    }

    #[test]
    fn replies_that_say_not_run_yet_are_held() {
        for (line, hold) in [
            (&b"-CLUSTERDOWN The cluster is down\r\n"[..], true),
            (
                b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
                true,
            ),
            (b"-MASTERDOWN Link with MASTER is down\r\n", true),
            (b"-LOADING Redis is loading the dataset in memory\r\n", true),
            (b"-ERR wrong number of arguments\r\n", false),
            (b"-BUSY Redis is busy running a script\r\n", false),
            (b"-MOVED 1 a:1\r\n", false),
        ] {
            assert_eq!(worth_holding(line), hold, "{line:?}");
        }
    }
}
