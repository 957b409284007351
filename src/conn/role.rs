//! What a node connection is for, as one enum: the one place that says which connections
//! are shared, lent for a blocking command, held by a client, or carry a subscriber's
//! stream. Pure: no sockets, so the transitions have a table test.
//!
//! ```text
//!   Shared                          (a node's pipelined connections, and the refresh's)
//!   Dedicated --a transaction pins it--> Pinned { client }
//!   Pinned --EXEC / DISCARD / UNWATCH / RESET--> Spent
//!   Dedicated --last reply in--> back to the node's idle list (closed past the idle bound)
//!   Spent --last reply in--> closed (the transaction left its state unknown)
//!   Stream { client } --subscribed mode over / client gone / node gone--> closed
//!   FanIn                 (a worker's fan-in connection to a master, `fanin/`: keyspace
//!                          notifications, shard channels, tracking's invalidations;
//!                          closed when nothing is left to carry or the node is no
//!                          longer a master)
//! ```

/// A reference to a client that survives the client: `gen` tells a newcomer in the same slab
/// slot from the client that sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientRef {
    pub idx: usize,
    pub gen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendRole {
    /// One of a node's shared, pipelined connections: a reply timeout applies.
    Shared,
    /// A connection of its own for one blocking command at a time, outside the shared pool;
    /// no reply timeout (BLPOP may wait as long as its client asked).
    Dedicated,
    /// Held by one client's transaction (WATCH/MULTI until EXEC, DISCARD or UNWATCH): never
    /// lent meanwhile, and its replies are delivered as the node gave them.
    Pinned { client: ClientRef },
    /// Was pinned: what the transaction did to the connection's state (HELLO, CLIENT
    /// SETNAME, ...) is unknown, so it is closed, not lent, once its last reply is in.
    Spent,
    /// A subscriber's: every frame no request of the proxy's waits for goes to `client`.
    Stream { client: ClientRef },
    /// A worker's fan-in connection to one master, for all its clients (`fanin/`):
    /// keyspace notifications, shard channels, CLIENT TRACKING's invalidations.
    FanIn,
}

/// What becomes of a connection of its own once nothing is in flight on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Still someone's (a shared connection, a transaction, a subscriber).
    Keep,
    /// Back to the node's idle list, to be lent again.
    Lend,
    Close,
}

impl BackendRole {
    /// Its name in /metrics' node connection counts.
    pub fn label(self) -> &'static str {
        match self {
            BackendRole::Shared => "shared",
            BackendRole::Dedicated => "dedicated",
            BackendRole::Pinned { .. } => "pinned",
            BackendRole::Spent => "spent",
            BackendRole::Stream { .. } => "subscription",
            BackendRole::FanIn => "notifications",
        }
    }

    /// Whether `backend_timeout` applies to its replies.
    pub fn timed(self) -> bool {
        self == BackendRole::Shared
    }

    /// Outside the shared pool (counted against the bound on dedicated connections).
    pub fn own(self) -> bool {
        self != BackendRole::Shared
    }

    /// Held by one client: never lent, and its replies go to the client as they are (a
    /// redirection inside MULTI aborts the transaction, as on Redis).
    pub fn held(self) -> bool {
        matches!(
            self,
            BackendRole::Pinned { .. } | BackendRole::Stream { .. } | BackendRole::FanIn
        )
    }

    /// Carries a blocking command: its client counts as blocked while it waits, and a
    /// redirection of the command travels on a connection of its own again.
    pub fn blocking(self) -> bool {
        matches!(self, BackendRole::Dedicated | BackendRole::Spent)
    }

    /// The subscriber its frames stream to.
    pub fn stream_client(self) -> Option<ClientRef> {
        match self {
            BackendRole::Stream { client } => Some(client),
            _ => None,
        }
    }

    /// Frames no request waits for are expected on it (messages), not a broken protocol.
    pub fn streams(self) -> bool {
        matches!(self, BackendRole::Stream { .. } | BackendRole::FanIn)
    }

    /// A transaction takes the connection for `client`.
    pub fn pin(self, client: ClientRef) -> BackendRole {
        match self {
            BackendRole::Dedicated => BackendRole::Pinned { client },
            other => other,
        }
    }

    /// The transaction ended (EXEC, DISCARD, UNWATCH, RESET).
    pub fn unpin(self) -> BackendRole {
        match self {
            BackendRole::Pinned { .. } => BackendRole::Spent,
            other => other,
        }
    }

    /// Nothing is in flight on it any more.
    pub fn on_idle(self) -> Idle {
        match self {
            BackendRole::Dedicated => Idle::Lend,
            BackendRole::Spent => Idle::Close,
            _ => Idle::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let c = ClientRef { idx: 1, gen: 2 };
        use BackendRole::*;
        // role, timed, own, held, blocking, on_idle
        let table = [
            (Shared, true, false, false, false, Idle::Keep),
            (Dedicated, false, true, false, true, Idle::Lend),
            (Pinned { client: c }, false, true, true, false, Idle::Keep),
            (Spent, false, true, false, true, Idle::Close),
            (Stream { client: c }, false, true, true, false, Idle::Keep),
            (FanIn, false, true, true, false, Idle::Keep),
        ];
        for (role, timed, own, held, blocking, idle) in table {
            assert_eq!(role.timed(), timed, "{role:?}");
            assert_eq!(role.own(), own, "{role:?}");
            assert_eq!(role.held(), held, "{role:?}");
            assert_eq!(role.blocking(), blocking, "{role:?}");
            assert_eq!(role.on_idle(), idle, "{role:?}");
        }
        assert_eq!(Dedicated.pin(c), Pinned { client: c });
        assert_eq!(Pinned { client: c }.unpin(), Spent);
        // Only a lent connection is pinned, only a pinned one is spent.
        assert_eq!(Shared.pin(c), Shared);
        assert_eq!(Stream { client: c }.unpin(), Stream { client: c });
        assert_eq!(Stream { client: c }.stream_client(), Some(c));
        assert_eq!(Dedicated.stream_client(), None);
        assert_eq!(FanIn.stream_client(), None);
        assert!(FanIn.streams() && Stream { client: c }.streams() && !Shared.streams());
    }
}
