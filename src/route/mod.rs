//! Request -> route: answered by the proxy, one slot's master, any master, or refused with an
//! error. Borrows the request's bytes; allocates nothing on the path of a routed command.

pub mod info;
pub mod merge;
pub mod policy;
pub mod split;

use crate::command::{self, flag, Args, Command};
use crate::error::ProxyError;
use crate::slot::{key_slot, Slot};
use crate::topology::view::View;
use policy::{keyless_policy, Policy};
use split::Merge;

/// Commands the proxy answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Select,
    Hello,
    Reset,
    ClientSetName,
    ClientGetName,
    ClientSetInfo,
    ClientId,
    /// READONLY, READWRITE, ASKING: connection modes of a cluster client; the proxy does the
    /// routing, so they are acknowledged and change nothing.
    Ok,
    ClusterKeySlot,
    /// CLIENT INFO/LIST/KILL: need every client of the proxy, answered after the turn's
    /// parsing with the client slab at hand.
    ClientInfo,
    ClientList,
    ClientKill,
    /// CLIENT UNBLOCK: the client's blocking command unblocked on its node.
    ClientUnblock,
    /// CLIENT NO-EVICT / NO-TOUCH: acknowledged; the proxy evicts and touches nothing.
    ClientFlag,
    /// CLIENT REPLY ON|OFF|SKIP: the proxy drops the replies the client asked not to get.
    ClientReply,
    /// CLIENT PAUSE / UNPAUSE: the proxy holds its clients' commands (`pause/`).
    ClientPause,
    /// CLIENT TRACKING / CACHING / TRACKINGINFO / GETREDIR (`tracking/`).
    ClientTracking,
    /// PUBSUB SHARDNUMSUB: the proxy's subscribers of each shard channel (`fanin/`).
    ShardNumsub,
    Role,
    Monitor,
    /// The proxy's own commands: PROXY INFO, PROXY CONFIG GET, PROXY SHUTDOWN.
    Proxy,
    /// AUTH [user] password, against the proxy's users (`auth`).
    Auth,
    /// ACL WHOAMI, CAT, USERS, LIST, GETUSER, GENPASS: answered from the proxy's users.
    Acl,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local(Local),
    /// Every key is in this slot: to its master.
    Slot(Slot),
    /// A read-only command whose keys are in this slot: to the master, or a replica under
    /// `read_from`.
    ReadSlot(Slot),
    /// A blocking command (BLPOP, XREAD BLOCK, ...) whose keys are in this slot: to its
    /// master over a connection of its own, so it holds no shared connection while it waits.
    Blocking(Slot),
    /// No key: to one master.
    AnyMaster,
    /// Keys in several slots of a command that can be split: one request per slot, with
    /// `per_key` arguments per key, merged by `merge`.
    Split {
        per_key: usize,
        merge: Merge,
    },
    /// Keys in several slots of a read the proxy computes from each key's value (ZUNION,
    /// PFCOUNT, LCS, XREAD...): each key read from its owner, the answer computed.
    Compute(Box<crate::compute::Computed>),
    /// To every master, the replies merged.
    FanOut(Merge),
    /// SCAN: one master at a time, the cursor naming which.
    Scan,
    /// A CLUSTER subcommand that describes the cluster: answered per `cluster_view`.
    Cluster(View),
    /// A command that changes a node or the cluster: refused unless `allow_admin_commands`,
    /// then routed as the inner route says.
    Admin(Box<Route>),
    /// To every node, masters and replicas, the replies merged.
    FanOutAll(Merge),
    /// INFO: merged over the masters, with the proxy's own section.
    Info,
    /// WAIT, WAITAOF: to the masters the client wrote to (`Policy::Written`).
    Wait,
    Refuse(ProxyError),
}

