//! A client connection: its buffers, its reply queue (replies leave strictly in request
//! order, whatever order the nodes answer in) and its state machine.
//!
//! ```text
//!   Open --QUIT / protocol error / EOF--> Closing --queue empty, output written--> closed
//! ```
//! While Open, a client that has too many replies pending or too much unsent output stops
//! being read (backpressure by not reading, not by growing buffers) until it catches up.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::Registry;

use crate::conn::net::{self, ReadOutcome, WriteOutcome};
use crate::conn::outbuf::OutBuf;
use crate::conn::tls;
use crate::resp::encode::Proto;
use crate::resp::request::RequestParser;
use crate::route::merge;
use crate::route::split::Merge;

/// Buffer capacity an active client keeps between requests, so the steady state allocates
/// nothing; idle clients give it back (see `release_buffers`).
const KEEP_WHILE_ACTIVE: usize = 16 * 1024;
/// Bytes read from one client per turn.
pub const READ_BUDGET: usize = 256 * 1024;
/// Output is held back for a turn (see `hold_output`) only while it is smaller than this.
const HOLD_BELOW: usize = 16 * 1024;

/// A transaction in progress: the connection it is pinned to (once its node is known), and
/// the commands queued before that (answered +QUEUED by the proxy, sent when the node is
/// known).
#[derive(Debug, Default)]
pub struct Tx {
    pub conn: Option<(crate::topology::NodeId, crate::conn::pool::BackendRef)>,
    /// MULTI was given (not only WATCH).
    pub multi: bool,
    pub queued: Vec<Bytes>,
    /// Commands taken inside MULTI, for CLIENT LIST's `multi=`.
    pub commands: usize,
    /// A queued command was refused by the proxy (keys on another node): EXEC fails with
    /// EXECABORT, as Redis does after a queuing error.
    pub aborted: bool,
}

/// A client's CLIENT TRACKING state (`tracking/`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientTracking {
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES/NO, for the next command.
    pub caching: Option<bool>,
    /// REDIRECT: the other client's id (0: none) and where it is in this worker.
    pub redirect: u64,
    pub target: Option<crate::inflight::ClientRef>,
    /// The redirect target went away.
    pub broken: bool,
}

/// CLIENT REPLY: ON, OFF, or SKIP (the next command's reply only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    SkipNext,
}

/// Per-client bounds from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_pending: usize,
    /// Reading stops past this many unsent reply bytes.
    pub soft_output: usize,
    /// The client is disconnected past this many.
    pub hard_output: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Open,
    /// No more requests are read; the connection closes once every queued reply is written.
    Closing,
}

/// Which kind of node connection a client's request leaves on. Requests on one connection
/// run in the order sent; across kinds they could overtake each other, so a client's
/// request on another kind waits until the earlier ones were answered (see `must_wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The shared, pipelined connections (one per node: same node, same order).
    Shared,
    /// The connection a transaction (WATCH/MULTI...EXEC) is pinned to.
    Pinned,
    /// The first command of a new transaction: its connection may be another than the
    /// previous transaction's, so it waits like a change of lane.
    NewPinned,
    /// A connection of its own for a blocking command.
    Dedicated,
    /// A write across slots in stages: it waits for the requests before it, and those
    /// after it wait for it.
    Staged,
}

/// What a subscriber's stream orders besides the node's own frames.
#[derive(Debug)]
pub enum StreamItem {
    /// A reply of the proxy's own (a refusal).
    Reply(Vec<u8>),
    /// The end of what was sent before: input goes on. After an unsubscription, its
    /// replies tell whether subscribed mode is over, and so how the next command is taken.
    Resume,
    /// After an SUNSUBSCRIBE (answered by the proxy): subscribed mode is over if no
    /// subscription is left once the replies before it came back; input goes on either way.
    Settle,
    /// QUIT or RESET: run once the replies to everything before it came back.
    Leave(crate::route::Local),
}

/// A place in the reply order.
#[derive(Debug)]
enum Pending {
    /// A node has not answered yet.
    Waiting,
    Ready(Bytes),
    /// A split or fanned-out request: its parts' replies, merged when the last arrives.
    Parts(Box<Parts>),
}

#[derive(Debug)]
struct Parts {
    merge: Merge,
    replies: Vec<Option<Bytes>>,
    missing: usize,
}

