//! INFO: the proxy's own sections (server, clients, proxy) and the merge of the masters'
//! answers; the process-wide figures published for the other workers.

use crate::command::Args;
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::resp::encode::{self};
use crate::route::split::Merge;
use crate::topology::{NodeId, Role};
use crate::totals::Sums;
use crate::totals::BLOCKED_RECOUNT;
use bytes::Bytes;
use std::time::Duration;

impl Core {
    /// INFO: `INFO proxy` alone is the proxy's; anything else goes to every master and is
    /// merged (see `Merge::Info`), with the proxy's `server` section in place of a node's and
    /// its own section added when asked for (no argument, default, all, everything, proxy).
    pub(crate) fn info(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        args: &FrameArgs<'_>,
        frame: Bytes,
    ) {
        let sections: Vec<String> = (1..args.argc())
            .map(|i| String::from_utf8_lossy(args.arg(i)).to_ascii_lowercase())
            .collect();
        let all = sections.is_empty()
            || sections
                .iter()
                .any(|s| matches!(s.as_str(), "default" | "all" | "everything"));
        let wants = |name: &str| all || sections.iter().any(|s| s == name);
        if !all && sections.iter().all(|s| s == "proxy") {
            let mut out = Vec::new();
            encode::text(&mut out, &self.proxy_section(), c.proto);
            c.reply_now(&out);
            return;
        }
        let masters = self.topo.masters_sorted();
        if masters.is_empty() {
            c.reply_now(&ProxyError::NoMaster.to_frame());
            return;
        }
        let proxy = if wants("proxy") {
            self.proxy_section()
        } else {
            String::new()
        };
        let server = if wants("server") {
            self.server_section()
        } else {
            String::new()
        };
        let clients = if wants("clients") {
            self.clients_section()
        } else {
            String::new()
        };
        let seq = c.reserve_parts(
            masters.len(),
            Merge::Info {
                proxy,
                server,
                clients,
            },
        );
        for (k, m) in masters.into_iter().enumerate() {
            self.send_part(c, cref, seq, k as u32, Some(m), frame.clone(), None);
        }
    }

    /// INFO's `server` section, from the proxy: it is the server the client talks to; the
    /// cluster's Redis version stands beside the proxy's own.
    pub(crate) fn server_section(&self) -> String {
        let up = self.now.duration_since(self.started).as_secs();
        format!(
            "# Server\r\nredis_version:{}\r\nredis_mode:standalone\r\nproxy:redis-cluster-proxy\r\n\
             proxy_version:{}\r\nos:{} {}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n",
            self.server_version,
            crate::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            crate::config::split_host_port(&self.announce)
                .map(|(_, p)| p)
                .unwrap_or(self.cfg.proxy_port),
            up / 86400,
        )
    }