/// What a command is to the modules after the router, decided here once so that none of
/// them compares command names: the feature that takes it, or an effect on the proxy's
/// own state that goes with routing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    /// Opens, runs or closes a transaction: taken by `tx`.
    Tx(TxOp),
    /// A subscription or unsubscription: taken by `pubsub`.
    Sub(SubOp),
    /// PUBLISH, PUBSUB CHANNELS|NUMSUB|NUMPAT: to the master classic subscriptions live on,
    /// so they see the proxy's subscribers. `channel`: argument 1 names a channel
    /// (PUBLISH), for the ACL's channel rules.
    Publish {
        channel: bool,
    },
    /// SPUBLISH: routed by its channel's slot; argument 1 names a channel.
    SPublish,
    /// PING: a subscriber's goes on its stream.
    Ping,
    /// HELLO: a RESP3 subscriber may not switch protocols.
    Hello,
    /// QUIT and RESET: a subscriber's leave once its stream has caught up.
    Quit,
    Reset,
    /// MONITOR: not in a transaction.
    Monitor,
    /// EXISTS: a split that reads, so its parts follow `read_from` (MGET is known by its
    /// merge).
    ReadSplit,
    /// SCRIPT LOAD <body>: remembered for NOSCRIPT recovery.
    ScriptLoad,
    /// SCRIPT FLUSH: what was remembered is forgotten.
    ScriptFlush,
    /// CONFIG RESETSTAT: the proxy's counters too.
    ResetStat,
    /// CONFIG GET: the nodes' passwords are redacted from the reply.
    ConfigGet,
    /// SCRIPT KILL, FUNCTION KILL, CLIENT UNPAUSE: they must reach a node that is busy
    /// with another client's command, so they never queue behind other work (a
    /// connection of their own).
    Control,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOp {
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

/// Which of the three pub/sub namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Classic,
    Pattern,
    Shard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubOp {
    Subscribe(Channels),
    Unsubscribe(Channels),
}

impl SubOp {
    /// The name of its replies' kind, as Redis writes it (`psubscribe`, `sunsubscribe`...).
    pub fn reply_kind(self) -> &'static str {
        match self {
            SubOp::Subscribe(Channels::Classic) => "subscribe",
            SubOp::Subscribe(Channels::Pattern) => "psubscribe",
            SubOp::Subscribe(Channels::Shard) => "ssubscribe",
            SubOp::Unsubscribe(Channels::Classic) => "unsubscribe",
            SubOp::Unsubscribe(Channels::Pattern) => "punsubscribe",
            SubOp::Unsubscribe(Channels::Shard) => "sunsubscribe",
        }
    }
}

impl Kind {
    pub fn of(cmd: Option<&Command>, args: &(impl Args + ?Sized)) -> Kind {
        let Some(cmd) = cmd else {
            return Kind::Plain;
        };
        match cmd.name {
            "MULTI" => Kind::Tx(TxOp::Multi),
            "EXEC" => Kind::Tx(TxOp::Exec),
            "DISCARD" => Kind::Tx(TxOp::Discard),
            "WATCH" => Kind::Tx(TxOp::Watch),
            "UNWATCH" => Kind::Tx(TxOp::Unwatch),
            "SUBSCRIBE" => Kind::Sub(SubOp::Subscribe(Channels::Classic)),
            "PSUBSCRIBE" => Kind::Sub(SubOp::Subscribe(Channels::Pattern)),
            "SSUBSCRIBE" => Kind::Sub(SubOp::Subscribe(Channels::Shard)),
            "UNSUBSCRIBE" => Kind::Sub(SubOp::Unsubscribe(Channels::Classic)),
            "PUNSUBSCRIBE" => Kind::Sub(SubOp::Unsubscribe(Channels::Pattern)),
            "SUNSUBSCRIBE" => Kind::Sub(SubOp::Unsubscribe(Channels::Shard)),
            "PUBLISH" => Kind::Publish { channel: true },
            "PUBSUB|CHANNELS" | "PUBSUB|NUMSUB" | "PUBSUB|NUMPAT" => {
                Kind::Publish { channel: false }
            }
            "SPUBLISH" => Kind::SPublish,
            "PING" => Kind::Ping,
            "HELLO" => Kind::Hello,
            "QUIT" => Kind::Quit,
            "RESET" => Kind::Reset,
            "MONITOR" => Kind::Monitor,
            "EXISTS" => Kind::ReadSplit,
            "SCRIPT|LOAD" if args.argc() == 3 => Kind::ScriptLoad,
            "SCRIPT|FLUSH" => Kind::ScriptFlush,
            "CONFIG|RESETSTAT" if args.argc() == 2 => Kind::ResetStat,
            "CONFIG|GET" => Kind::ConfigGet,
            "SCRIPT|KILL" | "FUNCTION|KILL" => Kind::Control,
            _ => Kind::Plain,
        }
    }