#[derive(Debug)]
pub enum Verdict {
    Continue,
    Close(&'static str),
}

pub struct Client {
    pub gen: u64,
    /// The id CLIENT ID reports.
    pub id: u64,
    pub addr: SocketAddr,
    pub stream: TcpStream,
    pub state: ClientState,
    pub proto: Proto,
    pub name: Option<Bytes>,
    pub rbuf: BytesMut,
    pub parser: RequestParser,
    wbuf: OutBuf,
    /// Replies in request order, complete or not yet.
    pending: VecDeque<Pending>,
    /// Sequence number of `pending[0]`.
    head_seq: u64,
    /// Whether it is in the reactor's list of connections to flush.
    pub dirty: bool,
    /// Reply places of staged writes whose stage's replies are all in: the next stage is
    /// the reactor's to run (`Core::run_staged`).
    pub staged: Vec<u64>,
    /// The family of the command being dispatched, for the latency histograms.
    pub family: u8,
    /// The request being dispatched writes (the command table says so): the node that
    /// answers it joins `wrote_to`.
    pub writes: bool,
    /// The masters this client wrote to since its last WAIT, for WAIT's fan-out.
    pub wrote_to: Vec<crate::topology::NodeId>,
    /// Reading stopped (budget or backpressure) with input possibly left unread.
    pub paused: bool,
    pub since: Instant,
    /// When it last sent a complete request, for `client_timeout`.
    pub last_request: Instant,
    /// The last command's name, for CLIENT LIST.
    pub last_cmd: &'static str,
    pub local_addr: SocketAddr,
    pub lib_name: Option<String>,
    pub lib_ver: Option<String>,
    /// The TLS session of a client of the TLS port.
    pub tls: Option<Box<rustls::Connection>>,
    /// The user it authenticated as (an index into the proxy's users); None before AUTH
    /// where the proxy requires it.
    pub user: Option<u16>,
    /// WATCH or MULTI in progress.
    pub tx: Option<Tx>,
    /// Subscribed: the connection to the node its subscriptions live on.
    pub pubsub: Option<crate::conn::pool::BackendRef>,
    /// Subscribed: what waits for its turn in the stream, each released by the echo of a
    /// PING sent behind what the client sent before it (see `Core::stream_frame`).
    pub stream_items: VecDeque<(u64, StreamItem)>,
    pub stream_marks: u64,
    /// Subscribed: channels, patterns and shard channels, as the node's (un)subscription
    /// replies count them (for CLIENT LIST).
    pub subscriptions: [u64; 3],
    /// Its next command waits for a CLIENT PAUSE to end (`pause/`).
    pub pause_held: bool,
    /// CLIENT TRACKING (`tracking/`).
    pub tracking: Option<Box<ClientTracking>>,
    /// Subscribed: input waits until a `StreamItem::Resume` or `Leave` is released.
    pub stream_wait: bool,
    /// Subscribed: something was sent on the stream since the last `Resume` came back, so
    /// a RESP3 subscriber's other commands wait for it (their replies come another way).
    pub stream_busy: bool,
    /// The peer closed its sending side: what it sent is still answered, then it is closed.
    pub eof: bool,
    /// CLIENT REPLY mode, and whether the command being run now is to go unanswered.
    pub reply_mode: ReplyMode,
    pub silent: bool,
    /// Places in the reply order whose replies are dropped (CLIENT REPLY OFF/SKIP).
    silent_seqs: VecDeque<u64>,
    /// Bytes of complete replies queued behind one still waited for (counted in the output
    /// limits with the write buffer).
    queued_bytes: usize,
    /// Its output was held back last turn (see `hold_output`).
    held: bool,
    /// The lane of its latest request, and whether its next request waits for the replies
    /// pending on it (`must_wait`).
    lane: Lane,
    waiting_lane: bool,
}

impl Client {
    pub fn new(gen: u64, id: u64, addr: SocketAddr, stream: TcpStream, now: Instant) -> Client {
        Client {
            gen,
            id,
            addr,
            stream,
            state: ClientState::Open,
            proto: Proto::Resp2,
            name: None,
            rbuf: BytesMut::new(),
            parser: RequestParser::new(),
            wbuf: OutBuf::new(),
            pending: VecDeque::new(),
            head_seq: 0,
            dirty: false,
            staged: Vec::new(),
            family: crate::latency::OTHER,
            writes: false,
            wrote_to: Vec::new(),
            paused: false,
            since: now,
            last_request: now,
            last_cmd: "NULL",
            local_addr: addr,
            lib_name: None,
            lib_ver: None,
            tls: None,
            user: Some(0),
            tx: None,
            pubsub: None,
            stream_items: VecDeque::new(),
            stream_marks: 0,
            subscriptions: [0; 3],
            pause_held: false,
            tracking: None,
            stream_wait: false,
            stream_busy: false,
            eof: false,
            reply_mode: ReplyMode::On,
            silent: false,
            silent_seqs: VecDeque::new(),
            queued_bytes: 0,
            held: false,
            lane: Lane::Shared,
            waiting_lane: false,
        }
    }

