//! Request -> route: answered by the proxy, one slot's master, any master, or refused with an
//! error. Borrows the request's bytes; allocates nothing on the path of a routed command.

use crate::cluster_view::View;
use crate::command::{self, flag, Args, Command};
use crate::error::ProxyError;
use crate::slot::{key_slot, Slot};
use crate::split::{self, Merge};

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
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local(Local),
    /// Every key is in this slot: to its master.
    Slot(Slot),
    /// A read-only command whose keys are in this slot: to the master, or a replica under
    /// `read_from`.
    ReadSlot(Slot),
    /// No key: to one master.
    AnyMaster,
    /// Keys in several slots of a command that can be split: one request per slot, with
    /// `per_key` arguments per key, merged by `merge`.
    Split {
        per_key: usize,
        merge: Merge,
    },
    /// To every master, the replies merged.
    FanOut(Merge),
    /// SCAN: one master at a time, the cursor naming which.
    Scan,
    /// A CLUSTER subcommand that describes the cluster: answered per `cluster_view`.
    Cluster(View),
    /// A command that changes the cluster: refused unless `allow_admin_commands`.
    Admin,
    /// INFO: merged over the masters, with the proxy's own section.
    Info,
    Refuse(ProxyError),
}

/// Decides where a request goes. `args` are the request's arguments (name first).
pub fn route<A: Args + ?Sized>(args: &A) -> Route {
    let Some(cmd) = command::lookup(args) else {
        return Route::Refuse(ProxyError::unknown_command_args(args));
    };
    if !cmd.arity_ok(args.argc()) {
        return Route::Refuse(wrong_arity(cmd));
    }
    // Key-value pairs: the arity allows any count, Redis wants them whole.
    if matches!(cmd.name, "MSET" | "MSETNX") && args.argc() % 2 == 0 {
        return Route::Refuse(wrong_arity(cmd));
    }
    if let Some(local) = local(cmd) {
        // PING's arity (-1) allows any count; Redis takes at most one message.
        if local == Local::Ping && args.argc() > 2 {
            return Route::Refuse(wrong_arity(cmd));
        }
        return Route::Local(local);
    }
    // CLIENT SETINFO came with Redis 7.2, after the server the table was generated from;
    // clients (redis-py among them) send it on connect.
    if cmd.name == "CLIENT" && args.argc() >= 2 && args.arg(1).eq_ignore_ascii_case(b"SETINFO") {
        if args.argc() != 4 {
            return Route::Refuse(ProxyError::Other(
                "ERR wrong number of arguments for 'client|setinfo' command".into(),
            ));
        }
        return Route::Local(Local::ClientSetInfo);
    }
    if let Some(why) = refused(cmd, args) {
        return Route::Refuse(why);
    }
    if let Some(r) = fan_out(cmd) {
        return r;
    }
    if let Some(r) = cluster(cmd, args) {
        return r;
    }
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
            _ => Route::Refuse(ProxyError::CrossSlot),
        };
    }
    match slot {
        Some(s) if cmd.has(flag::READONLY) && !cmd.has(flag::WRITE) => Route::ReadSlot(s),
        Some(s) => Route::Slot(s),
        None => Route::AnyMaster,
    }
}

/// Redis's arity error, worded with the lower-case full name (`client|setname`).
pub fn wrong_arity(cmd: &Command) -> ProxyError {
    ProxyError::Other(format!(
        "ERR wrong number of arguments for '{}' command",
        cmd.name.to_ascii_lowercase()
    ))
}

