//! A pipelined connection to one node, whatever its `BackendRole` (shared, lent for a
//! blocking command, a transaction's, a subscriber's): its state machine, its write buffer
//! (requests from many clients, written once per poll turn) and its in-flight queue (who
//! waits for each reply, in the order the requests were written).
//!
//! ```text
//!   Connecting { since } --writable, no socket error--> Ready
//!          |                                              |
//!          +--error / connect timeout--+   +--EOF / error / reply timeout
//!                                      v   v
//!                                     (removed: in-flight requests failed,
//!                                      node marked Down with backoff, refresh asked)
//! ```
//! A RESP3 connection queues `HELLO 3` as its first request, so it is switched before any
//! client request reaches the node; the requests queued behind it need not wait.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::auth::NodeCredentials;
use crate::config::SocketOptions;
use crate::conn::net::{self, ReadOutcome, WriteOutcome};
use crate::conn::outbuf::OutBuf;
use crate::conn::role::BackendRole;
use crate::conn::tls;
use crate::inflight::{Attempt, InFlight, Owner};
use crate::resp::encode::Proto;
use crate::resp::reply::ReplyParser;
use crate::topology::NodeId;

/// Bytes read from one node per turn before other sockets get their turn.
const READ_BUDGET: usize = 1024 * 1024;
/// An idle connection's buffers are given back when they grew past this.
const SHRINK_ABOVE: usize = 64 * 1024;

const HELLO3: &[u8] = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";
const READONLY: &[u8] = b"*1\r\n$8\r\nREADONLY\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Non-blocking connect under way since then.
    Connecting {
        since: Instant,
    },
    Ready,
}

/// What a handler tells the reactor to do with the connection.
#[derive(Debug)]
pub enum Verdict {
    Continue,
    /// The connection is broken: fail what it carries and drop it.
    Broken(String),
}

/// What a new node connection sends before any request.
#[derive(Debug, Clone, Copy)]
pub struct Prelude<'a> {
    /// READONLY, so a replica serves reads for its master's slots.
    pub readonly: bool,
    /// `backend_auth`'s AUTH (or HELLO 3 AUTH).
    pub creds: Option<&'a NodeCredentials>,
    /// `backend_tls`: the configuration and the name to verify (None: the node's address).
    pub tls: Option<(&'a std::sync::Arc<rustls::ClientConfig>, Option<&'a str>)>,
}

pub struct Backend {
    pub gen: u64,
    pub node: NodeId,
    pub addr: SocketAddr,
    pub proto: Proto,
    pub state: BackendState,
    stream: TcpStream,
    wbuf: OutBuf,
    rbuf: BytesMut,
    parser: ReplyParser,
    pub inflight: VecDeque<InFlight>,
    /// Whether a timeout check is scheduled.
    pub timer_armed: bool,
    /// Whether it is already in the reactor's list of connections to flush.
    pub dirty: bool,
    pub role: BackendRole,
    /// `backend_tls`'s session with the node.
    tls: Option<Box<rustls::Connection>>,
    /// The node refused `backend_auth`'s credentials on this connection.
    pub auth_refused: bool,
    /// A shared connection retired for a slow command (`Core::backend_for`): the clients
    /// (slab indexes, sorted) whose requests were on it keep using it, so theirs stay in
    /// order; it closes once drained.
    pub retired: Option<Vec<usize>>,
    /// When it was opened: the send time of a subscriber's stream frames (no request).
    opened: Instant,
    /// The node's id for this connection, for CLIENT UNBLOCK (asked only on connections
    /// that carry blocking commands).
    pub node_client_id: NodeClientId,
    /// CLIENT UNBLOCKs for the blocking command on this connection that came while its
    /// CLIENT ID was in flight: sent once it is answered (`Core::unblocks_ready`).
    pub unblocks: Vec<WaitingUnblock>,
}

/// What the proxy knows of the node's id for one of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeClientId {
    /// Not asked: the connection never carried a blocking command.
    Unknown,
    /// CLIENT ID sent, its reply not in yet.
    Asked,
    Known(u64),
    /// The node refused CLIENT ID (an ACL without it): such a client cannot be unblocked.
    Refused,
}

