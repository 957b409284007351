//! The cluster as the proxy knows it: nodes (stable indices), the slot map, parsing of
//! CLUSTER NODES (and CLUSTER SLOTS, for tests and fuzzing), the refresh's state, and the
//! internal-to-public `address_map`.

pub mod discover;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};

use crate::resp::value::Value;
use crate::slot::{Slot, SLOTS};

/// Index of a node in `Topology::nodes`; stable for the life of the process, so the slot
/// map and the connection pool can refer to nodes without hashing addresses per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u16);

const NO_NODE: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
    /// No longer in the cluster's slot map: kept so indices stay stable.
    Gone,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// As the cluster announces it, `ip:port`.
    pub addr: String,
    /// Resolved once; None when the address does not resolve.
    pub sockaddr: Option<SocketAddr>,
    pub role: Role,
    /// A master's replicas, as the last full view listed them.
    pub replicas: Vec<NodeId>,
}

/// One slot range of a CLUSTER SLOTS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub master: String,
    pub replicas: Vec<String>,
    /// The master's config epoch (CLUSTER NODES); 0 when unknown (CLUSTER SLOTS).
    pub epoch: u64,
}

#[derive(Clone)]
pub struct Topology {
    nodes: Vec<Node>,
    by_addr: HashMap<String, NodeId>,
    owner: Box<[u16; SLOTS]>,
    /// The highest config epoch of the last view applied: a view whose masters all have
    /// lower epochs is older (a node cut off from the majority, that missed a failover).
    max_epoch: u64,
    /// Older views refused in a row: past `STALE_VIEWS_TRUSTED`, one is taken anyway (a
    /// cluster re-created on the same addresses starts its epochs over).
    stale_views: u32,
}

/// Older views refused in a row before one is believed. Refreshes rotate over the nodes,
/// so one stale node is never asked this many times in a row.
const STALE_VIEWS_TRUSTED: u32 = 3;