    pub fn fd(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            self.stream.as_raw_fd() as i64
        }
        #[cfg(not(unix))]
        {
            -1
        }
    }

    /// For CLIENT KILL: replies still to come are not waited for.
    pub fn kill_pending(&mut self) {
        self.pending.clear();
        self.silent_seqs.clear();
        self.queued_bytes = 0;
    }

    pub fn read(&mut self, scratch: &mut [u8], stop_short: bool) -> ReadOutcome {
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls::read(
                tls,
                &mut self.stream,
                &mut self.rbuf,
                READ_BUDGET,
                stop_short,
            );
        }
        net::read_via(
            &mut self.stream,
            scratch,
            &mut self.rbuf,
            READ_BUDGET,
            stop_short,
        )
    }

    /// Between WATCH and MULTI, whether a command leaves the transaction's path and runs as it
    /// would outside one (its lane too, `input::lane`). Kept on the path: transaction commands,
    /// RESET (it ends the transaction), single-slot commands (on the pinned connection when the
    /// slot is the pinned node's, see `Core::tx_takes`), and what would change the connection
    /// under the pinned one: SUBSCRIBE and kin, MONITOR, HELLO (a protocol switch the pinned
    /// connection, opened in the old protocol, cannot follow); those stay refused.
    pub fn runs_outside_tx(&self, r: &crate::route::Routed) -> bool {
        if self.tx.as_ref().is_none_or(|t| t.multi) {
            return false;
        }
        if matches!(
            r.kind,
            crate::route::Kind::Tx(_)
                | crate::route::Kind::Sub(_)
                | crate::route::Kind::Monitor
                | crate::route::Kind::Hello
                | crate::route::Kind::Reset
        ) {
            return false;
        }
        !matches!(
            r.route,
            crate::route::Route::Slot(_) | crate::route::Route::ReadSlot(_)
        )
    }

    /// Whether the proxy should take more requests from this client now.
    pub fn wants_input(&self, limits: &Limits) -> bool {
        self.state == ClientState::Open
            && !self.stream_wait
            && !self.pause_held
            && self.pending.len() < limits.max_pending
            && self.output_len() < limits.soft_output
            && (!self.waiting_lane || self.pending.is_empty())
    }

    /// Whether a request for `lane` must wait for this client's pending replies first, as
    /// one Redis server would have run them in order: a transaction's WATCH after a SET on
    /// the shared connection, a GET after EXEC, a blocking pop after the push before it.
    /// Shared-connection requests for different nodes never wait for each other (Redis
    /// Cluster orders per node), nor do requests the proxy answers itself (`None`).
    pub fn must_wait(&mut self, lane: Option<Lane>) -> bool {
        let Some(lane) = lane else {
            return false;
        };
        let wait = !self.pending.is_empty()
            && (lane != self.lane
                || matches!(lane, Lane::Dedicated | Lane::NewPinned | Lane::Staged));
        self.waiting_lane = wait;
        if !wait {
            self.lane = match lane {
                Lane::NewPinned => Lane::Pinned,
                other => other,
            };
        }
        wait
    }

    /// Unsent reply bytes, for the output limits: written-out and queued alike.
    pub fn output_len(&self) -> usize {
        self.wbuf.len() + self.queued_bytes
    }

    /// Reserves the next place in the reply queue.
    pub fn reserve(&mut self) -> u64 {
        self.pending.push_back(Pending::Waiting);
        let seq = self.head_seq + self.pending.len() as u64 - 1;
        self.mark_silent(seq);
        seq
    }

    /// Under CLIENT REPLY OFF/SKIP the reply of the command being run is dropped when its
    /// turn comes (it still takes its place, so the others stay in order).
    fn mark_silent(&mut self, seq: u64) {
        if self.silent {
            self.silent_seqs.push_back(seq);
        }
    }

    /// Reserves a place for a push of the proxy's (an invalidation) behind the replies
    /// still due; never silenced by CLIENT REPLY, as Redis's pushes are not.
    pub fn reserve_push(&mut self) -> u64 {
        self.pending.push_back(Pending::Waiting);
        self.head_seq + self.pending.len() as u64 - 1
    }

    /// Reserves a place for a request sent in `parts` parts, merged by `merge`.
    pub fn reserve_parts(&mut self, parts: usize, merge: Merge) -> u64 {
        self.pending.push_back(Pending::Parts(Box::new(Parts {
            merge,
            replies: vec![None; parts],
            missing: parts,
        })));
        let seq = self.head_seq + self.pending.len() as u64 - 1;
        self.mark_silent(seq);
        seq
    }

    /// A reply the proxy has at once (answered locally, or an error): queued in order.
    pub fn reply_now(&mut self, frame: &[u8]) {
        if self.silent {
            return;
        }
        if self.pending.is_empty() {
            self.wbuf.push_slice(frame);
        } else {
            self.queued_bytes += frame.len();
            self.pending
                .push_back(Pending::Ready(Bytes::copy_from_slice(frame)));
        }
    }

    /// Fills the reply (or one part of it) for `seq`; moves every reply that is now in order
    /// to the output. Returns false when `seq` is not waiting (never expected; logged by the
    /// caller).
    /// The merge a split request waits on at `seq`, while its parts are not all in.
    pub fn merge_mut(&mut self, seq: u64) -> Option<&mut Merge> {
        let i = seq.checked_sub(self.head_seq)?;
        match self.pending.get_mut(i as usize)? {
            Pending::Parts(p) => Some(&mut p.merge),
            _ => None,
        }
    }

    pub fn complete(&mut self, seq: u64, part: u32, frame: Bytes) -> bool {
        let Some(i) = seq.checked_sub(self.head_seq) else {
            return false;
        };
        let proto = self.proto;
        match self.pending.get_mut(i as usize) {
            Some(slot @ Pending::Waiting) => {
                self.queued_bytes += frame.len();
                *slot = Pending::Ready(frame);
            }
            Some(slot @ Pending::Parts(_)) => {
                let Pending::Parts(p) = slot else {
                    return false;
                };
                match p.replies.get_mut(part as usize) {
                    Some(r @ None) => *r = Some(frame),
                    _ => return false,
                }
                p.missing -= 1;
                if p.missing == 0 && matches!(&p.merge, Merge::Compute(c) if c.is_write()) {
                    // Not merged: the next stage decides (`Core::run_staged`).
                    self.staged.push(seq);
                    return true;
                }
                if p.missing == 0 {
                    let replies: Vec<Bytes> = p.replies.drain(..).flatten().collect();
                    let merged = merge::merge(&p.merge, &replies, proto);
                    self.queued_bytes += merged.len();
                    *slot = Pending::Ready(merged);
                }
            }
            _ => return false,
        }
        self.advance();
        true
    }

    /// A staged write's merge and replies, once all of its stage's replies are in.
    pub fn take_stage(&mut self, seq: u64) -> Option<(Merge, Vec<Bytes>)> {
        let i = seq.checked_sub(self.head_seq)?;
        match self.pending.get_mut(i as usize) {
            Some(Pending::Parts(p)) if p.missing == 0 => {
                let merge = std::mem::replace(&mut p.merge, Merge::AllSame);
                let replies = p.replies.drain(..).flatten().collect();
                Some((merge, replies))
            }
            _ => None,
        }
    }

    /// The next stage of a staged write: `parts` replies awaited again.
    pub fn restart_stage(&mut self, seq: u64, parts: usize, merge: Merge) {
        let Some(i) = seq.checked_sub(self.head_seq) else {
            return;
        };
        if let Some(Pending::Parts(p)) = self.pending.get_mut(i as usize) {
            p.merge = merge;
            p.replies = vec![None; parts];
            p.missing = parts;
        }
        if parts == 0 {
            self.staged.push(seq);
        }
    }

    /// A staged write's answer, in its place.
    pub fn answer_stage(&mut self, seq: u64, frame: Bytes) {
        let Some(i) = seq.checked_sub(self.head_seq) else {
            return;
        };
        if let Some(slot @ Pending::Parts(_)) = self.pending.get_mut(i as usize) {
            self.queued_bytes += frame.len();
            *slot = Pending::Ready(frame);
        }
        self.advance();
    }

    /// Moves every reply that is now in order to the output.
    fn advance(&mut self) {
        while let Some(Pending::Ready(_)) = self.pending.front() {
            if let Some(Pending::Ready(f)) = self.pending.pop_front() {
                self.queued_bytes -= f.len();
                if self.silent_seqs.front() == Some(&self.head_seq) {
                    self.silent_seqs.pop_front();
                } else {
                    self.wbuf.push(&f);
                }
            }
            self.head_seq += 1;
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Replies that arrived and wait behind an earlier one still unanswered: CLIENT LIST's
    /// output list length.
    pub fn replies_waiting(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p, Pending::Ready(_)))
            .count()
    }

    /// Reply bytes in the write buffer, not yet written to the socket.
    pub fn unsent(&self) -> usize {
        self.wbuf.len()
    }

    pub fn has_output(&self) -> bool {
        !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether to write this client's output one turn later. A pipeline spread over several
    /// nodes is answered over several turns; writing each in-order prefix as it completes
    /// costs the client a wakeup and a read per turn, and the proxy a write. So small output
    /// waits one turn (never two in a row) while replies are still awaited; the reactor then
    /// polls without sleeping, so the delay is one pass over the ready events.
    pub fn hold_output(&mut self) -> bool {
        if self.held {
            self.held = false;
            return false;
        }
        self.held = self.state == ClientState::Open
            && !self.pending.is_empty()
            && !self.wbuf.is_empty()
            && self.wbuf.len() < HOLD_BELOW;
        self.held
    }

    /// Whether a Closing client has nothing left to send.
    pub fn finished(&self) -> bool {
        self.state == ClientState::Closing && self.pending.is_empty() && !self.has_output()
    }

    pub fn flush(&mut self) -> Verdict {
        match tls::write_out(self.tls.as_deref_mut(), &mut self.stream, &mut self.wbuf) {
            WriteOutcome::Done => {
                // A buffer that grew for a burst is given back at once; a small one is kept
                // for the next reply (no allocation per request) until the client idles.
                self.wbuf.shrink(KEEP_WHILE_ACTIVE);
                Verdict::Continue
            }
            WriteOutcome::Blocked => Verdict::Continue,
            WriteOutcome::Failed(_) => Verdict::Close("write failed"),
        }
    }

    /// After a read: a read buffer that grew past what an active client keeps is given back
    /// once every request in it was taken (the frames in flight keep what they need).
    pub fn shrink(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_WHILE_ACTIVE {
            self.rbuf = BytesMut::new();
        }
    }

    /// For a client that went idle: both buffers given back when empty, so an idle client
    /// holds no buffer at all.
    pub fn release_buffers(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        self.wbuf.shrink(0);
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> (Client, std::net::TcpListener) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let addr = s.local_addr().unwrap();
        let c = Client::new(1, 1, addr, TcpStream::from_std(s), Instant::now());
        (c, l)
    }

    #[test]
    fn replies_leave_in_request_order() {
        let (mut c, _l) = client();
        let a = c.reserve();
        let b = c.reserve();
        c.reply_now(b"+local\r\n");
        assert!(c.complete(b, 0, Bytes::from_static(b"+b\r\n")));
        assert!(!c.has_output());
        assert!(c.complete(a, 0, Bytes::from_static(b"+a\r\n")));
        assert_eq!(&c.wbuf.to_vec()[..], b"+a\r\n+b\r\n+local\r\n");
        assert_eq!(c.pending(), 0);
        assert!(!c.complete(a, 0, Bytes::from_static(b"+again\r\n")));
    }

    #[test]
    fn parts_merge_when_the_last_arrives() {
        let (mut c, _l) = client();
        let s = c.reserve_parts(2, Merge::Sum);
        assert!(c.complete(s, 1, Bytes::from_static(b":2\r\n")));
        assert!(!c.has_output());
        assert!(!c.complete(s, 1, Bytes::from_static(b":2\r\n")));
        assert!(c.complete(s, 0, Bytes::from_static(b":1\r\n")));
        assert_eq!(&c.wbuf.to_vec()[..], b":3\r\n");
    }
}
