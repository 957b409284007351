//! What the whole process counts, over all its workers: the clients connected (for
//! `max_clients` and INFO) and each worker's counters, which INFO adds up. A worker
//! publishes its counters into a slot of its own once per poll turn, never per request, so
//! the hot path shares nothing.

use std::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Mutex;

/// A worker's counters for INFO's proxy section; they only grow (CONFIG RESETSTAT moves a
/// process-wide baseline instead of clearing them, so no worker's publication undoes it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub connections_received: u64,
    pub commands: u64,
    pub moved: u64,
    pub ask: u64,
    pub retries: u64,
    pub node_failures: u64,
    /// AUTH and HELLO AUTH refused (WRONGPASS).
    pub auth_failures: u64,
    /// Requests refused by a user's ACL rules (NOPERM).
    pub acl_denied: u64,
    /// Clients refused at accept (max_clients, protected mode).
    pub rejected: u64,
    /// Topology refreshes that brought a slot map.
    pub refreshes: u64,
    /// Requests put in the hold queue (a node down, CLUSTERDOWN, ...), and taken out of it
    /// (sent, failed, or their client gone): the difference is how many wait now.
    pub held: u64,
    pub unheld: u64,
    /// Held requests whose `failover_wait` ran out.
    pub held_expired: u64,
    /// Requests failed as "may or may not have been applied": written to a connection that
    /// then broke, and not read-only.
    pub in_doubt: u64,
    /// Shared node connections retired behind a slow command (`slow_command_threshold`).
    pub slow_retired: u64,
    /// Read-only commands over keys of several slots computed by the proxy (SUNION, ...).
    pub cross_slot_computed: u64,
    /// Writes over keys of several slots done by the proxy in stages (`cross_slot_writes`).
    pub cross_slot_writes: u64,
    /// Bytes read from clients and written to them (after TLS: the RESP they carry).
    pub bytes_in: u64,
    pub bytes_out: u64,
}

const FIELDS: usize = 19;

impl Counters {
    fn to_array(self) -> [u64; FIELDS] {
        [
            self.connections_received,
            self.commands,
            self.moved,
            self.ask,
            self.retries,
            self.node_failures,
            self.auth_failures,
            self.acl_denied,
            self.rejected,
            self.refreshes,
            self.held,
            self.unheld,
            self.held_expired,
            self.in_doubt,
            self.slow_retired,
            self.cross_slot_computed,
            self.cross_slot_writes,
            self.bytes_in,
            self.bytes_out,
        ]
    }

    fn from_array(a: [u64; FIELDS]) -> Counters {
        Counters {
            connections_received: a[0],
            commands: a[1],
            moved: a[2],
            ask: a[3],
            retries: a[4],
            node_failures: a[5],
            auth_failures: a[6],
            acl_denied: a[7],
            rejected: a[8],
            refreshes: a[9],
            held: a[10],
            unheld: a[11],
            held_expired: a[12],
            in_doubt: a[13],
            slow_retired: a[14],
            cross_slot_computed: a[15],
            cross_slot_writes: a[16],
            bytes_in: a[17],
            bytes_out: a[18],
        }
    }

    fn zip(self, other: Counters, f: impl Fn(u64, u64) -> u64) -> Counters {
        let (a, b) = (self.to_array(), other.to_array());
        Counters::from_array(std::array::from_fn(|i| f(a[i], b[i])))
    }
}

/// One worker's published figures, on cache lines of their own so that two workers
/// publishing at once do not contend.
#[repr(align(128))]
#[derive(Default)]
struct Published {
    counters: [AtomicU64; FIELDS],
    blocked: AtomicU64,
    monitors: AtomicUsize,
}

pub struct Totals {
    /// Each worker's latency histograms, as it last published them (once a second).
    latency: Mutex<Vec<crate::latency::Published>>,
    connected: AtomicUsize,
    /// The cluster as worker 0 last saw it (masters, nodes), for the metrics endpoint.
    cluster: [AtomicUsize; 2],
    /// Serving: the first slot map is loaded and no stop was asked (`/readyz`).
    ready: std::sync::atomic::AtomicBool,
    /// MONITOR clients over every worker: while any is elsewhere, a worker sends its
    /// commands' lines to the others.
    monitors: AtomicUsize,
    workers: Box<[Published]>,
    /// The sums at the last CONFIG RESETSTAT.
    baseline: Mutex<Counters>,
    /// CLIENT PAUSE, for every worker (`pause/`).
    pub pause: crate::pause::word::Pause,
}