/// What a refresh changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub slots_moved: usize,
    /// (old owner, new owner, slots) for each pair that moved slots, addresses as known
    /// ("none" for slots that had no owner or have none now).
    pub moves: Vec<(String, String, usize)>,
    pub nodes_added: Vec<String>,
    pub nodes_gone: Vec<String>,
    /// The view was older than the one in use (its highest config epoch, ours) and was
    /// left unapplied.
    pub stale: Option<(u64, u64)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.slots_moved == 0 && self.nodes_added.is_empty() && self.nodes_gone.is_empty()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    /// The highest config epoch of the slot map in use (0 when unknown), for /metrics.
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    pub fn new() -> Self {
        Topology {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            owner: Box::new([NO_NODE; SLOTS]),
            max_epoch: 0,
            stale_views: 0,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// The master that owns the slot, if any.
    #[inline]
    pub fn owner(&self, slot: Slot) -> Option<NodeId> {
        match self.owner[slot.0 as usize] {
            NO_NODE => None,
            n => Some(NodeId(n)),
        }
    }

    pub fn masters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role == Role::Master)
            .map(|(i, _)| NodeId(i as u16))
    }

    /// Masters in address order: the stable numbering SCAN cursors and fan-outs use.
    pub fn masters_sorted(&self) -> Vec<NodeId> {
        let mut m: Vec<NodeId> = self.masters().collect();
        m.sort_by(|a, b| self.node(*a).addr.cmp(&self.node(*b).addr));
        m
    }

    /// Masters and replicas in address order: the targets of commands sent to every node.
    pub fn nodes_sorted(&self) -> Vec<NodeId> {
        let mut m: Vec<NodeId> = (0..self.nodes.len())
            .map(|i| NodeId(i as u16))
            .filter(|&id| self.node(id).role != Role::Gone)
            .collect();
        m.sort_by(|a, b| self.node(*a).addr.cmp(&self.node(*b).addr));
        m
    }

    /// The node with this address, added (as `role`) when unknown. None only when the table
    /// is full, which would take 65,535 distinct addresses.
    pub fn intern(&mut self, addr: &str, role: Role) -> Option<NodeId> {
        if let Some(&id) = self.by_addr.get(addr) {
            let n = &mut self.nodes[id.0 as usize];
            if n.role == Role::Gone || role == Role::Master {
                n.role = role;
            }
            return Some(id);
        }
        if self.nodes.len() >= NO_NODE as usize {
            return None;
        }
        let id = NodeId(self.nodes.len() as u16);
        self.nodes.push(Node {
            addr: addr.to_string(),
            sockaddr: resolve(addr),
            role,
            replicas: Vec::new(),
        });
        self.by_addr.insert(addr.to_string(), id);
        Some(id)
    }

    /// Records what a MOVED said: `addr` now owns `slot`.
    /// One slot the node serves, if any: a scan, for the rare request held on its way to
    /// a master that died (it then follows that slot to the master that takes it over).
    pub fn a_slot_of(&self, node: NodeId) -> Option<Slot> {
        self.owner
            .iter()
            .position(|&n| n == node.0)
            .map(|s| Slot(s as u16))
    }

    pub fn set_owner(&mut self, slot: Slot, addr: &str) -> Option<NodeId> {
        let id = self.intern(addr, Role::Master)?;
        self.owner[slot.0 as usize] = id.0;
        Some(id)
    }

    /// Replaces the slot map with a fresh CLUSTER SLOTS view.
    pub fn apply(&mut self, ranges: &[SlotRange]) -> Change {
        let mut change = Change::default();
        let epoch = ranges.iter().map(|r| r.epoch).max().unwrap_or(0);
        if epoch > 0 && epoch < self.max_epoch && self.stale_views + 1 < STALE_VIEWS_TRUSTED {
            self.stale_views += 1;
            change.stale = Some((epoch, self.max_epoch));
            return change;
        }
        self.stale_views = 0;
        if epoch > 0 {
            self.max_epoch = epoch;
        }
        let before: Vec<Role> = self.nodes.iter().map(|n| n.role).collect();
        let mut owner = Box::new([NO_NODE; SLOTS]);
        let mut seen = vec![false; self.nodes.len()];
        for n in &mut self.nodes {
            n.replicas.clear();
        }
        for r in ranges {
            let Some(m) = self.intern(&r.master, Role::Master) else {
                continue;
            };
            mark(&mut seen, m);
            for s in r.start..=r.end {
                owner[s as usize] = m.0;
            }
            for rep in &r.replicas {
                if let Some(id) = self.intern(rep, Role::Replica) {
                    if self.nodes[id.0 as usize].role != Role::Master {
                        self.nodes[id.0 as usize].role = Role::Replica;
                    }
                    mark(&mut seen, id);
                    let reps = &mut self.nodes[m.0 as usize].replicas;
                    if !reps.contains(&id) {
                        reps.push(id);
                    }
                }
            }
        }
        // A node that owned slots before and owns none now is a replica (or gone).
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let present = seen.get(i).copied().unwrap_or(false);
            if !present {
                node.role = Role::Gone;
            } else if node.role == Role::Master && !owner.iter().any(|&o| o as usize == i) {
                node.role = Role::Replica;
            }
        }
        let mut pairs: std::collections::BTreeMap<(u16, u16), usize> = Default::default();
        for (a, b) in self.owner.iter().zip(owner.iter()).filter(|(a, b)| a != b) {
            *pairs.entry((*a, *b)).or_default() += 1;
        }
        change.slots_moved = pairs.values().sum();
        let name = |n: u16| match self.nodes.get(n as usize) {
            Some(node) if n != NO_NODE => node.addr.clone(),
            _ => "none".to_string(),
        };
        change.moves = pairs
            .into_iter()
            .map(|((a, b), n)| (name(a), name(b), n))
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            let was = before.get(i).copied();
            match (was, node.role) {
                (None | Some(Role::Gone), Role::Master | Role::Replica) => {
                    change.nodes_added.push(node.addr.clone())
                }
                (Some(Role::Master | Role::Replica), Role::Gone) => {
                    change.nodes_gone.push(node.addr.clone())
                }
                _ => {}
            }
        }
        self.owner = owner;
        change
    }

    /// Slots without an owner.
    pub fn uncovered(&self) -> usize {
        self.owner.iter().filter(|&&o| o == NO_NODE).count()
    }
}

fn mark(seen: &mut Vec<bool>, id: NodeId) {
    let i = id.0 as usize;
    if seen.len() <= i {
        seen.resize(i + 1, false);
    }
    seen[i] = true;
}