/// A CLIENT UNBLOCK waiting for the node's id of the connection it targets: the asking
/// client, its reply place and its arguments, run again (`local::unblock`) once the id is
/// answered or the connection is gone.
#[derive(Debug)]
pub struct WaitingUnblock {
    pub client: crate::inflight::ClientRef,
    pub seq: u64,
    pub argv: Vec<Vec<u8>>,
}

impl Backend {
    /// Starts a non-blocking connect and registers the socket.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        registry: &Registry,
        token: Token,
        gen: u64,
        node: NodeId,
        addr: SocketAddr,
        proto: Proto,
        prelude: Prelude<'_>,
        opts: &SocketOptions,
        now: Instant,
    ) -> io::Result<Backend> {
        let mut stream = TcpStream::connect(addr)?;
        net::apply_stream_options(&stream, opts)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let mut b = Backend {
            gen,
            node,
            addr,
            proto,
            state: BackendState::Connecting { since: now },
            stream,
            wbuf: OutBuf::new(),
            rbuf: BytesMut::new(),
            parser: ReplyParser::new(),
            inflight: VecDeque::new(),
            timer_armed: false,
            dirty: false,
            role: BackendRole::Shared,
            auth_refused: false,
            retired: None,
            tls: match prelude.tls {
                Some((config, name)) => {
                    let host = addr.ip().to_string();
                    let session = tls::connect(config, name, &host)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    Some(Box::new(session))
                }
                None => None,
            },
            opened: now,
            node_client_id: NodeClientId::Unknown,
            unblocks: Vec::new(),
        };
        // Credentials first, so nothing behind them meets NOAUTH; with RESP3 one HELLO does
        // both. Pipelined with what follows: no round trip of its own.
        match (proto, prelude.creds) {
            (Proto::Resp3, Some(c)) => b.push(c.hello3(), Owner::Auth, None, now),
            (Proto::Resp3, None) => b.push(Bytes::from_static(HELLO3), Owner::Hello, None, now),
            (Proto::Resp2, Some(c)) => b.push(c.auth(), Owner::Auth, None, now),
            (Proto::Resp2, None) => {}
        }
        // Lets a replica serve reads for its master's slots; a no-op on a master, so every
        // connection gets it and a failover needs no new connections.
        if prelude.readonly {
            b.push(Bytes::from_static(READONLY), Owner::Internal, None, now);
        }
        Ok(b)
    }

    /// Queues bytes that expect no reply the proxy waits for (a subscriber's commands, whose
    /// replies stream to the client).
    pub fn push_raw(&mut self, req: &[u8]) {
        self.wbuf.push_slice(req);
    }

    /// Queues a request; it is written at the end of the poll turn.
    pub fn push(
        &mut self,
        req: Bytes,
        owner: Owner,
        slot: Option<crate::slot::Slot>,
        now: Instant,
    ) {
        self.push_request(
            InFlight {
                owner,
                req,
                slot,
                attempt: Attempt::Sent { redirects: 0 },
                sent_at: now,
                role: self.role,
                held_since: None,
                family: crate::latency::OTHER,
                write: false,
            },
            now,
        );
    }

    /// Queues a request as it is (a redirection or a hold keeps its history).
    pub fn push_request(&mut self, mut req: InFlight, now: Instant) {
        self.wbuf.push(&req.req);
        req.sent_at = now;
        req.role = self.role;
        self.inflight.push_back(req);
    }

    /// Where the requests that surely never reached the node begin in `inflight`: all of
    /// them while connecting, a TLS handshake is under way, or the node refused the
    /// proxy's credentials (it answered NOAUTH to the rest); else those whose bytes all
    /// still sit in the write buffer. Those before may or may not have run.
    pub fn unsent_from(&self) -> usize {
        let handshaking = self.tls.as_ref().is_some_and(|t| t.is_handshaking());
        if !matches!(self.state, BackendState::Ready) || handshaking || self.auth_refused {
            return 0;
        }
        let mut left = self.wbuf.len();
        let mut from = self.inflight.len();
        for req in self.inflight.iter().rev() {
            if req.req.len() > left {
                break;
            }
            left -= req.req.len();
            from -= 1;
        }
        from
    }

    /// Completes a non-blocking connect, the mio way: writable, then `take_error`, then
    /// `peer_addr` to tell a finished connect from a spurious wakeup.
    pub fn on_writable(&mut self) -> Verdict {
        if let BackendState::Connecting { .. } = self.state {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Verdict::Broken(format!("connect: {e}")),
            }
            match self.stream.peer_addr() {
                Ok(_) => self.state = BackendState::Ready,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Verdict::Continue,
                Err(e) => return Verdict::Broken(format!("connect: {e}")),
            }
        }
        self.flush()
    }

    /// Whether a flush is due after a read: TLS records of a handshake under way, or
    /// requests rustls held until the handshake was done.
    pub fn needs_flush(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.wants_write() || !self.wbuf.is_empty())
    }

    /// Writes what is queued, when connected.
    pub fn flush(&mut self) -> Verdict {
        if self.state != BackendState::Ready {
            return Verdict::Continue;
        }
        match tls::write_out(self.tls.as_deref_mut(), &mut self.stream, &mut self.wbuf) {
            WriteOutcome::Done => {
                self.wbuf.shrink(SHRINK_ABOVE);
                Verdict::Continue
            }
            WriteOutcome::Blocked => Verdict::Continue,
            WriteOutcome::Failed(e) => Verdict::Broken(format!("write: {e}")),
        }
    }

    /// Reads and splits off every complete reply, each paired with the request it answers.
    /// Out-of-band RESP3 pushes (never expected on a shared connection) are dropped.
    /// Returns whether the read budget ran out with data possibly left on the socket.
    pub fn on_readable(
        &mut self,
        scratch: &mut [u8],
        stop_short: bool,
        out: &mut Vec<(InFlight, Bytes)>,
    ) -> (Verdict, bool) {
        let read = match self.tls.as_deref_mut() {
            Some(tls) => tls::read(
                tls,
                &mut self.stream,
                &mut self.rbuf,
                READ_BUDGET,
                stop_short,
            ),
            None => net::read_via(
                &mut self.stream,
                scratch,
                &mut self.rbuf,
                READ_BUDGET,
                stop_short,
            ),
        };
        let (mut verdict, more) = match read {
            ReadOutcome::Drained { more } => (Verdict::Continue, more),
            ReadOutcome::Closed => (
                Verdict::Broken("connection closed by the node".into()),
                false,
            ),
            ReadOutcome::Failed(e) => (Verdict::Broken(format!("read: {e}")), false),
        };
        loop {
            match self.parser.parse(&self.rbuf) {
                Ok(Some(n)) => {
                    let frame = self.rbuf.split_to(n).freeze();
                    // Pushes on a shared connection are never expected; on a subscriber's
                    // they are its messages.
                    if frame.first() == Some(&b'>') && !self.role.streams() {
                        continue;
                    }
                    match self.inflight.pop_front() {
                        // A node that refuses the proxy's credentials serves nothing on
                        // this connection: it breaks, and the node counts as down.
                        Some(req)
                            if matches!(req.owner, Owner::Auth) && frame.first() == Some(&b'-') =>
                        {
                            let why = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
                            self.auth_refused = true;
                            verdict = Verdict::Broken(format!(
                                "the node refused the proxy's credentials (backend_auth): {why}"
                            ));
                            break;
                        }
                        Some(req) if matches!(req.owner, Owner::NodeClientId) => {
                            self.node_client_id = match parse_integer(&frame) {
                                Some(id) => NodeClientId::Known(id),
                                None => NodeClientId::Refused,
                            };
                        }
                        Some(req) => out.push((req, frame)),
                        None if self.role.streams() => {
                            let owner = match self.role.stream_client() {
                                Some(to) => Owner::Stream(to),
                                None => Owner::FanIn,
                            };
                            out.push((
                                InFlight {
                                    owner,
                                    req: Bytes::new(),
                                    slot: None,
                                    attempt: Attempt::Sent { redirects: 0 },
                                    sent_at: self.opened,
                                    role: self.role,
                                    held_since: None,
                                    family: crate::latency::OTHER,
                                    write: false,
                                },
                                frame,
                            ));
                        }
                        None => {
                            verdict = Verdict::Broken("a reply that no request asked for".into());
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    verdict = Verdict::Broken(e.to_string());
                    break;
                }
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > SHRINK_ABOVE {
            self.rbuf = BytesMut::new();
        }
        (verdict, more)
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }
}

/// The value of an integer reply (`:123\r\n`), or None for anything else.
fn parse_integer(frame: &[u8]) -> Option<u64> {
    let digits = frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
