//! A request on its way to a node, and its `Attempt` state machine: what the proxy does when
//! a node answers with a redirection. Pure functions, testable without sockets.
//!
//! ```text
//!   Sent --MOVED--> MovedRetry --MOVED/ASK/...--> ...
//!     |  --ASK----> Asking (ASKING + request to the named node)
//!     |  --TRYAGAIN/CLUSTERDOWN--> Backoff --timer--> Sent (to the slot's owner then)
//!     |  --NOSCRIPT (a script the proxy saw loaded)--> SCRIPT LOAD + the request again
//!     +--any other reply--> delivered
//!   each redirection counts; past max_redirects the client gets the error naming the last
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::ProxyError;
use crate::resp::encode::Proto;
use crate::resp::reply::{ErrorKind, Redirect};
use crate::slot::Slot;
use crate::topology::NodeId;

use crate::conn::role::BackendRole;
pub use crate::conn::role::ClientRef;

/// Who waits for a reply.
#[derive(Debug)]
pub enum Owner {
    /// A client's request (or `part` of a split one), answered in its reply queue at
    /// position `seq`.
    Client {
        client: ClientRef,
        seq: u64,
        part: u32,
    },
    /// The `+OK` to a command the proxy sent for itself: ASKING before a redirected request,
    /// READONLY on a new connection when replicas serve reads.
    Internal,
    /// The reply to the HELLO 3 that switches a backend connection to RESP3.
    Hello,
    /// The reply to the proxy's AUTH (or HELLO 3 AUTH): a refusal breaks the connection
    /// (`Backend::on_readable`), an OK is dropped.
    Auth,
    /// A CLUSTER NODES the proxy sent to refresh its view.
    Refresh,
    /// The reply to the CLIENT ID the proxy sends ahead of the first blocking command on a
    /// dedicated connection: the node's id for it, which CLIENT UNBLOCK names
    /// (`Backend::on_readable` keeps it, nothing is delivered).
    NodeClientId,
    /// A frame on a subscriber's own connection (a subscription reply or a message): passed
    /// to that client as it comes.
    Stream(ClientRef),
    /// A frame on a worker's fan-in connection (`fanin/`).
    FanIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Sent to the slot's owner in the proxy's map.
    Sent { redirects: u32 },
    /// Re-sent to the owner a MOVED named.
    MovedRetry { redirects: u32 },
    /// Sent with ASKING to the node an ASK named; the slot map is left alone.
    Asking { redirects: u32 },
    /// Parked after TRYAGAIN or CLUSTERDOWN until `until`, then re-sent by slot.
    Backoff { redirects: u32, until: Instant },
}

impl Attempt {
    pub fn redirects(&self) -> u32 {
        match *self {
            Attempt::Sent { redirects }
            | Attempt::MovedRetry { redirects }
            | Attempt::Asking { redirects }
            | Attempt::Backoff { redirects, .. } => redirects,
        }
    }
}

#[derive(Debug)]
pub struct InFlight {
    pub owner: Owner,
    /// The request's original bytes, kept (by reference count) to re-send on redirection.
    pub req: Bytes,
    /// The slot that routed it, when it has keys.
    pub slot: Option<Slot>,
    pub attempt: Attempt,
    /// When it was written to the node's buffer, for the backend timeout.
    pub sent_at: Instant,
    /// The role of the connection it travels on (for a request not yet sent, the kind it
    /// asks for: `Shared`, or `Dedicated` for a blocking command, whose redirections travel
    /// on a connection of their own too).
    pub role: BackendRole,
    /// When it first went into the hold queue (a node down, CLUSTERDOWN, ...): it waits at
    /// most `failover_wait` from then, over every later hold.
    pub held_since: Option<Instant>,
    /// The command's family, for the latency histograms (`latency::family`).
    pub family: u8,
    /// A write: the node that answers it joins its client's `wrote_to` (for WAIT).
    pub write: bool,
}

/// What to do with a request after its node answered with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Not a redirection (or redirections are the client's business): deliver the reply.
    Deliver,
    /// Record `addr` as the slot's owner and re-send there.
    Moved {
        slot: u16,
        addr: &'a str,
        attempt: Attempt,
    },
    /// Send ASKING and the request to `addr`.
    Ask { addr: &'a str, attempt: Attempt },
    /// Park the request, then re-send it by slot.
    Retry { attempt: Attempt },
    /// The node lacks the script of an EVALSHA: load it there (if the proxy knows it) and
    /// re-send.
    LoadScript { attempt: Attempt },
    /// The redirection budget is spent: fail the request with this error.
    GiveUp { max: u32 },
}

/// Backoff before re-sending after TRYAGAIN or CLUSTERDOWN: grows with each retry so a
/// migration or an election has time to finish, capped so a client is not held long.
pub fn backoff(redirects: u32) -> Duration {
    Duration::from_millis((25u64 << redirects.min(4)).min(500))
}