/// Resolves `host:port`; numeric addresses never touch DNS.
pub fn resolve(addr: &str) -> Option<SocketAddr> {
    if let Ok(sa) = addr.parse() {
        return Some(sa);
    }
    let (host, port) = crate::config::split_host_port(addr)?;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok()?.next()
}

/// Parses a CLUSTER SLOTS reply. `asked` is the address of the node that answered: a node
/// that does not know its own IP announces it as an empty string, meaning that address.
pub fn parse_cluster_slots(v: &Value, asked: &str) -> Result<Vec<SlotRange>, String> {
    let Value::Array(items) = v else {
        return Err(match v {
            Value::Error(e) => String::from_utf8_lossy(e).into_owned(),
            _ => "CLUSTER SLOTS reply is not an array".into(),
        });
    };
    let asked_host = crate::config::split_host_port(asked)
        .map(|(h, _)| h.to_string())
        .unwrap_or_default();
    let node_addr = |n: &Value| -> Result<String, String> {
        let Value::Array(parts) = n else {
            return Err("CLUSTER SLOTS node entry is not an array".into());
        };
        let host = parts.first().and_then(Value::as_str).unwrap_or("");
        let port = parts
            .get(1)
            .and_then(Value::as_int)
            .filter(|p| (1..=65535).contains(p))
            .ok_or("CLUSTER SLOTS node entry has no valid port")?;
        let host = if host.is_empty() || host == "?" {
            asked_host.as_str()
        } else {
            host
        };
        Ok(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(parts) = item else {
            return Err("CLUSTER SLOTS entry is not an array".into());
        };
        let bound = |i: usize| {
            parts
                .get(i)
                .and_then(Value::as_int)
                .filter(|s| (0..SLOTS as i64).contains(s))
                .map(|s| s as u16)
                .ok_or_else(|| "CLUSTER SLOTS entry has a bad slot range".to_string())
        };
        let (start, end) = (bound(0)?, bound(1)?);
        if start > end {
            return Err("CLUSTER SLOTS entry has a bad slot range".into());
        }
        let master = node_addr(parts.get(2).ok_or("CLUSTER SLOTS entry has no master")?)?;
        let replicas = parts[3..]
            .iter()
            .map(&node_addr)
            .collect::<Result<Vec<_>, _>>()?;
        out.push(SlotRange {
            start,
            end,
            master,
            replicas,
            epoch: 0,
        });
    }
    Ok(out)
}

/// Parses a CLUSTER NODES text into slot ranges with their master and replicas. Unlike
/// CLUSTER SLOTS (which leaves out replicas that have not replicated anything yet), it lists
/// every node. Nodes in handshake or without an address are skipped, and so are failed
/// replicas; a failed master still owns its slots until the cluster promotes a replica.
/// `asked` completes `:port` addresses of a node that does not know its own IP.
pub fn parse_cluster_nodes(text: &str, asked: &str) -> Result<Vec<SlotRange>, String> {
    let asked_host = crate::config::split_host_port(asked)
        .map(|(h, _)| h.to_string())
        .unwrap_or_default();
    struct Line<'a> {
        id: &'a str,
        addr: String,
        epoch: u64,
        master: bool,
        failed: bool,
        master_id: &'a str,
        slots: Vec<&'a str>,
    }
    let mut lines = Vec::new();
    for raw in text.lines() {
        let f: Vec<&str> = raw.split(' ').collect();
        if f.len() < 8 {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(format!("CLUSTER NODES line with {} fields", f.len()));
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if flags.iter().any(|&x| x == "handshake" || x == "noaddr") {
            continue;
        }
        // ip:port@cport[,hostname]
        let hostport = f[1].split(['@', ',']).next().unwrap_or("");
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or("CLUSTER NODES address without a port")?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or("CLUSTER NODES address with a bad port")?;
        let host = if host.is_empty() {
            asked_host.as_str()
        } else {
            host
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        lines.push(Line {
            id: f[0],
            addr,
            epoch: f[6].parse().unwrap_or(0),
            master: flags.contains(&"master"),
            failed: flags.contains(&"fail"),
            master_id: f[3],
            slots: f[8..].to_vec(),
        });
    }
    let mut out = Vec::new();
    for m in lines.iter().filter(|l| l.master) {
        let replicas: Vec<String> = lines
            .iter()
            .filter(|r| !r.master && !r.failed && r.master_id == m.id)
            .map(|r| r.addr.clone())
            .collect();
        for range in &m.slots {
            // Migration markers ([slot->-id], [slot-<-id]) are not ownership.
            if range.starts_with('[') || range.is_empty() {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let bound = |x: &str| {
                x.parse::<u16>()
                    .ok()
                    .filter(|&s| (s as usize) < SLOTS)
                    .ok_or_else(|| format!("CLUSTER NODES has a bad slot range '{range}'"))
            };
            let (start, end) = (bound(a)?, bound(b)?);
            if start > end {
                return Err(format!("CLUSTER NODES has a bad slot range '{range}'"));
            }
            out.push(SlotRange {
                start,
                end,
                master: m.addr.clone(),
                replicas: replicas.clone(),
                epoch: m.epoch,
            });
        }
    }
    Ok(out)
}

/// The internal-to-public address map, applied to every address a client is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap {
    map: BTreeMap<String, String>,
}

impl AddressMap {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        AddressMap { map }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn public<'a>(&'a self, internal: &'a str) -> &'a str {
        self.map
            .get(internal)
            .map(String::as_str)
            .unwrap_or(internal)
    }

    /// Rewrites the address in a `-MOVED slot addr` / `-ASK slot addr` error frame.
    pub fn rewrite_redirect(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let line = std::str::from_utf8(frame.strip_suffix(b"\r\n")?).ok()?;
        let (head, addr) = line.rsplit_once(' ')?;
        let public = self.map.get(addr)?;
        Some(format!("{head} {public}\r\n").into_bytes())
    }

    /// Rewrites `ip:port@cport` fields of a CLUSTER NODES text.
    pub fn rewrite_nodes_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let mut fields = line.splitn(3, ' ');
            let (Some(id), Some(addr), rest) = (fields.next(), fields.next(), fields.next()) else {
                out.push_str(line);
                continue;
            };
            let (hostport, suffix) = match addr.find('@') {
                Some(i) => (&addr[..i], &addr[i..]),
                None => (addr, ""),
            };
            out.push_str(id);
            out.push(' ');
            out.push_str(self.public(hostport));
            out.push_str(suffix);
            if let Some(rest) = rest {
                out.push(' ');
                out.push_str(rest);
            }
        }
        out
    }
}