    pub fn is_tx(self) -> bool {
        matches!(self, Kind::Tx(_))
    }
}

/// A request's route, the command it was found to be, and what it is to the features.
#[derive(Debug)]
pub struct Routed {
    pub route: Route,
    pub cmd: Option<&'static Command>,
    pub kind: Kind,
}

impl Routed {
    /// The command's name for CLIENT LIST's `cmd=` and the like.
    pub fn name(&self) -> &'static str {
        self.cmd.map_or("unknown", |c| c.name)
    }
}

/// Decides where a request goes. `args` are the request's arguments (name first).
pub fn route<A: Args + ?Sized>(args: &A) -> Route {
    route_cmd(args).0
}

/// The route and what the command is, for the reactor.
pub fn routed<A: Args + ?Sized>(args: &A) -> Routed {
    let (route, cmd) = route_cmd(args);
    let kind = Kind::of(cmd, args);
    Routed { route, cmd, kind }
}

/// A command's name as errors show it, upper case, with its subcommand where it has
/// subcommands (`CLUSTER SETSLOT`).
pub fn shown_name<A: Args + ?Sized>(args: &A) -> String {
    let mut name = String::from_utf8_lossy(args.arg(0)).to_uppercase();
    let has_subs =
        command::lookup([name.as_bytes()].as_slice()).is_some_and(|c| !c.subcommands.is_empty());
    if has_subs && args.argc() > 1 {
        name.push(' ');
        name.push_str(&String::from_utf8_lossy(args.arg(1)).to_uppercase());
    }
    name
}

/// The route, and the command it was found to be.
pub fn route_cmd<A: Args + ?Sized>(args: &A) -> (Route, Option<&'static Command>) {
    if args.argc() > 0 && args.arg(0).eq_ignore_ascii_case(b"PROXY") {
        return (Route::Local(Local::Proxy), None);
    }
    let Some(cmd) = command::lookup(args) else {
        return (Route::Refuse(ProxyError::unknown_command_args(args)), None);
    };
    (route_known(cmd, args), Some(cmd))
}

fn route_known<A: Args + ?Sized>(cmd: &'static Command, args: &A) -> Route {
    if !cmd.arity_ok(args.argc()) {
        return Route::Refuse(wrong_arity(cmd));
    }
    // Key-value pairs: the arity allows any count, Redis wants them whole.
    if matches!(cmd.name, "MSET" | "MSETNX") && args.argc() % 2 == 0 {
        return Route::Refuse(wrong_arity(cmd));
    }
    // PING's arity (-1) allows any count; Redis takes at most one message.
    if cmd.name == "PING" && args.argc() > 2 {
        return Route::Refuse(wrong_arity(cmd));
    }
    // CLIENT SETINFO came with Redis 7.2, after the server the table was generated from;
    // clients (redis-py among them) send it on connect.
    if cmd.name == "CLIENT" && args.argc() >= 2 && args.arg(1).eq_ignore_ascii_case(b"SETINFO") {
        if args.argc() != 4 {
            return Route::Refuse(ProxyError::WrongArity("client|setinfo".into()));
        }
        return Route::Local(Local::ClientSetInfo);
    }
    match cmd.name {
        // DEBUG OBJECT names a key, which DEBUG's key specification does not say.
        "DEBUG" if args.argc() == 3 && args.arg(1).eq_ignore_ascii_case(b"OBJECT") => {
            return Route::ReadSlot(key_slot(args.arg(2)))
        }
        "MOVE" => return Route::Refuse(ProxyError::MoveRefused),
        "MIGRATE" => return Route::Admin(Box::new(Route::AnyMaster)),
        "SHUTDOWN" => return Route::Refuse(ProxyError::ShutdownRefused),
        _ => {}
    }
    if cmd.keys.is_empty() {
        return keyless(cmd, args);
    }
    if cmd.has(flag::PUBSUB) && cmd.name != "SPUBLISH" {
        return Route::Refuse(ProxyError::PubSubNeedsConnection(
            cmd.name.replace('|', " "),
        ));
    }
    let blocking = match cmd.name {
        "XREAD" | "XREADGROUP" => has_block_option(args),
        _ => cmd.has(flag::BLOCKING),
    };
    let route = keyed(cmd, args);
    if blocking {
        return match route {
            Route::Slot(s) | Route::ReadSlot(s) => Route::Blocking(s),
            // A blocking command with keys in several slots would wait on several nodes at
            // once, and an element popped by a losing node could be lost: refused, saying why.
            Route::Split { .. } | Route::Compute(_) | Route::Refuse(ProxyError::CrossSlot) => {
                Route::Refuse(ProxyError::CrossSlotBlocking)
            }
            other => other,
        };
    }
    route
}