/// The transition on an error reply.
pub fn on_error<'a>(
    attempt: Attempt,
    kind: ErrorKind<'a>,
    auto_redirect: bool,
    max_redirects: u32,
    now: Instant,
) -> Next<'a> {
    let redirects = attempt.redirects() + 1;
    // A script lost by a node is the proxy's to mend whether or not it follows redirections;
    // past the budget the client sees the NOSCRIPT itself.
    if matches!(kind, ErrorKind::NoScript) {
        if redirects > max_redirects {
            return Next::Deliver;
        }
        return Next::LoadScript {
            attempt: Attempt::Sent { redirects },
        };
    }
    if !auto_redirect || matches!(kind, ErrorKind::Other) {
        return Next::Deliver;
    }
    if redirects > max_redirects {
        // A TRYAGAIN or CLUSTERDOWN that outlasts the retries reaches the client as the node
        // said it, so clients that retry on those codes recognise them.
        if matches!(kind, ErrorKind::TryAgain | ErrorKind::ClusterDown) {
            return Next::Deliver;
        }
        return Next::GiveUp { max: max_redirects };
    }
    match kind {
        ErrorKind::Redirect(Redirect::Moved { slot, addr }) => Next::Moved {
            slot,
            addr,
            attempt: Attempt::MovedRetry { redirects },
        },
        ErrorKind::Redirect(Redirect::Ask { addr, .. }) => Next::Ask {
            addr,
            attempt: Attempt::Asking { redirects },
        },
        ErrorKind::TryAgain | ErrorKind::ClusterDown => Next::Retry {
            attempt: Attempt::Backoff {
                redirects,
                until: now + backoff(redirects),
            },
        },
        ErrorKind::Other | ErrorKind::NoScript => Next::Deliver,
    }
}

// ---------------------------------------------------------------------------------------------
// The hold queue's entries (the queue itself is `hold.rs`'s)
// ---------------------------------------------------------------------------------------------

/// How often held requests look for a serving master, and the topology is asked again
/// while any wait.
pub(crate) const HOLD_POLL: Duration = Duration::from_millis(50);

/// How often the topology is asked while requests are held: a promoted replica is known
/// within about this long of its promotion (CLUSTER NODES is cheap; it lasts only while
/// something waits).
pub(crate) const HOLD_REFRESH: Duration = Duration::from_millis(20);

/// Why a request waits: what its client is told if the wait runs out.
#[derive(Debug)]
pub(crate) enum Reason {
    /// The node could not be used: the proxy's own error for that.
    Unusable(ProxyError),
    /// The node answered this error line (CLUSTERDOWN, TRYAGAIN, ...).
    Answered(Bytes),
    /// Its node is fine; the client's earlier requests wait for theirs (its order).
    Behind,
}

impl Reason {
    pub(crate) fn text(&self, node: Option<&str>) -> String {
        match self {
            Reason::Unusable(e) => e.to_string(),
            Reason::Answered(line) => format!(
                "{} (from {})",
                String::from_utf8_lossy(line.get(1..).unwrap_or_default()).trim_end(),
                node.unwrap_or("a node")
            ),
            Reason::Behind => {
                "held behind the client's earlier requests, which waited for their node".into()
            }
        }
    }

    /// The error its client gets when holding is off.
    pub(crate) fn into_frame(self) -> Bytes {
        match self {
            Reason::Unusable(e) => Bytes::from(e.to_frame()),
            Reason::Answered(line) => line,
            Reason::Behind => Bytes::from(ProxyError::NoReply.to_frame()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Held {
    pub req: InFlight,
    pub proto: Proto,
    /// The node it was meant for last (named in the error when the wait runs out).
    pub node: Option<NodeId>,
    /// The slot whose owner it goes to: its key's, or for a keyless part sent to one master
    /// (a fan-out), a slot that master served, so the part follows the slots to the replica
    /// that takes them over.
    pub route: Option<Slot>,
    /// Not retried before this (a node that answered TRYAGAIN is not asked again at once).
    pub not_before: Instant,
    pub reason: Reason,
}

impl Held {
    pub(crate) fn client(&self) -> Option<ClientRef> {
        match self.req.owner {
            Owner::Client { client, .. } => Some(client),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::reply::classify_error;

    #[test]
    fn transitions() {
        let now = Instant::now();
        let sent = Attempt::Sent { redirects: 0 };
        let moved = classify_error(b"-MOVED 7 127.0.0.1:7001\r\n");
        assert_eq!(
            on_error(sent, moved.clone(), true, 5, now),
            Next::Moved {
                slot: 7,
                addr: "127.0.0.1:7001",
                attempt: Attempt::MovedRetry { redirects: 1 }
            }
        );
        assert_eq!(on_error(sent, moved.clone(), false, 5, now), Next::Deliver);
        let ask = classify_error(b"-ASK 7 127.0.0.1:7002\r\n");
        assert_eq!(
            on_error(Attempt::MovedRetry { redirects: 1 }, ask, true, 5, now),
            Next::Ask {
                addr: "127.0.0.1:7002",
                attempt: Attempt::Asking { redirects: 2 }
            }
        );
        match on_error(sent, classify_error(b"-TRYAGAIN x\r\n"), true, 5, now) {
            Next::Retry {
                attempt:
                    Attempt::Backoff {
                        redirects: 1,
                        until,
                    },
            } => assert!(until > now),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            on_error(Attempt::Asking { redirects: 5 }, moved, true, 5, now),
            Next::GiveUp { max: 5 }
        );
        assert_eq!(
            on_error(
                Attempt::Backoff {
                    redirects: 5,
                    until: now
                },
                classify_error(b"-TRYAGAIN x\r\n"),
                true,
                5,
                now
            ),
            Next::Deliver
        );
        assert_eq!(
            on_error(sent, classify_error(b"-ERR x\r\n"), true, 5, now),
            Next::Deliver
        );
        let noscript = classify_error(b"-NOSCRIPT No matching script.\r\n");
        assert_eq!(
            on_error(sent, noscript.clone(), false, 5, now),
            Next::LoadScript {
                attempt: Attempt::Sent { redirects: 1 }
            }
        );
        assert_eq!(
            on_error(Attempt::Sent { redirects: 5 }, noscript, true, 5, now),
            Next::Deliver
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < backoff(2));
        assert!(backoff(30) <= Duration::from_millis(500));
    }
}
