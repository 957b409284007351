//! The table of choices for every command without keys: where it goes and why. This is the
//! single source of `docs/commands.md` (a test renders the table and compares).

use crate::route::split::Merge;

/// Where a keyless command is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Answered by the proxy itself.
    Proxy,
    /// Sent to one master (round-robin over those that are up).
    OneMaster,
    /// Sent to every master, the replies merged.
    AllMasters(Merge),
    /// Sent to every node, masters and replicas, the replies merged.
    AllNodes(Merge),
    /// CLUSTER INFO/NODES/SLOTS/SHARDS/...: per `cluster_view`.
    ClusterView,
    /// The slot's owner, the slot given as an argument (CLUSTER COUNTKEYSINSLOT).
    SlotArgument,
    /// Changes a node or the cluster: refused unless `allow_admin_commands`, then sent as the
    /// inner policy says.
    Admin(Box<Policy>),
    /// WAIT, WAITAOF: to every master the client wrote to since its last WAIT, on the
    /// connections its writes took; the smallest count answers.
    Written,
    /// Refused with a clear error.
    Unsupported(&'static str),
}

impl Policy {
    /// The short label used in docs/commands.md.
    pub fn label(&self) -> String {
        match self {
            Policy::Proxy => "proxy".into(),
            Policy::OneMaster => "one master".into(),
            Policy::Written => "the masters written to, smallest count".into(),
            Policy::AllMasters(m) => format!("all masters, {}", merge_label(m)),
            Policy::AllNodes(m) => format!("all nodes, {}", merge_label(m)),
            Policy::ClusterView => "cluster view".into(),
            Policy::SlotArgument => "slot owner".into(),
            Policy::Admin(inner) => format!("admin ({})", inner.label()),
            Policy::Unsupported(_) => "refused".into(),
        }
    }
}

fn merge_label(m: &Merge) -> &'static str {
    match m {
        Merge::Sum => "summed",
        Merge::AllSame => "OK when all OK",
        Merge::AllOkNamed { .. } => "OK when all OK, else the failing node named",
        Merge::AnyOk => "OK when any OK",
        Merge::Mget { .. } => "in key order",
        Merge::Concat => "concatenated",
        Merge::And => "AND",
        Merge::Scan { .. } => "one master at a time",
        Merge::Sets(_) => "set operation computed by the proxy",
        Merge::Compute(_) => "computed by the proxy from each key's value",
        Merge::FirstNonNull { .. } => "first non-empty",
        Merge::Min => "smallest",
        Merge::Offset(_) => {
            "the node's count, the proxy's subscribers in place of its own subscription"
        }
        Merge::ShardNumsub(_) => {
            "summed per channel, the proxy's subscribers in place of its own subscription"
        }
        Merge::Rewrite { .. } => "addresses rewritten",
        Merge::Redact => "passwords redacted",
        Merge::Info { .. } => "merged with the proxy section",
        Merge::Slowlog { .. } => "newest first, tagged with the node",
    }
}

