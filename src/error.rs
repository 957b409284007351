//! The proxy's own errors for routing and backends, and the one place that renders any of
//! them as the line a client sees.

use std::fmt;

use crate::resp::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// A malformed request; the connection is closed after the reply.
    Protocol(ParseError),
    UnknownCommand {
        name: String,
        args: Vec<String>,
    },
    /// Redis's arity error; the name in lower case, full (`client|setname`).
    WrongArity(String),
    CrossSlot,
    /// A blocking command (BLPOP, ...) with keys in several slots: it waits on one node.
    CrossSlotBlocking,
    /// A write with keys in several slots while `cross_slot_writes` is off.
    CrossSlotWrite,
    /// No node owns the slot (the cluster does not cover it, or the map is being refreshed).
    SlotUnserved(u16),
    /// No master is known at all.
    NoMaster,
    /// The node is down or its connection broke.
    NodeUnavailable {
        node: String,
        why: String,
    },
    /// The connection broke after the request was written to it: the node may or may not
    /// have run it, and a write is never re-sent in doubt.
    InDoubt {
        node: String,
        why: String,
    },
    /// A held request's `failover_wait` ran out: `what` is why it waited, naming the node
    /// (the node's own error line, or why the node was unusable).
    WaitedTooLong {
        what: String,
        waited_ms: u64,
    },
    TooManyRedirects {
        max: u32,
        last: String,
    },
    /// A redirect named a node past the node table's bound.
    NodeTableFull,
    /// Blocking commands in progress reached the bound on dedicated connections.
    TooManyBlocking(usize),
    /// A command the proxy does not (yet) carry: its name (upper case, `CLIENT TRACKING`),
    /// the feature and the reason.
    Unsupported {
        name: String,
        what: &'static str,
        why: String,
    },
    /// A keyed pub/sub command other than SPUBLISH outside subscribed mode.
    PubSubNeedsConnection(String),
    /// A node or cluster command refused without `allow_admin_commands`.
    AdminRefused(String),
    /// MOVE: a cluster has one database.
    MoveRefused,
    /// SHUTDOWN would stop one node.
    ShutdownRefused,
    /// PROXY SHUTDOWN without `allow_admin_commands`.
    ProxyShutdownRefused,
    UnknownProxySubcommand,
    SyntaxError,
    /// SELECT n for n != 0.
    DbIndexOutOfRange,
    NotAnInteger,
    InvalidCursor,
    /// SLOWLOG GET with a count below -1.
    SlowlogCount,
    /// CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT with a bad slot.
    InvalidSlot,
    InvalidClientName,
    /// CLIENT SETINFO with an attribute other than LIB-NAME/LIB-VER.
    UnrecognizedOption(String),
    UnknownClientType(String),
    InvalidClientId,
    /// CLIENT UNBLOCK's third argument is neither TIMEOUT nor ERROR.
    UnblockReason,
    /// A CLIENT subcommand with too many arguments (the subcommand as given).
    ClientSubcommandArity(String),
    NoSuchClient,
    MaxClients,
    /// HELLO with a protocol version other than 2 or 3.
    NoProto,
    HelloProtoNotInteger,
    /// A command before AUTH, where the proxy requires it.
    NoAuth,
    /// HELLO without AUTH before authenticating.
    NoAuthHello,
    WrongPass,
    /// AUTH <password> with no password set for the default user.
    AuthWithoutPassword,
    /// The user may not run the command (its lower-case full name).
    NoPermCommand(String),
    NoPermKey,
    NoPermChannel,
    /// A non-loopback client of a proxy in protected mode.
    ProtectedMode,
    /// CLIENT KILL USER of a user the proxy does not have.
    NoSuchUser(String),
    /// ACL CAT of a category that does not exist.
    UnknownCategory(String),
    /// ACL GENPASS with a bit count out of range.
    GenpassBits,
    HelloSyntax(String),
    /// HELLO 2 from a RESP3 subscriber.
    HelloWhileSubscribed,
    /// A RESP2 subscriber's command other than (un)subscriptions, PING, QUIT, RESET.
    SubscribedContext(String),
    SubscriptionLost,
    /// Inside MULTI, a command the proxy cannot queue on the pinned node.
    NotInTransaction(String),
    CannotRunInTransaction(String),
    NestedMulti,
    ExecWithoutMulti,
    DiscardWithoutMulti,
    WatchInsideMulti,
    ExecAbort,
    TransactionConnectionLost,
    TransactionSlotUnserved,
    TransactionCrossSlot,
    /// A route the reactor takes before `local::answer` reached it.
    InternalRouting,
    /// A merge whose parts were not of the shape expected.
    InternalMerge,
    /// A merge with no part at all.
    NoReply,
    /// A node's part of a merge was not of the shape expected.
    UnexpectedReply(&'static str),
    /// A node's SCAN cursor does not fit beside the master's index in the proxy's cursor.
    ScanCursorTooLarge,
    /// A command sent to every node failed on one after others applied it.
    PartlyApplied {
        node: String,
        err: String,
        applied: String,
    },
    /// The error Redis itself gives for a request the proxy computes (a multi-key read
    /// across slots), in Redis's words: code and text as one Redis would send them.
    Redis(String),
}