/// Keyless commands whose answer from a single server covers the whole keyspace: asked of
/// every master and merged, so the client sees what one server holding all keys would say.
fn fan_out(cmd: &Command) -> Option<Route> {
    Some(Route::FanOut(match cmd.name {
        "DBSIZE" => Merge::Sum,
        "KEYS" => Merge::Concat,
        "FLUSHALL" | "FLUSHDB" => Merge::AllSame,
        "SCRIPT|LOAD" | "SCRIPT|FLUSH" => Merge::AllSame,
        "SCRIPT|EXISTS" => Merge::And,
        "FUNCTION|LOAD" | "FUNCTION|DELETE" | "FUNCTION|FLUSH" | "FUNCTION|RESTORE" => {
            Merge::AllSame
        }
        "RANDOMKEY" => Merge::FirstNonNull { start: 0 },
        "SCAN" => return Some(Route::Scan),
        "INFO" => return Some(Route::Info),
        _ => return None,
    }))
}

fn cluster<A: Args + ?Sized>(cmd: &Command, args: &A) -> Option<Route> {
    let sub = cmd.name.strip_prefix("CLUSTER|")?;
    Some(match sub {
        "NODES" => Route::Cluster(View::Nodes),
        "SLOTS" => Route::Cluster(View::Slots),
        "SHARDS" => Route::Cluster(View::Shards),
        "INFO" => Route::Cluster(View::Info),
        "MYID" => Route::Cluster(View::MyId),
        "REPLICAS" | "SLAVES" => Route::Cluster(View::Replicas),
        "COUNTKEYSINSLOT" | "GETKEYSINSLOT" => {
            match std::str::from_utf8(args.arg(2))
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
            {
                Some(s) if (s as usize) < crate::slot::SLOTS => Route::Slot(Slot(s)),
                _ => Route::Refuse(ProxyError::Other("ERR Invalid or out of range slot".into())),
            }
        }
        "ADDSLOTS" | "ADDSLOTSRANGE" | "DELSLOTS" | "DELSLOTSRANGE" | "SETSLOT" | "FAILOVER"
        | "RESET" | "FORGET" | "MEET" | "REPLICATE" | "SAVECONFIG" | "SET-CONFIG-EPOCH"
        | "BUMPEPOCH" | "FLUSHSLOTS" => Route::Admin,
        _ => return None,
    })
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
        _ => return None,
    })
}

/// Commands that would change a shared backend connection's state for every client on it,
/// or hold it: refused until they get dedicated connections.
fn refused<A: Args + ?Sized>(cmd: &Command, args: &A) -> Option<ProxyError> {
    let name = cmd.name;
    let why = match name {
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => "transactions",
        "AUTH" => "authentication",
        "MONITOR" => "MONITOR",
        _ if cmd.has(flag::PUBSUB) && name != "PUBLISH" && name != "SPUBLISH" => "pub/sub",
        "XREAD" | "XREADGROUP" => {
            if !has_block_option(args) {
                return None;
            }
            "blocking commands"
        }
        _ if cmd.has(flag::BLOCKING) => "blocking commands",
        _ if name.starts_with("CLIENT") => "this CLIENT subcommand",
        _ => return None,
    };
    let shown = name.replace('|', " ");
    Some(ProxyError::Unsupported(format!(
        "ERR {shown} is not supported through this proxy yet ({why} need a dedicated connection)"
    )))
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
        ProxyError::Other(format!(
            "ERR wrong number of arguments for '{name}' command"
        ))
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
        assert_eq!(
            r("MSETNX foo 1 bar 2"),
            Route::Refuse(ProxyError::CrossSlot)
        );
        assert_eq!(r("MSET foo 1 bar"), Route::Refuse(wrong_arity_for("mset")));
        assert_eq!(r("SUNION foo bar"), Route::Refuse(ProxyError::CrossSlot));
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
        assert_eq!(r("cluster setslot 1 stable"), Route::Admin);
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
        assert!(matches!(r("XREAD BLOCK 0 STREAMS s 0"), Route::Refuse(_)));
        assert!(matches!(r("BLPOP l 0"), Route::Refuse(_)));
        assert!(matches!(r("MULTI"), Route::Refuse(_)));
        assert!(matches!(r("SUBSCRIBE c"), Route::Refuse(_)));
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