    /// INFO's `clients` section, over every worker. Fields the proxy cannot know truly (input and output buffer peaks) are
    /// left out; `tracking_clients` is this worker's (CLIENT TRACKING).
    pub(crate) fn clients_section(&mut self) -> String {
        let sums = self.sums();
        format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\
             tracking_clients:{}\r\n",
            sums.connected,
            self.cfg.max_clients,
            sums.blocked,
            self.tracking.figures().0,
        )
    }

    pub(crate) fn proxy_section(&mut self) -> String {
        let sums = self.sums();
        let s = sums.counters;
        format!(
            "# Proxy\r\nproxy_version:{}\r\nuptime_in_seconds:{}\r\nconnected_clients:{}\r\n\
             total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             redirects_moved:{}\r\nredirects_ask:{}\r\nretries_tryagain_clusterdown:{}\r\n\
             node_connection_failures:{}\r\ncluster_masters:{}\r\ncluster_nodes:{}\r\n\
             workers:{}\r\nauto_redirect:{}\r\nauth_failures:{}\r\nacl_denied:{}\r\n\
             held_requests:{}\r\nheld_requests_total:{}\r\nheld_requests_expired:{}\r\n\
             in_doubt_failed:{}\r\nslow_connections_retired:{}\r\ncross_slot_computed:{}\r\n\
             cross_slot_writes:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\
             tracking_clients:{}\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\n",
            crate::VERSION,
            self.now.duration_since(self.started).as_secs(),
            sums.connected,
            s.connections_received,
            s.commands,
            s.moved,
            s.ask,
            s.retries,
            s.node_failures,
            self.topo.masters().count(),
            self.topo
                .nodes()
                .iter()
                .filter(|n| n.role != Role::Gone)
                .count(),
            self.cfg.workers.max(1),
            if self.cfg.auto_redirect { "yes" } else { "no" },
            s.auth_failures,
            s.acl_denied,
            s.held.saturating_sub(s.unheld),
            s.held,
            s.held_expired,
            s.in_doubt,
            s.slow_retired,
            s.cross_slot_computed,
            s.cross_slot_writes,
            s.bytes_in,
            s.bytes_out,
            self.tracking.figures().0,
            self.tracking.figures().1,
            self.tracking.figures().2,
        ) + &crate::alloc::allocations()
            .map(|n| format!("allocations:{n}\r\n"))
            .unwrap_or_default()
    }

    /// The process's figures, with this worker's as they are now.
    pub(crate) fn sums(&mut self) -> Sums {
        let blocked = self.blocked_clients();
        self.totals.sums(self.worker, self.stats, blocked)
    }

    /// Clients blocked on a blocking command (BLPOP...), not a subscriber's or a
    /// transaction's held connection; a client counts once.
    pub(crate) fn blocked_clients(&mut self) -> u64 {
        if self.busy_dedicated.is_empty() {
            return 0;
        }
        let mut blocked = std::mem::take(&mut self.blocked_scratch);
        blocked.clear();
        blocked.extend(
            self.busy_dedicated
                .iter()
                .filter(|(_, b)| self.is_blocking(*b))
                .map(|(c, _)| *c),
        );
        blocked.sort_unstable_by_key(|c| (c.idx, c.gen));
        blocked.dedup();
        let n = blocked.len() as u64;
        self.blocked_scratch = blocked;
        n
    }

    /// End of a turn: this worker's figures where the others' INFO reads them. Blocked
    /// clients are recounted (a sort of the held connections) only after a change, and at
    /// most every `BLOCKED_RECOUNT`, so a turn of a busy queue consumer costs a few stores.
    pub(crate) fn publish_counters(&mut self) {
        let due = self.now.duration_since(self.blocked_counted) >= BLOCKED_RECOUNT;
        let blocked = if self.held_changed && due {
            self.held_changed = false;
            self.blocked_counted = self.now;
            Some(self.blocked_clients())
        } else {
            None
        };
        self.totals.publish(self.worker, self.stats, blocked);
        if self.cfg.metrics_address.is_some()
            && self.now.duration_since(self.latency_published) >= Duration::from_secs(1)
        {
            self.latency_published = self.now;
            let nodes = self
                .latency
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, h)| h.count > 0)
                .map(|(i, h)| (self.topo.node(NodeId(i as u16)).addr.clone(), *h))
                .collect();
            let mut conns: std::collections::BTreeMap<(String, &'static str, &'static str), u64> =
                Default::default();
            let mut inflight = 0;
            for (_, b) in self.backends.iter() {
                inflight += b.inflight.len() as u64;
                let state = match b.state {
                    crate::conn::backend::BackendState::Ready => "ready",
                    crate::conn::backend::BackendState::Connecting { .. } => "connecting",
                };
                let addr = self.topo.node(b.node).addr.clone();
                *conns.entry((addr, state, b.role.label())).or_default() += 1;
            }
            let mut errors: Vec<(&'static str, String, u64)> = self
                .counts
                .node_errors
                .iter()
                .map(|(k, n)| ("node", k.clone(), *n))
                .collect();
            errors.extend(
                crate::error::refusals()
                    .into_iter()
                    .map(|(k, n)| ("proxy", k.to_string(), n)),
            );
            self.totals.publish_latency(
                self.worker,
                crate::latency::Published {
                    families: self.latency.families,
                    nodes,
                    inflight,
                    epoch: self.topo.max_epoch(),
                    conns: conns
                        .into_iter()
                        .map(|((a, s, r), n)| (a, s, r, n))
                        .collect(),
                    commands: self.counts.commands.values().copied().collect(),
                    errors,
                },
            );
        }
    }
}