/// The codes the proxy's refusals begin with, for the errors-by-kind metric.
const CODES: [&str; 12] = [
    "ERR",
    "CROSSSLOT",
    "CLUSTERDOWN",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "DENIED",
    "EXECABORT",
    "WRONGTYPE",
    "BUSYKEY",
    "INVALIDOBJ",
    "OTHER",
];

thread_local! {
    /// This thread's refusals by code (`CODES`' order): a worker is one thread, so its
    /// count needs no lock; it publishes them with its other figures.
    static REFUSALS: std::cell::Cell<[u64; CODES.len()]> =
        const { std::cell::Cell::new([0; CODES.len()]) };
}

fn count_refusal(text: &str) {
    let code = text.split(' ').next().unwrap_or_default();
    let i = CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(CODES.len() - 1);
    REFUSALS.with(|r| {
        let mut a = r.get();
        a[i] += 1;
        r.set(a);
    });
    REFUSED.with(|n| n.set(n.get() + 1));
}

thread_local! {
    /// This thread's refusals in all: a request whose dispatch moved it was refused.
    static REFUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many refusals this thread rendered so far.
pub fn refused_so_far() -> u64 {
    REFUSED.with(|n| n.get())
}

/// This thread's refusals so far, by code.
pub fn refusals() -> Vec<(&'static str, u64)> {
    let a = REFUSALS.with(|r| r.get());
    CODES
        .iter()
        .copied()
        .zip(a)
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.fixed_text() {
            return f.write_str(text);
        }
        match self {
            ProxyError::Protocol(e) => write!(f, "ERR Protocol error: {e}"),
            ProxyError::UnknownCommand { name, args } => {
                write!(
                    f,
                    "ERR unknown command '{name}', with args beginning with: "
                )?;
                for a in args {
                    write!(f, "'{a}' ")?;
                }
                Ok(())
            }
            ProxyError::WrongArity(name) => {
                write!(f, "ERR wrong number of arguments for '{name}' command")
            }
            ProxyError::SlotUnserved(s) => write!(
                f,
                "CLUSTERDOWN Hash slot {s} is not served by any node the proxy knows"
            ),
            ProxyError::NodeUnavailable { node, why } => {
                write!(f, "ERR cluster node {node} unavailable: {why}")
            }
            ProxyError::InDoubt { node, why } => write!(
                f,
                "ERR cluster node {node} unavailable ({why}) after the command was sent to it: \
                 it may or may not have been applied"
            ),
            ProxyError::WaitedTooLong { what, waited_ms } => write!(
                f,
                "CLUSTERDOWN not served within failover_wait ({}.{} s): {what}",
                waited_ms / 1000,
                waited_ms % 1000 / 100
            ),
            ProxyError::TooManyRedirects { max, last } => write!(
                f,
                "ERR too many cluster redirections (max_redirects {max}), last: {last}"
            ),
            ProxyError::TooManyBlocking(max) => write!(
                f,
                "ERR too many blocking commands in progress through the proxy ({max})"
            ),
            ProxyError::Unsupported { name, what, why } => write!(
                f,
                "ERR {name} is not supported through this proxy yet ({what}: {why})"
            ),
            ProxyError::PubSubNeedsConnection(name) => write!(
                f,
                "ERR {name} is not supported through this proxy yet (pub/sub need a dedicated connection)"
            ),
            ProxyError::AdminRefused(name) => write!(
                f,
                "ERR {name} is not allowed through the proxy (allow_admin_commands)"
            ),
            ProxyError::UnrecognizedOption(o) => write!(f, "ERR Unrecognized option '{o}'"),
            ProxyError::UnknownClientType(t) => write!(f, "ERR Unknown client type '{t}'"),
            ProxyError::HelloSyntax(o) => write!(f, "ERR Syntax error in HELLO option '{o}'"),
            ProxyError::SubscribedContext(cmd) => write!(
                f,
                "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ),
            ProxyError::NotInTransaction(name) => write!(
                f,
                "ERR {name} is not allowed in a transaction through the proxy"
            ),
            ProxyError::CannotRunInTransaction(name) => write!(
                f,
                "ERR {name} cannot run inside a transaction through the proxy"
            ),
            ProxyError::UnexpectedReply(what) => write!(f, "ERR unexpected {what}"),
            ProxyError::UnknownCategory(c) => write!(f, "ERR Unknown category '{c}'"),
            ProxyError::NoSuchUser(u) => write!(f, "ERR No such user '{u}'"),
            ProxyError::NoPermCommand(name) => write!(
                f,
                "NOPERM this user has no permissions to run the '{name}' command"
            ),
            ProxyError::PartlyApplied { node, err, applied } => write!(
                f,
                "ERR failed on node {node}: {err} (already applied on: {applied})"
            ),
            ProxyError::Redis(text) => f.write_str(text),
            ProxyError::ClientSubcommandArity(sub) => write!(
                f,
                "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP."
            ),
            _ => Ok(()),
        }
    }
}

impl ProxyError {
    /// The text of a refusal that carries nothing but its kind.
    fn fixed_text(&self) -> Option<&'static str> {
        Some(match self {
            ProxyError::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot",
            ProxyError::CrossSlotBlocking => "CROSSSLOT Keys in request don't hash to the same slot (a blocking command waits on one node: give its keys one hash tag)",
            ProxyError::CrossSlotWrite => "CROSSSLOT Keys in request don't hash to the same slot (give the keys one hash tag, or set cross_slot_writes: true to have the proxy do this write in stages)",
            ProxyError::NoMaster => "CLUSTERDOWN no master is known to the proxy",
            ProxyError::NodeTableFull => "ERR node table full",
            ProxyError::MoveRefused => "ERR MOVE is not allowed through the proxy: a cluster has only database 0",
            ProxyError::ShutdownRefused => "ERR SHUTDOWN is not allowed through the proxy: it would stop one node of the \
                 cluster; use redis-cli against that node, or PROXY SHUTDOWN (allowed with \
                 allow_admin_commands: true) to stop the proxy",
            ProxyError::ProxyShutdownRefused => "ERR PROXY SHUTDOWN is not allowed through the proxy (allow_admin_commands)",
            ProxyError::UnknownProxySubcommand => "ERR unknown PROXY subcommand; try PROXY INFO, PROXY CONFIG GET <pattern>, PROXY RELOAD, PROXY SHUTDOWN",
            ProxyError::SyntaxError => "ERR syntax error",
            ProxyError::DbIndexOutOfRange => "ERR DB index is out of range",
            ProxyError::NotAnInteger => "ERR value is not an integer or out of range",
            ProxyError::InvalidCursor => "ERR invalid cursor",
            ProxyError::SlowlogCount => "ERR count should be greater than or equal to -1",
            ProxyError::InvalidSlot => "ERR Invalid or out of range slot",
            ProxyError::InvalidClientName => "ERR Client names cannot contain spaces, newlines or special characters.",
            ProxyError::InvalidClientId => "ERR client-id should be greater than 0",
            ProxyError::UnblockReason => "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ProxyError::NoSuchClient => "ERR No such client",
            ProxyError::MaxClients => "ERR max number of clients reached",
            ProxyError::NoProto => "NOPROTO unsupported protocol version",
            ProxyError::HelloProtoNotInteger => "ERR Protocol version is not an integer or out of range",
            ProxyError::NoAuth => "NOAUTH Authentication required.",
            ProxyError::GenpassBits => "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
            ProxyError::NoAuthHello => "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            ProxyError::WrongPass => "WRONGPASS invalid username-password pair or user is disabled.",
            ProxyError::AuthWithoutPassword => "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ProxyError::NoPermKey => "NOPERM this user has no permissions to access one of the keys used as arguments",
            ProxyError::NoPermChannel => "NOPERM this user has no permissions to access one of the channels used as arguments",
            ProxyError::ProtectedMode => "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to the proxy you may adopt one of the following solutions: 1) Set a password for the default user with auth.password (or auth.users) in the proxy's config.yaml. 2) Disable protected mode with protected_mode: false, if you are sure you want clients from other hosts to connect even without authentication. 3) Bind the proxy to the loopback interface only (bind: 127.0.0.1).",
            ProxyError::HelloWhileSubscribed => "ERR HELLO with another protocol version while subscribed is not supported through this proxy yet; unsubscribe first",
            ProxyError::SubscriptionLost => "ERR the subscription connection was lost; subscribe again",
            ProxyError::NestedMulti => "ERR MULTI calls can not be nested",
            ProxyError::ExecWithoutMulti => "ERR EXEC without MULTI",
            ProxyError::DiscardWithoutMulti => "ERR DISCARD without MULTI",
            ProxyError::WatchInsideMulti => "ERR WATCH inside MULTI is not allowed",
            ProxyError::ExecAbort => "EXECABORT Transaction discarded because of previous errors.",
            ProxyError::TransactionConnectionLost => "ERR the transaction's connection to its node was lost; start it again",
            ProxyError::TransactionSlotUnserved => "CLUSTERDOWN the transaction's slot is not served",
            ProxyError::TransactionCrossSlot => "CROSSSLOT Keys in request don't hash to the same slot as the transaction's",
            ProxyError::InternalRouting => "ERR internal routing error",
            ProxyError::InternalMerge => "ERR internal merge error",
            ProxyError::NoReply => "ERR no reply",
            ProxyError::ScanCursorTooLarge => "ERR SCAN cursor of a node too large for the proxy's cursor",
            _ => return None,
        })
    }
}