/// A command with keys: its slot, a split, or CROSSSLOT.
fn keyed<A: Args + ?Sized>(cmd: &'static Command, args: &A) -> Route {
    let mut slot: Option<Slot> = None;
    let mut cross = false;
    command::for_each_key(cmd, args, |i| {
        let s = key_slot(args.arg(i));
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => {
                cross = true;
                return false;
            }
            _ => {}
        }
        true
    });
    if cross {
        return match split::splittable(cmd.name) {
            Some((per_key, merge)) if (args.argc() - 1) % per_key == 0 => Route::Split {
                per_key,
                merge: merge(per_key),
            },
            _ => match crate::compute::plan(cmd.name, args) {
                Some(Ok(c)) => Route::Compute(Box::new(c)),
                Some(Err(e)) => Route::Refuse(e),
                None => Route::Refuse(ProxyError::CrossSlot),
            },
        };
    }
    match slot {
        Some(s) if cmd.has(flag::READONLY) && !cmd.has(flag::WRITE) => Route::ReadSlot(s),
        Some(s) => Route::Slot(s),
        None => Route::AnyMaster,
    }
}

/// A command without keys, by the table of choices in `policy`.
fn keyless<A: Args + ?Sized>(cmd: &Command, args: &A) -> Route {
    let Some((policy, why)) = keyless_policy(cmd.name) else {
        // Not in the table (a learned module command, say): any master can answer.
        return Route::AnyMaster;
    };
    policy_route(cmd, args, policy, why)
}

fn policy_route<A: Args + ?Sized>(cmd: &Command, args: &A, policy: Policy, why: &str) -> Route {
    match policy {
        Policy::Proxy => match local(cmd) {
            Some(l) => Route::Local(l),
            None => Route::AnyMaster,
        },
        Policy::OneMaster => Route::AnyMaster,
        Policy::Written => Route::Wait,
        Policy::AllMasters(Merge::Scan { .. }) => Route::Scan,
        Policy::AllMasters(Merge::Info { .. }) => Route::Info,
        Policy::AllMasters(Merge::Slowlog { .. }) => {
            let count = match args.argc() {
                2 => 10,
                _ => match crate::resp::parse_int(args.arg(2)) {
                    Some(n) if n >= -1 => n,
                    _ => return Route::Refuse(ProxyError::SlowlogCount),
                },
            };
            Route::FanOut(Merge::Slowlog {
                count,
                nodes: Vec::new(),
            })
        }
        Policy::AllMasters(m) => Route::FanOut(m),
        Policy::AllNodes(m) => Route::FanOutAll(m),
        Policy::ClusterView => match cmd.name {
            "CLUSTER|NODES" => Route::Cluster(View::Nodes),
            "CLUSTER|SLOTS" => Route::Cluster(View::Slots),
            "CLUSTER|SHARDS" => Route::Cluster(View::Shards),
            "CLUSTER|INFO" => Route::Cluster(View::Info),
            "CLUSTER|MYID" => Route::Cluster(View::MyId),
            _ => Route::Cluster(View::Replicas),
        },
        Policy::SlotArgument => {
            match std::str::from_utf8(args.arg(2))
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
            {
                Some(s) if (s as usize) < crate::slot::SLOTS => Route::Slot(Slot(s)),
                _ => Route::Refuse(ProxyError::InvalidSlot),
            }
        }
        Policy::Admin(inner) => Route::Admin(Box::new(policy_route(cmd, args, *inner, why))),
        Policy::Unsupported(what) => Route::Refuse(ProxyError::Unsupported {
            name: cmd.name.replace('|', " "),
            what,
            why: why.to_string(),
        }),
    }
}