/// The sums INFO shows: counters since the last reset, and the process's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    pub counters: Counters,
    pub connected: usize,
    pub blocked: u64,
}

impl Totals {
    pub fn new(workers: usize) -> Totals {
        Totals {
            connected: AtomicUsize::new(0),
            cluster: [AtomicUsize::new(0), AtomicUsize::new(0)],
            ready: std::sync::atomic::AtomicBool::new(false),
            monitors: AtomicUsize::new(0),
            workers: (0..workers.max(1)).map(|_| Published::default()).collect(),
            baseline: Mutex::new(Counters::default()),
            latency: Mutex::new(vec![Default::default(); workers.max(1)]),
            pause: Default::default(),
        }
    }

    /// Takes a place for a new client unless the process already has `max`; the check and
    /// the count are one step, so workers accepting at once never pass the limit together.
    pub fn try_connect(&self, max: usize) -> bool {
        self.connected
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    pub fn disconnect(&self) {
        self.connected.fetch_sub(1, Relaxed);
    }

    pub fn monitor_started(&self, worker: usize) {
        self.monitors.fetch_add(1, Relaxed);
        if let Some(p) = self.workers.get(worker) {
            p.monitors.fetch_add(1, Relaxed);
        }
    }

    pub fn monitor_ended(&self, worker: usize) {
        self.monitors.fetch_sub(1, Relaxed);
        if let Some(p) = self.workers.get(worker) {
            p.monitors.fetch_sub(1, Relaxed);
        }
    }

    /// Whether this worker has MONITOR clients, for the others' lines.
    pub fn has_monitors(&self, worker: usize) -> bool {
        self.workers
            .get(worker)
            .is_some_and(|p| p.monitors.load(Relaxed) > 0)
    }

    /// MONITOR clients in the whole process.
    pub fn monitors(&self) -> usize {
        self.monitors.load(Relaxed)
    }

    /// A worker's figures as of the end of its poll turn, stored before the turn's replies
    /// are written (Release, read with Acquire): a client that has its reply, asking
    /// another worker, finds its command counted. `blocked` is `None` when the worker did
    /// not count its blocked clients again.
    pub fn publish_latency(&self, worker: usize, l: crate::latency::Published) {
        if let Ok(mut all) = self.latency.lock() {
            if let Some(slot) = all.get_mut(worker) {
                *slot = l;
            }
        }
    }

    /// The workers' latency histograms summed: per family, and per node address (sorted).
    pub fn latency(&self) -> crate::latency::Published {
        let mut sum = crate::latency::Published::default();
        use std::collections::BTreeMap;
        let mut nodes: BTreeMap<String, crate::latency::Hist> = Default::default();
        let mut conns: BTreeMap<(String, &'static str, &'static str), u64> = Default::default();
        let mut commands: BTreeMap<&'static str, (u64, u64)> = Default::default();
        let mut errors: BTreeMap<(&'static str, String), u64> = Default::default();
        if let Ok(all) = self.latency.lock() {
            for w in all.iter() {
                for (a, b) in sum.families.iter_mut().zip(&w.families) {
                    a.add(b);
                }
                for (addr, h) in &w.nodes {
                    nodes.entry(addr.clone()).or_default().add(h);
                }
                sum.inflight += w.inflight;
                sum.epoch = sum.epoch.max(w.epoch);
                for (a, s, r, n) in &w.conns {
                    *conns.entry((a.clone(), s, r)).or_default() += n;
                }
                for (name, calls, errs) in &w.commands {
                    let e = commands.entry(name).or_default();
                    e.0 += calls;
                    e.1 += errs;
                }
                for (src, code, n) in &w.errors {
                    *errors.entry((src, code.clone())).or_default() += n;
                }
            }
        }
        sum.nodes = nodes.into_iter().collect();
        sum.conns = conns
            .into_iter()
            .map(|((a, s, r), n)| (a, s, r, n))
            .collect();
        sum.commands = commands.into_iter().map(|(k, (c, e))| (k, c, e)).collect();
        sum.errors = errors.into_iter().map(|((s, c), n)| (s, c, n)).collect();
        sum
    }

    pub fn publish(&self, worker: usize, counters: Counters, blocked: Option<u64>) {
        let Some(p) = self.workers.get(worker) else {
            return;
        };
        for (slot, v) in p.counters.iter().zip(counters.to_array()) {
            slot.store(v, Release);
        }
        if let Some(b) = blocked {
            p.blocked.store(b, Release);
        }
    }

    /// The process's sums, with the asking worker's live figures in place of what it last
    /// published (so its own INFO is exact; the others' are at most one of their turns old).
    pub fn sums(&self, worker: usize, own: Counters, own_blocked: u64) -> Sums {
        let (raw, blocked) = self.raw(worker, own, own_blocked);
        let base = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        Sums {
            counters: raw.zip(base, u64::saturating_sub),
            connected: self.connected.load(Relaxed),
            blocked,
        }
    }

    /// The process's counters as published (never reset: what a metrics scrape wants), the
    /// connected and blocked clients.
    pub fn published(&self) -> Sums {
        let mut sum = Counters::default();
        let mut blocked = 0;
        for p in self.workers.iter() {
            let a = std::array::from_fn(|i| p.counters[i].load(Acquire));
            sum = sum.zip(Counters::from_array(a), u64::saturating_add);
            blocked += p.blocked.load(Acquire);
        }
        Sums {
            counters: sum,
            connected: self.connected.load(Relaxed),
            blocked,
        }
    }

    pub fn set_cluster(&self, masters: usize, nodes: usize) {
        self.cluster[0].store(masters, Relaxed);
        self.cluster[1].store(nodes, Relaxed);
    }

    /// (masters, nodes) as worker 0 last saw them.
    pub fn cluster(&self) -> (usize, usize) {
        (self.cluster[0].load(Relaxed), self.cluster[1].load(Relaxed))
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// CONFIG RESETSTAT: the counters of every worker start over from here.
    pub fn reset(&self, worker: usize, own: Counters) {
        let (raw, _) = self.raw(worker, own, 0);
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = raw;
    }

    fn raw(&self, worker: usize, own: Counters, own_blocked: u64) -> (Counters, u64) {
        let mut sum = Counters::default();
        let mut blocked = 0;
        for (w, p) in self.workers.iter().enumerate() {
            let (c, b) = if w == worker {
                (own, own_blocked)
            } else {
                let a = std::array::from_fn(|i| p.counters[i].load(Acquire));
                (Counters::from_array(a), p.blocked.load(Acquire))
            };
            sum = sum.zip(c, u64::wrapping_add);
            blocked += b;
        }
        (sum, blocked)
    }
}

/// How stale another worker's view of this one's blocked clients may get.
pub const BLOCKED_RECOUNT: std::time::Duration = std::time::Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(n: u64) -> Counters {
        Counters {
            commands: n,
            ..Counters::default()
        }
    }

    #[test]
    fn max_clients_counts_the_whole_process() {
        let t = Totals::new(2);
        assert!(t.try_connect(2));
        assert!(t.try_connect(2));
        assert!(!t.try_connect(2));
        assert_eq!(t.sums(0, Counters::default(), 0).connected, 2);
        t.disconnect();
        assert!(t.try_connect(2));
    }

    #[test]
    fn sums_take_the_live_figures_of_the_asking_worker() {
        let t = Totals::new(2);
        t.publish(0, commands(5), Some(1));
        t.publish(1, commands(7), Some(2));
        // Worker 0 has done 3 more since it published.
        let s = t.sums(0, commands(8), 0);
        assert_eq!(s.counters.commands, 15);
        assert_eq!(s.blocked, 2);
    }

    #[test]
    fn reset_moves_the_baseline_for_every_worker() {
        let t = Totals::new(2);
        t.publish(1, commands(7), None);
        t.reset(0, commands(5));
        assert_eq!(t.sums(1, commands(7), 0).counters.commands, 0);
        t.publish(1, commands(10), None);
        assert_eq!(t.sums(0, commands(6), 0).counters.commands, 4);
    }
}