impl ProxyError {
    /// The client-visible error frame.
    pub fn to_frame(&self) -> Vec<u8> {
        let text = self.to_string();
        count_refusal(&text);
        let mut out = Vec::with_capacity(64);
        crate::resp::encode::error(&mut out, &text);
        out
    }

    /// Redis's unknown-command error: the name and the first arguments, each cut at 128
    /// bytes, as `processCommand` words it.
    pub fn unknown_command_args<A: crate::command::Args + ?Sized>(args: &A) -> ProxyError {
        let show = |a: &[u8]| String::from_utf8_lossy(&a[..a.len().min(128)]).into_owned();
        let name = if args.argc() > 0 {
            show(args.arg(0))
        } else {
            String::new()
        };
        let mut rest = Vec::new();
        let mut budget = 128usize;
        for i in 1..args.argc() {
            if budget == 0 {
                break;
            }
            let s = show(args.arg(i));
            budget = budget.saturating_sub(s.len());
            rest.push(s);
        }
        ProxyError::UnknownCommand { name, args: rest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis() {
        assert_eq!(
            ProxyError::unknown_command_args([b"foo".as_slice(), b"a", b"b"].as_slice()).to_frame(),
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n".to_vec()
        );
        assert_eq!(
            ProxyError::CrossSlot.to_frame(),
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n".to_vec()
        );
        assert_eq!(
            ProxyError::Protocol(ParseError::InvalidBulkLength).to_frame(),
            b"-ERR Protocol error: invalid bulk length\r\n".to_vec()
        );
    }

    /// Every refusal the proxy writes, rendered. `true`: the text is Redis 7's own for the
    /// same condition (from its source: server.c, networking.c, multi.c, cluster.c,
    /// db.c, t_string.c, util.c), so a client library that matches on it keeps working;
    /// `false`: the proxy's own, worded in Redis's style (`ERR ...`, a Redis error code).
    #[test]
    fn every_refusal_and_whose_wording_it_is() {
        let s = |x: &str| x.to_string();
        let all: Vec<(ProxyError, bool, &str)> = vec![
            (ProxyError::Protocol(ParseError::InvalidBulkLength), true, "ERR Protocol error: invalid bulk length"),
            (ProxyError::UnknownCommand { name: s("FOO"), args: vec![s("a")] }, true, "ERR unknown command 'FOO', with args beginning with: 'a' "),
            (ProxyError::WrongArity(s("get")), true, "ERR wrong number of arguments for 'get' command"),
            (ProxyError::CrossSlot, true, "CROSSSLOT Keys in request don't hash to the same slot"),
            (ProxyError::CrossSlotBlocking, false, "CROSSSLOT Keys in request don't hash to the same slot (a blocking command waits on one node: give its keys one hash tag)"),
            (ProxyError::CrossSlotWrite, false, "CROSSSLOT Keys in request don't hash to the same slot (give the keys one hash tag, or set cross_slot_writes: true to have the proxy do this write in stages)"),
            (ProxyError::SyntaxError, true, "ERR syntax error"),
            (ProxyError::DbIndexOutOfRange, true, "ERR DB index is out of range"),
            (ProxyError::NotAnInteger, true, "ERR value is not an integer or out of range"),
            (ProxyError::InvalidCursor, true, "ERR invalid cursor"),
            (ProxyError::SlowlogCount, true, "ERR count should be greater than or equal to -1"),
            (ProxyError::InvalidSlot, true, "ERR Invalid or out of range slot"),
            (ProxyError::InvalidClientName, true, "ERR Client names cannot contain spaces, newlines or special characters."),
            (ProxyError::UnrecognizedOption(s("x")), true, "ERR Unrecognized option 'x'"),
            (ProxyError::UnknownClientType(s("x")), true, "ERR Unknown client type 'x'"),
            (ProxyError::InvalidClientId, true, "ERR client-id should be greater than 0"),
            (ProxyError::UnblockReason, true, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
            (ProxyError::ClientSubcommandArity(s("UNBLOCK")), true, "ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP."),
            (ProxyError::NoSuchClient, true, "ERR No such client"),
            (ProxyError::MaxClients, true, "ERR max number of clients reached"),
            (ProxyError::NoProto, true, "NOPROTO unsupported protocol version"),
            (ProxyError::HelloProtoNotInteger, true, "ERR Protocol version is not an integer or out of range"),
            (ProxyError::HelloSyntax(s("x")), true, "ERR Syntax error in HELLO option 'x'"),
            (ProxyError::SubscribedContext(s("get")), true, "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"),
            (ProxyError::NestedMulti, true, "ERR MULTI calls can not be nested"),
            (ProxyError::ExecWithoutMulti, true, "ERR EXEC without MULTI"),
            (ProxyError::DiscardWithoutMulti, true, "ERR DISCARD without MULTI"),
            (ProxyError::WatchInsideMulti, true, "ERR WATCH inside MULTI is not allowed"),
            (ProxyError::ExecAbort, true, "EXECABORT Transaction discarded because of previous errors."),
            (ProxyError::SlotUnserved(7), false, "CLUSTERDOWN Hash slot 7 is not served by any node the proxy knows"),
            (ProxyError::NoMaster, false, "CLUSTERDOWN no master is known to the proxy"),
            (ProxyError::NodeUnavailable { node: s("a:1"), why: s("refused") }, false, "ERR cluster node a:1 unavailable: refused"),
            (ProxyError::InDoubt { node: s("a:1"), why: s("reset") }, false, "ERR cluster node a:1 unavailable (reset) after the command was sent to it: it may or may not have been applied"),
            (ProxyError::WaitedTooLong { what: s("ERR cluster node a:1 unavailable: refused"), waited_ms: 5000 }, false, "CLUSTERDOWN not served within failover_wait (5.0 s): ERR cluster node a:1 unavailable: refused"),
            (ProxyError::TooManyRedirects { max: 5, last: s("MOVED 1 a:1") }, false, "ERR too many cluster redirections (max_redirects 5), last: MOVED 1 a:1"),
            (ProxyError::NodeTableFull, false, "ERR node table full"),
            (ProxyError::TooManyBlocking(1024), false, "ERR too many blocking commands in progress through the proxy (1024)"),
            (ProxyError::Unsupported { name: s("WAIT"), what: "WAIT", why: s("x") }, false, "ERR WAIT is not supported through this proxy yet (WAIT: x)"),
            (ProxyError::PubSubNeedsConnection(s("SSUBSCRIBE")), false, "ERR SSUBSCRIBE is not supported through this proxy yet (pub/sub need a dedicated connection)"),
            (ProxyError::AdminRefused(s("CLUSTER SETSLOT")), false, "ERR CLUSTER SETSLOT is not allowed through the proxy (allow_admin_commands)"),
            (ProxyError::MoveRefused, false, "ERR MOVE is not allowed through the proxy: a cluster has only database 0"),
            (ProxyError::ShutdownRefused, false, "ERR SHUTDOWN is not allowed through the proxy: it would stop one node of the cluster; use redis-cli against that node, or PROXY SHUTDOWN (allowed with allow_admin_commands: true) to stop the proxy"),
            (ProxyError::ProxyShutdownRefused, false, "ERR PROXY SHUTDOWN is not allowed through the proxy (allow_admin_commands)"),
            (ProxyError::UnknownProxySubcommand, false, "ERR unknown PROXY subcommand; try PROXY INFO, PROXY CONFIG GET <pattern>, PROXY RELOAD, PROXY SHUTDOWN"),
            (ProxyError::NoAuth, true, "NOAUTH Authentication required."),
            (ProxyError::UnknownCategory(s("x")), true, "ERR Unknown category 'x'"),
            (ProxyError::NoSuchUser(s("x")), true, "ERR No such user 'x'"),
            (ProxyError::GenpassBits, true, "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
            (ProxyError::NoAuthHello, true, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"),
            (ProxyError::WrongPass, true, "WRONGPASS invalid username-password pair or user is disabled."),
            (ProxyError::AuthWithoutPassword, true, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
            (ProxyError::NoPermCommand(s("flushall")), true, "NOPERM this user has no permissions to run the 'flushall' command"),
            (ProxyError::NoPermKey, true, "NOPERM this user has no permissions to access one of the keys used as arguments"),
            (ProxyError::NoPermChannel, true, "NOPERM this user has no permissions to access one of the channels used as arguments"),
            (ProxyError::ProtectedMode, false, "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to the proxy you may adopt one of the following solutions: 1) Set a password for the default user with auth.password (or auth.users) in the proxy's config.yaml. 2) Disable protected mode with protected_mode: false, if you are sure you want clients from other hosts to connect even without authentication. 3) Bind the proxy to the loopback interface only (bind: 127.0.0.1)."),
            (ProxyError::HelloWhileSubscribed, false, "ERR HELLO with another protocol version while subscribed is not supported through this proxy yet; unsubscribe first"),
            (ProxyError::SubscriptionLost, false, "ERR the subscription connection was lost; subscribe again"),
            (ProxyError::NotInTransaction(s("SUBSCRIBE")), false, "ERR SUBSCRIBE is not allowed in a transaction through the proxy"),
            (ProxyError::CannotRunInTransaction(s("KEYS")), false, "ERR KEYS cannot run inside a transaction through the proxy"),
            (ProxyError::TransactionConnectionLost, false, "ERR the transaction's connection to its node was lost; start it again"),
            (ProxyError::TransactionSlotUnserved, false, "CLUSTERDOWN the transaction's slot is not served"),
            (ProxyError::TransactionCrossSlot, false, "CROSSSLOT Keys in request don't hash to the same slot as the transaction's"),
            (ProxyError::InternalRouting, false, "ERR internal routing error"),
            (ProxyError::InternalMerge, false, "ERR internal merge error"),
            (ProxyError::NoReply, false, "ERR no reply"),
            (ProxyError::UnexpectedReply("INFO reply from a node"), false, "ERR unexpected INFO reply from a node"),
            (ProxyError::ScanCursorTooLarge, false, "ERR SCAN cursor of a node too large for the proxy's cursor"),
            (ProxyError::PartlyApplied { node: s("b:2"), err: s("ERR no"), applied: s("a:1") }, false, "ERR failed on node b:2: ERR no (already applied on: a:1)"),
            (ProxyError::Redis(s("ERR syntax error")), false, "ERR syntax error"),
        ];
        for (e, _redis, want) in &all {
            assert_eq!(e.to_string(), *want);
            // One line, with a Redis error code first: what a client library can parse.
            let frame = e.to_frame();
            assert!(
                frame.starts_with(b"-") && frame.ends_with(b"\r\n"),
                "{want}"
            );
            assert_eq!(frame.iter().filter(|&&b| b == b'\n').count(), 1, "{want}");
            let code = want.split(' ').next().unwrap_or("");
            assert!(
                code.chars().all(|c| c.is_ascii_uppercase()),
                "{want}: no error code"
            );
        }
        // Every variant is listed: a new one without a row here fails to compile below.
        for (e, _, _) in &all {
            match e {
                ProxyError::Protocol(_)
                | ProxyError::UnknownCommand { .. }
                | ProxyError::WrongArity(_)
                | ProxyError::CrossSlot
                | ProxyError::CrossSlotBlocking
                | ProxyError::CrossSlotWrite
                | ProxyError::SlotUnserved(_)
                | ProxyError::NoMaster
                | ProxyError::NodeUnavailable { .. }
                | ProxyError::TooManyRedirects { .. }
                | ProxyError::InDoubt { .. }
                | ProxyError::WaitedTooLong { .. }
                | ProxyError::NodeTableFull
                | ProxyError::TooManyBlocking(_)
                | ProxyError::Unsupported { .. }
                | ProxyError::PubSubNeedsConnection(_)
                | ProxyError::AdminRefused(_)
                | ProxyError::MoveRefused
                | ProxyError::ShutdownRefused
                | ProxyError::ProxyShutdownRefused
                | ProxyError::UnknownProxySubcommand
                | ProxyError::SyntaxError
                | ProxyError::DbIndexOutOfRange
                | ProxyError::NotAnInteger
                | ProxyError::InvalidCursor
                | ProxyError::SlowlogCount
                | ProxyError::InvalidSlot
                | ProxyError::InvalidClientName
                | ProxyError::UnrecognizedOption(_)
                | ProxyError::UnknownClientType(_)
                | ProxyError::InvalidClientId
                | ProxyError::UnblockReason
                | ProxyError::ClientSubcommandArity(_)
                | ProxyError::NoSuchClient
                | ProxyError::MaxClients
                | ProxyError::NoProto
                | ProxyError::HelloProtoNotInteger
                | ProxyError::NoAuth
                | ProxyError::NoAuthHello
                | ProxyError::WrongPass
                | ProxyError::AuthWithoutPassword
                | ProxyError::NoPermCommand(_)
                | ProxyError::NoPermKey
                | ProxyError::NoPermChannel
                | ProxyError::ProtectedMode
                | ProxyError::UnknownCategory(_)
                | ProxyError::NoSuchUser(_)
                | ProxyError::GenpassBits
                | ProxyError::HelloSyntax(_)
                | ProxyError::HelloWhileSubscribed
                | ProxyError::SubscribedContext(_)
                | ProxyError::SubscriptionLost
                | ProxyError::NotInTransaction(_)
                | ProxyError::CannotRunInTransaction(_)
                | ProxyError::NestedMulti
                | ProxyError::ExecWithoutMulti
                | ProxyError::DiscardWithoutMulti
                | ProxyError::WatchInsideMulti
                | ProxyError::ExecAbort
                | ProxyError::TransactionConnectionLost
                | ProxyError::TransactionSlotUnserved
                | ProxyError::TransactionCrossSlot
                | ProxyError::InternalRouting
                | ProxyError::InternalMerge
                | ProxyError::NoReply
                | ProxyError::UnexpectedReply(_)
                | ProxyError::ScanCursorTooLarge
                | ProxyError::PartlyApplied { .. }
                | ProxyError::Redis(_) => {}
            }
        }
        // One row per variant (the match above lists the variants; this, that none repeats).
        let kinds: std::collections::HashSet<_> = all
            .iter()
            .map(|(e, _, _)| std::mem::discriminant(e))
            .collect();
        assert_eq!(kinds.len(), all.len());
        assert_eq!(all.len(), 69);
    }
}