/// Redis's arity error, worded with the lower-case full name (`client|setname`).
pub fn wrong_arity(cmd: &Command) -> ProxyError {
    ProxyError::WrongArity(cmd.name.to_ascii_lowercase())
}

fn local(cmd: &Command) -> Option<Local> {
    Some(match cmd.name {
        "PING" => Local::Ping,
        "ECHO" => Local::Echo,
        "QUIT" => Local::Quit,
        "SELECT" => Local::Select,
        "HELLO" => Local::Hello,
        "RESET" => Local::Reset,
        "CLIENT|SETNAME" => Local::ClientSetName,
        "CLIENT|GETNAME" => Local::ClientGetName,
        "CLIENT|SETINFO" => Local::ClientSetInfo,
        "CLIENT|ID" => Local::ClientId,
        "READONLY" | "READWRITE" | "ASKING" => Local::Ok,
        "CLUSTER|KEYSLOT" => Local::ClusterKeySlot,
        "CLIENT|INFO" => Local::ClientInfo,
        "CLIENT|LIST" => Local::ClientList,
        "CLIENT|KILL" => Local::ClientKill,
        "CLIENT|UNBLOCK" => Local::ClientUnblock,
        "CLIENT|NO-EVICT" | "CLIENT|NO-TOUCH" => Local::ClientFlag,
        "CLIENT|REPLY" => Local::ClientReply,
        "CLIENT|PAUSE" | "CLIENT|UNPAUSE" => Local::ClientPause,
        "PUBSUB|SHARDNUMSUB" => Local::ShardNumsub,
        "CLIENT|TRACKING" | "CLIENT|CACHING" | "CLIENT|TRACKINGINFO" | "CLIENT|GETREDIR" => {
            Local::ClientTracking
        }
        "ROLE" => Local::Role,
        "MONITOR" => Local::Monitor,
        "AUTH" => Local::Auth,
        "ACL|WHOAMI" | "ACL|CAT" | "ACL|USERS" | "ACL|LIST" | "ACL|GETUSER" | "ACL|GENPASS" => {
            Local::Acl
        }
        _ => return None,
    })
}