/// The choice for a keyless command (upper case; a subcommand as `PARENT|SUB`), with the
/// reason. None: not a keyless command the proxy knows of.
pub fn keyless_policy(name: &str) -> Option<(Policy, &'static str)> {
    use Policy::*;
    let admin = |p: Policy| Admin(Box::new(p));
    Some(match name {
        "PING" | "ECHO" | "QUIT" | "SELECT" | "HELLO" | "RESET" => {
            (Proxy, "connection commands: the client's connection is to the proxy")
        }
        "READONLY" | "READWRITE" | "ASKING" => (
            Proxy,
            "cluster-client modes: the proxy does the routing, so they are acknowledged",
        ),
        "ROLE" => (Proxy, "the proxy stands for a single master"),
        "CLIENT|GETNAME" | "CLIENT|SETNAME" | "CLIENT|ID" | "CLIENT|INFO" | "CLIENT|LIST"
        | "CLIENT|KILL" | "CLIENT|NO-EVICT" | "CLIENT|NO-TOUCH" | "CLIENT|SETINFO" => (
            Proxy,
            "nodes only see the proxy's own connections; these act on the proxy's clients",
        ),
        "CLIENT|PAUSE" | "CLIENT|UNPAUSE" => (
            Proxy,
            "the proxy holds its clients' commands; pausing the masters would stall reads too",
        ),
        "CLIENT|REPLY" => (
            Proxy,
            "the proxy drops the replies the client asked not to get",
        ),
        "CLIENT|TRACKING" | "CLIENT|CACHING" | "CLIENT|TRACKINGINFO" | "CLIENT|GETREDIR" => (
            Proxy,
            "the proxy keeps the table of who read what; every master tells it what changed",
        ),
        "CLIENT|UNBLOCK" => (
            Proxy,
            "the proxy's client id; sent to the node its blocking command waits on, with that connection's id there",
        ),
        "MONITOR" => (
            Proxy,
            "the proxy's own stream of every command it receives, from all its clients",
        ),
        "CLUSTER|KEYSLOT" => (Proxy, "pure function of the key"),
        "CLUSTER|INFO" | "CLUSTER|NODES" | "CLUSTER|SLOTS" | "CLUSTER|SHARDS" | "CLUSTER|MYID"
        | "CLUSTER|REPLICAS" | "CLUSTER|SLAVES" => (
            ClusterView,
            "passthrough: a node's answer with addresses made public; proxy: a one-node cluster",
        ),
        "CLUSTER|COUNTKEYSINSLOT" | "CLUSTER|GETKEYSINSLOT" => {
            (SlotArgument, "only the slot's owner holds its keys")
        }
        "CLUSTER|LINKS" | "CLUSTER|COUNT-FAILURE-REPORTS" | "CLUSTER|HELP" => {
            (OneMaster, "a node's own view")
        }
        "CLUSTER|ADDSLOTS" | "CLUSTER|ADDSLOTSRANGE" | "CLUSTER|DELSLOTS"
        | "CLUSTER|DELSLOTSRANGE" | "CLUSTER|SETSLOT" | "CLUSTER|FAILOVER" | "CLUSTER|RESET"
        | "CLUSTER|FORGET" | "CLUSTER|MEET" | "CLUSTER|REPLICATE" | "CLUSTER|SAVECONFIG"
        | "CLUSTER|SET-CONFIG-EPOCH" | "CLUSTER|BUMPEPOCH" | "CLUSTER|FLUSHSLOTS" => (
            admin(OneMaster),
            "changes the cluster; an operator should address the node directly",
        ),
        "CONFIG|GET" | "CONFIG|HELP" => (
            OneMaster,
            "the cluster's settings, as a single server's would be; the proxy's own are in PROXY CONFIG GET",
        ),
        "CONFIG|SET" => (
            AllNodes(Merge::AllOkNamed { nodes: Vec::new() }),
            "a setting of the cluster is a setting of every node, replicas included",
        ),
        "CONFIG|RESETSTAT" => (
            AllNodes(Merge::AllSame),
            "resets every node's statistics and the proxy's",
        ),
        "CONFIG|REWRITE" => (AllNodes(Merge::AllSame), "every node's configuration file"),
        "COMMAND" | "COMMAND|COUNT" | "COMMAND|DOCS" | "COMMAND|GETKEYS"
        | "COMMAND|GETKEYSANDFLAGS" | "COMMAND|HELP" | "COMMAND|INFO" | "COMMAND|LIST" => (
            OneMaster,
            "the cluster's real command set, modules included",
        ),
        "DBSIZE" => (AllMasters(Merge::Sum), "the keyspace is spread over the masters"),
        "KEYS" => (AllMasters(Merge::Concat), "the keyspace is spread over the masters"),
        "SCAN" => (
            AllMasters(Merge::Scan {
                master: 0,
                masters: 0,
                want: 0,
                carried: Vec::new(),
            }),
            "the cursor encodes which master and that master's cursor; a page a master ends short of COUNT goes on to the next master in the same call",
        ),
        "RANDOMKEY" => (
            AllMasters(Merge::FirstNonNull { start: 0 }),
            "a key from a random master that has keys",
        ),
        "FLUSHALL" | "FLUSHDB" => (
            AllMasters(Merge::AllSame),
            "empties the whole keyspace, as on one server",
        ),
        "INFO" => (
            AllMasters(Merge::Info {
                proxy: String::new(),
                server: String::new(),
                clients: String::new(),
            }),
            "server and clients from the proxy; stats, commandstats and keyspace summed over the masters; replication as one master (the fewest replicas any master has); other sections from the first master; plus the proxy's section",
        ),
        "SCRIPT|LOAD" | "SCRIPT|FLUSH" => (
            AllNodes(Merge::AllSame),
            "EVALSHA may run on any master, and on replicas under read_from",
        ),
        "SCRIPT|EXISTS" => (
            AllMasters(Merge::And),
            "a script exists only where every master has it",
        ),
        "SCRIPT|KILL" | "FUNCTION|KILL" => (
            AllNodes(Merge::AnyOk),
            "the busy script runs on one node: a master, or one demoted by a failover while it ran",
        ),
        "SCRIPT|HELP" | "FUNCTION|HELP" => (OneMaster, "the same text everywhere"),
        "SCRIPT|DEBUG" => (
            Unsupported("script debugging"),
            "the debugger needs a dedicated connection",
        ),
        "FUNCTION|LOAD" | "FUNCTION|DELETE" | "FUNCTION|FLUSH" | "FUNCTION|RESTORE" => (
            AllMasters(Merge::AllSame),
            "FCALL may run on any master",
        ),
        "FUNCTION|DUMP" | "FUNCTION|LIST" | "FUNCTION|STATS" => {
            (OneMaster, "libraries are loaded on every master alike")
        }
        "SLOWLOG|GET" => (
            AllMasters(Merge::Slowlog {
                count: 10,
                nodes: Vec::new(),
            }),
            "every master's slow commands (a replica's would repeat its master's writes); the client-address field names the node",
        ),
        "SLOWLOG|LEN" => (AllMasters(Merge::Sum), "the sum of every master's"),
        "SLOWLOG|RESET" => (AllNodes(Merge::AllSame), "clears every node's"),
        "SLOWLOG|HELP" => (OneMaster, "the same text everywhere"),
        "LATENCY|LATEST" | "LATENCY|HISTORY" => (
            AllMasters(Merge::Concat),
            "every master's events, one after the other",
        ),
        "LATENCY|RESET" => (AllMasters(Merge::Sum), "events reset on every master"),
        "LATENCY|DOCTOR" | "LATENCY|GRAPH" | "LATENCY|HISTOGRAM" | "LATENCY|HELP" => {
            (OneMaster, "a report of one node")
        }
        "MEMORY|STATS" | "MEMORY|DOCTOR" | "MEMORY|MALLOC-STATS" | "MEMORY|HELP" => {
            (OneMaster, "a report of one node")
        }
        "MEMORY|PURGE" => (AllNodes(Merge::AllSame), "every node's allocator"),
        "TIME" | "LASTSAVE" | "LOLWUT" | "PFSELFTEST" => (OneMaster, "any node answers alike"),
        "OBJECT|HELP" | "XGROUP|HELP" | "XINFO|HELP" | "PUBSUB|HELP" | "ACL|HELP" | "CLIENT|HELP"
        | "MODULE|HELP" => (OneMaster, "the same text everywhere"),
        "PUBLISH" => (
            OneMaster,
            "the master of the proxy's classic subscriptions, so its count includes them; the cluster forwards the message to every node",
        ),
        "PUBSUB|CHANNELS" | "PUBSUB|NUMPAT" | "PUBSUB|NUMSUB" => (
            OneMaster,
            "asked of the master that holds the proxy's classic subscriptions (the first in address order)",
        ),
        "PUBSUB|SHARDCHANNELS" => (
            AllMasters(Merge::Concat),
            "each shard channel is subscribed on its slot's master: every master's, together",
        ),
        "PUBSUB|SHARDNUMSUB" => (
            Proxy,
            "every master's counts summed per channel, the proxy's subscribers standing in for its one fan-in subscription",
        ),
        "SUBSCRIBE" | "PSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" => (
            Proxy,
            "a subscriber gets a connection of its own to one master; the cluster forwards every PUBLISH there",
        ),
        "MULTI" | "EXEC" | "DISCARD" | "UNWATCH" => (
            Proxy,
            "a transaction runs on a connection pinned to the node of its first key",
        ),
        "WAIT" | "WAITAOF" => (
            Written,
            "it counts the replicas (or AOFs) that have the writes made on its connection: sent on the client's own shared connection to each master it wrote to since its last WAIT (those connections' other writes are waited for too), the smallest count answered; with no write, to one master",
        ),
        "AUTH" => (
            Proxy,
            "clients authenticate to the proxy's own users (auth in config.yaml); the nodes see the proxy's backend_auth",
        ),
        "ACL|CAT" | "ACL|GENPASS" | "ACL|WHOAMI" | "ACL|LIST" | "ACL|USERS" | "ACL|GETUSER" => {
            (Proxy, "answered from the proxy's users (auth in config.yaml)")
        }
        "ACL|LOG" | "ACL|DRYRUN" => (
            Unsupported("ACL LOG and DRYRUN"),
            "the proxy keeps no ACL log yet; its users are in config.yaml",
        ),
        "ACL|SETUSER" | "ACL|DELUSER" | "ACL|LOAD" | "ACL|SAVE" => (
            Unsupported("ACL changes"),
            "the proxy's users come from its configuration file (auth.users in config.yaml)",
        ),
        "MODULE|LIST" => (OneMaster, "modules are loaded on every node alike"),
        "MODULE|LOAD" | "MODULE|LOADEX" | "MODULE|UNLOAD" => (
            admin(AllNodes(Merge::AllSame)),
            "a module must be on every node",
        ),
        "BGSAVE" | "SAVE" | "BGREWRITEAOF" => (
            admin(AllNodes(Merge::AllSame)),
            "persistence is per node",
        ),
        "SHUTDOWN" => (
            Unsupported("node shutdown"),
            "which node would be meant? Use redis-cli against the node; PROXY SHUTDOWN stops the proxy",
        ),
        "DEBUG" => (
            admin(OneMaster),
            "can stall or crash a node; DEBUG OBJECT key is routed by its key",
        ),
        "FAILOVER" | "REPLICAOF" | "SLAVEOF" => (
            admin(OneMaster),
            "changes replication; an operator should address the node directly",
        ),
        "SWAPDB" => (admin(OneMaster), "a cluster has only database 0"),
        "PSYNC" | "SYNC" | "REPLCONF" => (
            Unsupported("replication"),
            "the replication protocol is between nodes",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::COMMANDS;

    /// Every keyless command of the table (commands and subcommands with no key
    /// specification) has a deliberate choice.
    #[test]
    fn every_keyless_command_has_a_choice() {
        let mut missing = Vec::new();
        for c in COMMANDS {
            let subs: Vec<&crate::command::Command> = if c.subcommands.is_empty() {
                vec![c]
            } else {
                c.subcommands.iter().collect()
            };
            for s in subs {
                if s.keys.is_empty() && keyless_policy(s.name).is_none() {
                    missing.push(s.name);
                }
            }
        }
        assert!(missing.is_empty(), "no policy for {missing:?}");
    }
}
