//! Latency histograms for /metrics: how long a node took to answer a client's request (sent
//! to reply), by command family and by node. Fixed buckets, counted in a worker's own
//! arrays on the reply path (no allocation, no lock); published to `Totals` at most once a
//! second, summed over the workers on a scrape.

use crate::command::{cat, Command};

/// Upper bounds of the buckets, in microseconds; one more bucket (+Inf) follows.
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The families, by the command's ACL categories (its data type first), in label order.
pub const FAMILIES: [&str; 14] = [
    "string",
    "hash",
    "list",
    "set",
    "sortedset",
    "stream",
    "geo",
    "hyperloglog",
    "bitmap",
    "pubsub",
    "scripting",
    "transaction",
    "keyspace",
    "other",
];

/// The family of requests the proxy makes itself, and of unknown commands.
pub const OTHER: u8 = (FAMILIES.len() - 1) as u8;

/// A command's family: its first data-type category, else scripting, transaction,
/// keyspace, or other (server and connection commands, unknown ones).
pub fn family(cmd: Option<&Command>) -> u8 {
    let Some(cmd) = cmd else {
        return (FAMILIES.len() - 1) as u8;
    };
    const ORDER: [u32; 13] = [
        cat::STRING,
        cat::HASH,
        cat::LIST,
        cat::SET,
        cat::SORTEDSET,
        cat::STREAM,
        cat::GEO,
        cat::HYPERLOGLOG,
        cat::BITMAP,
        cat::PUBSUB,
        cat::SCRIPTING,
        cat::TRANSACTION,
        cat::KEYSPACE,
    ];
    ORDER
        .iter()
        .position(|&c| cmd.acl & c != 0)
        .unwrap_or(FAMILIES.len() - 1) as u8
}

/// One histogram: counts per bucket (not cumulative), their sum and count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hist {
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
    pub count: u64,
}

impl Hist {
    pub fn record(&mut self, us: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i] += 1;
        self.sum_us += us;
        self.count += 1;
    }

    pub fn add(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_us += o.sum_us;
        self.count += o.count;
    }
}

/// A worker's histograms: per family, and per node (indexed by the worker's node ids,
/// named by address when published).
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub families: [Hist; FAMILIES.len()],
    pub nodes: Vec<Hist>,
}

impl Latency {
    pub fn record(&mut self, family: u8, node: usize, us: u64) {
        if let Some(h) = self.families.get_mut(family as usize) {
            h.record(us);
        }
        if node >= self.nodes.len() {
            // Once per node a worker ever talks to, not per request.
            self.nodes.resize(node + 1, Hist::default());
        }
        self.nodes[node].record(us);
    }
}

/// What a worker publishes once a second: its family histograms, its node histograms by
/// address, and the figures that need a walk over its state (connections, requests in
/// flight) or are kept by name (commands, errors).
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub families: [Hist; FAMILIES.len()],
    pub nodes: Vec<(String, Hist)>,
    /// Requests written to nodes and not answered yet.
    pub inflight: u64,
    /// The slot map's highest config epoch.
    pub epoch: u64,
    /// Node connections: (node, state, role, count).
    pub conns: Vec<(String, &'static str, &'static str, u64)>,
    /// Commands by name: (name, calls, replies that were errors).
    pub commands: Vec<(&'static str, u64, u64)>,
    /// Error replies by (source: "node" or "proxy", code, count).
    pub errors: Vec<(&'static str, String, u64)>,
}

/// A worker's per-command and per-error counts, kept only when `metrics_address` is set.
#[derive(Debug, Default)]
pub struct Counts {
    /// By the command's table entry (its address: no hashing of names per request).
    pub commands: std::collections::HashMap<usize, (&'static str, u64, u64)>,
    /// Node error replies by code (WRONGTYPE, MOVED, ...): a String only per new code.
    pub node_errors: std::collections::HashMap<String, u64>,
}

impl Counts {
    pub fn call(&mut self, cmd: &'static Command) {
        self.commands
            .entry(cmd as *const Command as usize)
            .or_insert((cmd.name, 0, 0))
            .1 += 1;
    }

    /// A request the proxy refused (its own error reply): an error outcome of `cmd`.
    pub fn refused(&mut self, cmd: &'static Command) {
        self.commands
            .entry(cmd as *const Command as usize)
            .or_insert((cmd.name, 0, 0))
            .2 += 1;
    }

    /// An error reply from a node to `cmd`: counted by its code and against the command.
    pub fn node_error(&mut self, cmd: Option<&'static Command>, frame: &[u8]) {
        if let Some(cmd) = cmd {
            self.commands
                .entry(cmd as *const Command as usize)
                .or_insert((cmd.name, 0, 0))
                .2 += 1;
        }
        let code = frame
            .get(1..)
            .unwrap_or_default()
            .split(|&b| b == b' ' || b == b'\r')
            .next()
            .unwrap_or_default();
        // A label value: letters, digits and '_' only, at most 32 of them.
        let code = if !code.is_empty()
            && code.len() <= 32
            && code.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            String::from_utf8_lossy(code)
        } else {
            "OTHER".into()
        };
        match self.node_errors.get_mut(code.as_ref()) {
            Some(n) => *n += 1,
            None => {
                // Bounded: a node answering odd codes cannot grow this without limit.
                if self.node_errors.len() < 64 {
                    self.node_errors.insert(code.into_owned(), 1);
                }
            }
        }
    }
}

/// The text exposition of one histogram family with a label, buckets cumulative.
pub fn render(out: &mut String, name: &str, help: &str, label: &str, rows: &[(&str, Hist)]) {
    use std::fmt::Write;
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    for (value, h) in rows {
        let mut cum = 0;
        for (i, n) in h.buckets.iter().enumerate() {
            cum += n;
            let le = match BOUNDS_US.get(i) {
                Some(b) => format!("{}", *b as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{value}\",le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum{{{label}=\"{value}\"}} {}",
            h.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_families() {
        let mut h = Hist::default();
        for us in [50, 100, 101, 20_000_000] {
            h.record(us);
        }
        assert_eq!(h.buckets[0], 2, "<= 100us");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BUCKETS - 1], 1, "+Inf");
        assert_eq!(h.count, 4);
        let get = crate::command::lookup([b"GET".as_slice()].as_slice());
        assert_eq!(FAMILIES[family(get) as usize], "string");
        let zadd = crate::command::lookup([b"ZADD".as_slice()].as_slice());
        assert_eq!(FAMILIES[family(zadd) as usize], "sortedset");
        let eval = crate::command::lookup([b"EVAL".as_slice()].as_slice());
        assert_eq!(FAMILIES[family(eval) as usize], "scripting");
        assert_eq!(FAMILIES[family(None) as usize], "other");
        let mut out = String::new();
        render(&mut out, "x", "help", "family", &[("string", h)]);
        assert!(
            out.contains("x_bucket{family=\"string\",le=\"0.0001\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{family=\"string\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("x_count{family=\"string\"} 4\n"), "{out}");
    }
}