/// The topology refresh: one runs at a time; a request while one runs asks for another
/// after it (`refresh_again`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Idle,
    Scheduled { at: std::time::Instant },
    Running,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::value::decode;

    fn slots_reply() -> Value {
        decode(
            b"*2\r\n\
              *4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n\
              *3\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n",
        )
        .unwrap()
    }

    #[test]
    fn parses_cluster_slots() {
        let r = parse_cluster_slots(&slots_reply(), "127.0.0.1:7001").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].master, "127.0.0.1:7000");
        assert_eq!(r[0].replicas, vec!["127.0.0.1:7003"]);
        assert_eq!(r[1].master, "127.0.0.1:7001");
        assert_eq!((r[1].start, r[1].end), (8192, 16383));
        assert!(
            parse_cluster_slots(&Value::Error(b"ERR disabled".to_vec()), "x:1")
                .unwrap_err()
                .contains("disabled")
        );
    }

    #[test]
    fn apply_and_moved() {
        let mut t = Topology::new();
        let r = parse_cluster_slots(&slots_reply(), "127.0.0.1:7001").unwrap();
        let c = t.apply(&r);
        assert_eq!(c.slots_moved, SLOTS);
        assert_eq!(t.uncovered(), 0);
        let a = t.owner(Slot(5)).unwrap();
        assert_eq!(t.node(a).addr, "127.0.0.1:7000");
        assert_eq!(t.masters().count(), 2);
        assert_eq!(t.node(a).replicas.len(), 1);
        assert_eq!(t.node(t.node(a).replicas[0]).addr, "127.0.0.1:7003");
        let b = t.set_owner(Slot(5), "127.0.0.1:7001").unwrap();
        assert_eq!(t.owner(Slot(5)), Some(b));
        // Re-applying the full view puts slot 5 back and reports it.
        let c = t.apply(&r);
        assert_eq!(c.slots_moved, 1);
        assert_eq!(t.owner(Slot(5)), Some(a));
        // A replica promoted: the old master disappears from the view.
        let promoted = vec![
            SlotRange {
                start: 0,
                end: 8191,
                master: "127.0.0.1:7003".into(),
                replicas: vec![],
                epoch: 0,
            },
            r[1].clone(),
        ];
        let c = t.apply(&promoted);
        assert_eq!(c.nodes_gone, vec!["127.0.0.1:7000".to_string()]);
        assert_eq!(t.node(t.owner(Slot(0)).unwrap()).addr, "127.0.0.1:7003");
        assert_eq!(t.node(a).role, Role::Gone);
    }

    #[test]
    fn an_older_view_never_replaces_a_newer_one() {
        // The majority's view after a failover: 7003 (epoch 7) took 7000's slots.
        let majority = "\
aaa 127.0.0.1:7000@17000 master,fail - 0 0 1 disconnected
ddd 127.0.0.1:7003@17003 master - 0 0 7 connected 0-8191
bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383
";
        // A node cut off before the failover still names 7000, at epoch 1.
        let stale = "\
aaa 127.0.0.1:7000@17000 master - 0 0 1 connected 0-8191
ddd 127.0.0.1:7003@17003 slave aaa 0 0 1 connected
bbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 8192-16383
";
        let mut t = Topology::new();
        t.apply(&parse_cluster_nodes(majority, "127.0.0.1:7001").unwrap());
        let promoted = t.owner(Slot(0)).unwrap();
        assert_eq!(t.node(promoted).addr, "127.0.0.1:7003");
        let stale = parse_cluster_nodes(stale, "127.0.0.1:7001").unwrap();
        for _ in 1..STALE_VIEWS_TRUSTED {
            let c = t.apply(&stale);
            assert_eq!(c.stale, Some((2, 7)));
            assert_eq!(t.owner(Slot(0)), Some(promoted));
        }
        // The majority's view in between resets the count.
        t.apply(&parse_cluster_nodes(majority, "127.0.0.1:7001").unwrap());
        assert_eq!(t.apply(&stale).stale, Some((2, 7)));
        // Only older views, time after time: the cluster was re-created; believed.
        for _ in 1..STALE_VIEWS_TRUSTED {
            t.apply(&stale);
        }
        assert_eq!(t.node(t.owner(Slot(0)).unwrap()).addr, "127.0.0.1:7000");
    }

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-bbb]
ddd 127.0.0.1:7003@17003 slave aaa 0 0 1 connected
bbb :7001@17001 master - 0 0 2 connected 5461-10922 12000
eee 127.0.0.1:7004@17004 slave,fail bbb 0 0 2 disconnected
fff 127.0.0.1:7009@17009 handshake - 0 0 0 connected
";
        let r = parse_cluster_nodes(text, "10.0.0.9:7001").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            SlotRange {
                start: 0,
                end: 5460,
                master: "127.0.0.1:7000".into(),
                replicas: vec!["127.0.0.1:7003".into()],
                epoch: 1,
            }
        );
        assert_eq!(r[1].master, "10.0.0.9:7001");
        assert!(r[1].replicas.is_empty());
        assert_eq!((r[2].start, r[2].end), (12000, 12000));
        assert!(
            parse_cluster_nodes("x 1.2.3.4:1@2 master - 0 0 1 connected 9-3\n", "a:1").is_err()
        );
        assert!(parse_cluster_nodes("short line\n", "a:1").is_err());
    }

    #[test]
    fn address_map() {
        let mut m = BTreeMap::new();
        m.insert("127.0.0.1:7000".to_string(), "10.0.0.1:6000".to_string());
        let m = AddressMap::new(m);
        assert_eq!(
            m.rewrite_redirect(b"-MOVED 1 127.0.0.1:7000\r\n").unwrap(),
            b"-MOVED 1 10.0.0.1:6000\r\n".to_vec()
        );
        assert!(m.rewrite_redirect(b"-MOVED 1 127.0.0.1:7001\r\n").is_none());
        assert_eq!(
            m.rewrite_nodes_text("abc 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5\n"),
            "abc 10.0.0.1:6000@17000 myself,master - 0 0 1 connected 0-5\n"
        );
    }
}