/// Whether XREAD/XREADGROUP carries BLOCK before STREAMS.
fn has_block_option<A: Args + ?Sized>(args: &A) -> bool {
    for i in 1..args.argc() {
        let a = args.arg(i);
        if a.eq_ignore_ascii_case(b"STREAMS") {
            return false;
        }
        if a.eq_ignore_ascii_case(b"BLOCK") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong_arity_for(name: &str) -> ProxyError {
        ProxyError::WrongArity(name.into())
    }

    fn r(line: &str) -> Route {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        route(args.as_slice())
    }

    #[test]
    fn routes() {
        assert_eq!(r("GET foo"), Route::ReadSlot(Slot(12182)));
        assert_eq!(r("get foo"), Route::ReadSlot(Slot(12182)));
        assert_eq!(r("SET foo 1"), Route::Slot(Slot(12182)));
        assert_eq!(
            r("MSET {u}a 1 {u}b 2"),
            Route::Slot(crate::slot::key_slot(b"u"))
        );
        assert_eq!(
            r("MGET foo bar"),
            Route::Split {
                per_key: 1,
                merge: Merge::Mget { order: vec![] }
            }
        );
        // Writes across slots are staged (`cross_slot_writes` decides at dispatch).
        assert!(matches!(r("MSETNX foo 1 bar 2"), Route::Compute(c) if c.is_write()));
        assert_eq!(r("MSET foo 1 bar"), Route::Refuse(wrong_arity_for("mset")));
        // Set reads across slots are computed by the proxy; the STORE forms write.
        assert_eq!(
            r("SUNION foo bar"),
            Route::Split {
                per_key: 1,
                merge: Merge::Sets(crate::route::split::SetOp::Union)
            }
        );
        assert!(matches!(r("SUNIONSTORE dst foo bar"), Route::Compute(c) if c.is_write()));
        assert_eq!(
            r("DEL foo bar"),
            Route::Split {
                per_key: 1,
                merge: Merge::Sum
            }
        );
        assert_eq!(r("KEYS *"), Route::FanOut(Merge::Concat));
        assert_eq!(r("SCAN 0"), Route::Scan);
        assert_eq!(r("CLUSTER NODES"), Route::Cluster(View::Nodes));
        assert_eq!(
            r("cluster setslot 1 stable"),
            Route::Admin(Box::new(Route::AnyMaster))
        );
        assert_eq!(
            r("CONFIG SET a b"),
            Route::FanOutAll(Merge::AllOkNamed { nodes: vec![] })
        );
        assert_eq!(r("CONFIG GET a"), Route::AnyMaster);
        assert_eq!(
            r("BGSAVE"),
            Route::Admin(Box::new(Route::FanOutAll(Merge::AllSame)))
        );
        assert_eq!(r("DEBUG OBJECT foo"), Route::ReadSlot(Slot(12182)));
        assert!(matches!(r("DEBUG SLEEP 0"), Route::Admin(_)));
        assert!(matches!(r("SHUTDOWN"), Route::Refuse(_)));
        assert!(matches!(r("MOVE foo 1"), Route::Refuse(_)));
        assert_eq!(r("PROXY CONFIG GET *"), Route::Local(Local::Proxy));
        assert_eq!(r("CLIENT LIST"), Route::Local(Local::ClientList));
        assert_eq!(r("CLUSTER COUNTKEYSINSLOT 12182"), Route::Slot(Slot(12182)));
        assert!(matches!(
            r("CLUSTER COUNTKEYSINSLOT 99999"),
            Route::Refuse(_)
        ));
        assert_eq!(r("PING"), Route::Local(Local::Ping));
        assert_eq!(r("client setname x"), Route::Local(Local::ClientSetName));
        assert_eq!(
            r("CLIENT SETINFO LIB-NAME x"),
            Route::Local(Local::ClientSetInfo)
        );
        assert_eq!(r("DBSIZE"), Route::FanOut(Merge::Sum));
        assert_eq!(r("INFO"), Route::Info);
        assert_eq!(r("EVAL s 0"), Route::AnyMaster);
        assert_eq!(
            r("XREAD STREAMS s 0"),
            Route::ReadSlot(crate::slot::key_slot(b"s"))
        );
        assert_eq!(
            r("XREAD BLOCK 0 STREAMS s 0"),
            Route::Blocking(crate::slot::key_slot(b"s"))
        );
        assert_eq!(r("BLPOP foo 0"), Route::Blocking(Slot(12182)));
        assert_eq!(
            r("BLPOP foo bar 0"),
            Route::Refuse(ProxyError::CrossSlotBlocking)
        );
        // Transactions are taken over by the reactor before the route is used.
        assert!(!matches!(r("MULTI"), Route::Refuse(_)));
        // Subscriptions, like transactions, are taken over by the reactor.
        assert!(!matches!(r("SUBSCRIBE c"), Route::Refuse(_)));
        assert_eq!(r("PUBLISH c m"), Route::AnyMaster);
        match r("NOSUCH a") {
            Route::Refuse(e) => assert_eq!(
                e.to_string(),
                "ERR unknown command 'NOSUCH', with args beginning with: 'a' "
            ),
            other => panic!("{other:?}"),
        }
        for line in [
            "ECHO",
            "PING a b",
            "SELECT",
            "CLIENT SETNAME",
            "CLUSTER KEYSLOT",
            "HELLO",
        ] {
            if line == "HELLO" {
                assert_eq!(r(line), Route::Local(Local::Hello));
            } else {
                assert!(matches!(r(line), Route::Refuse(_)), "{line}");
            }
        }
        match r("GET") {
            Route::Refuse(e) => {
                assert_eq!(
                    e.to_string(),
                    "ERR wrong number of arguments for 'get' command"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
