//! The event loop: poll, dispatch by token, timers, and the flush pass that writes each
//! dirty connection once per turn. The per-connection logic lives in `client`, `backend`,
//! `router` and `local`; this module moves requests and replies between them.
//!
//! A turn:
//! ```text
//!   poll -> for each event: accept | client input (parse, route, queue on backends)
//!                                  | backend input (split replies, redirect or deliver)
//!        -> due timers (refresh, backend timeouts, parked retries)
//!        -> resume clients that were paused (budget, backpressure)
//!        -> flush backends (one write each), then clients
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use log::{debug, error, info, trace, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::backend::{self, Backend, BackendState};
use crate::client::{self, Client, ClientState, Lane, Limits, ReplyMode, StreamItem};
use crate::cluster_view;
use crate::command::{Args, Command};
use crate::config::{ClusterView, Config, ReadFrom};
use crate::crew::{Answer, ClientType, Crew, KillFilter, ListFilter, Msg, Question, WAKER};
use crate::error::ProxyError;
use crate::inflight::{self, Attempt, ClientRef, InFlight, Next, Owner};
use crate::local::{self, ServerInfo};
use crate::net::{self, ReadOutcome};
use crate::pool::{proto_index, BackendRef, Pool};
use crate::resp::encode::{self, Proto};
use crate::resp::reply::{classify_error, ErrorKind, Redirect};
use crate::resp::request::Frame;
use crate::resp::value;
use crate::router::{self, Local, Route};
use crate::signals;
use crate::slot::{key_slot, Slot};
use crate::split::{self, Merge};
use crate::timer::{TimerKind, Timers};
use crate::topology::{self, AddressMap, NodeId, Role, Topology};
use crate::totals::{Counters, Sums, Totals};

const LISTENER: Token = Token(usize::MAX);
/// How soon a refresh follows a MOVED: soon, but one refresh serves a burst of them.
const MOVED_REFRESH_DELAY: Duration = Duration::from_millis(50);
/// Refresh period while a master is unreachable or slots are uncovered, so a promoted
/// replica is found within about this long of the cluster's own failover.
const DEGRADED_REFRESH: Duration = Duration::from_millis(100);
/// After this long degraded, the period relaxes to `DEGRADED_REFRESH_SLOW`.
const DEGRADED_FAST_FOR: Duration = Duration::from_secs(30);
const DEGRADED_REFRESH_SLOW: Duration = Duration::from_secs(1);
/// CLUSTER NODES, not SLOTS: SLOTS leaves out replicas that have not replicated anything yet.
const CLUSTER_NODES: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n";
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
/// Dedicated connections for blocking commands: at most this many open, and this many kept
/// idle per node and protocol for reuse.
const MAX_DEDICATED: usize = 1024;
const MAX_IDLE_DEDICATED: usize = 8;
/// Bounds on the scripts remembered for NOSCRIPT recovery, so clients cannot grow it
/// without limit.
const MAX_SCRIPTS: usize = 10_000;
const MAX_SCRIPT_BYTES: usize = 16 << 20;
/// Connections accepted per listener event before other sockets get their turn.
const ACCEPT_BUDGET: usize = 256;
/// How soon a failed accept (out of file descriptors) is tried again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The longest an idle reactor sleeps before looking for a stop signal another thread took.
const SIGNAL_CHECK: Duration = Duration::from_secs(1);
/// How long a stopping proxy waits for the replies it owes, and how often it looks.
const DRAIN: Duration = Duration::from_secs(2);
const DRAIN_CHECK: Duration = Duration::from_millis(20);

fn client_token(idx: usize) -> Token {
    Token(idx << 1)
}

fn backend_token(idx: usize) -> Token {
    Token((idx << 1) | 1)
}

/// A request's arguments as ranges of its frame.
struct FrameArgs<'a> {
    frame: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl Args for FrameArgs<'_> {
    fn argc(&self) -> usize {
        self.ranges.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self.frame[self.ranges[i].clone()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Idle,
    Scheduled { at: Instant },
    Running,
}

/// Everything but the client slab, so client handlers can borrow a client and the core at
/// the same time.
pub struct Core {
    registry: Registry,
    cfg: Config,
    backends: Slab<Backend>,
    pool: Pool,
    topo: Topology,
    addr_map: AddressMap,
    timers: Timers,
    now: Instant,
    next_gen: u64,
    next_client_id: u64,
    dirty_backends: Vec<usize>,
    /// Some client's output waits one turn (`Client::hold_output`): the next poll does not
    /// sleep.
    held_output: bool,
    wake: Wake,
    resume_backends: Vec<usize>,
    /// Requests waiting out a TRYAGAIN/CLUSTERDOWN backoff, with the protocol they use.
    parked: Vec<(InFlight, Proto)>,
    refresh: RefreshState,
    /// A refresh was asked for while one was running.
    refresh_again: bool,
    degraded_since: Option<Instant>,
    seeds: Vec<String>,
    refresh_rr: usize,
    any_rr: usize,
    /// Scratch for the replies split off one backend read.
    replies: Vec<(InFlight, Bytes)>,
    server_version: String,
    /// The proxy's own address in the `proxy` cluster view.
    announce: String,
    /// This worker's counters for INFO, published to `totals` at the end of each turn.
    stats: Counters,
    started: Instant,
    totals: Arc<Totals>,
    worker: usize,
    /// `busy_dedicated` changed, or one of its connections stopped being pinned, this turn:
    /// the count of blocked clients is published again.
    held_changed: bool,
    /// Kept between publications of the blocked clients, so counting them allocates nothing.
    blocked_scratch: Vec<ClientRef>,
    /// When the blocked clients were last counted for `totals`.
    blocked_counted: Instant,
    /// Scripts loaded through the proxy (SCRIPT LOAD), by digest, to load again on a node
    /// that answers NOSCRIPT (a promoted replica, a restarted node).
    scripts: HashMap<String, Bytes>,
    scripts_bytes: usize,
    /// Requests answered once this turn's parsing is done (they need every client).
    /// The client's command name then is kept: by the time the list is rendered the client
    /// may have sent more.
    deferred: Vec<Deferred>,
    /// MONITOR clients, and this turn's lines for them.
    monitors: Vec<ClientRef>,
    monitor_feed: BytesMut,
    /// Another worker has a MONITOR client (read once per turn): lines are kept for it.
    monitor_elsewhere: bool,
    /// PROXY SHUTDOWN was asked: the loop ends after this turn's writes.
    shutdown: bool,
    /// Client reads land here first, so buffers hold only what arrived.
    scratch: Box<[u8]>,
    /// Dedicated connections in use, with the client whose blocking command they carry.
    busy_dedicated: Vec<(ClientRef, BackendRef)>,
}

/// A request answered after the turn's parsing: who asked, its place in the reply order, what
/// it is, its arguments, and the client's command name when it asked.
type Deferred = (ClientRef, u64, Local, Vec<Vec<u8>>, &'static str);

/// What replies set in motion for clients: output to flush, clients to read again now
/// that their queue has room, clients over the output limit.
struct Wake {
    dirty_clients: Vec<usize>,
    /// Clients whose output `flush` holds for a turn; kept between turns so that holding
    /// allocates nothing.
    held_clients: Vec<usize>,
    resume_clients: Vec<usize>,
    /// Clients to disconnect, and why.
    kill: Vec<(ClientRef, Kill)>,
    limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    OutputLimit,
    SubscriptionLost,
}

/// A CLIENT LIST or CLIENT KILL waiting for the other workers' answers.
struct Gather {
    ticket: u64,
    cref: ClientRef,
    seq: u64,
    /// Workers yet to answer.
    waiting: usize,
    proto: Proto,
    kind: Gathered,
}

enum Gathered {
    Lines(Vec<(u64, String)>),
    Killed { first_only: bool, n: usize },
}

impl Gathered {
    fn reply(self, proto: Proto) -> Vec<u8> {
        match self {
            Gathered::Lines(lines) => lines_reply(lines, proto),
            Gathered::Killed { first_only, n } => kill_reply(first_only, n),
        }
    }
}

/// How stale another worker's view of this one's blocked clients may get.
const BLOCKED_RECOUNT: Duration = Duration::from_millis(50);

/// How long CLIENT LIST or KILL waits for the other workers (each answers on its next poll
/// turn, so only a worker stuck or gone takes this long).
const GATHER_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Reactor {
    poll: Poll,
    listener: TcpListener,
    clients: Slab<Client>,
    core: Core,
    /// A `TimerKind::Accept` is due.
    accept_again: bool,
    /// Stopping (SIGTERM/SIGINT): no new clients or requests, and exit once every reply
    /// due is written, or at this time.
    drain_until: Option<Instant>,
    /// The other workers, when there are any.
    crew: Option<Crew>,
    gathers: Vec<Gather>,
    next_ticket: u64,
}

impl Reactor {
    /// `worker` numbers this reactor among `cfg.workers`: client ids are interleaved so
    /// they stay unique over the whole process, and its counters go into `totals` under
    /// that number.
    pub fn new(
        cfg: Config,
        topo: Topology,
        server_version: String,
        worker: usize,
        totals: Arc<Totals>,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let ip = cfg
            .bind
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad bind address"))?;
        let addr = SocketAddr::new(ip, cfg.proxy_port);
        let mut listener = net::listen(addr, &cfg.socket)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let announce = cfg.announce_address.clone().unwrap_or_else(|| {
            let host = if ip.is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                ip.to_string()
            };
            format!(
                "{host}:{}",
                listener
                    .local_addr()
                    .map(|a| a.port())
                    .unwrap_or(cfg.proxy_port)
            )
        });
        let limits = Limits {
            max_pending: cfg.client_max_pending,
            soft_output: (cfg.client_output_limit / 8).max(64 * 1024),
            hard_output: cfg.client_output_limit,
        };
        let now = Instant::now();
        let mut core = Core {
            registry: poll.registry().try_clone()?,
            addr_map: AddressMap::new(cfg.address_map.clone()),
            seeds: cfg.redis_nodes.clone(),
            cfg,
            backends: Slab::new(),
            pool: Pool::default(),
            topo,
            timers: Timers::default(),
            now,
            next_gen: 1,
            next_client_id: worker as u64 + 1,
            dirty_backends: Vec::new(),
            held_output: false,
            wake: Wake {
                dirty_clients: Vec::new(),
                held_clients: Vec::new(),
                resume_clients: Vec::new(),
                kill: Vec::new(),
                limits,
            },
            resume_backends: Vec::new(),
            parked: Vec::new(),
            refresh: RefreshState::Idle,
            refresh_again: false,
            degraded_since: None,
            refresh_rr: 0,
            any_rr: 0,
            replies: Vec::new(),
            server_version,
            announce,
            scripts: HashMap::new(),
            scripts_bytes: 0,
            deferred: Vec::new(),
            monitors: Vec::new(),
            monitor_feed: BytesMut::new(),
            monitor_elsewhere: false,
            shutdown: false,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            busy_dedicated: Vec::new(),
            stats: Counters::default(),
            started: now,
            totals,
            worker,
            held_changed: false,
            blocked_scratch: Vec::new(),
            blocked_counted: now,
        };
        // A first refresh soon after start: a cluster just created may not have gossiped
        // every replica to the seed yet. Then every refresh_interval.
        let first = core.cfg.refresh_interval.min(Duration::from_secs(2));
        core.request_refresh(first);
        let at = now + sweep_period(core.cfg.client_timeout);
        core.timers.add(at, TimerKind::ClientSweep);
        Ok(Reactor {
            poll,
            listener,
            clients: Slab::new(),
            core,
            accept_again: false,
            drain_until: None,
            crew: None,
            gathers: Vec::new(),
            next_ticket: 0,
        })
    }

    /// For `Crew::build`: the waker of this worker registers here.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Joins the process's other workers, so CLIENT LIST and KILL cover their clients too.
    pub fn join(&mut self, crew: Crew) {
        self.crew = Some(crew);
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(until) = self.drain_until {
                let due = self.replies_due();
                if due == 0 {
                    info!("shut down");
                    return Ok(());
                }
                if Instant::now() >= until {
                    warn!("shut down with {due} replies unanswered after {DRAIN:?}");
                    return Ok(());
                }
            } else if let Some(sig) = signals::requested() {
                self.start_drain(sig);
                continue;
            }
            // Clients or nodes left to resume are served at once, not after the next event.
            let timeout = if self.core.wake.resume_clients.is_empty()
                && self.core.resume_backends.is_empty()
                && !self.core.held_output
            {
                self.core.timers.timeout(Instant::now())
            } else {
                Some(Duration::ZERO)
            };
            // A stop signal taken by another thread is seen this soon; draining, the end of
            // the drain too.
            let check = match self.drain_until {
                Some(_) => DRAIN_CHECK,
                None => SIGNAL_CHECK,
            };
            // A recount of blocked clients put off (`publish`) is not put off past this.
            let check = if self.crew.is_some() && self.core.held_changed {
                check.min(BLOCKED_RECOUNT)
            } else {
                check
            };
            let timeout = Some(timeout.map_or(check, |t| t.min(check)));
            if !self.spin(&mut events, timeout) {
                // The spin used up part of the time to the next timer.
                let timeout = match timeout {
                    Some(t) if !t.is_zero() && !self.core.cfg.busy_poll.is_zero() => {
                        self.core.timers.timeout(Instant::now()).or(Some(t))
                    }
                    t => t,
                };
                if let Err(e) = self.poll.poll(&mut events, timeout) {
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            }
            self.core.now = Instant::now();
            self.core.monitor_elsewhere =
                self.crew.is_some() && self.core.totals.monitors() > self.core.monitors.len();
            for ev in events.iter() {
                let t = ev.token();
                if t == LISTENER {
                    self.accept();
                } else if t == WAKER {
                    self.crew_inbox();
                } else if t.0 & 1 == 0 {
                    let idx = t.0 >> 1;
                    if ev.is_writable() {
                        self.core.mark_client(&mut self.clients, idx);
                    }
                    let closed = ev.is_read_closed() || ev.is_error();
                    if ev.is_readable() || closed {
                        self.client_input(idx, !closed, closed);
                    }
                } else {
                    let closed = ev.is_read_closed() || ev.is_error();
                    self.backend_event(
                        t.0 >> 1,
                        ev.is_readable() || closed,
                        ev.is_writable(),
                        !closed,
                    );
                }
            }
            self.fire_timers();
            self.resume();
            self.run_deferred();
            self.feed_monitors();
            if self.crew.is_some() {
                // Before the replies go out: whoever reads one and asks another worker
                // finds its command counted.
                self.core.publish();
            }
            self.flush();
            if self.crew.is_some() && self.core.held_changed {
                // Closing clients and failed connections in flush change the blocked ones.
                self.core.publish();
            }
            if self.core.shutdown {
                info!("shutting down (PROXY SHUTDOWN)");
                return Ok(());
            }
        }
    }

    /// `busy_poll`: polls without sleeping until an event comes or `busy_poll` has passed
    /// since the last turn's events. Returns whether events came. A thread asleep in
    /// `epoll_wait` takes tens of microseconds to wake (more in a VM) on each hop of a
    /// request through the proxy; spinning skips that while traffic keeps coming, and the
    /// thread sleeps as usual once it stops.
    fn spin(&mut self, events: &mut Events, timeout: Option<Duration>) -> bool {
        let busy = self.core.cfg.busy_poll;
        if busy.is_zero() || timeout == Some(Duration::ZERO) {
            return false;
        }
        // Never past a timer that is due sooner.
        let until = self.core.now + timeout.map_or(busy, |t| t.min(busy));
        loop {
            match self.poll.poll(events, Some(Duration::ZERO)) {
                Ok(()) if !events.is_empty() => return true,
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            if Instant::now() >= until {
                return false;
            }
            // Not a bare spin: where the proxy shares cores with its nodes or clients,
            // sched_yield hands the core to one of them that is runnable (alone on a core it
            // returns at once). On the 2-core VM a bare spin cost GET -P 1 -c 50 some 5 %
            // against busy_poll 0; yielding, it was 0-10 % faster, with the same -c 1 gain.
            std::thread::yield_now();
        }
    }

    /// Answers CLIENT LIST/INFO/KILL and PROXY commands queued during parsing.
    fn run_deferred(&mut self) {
        let deferred = std::mem::take(&mut self.core.deferred);
        for (cref, seq, kind, argv, cmd) in deferred {
            let reply = match kind {
                Local::ClientList => match self.client_list(cref, seq, cmd, &argv) {
                    Some(reply) => reply,
                    None => continue,
                },
                Local::ClientInfo => match self.clients.get(cref.idx) {
                    Some(c) => {
                        let mut out = Vec::new();
                        let line = client_line(c, self.core.now, cmd, self.core.flags(c, cref.idx));
                        cluster_view::text(&mut out, &line, c.proto);
                        out
                    }
                    None => continue,
                },
                Local::ClientKill => match self.client_kill(cref, seq, &argv) {
                    Some(reply) => reply,
                    None => continue,
                },
                _ => self.proxy_command(cref, &argv),
            };
            self.deliver(cref, seq, reply);
        }
    }

    /// A reply the proxy composed itself, in its place among the client's replies.
    fn deliver(&mut self, cref: ClientRef, seq: u64, reply: Vec<u8>) {
        if let Some(c) = self.clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) {
            c.complete(seq, 0, Bytes::from(reply));
            if c.paused && c.wants_input(&self.core.wake.limits) {
                c.paused = false;
                self.core.wake.resume_clients.push(cref.idx);
            }
            self.core.mark_client(&mut self.clients, cref.idx);
        }
    }

    /// Sends a question to the other workers, with this worker's part of the answer: the
    /// reply when there are no others to wait for, else `None` (it comes when they have
    /// answered).
    fn ask_peers(
        &mut self,
        cref: ClientRef,
        seq: u64,
        question: &Question,
        mine: Gathered,
    ) -> Option<Vec<u8>> {
        let proto = self.proto_of(cref);
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let waiting = self
            .crew
            .as_ref()
            .map_or(0, |crew| crew.ask(ticket, question));
        if waiting == 0 {
            return Some(mine.reply(proto));
        }
        self.gathers.push(Gather {
            ticket,
            cref,
            seq,
            waiting,
            proto,
            kind: mine,
        });
        self.core
            .timers
            .add(self.core.now + GATHER_TIMEOUT, TimerKind::Gather { ticket });
        None
    }

    /// The protocol a client speaks (RESP2 for one that has gone).
    fn proto_of(&self, cref: ClientRef) -> Proto {
        self.clients.get(cref.idx).map_or(Proto::Resp2, |c| c.proto)
    }

    /// The other workers' questions and answers (the waker's event).
    fn crew_inbox(&mut self) {
        while let Some(msg) = self.crew.as_ref().and_then(Crew::next) {
            match msg {
                Msg::Monitor(lines) => self.feed_local_monitors(&lines),
                Msg::Ask {
                    from,
                    ticket,
                    question,
                } => {
                    let answer = match &question {
                        Question::List(f) => Answer::Lines(self.list_lines(f, None)),
                        Question::Kill(f) => Answer::Killed(self.kill_matching(f, None)),
                    };
                    if let Some(crew) = &self.crew {
                        crew.answer(from, ticket, answer);
                    }
                }
                Msg::Answer { ticket, answer } => {
                    let Some(i) = self.gathers.iter().position(|g| g.ticket == ticket) else {
                        continue; // past its deadline, already answered
                    };
                    let g = &mut self.gathers[i];
                    match (&mut g.kind, answer) {
                        (Gathered::Lines(all), Answer::Lines(mut more)) => all.append(&mut more),
                        (Gathered::Killed { n, .. }, Answer::Killed(more)) => *n += more,
                        _ => {}
                    }
                    g.waiting -= 1;
                    if g.waiting == 0 {
                        let g = self.gathers.swap_remove(i);
                        self.finish_gather(g);
                    }
                }
            }
        }
    }

    /// A gather's deadline: answer with what came (a worker busy for a second, or gone).
    fn gather_deadline(&mut self, ticket: u64) {
        if let Some(i) = self.gathers.iter().position(|g| g.ticket == ticket) {
            let g = self.gathers.swap_remove(i);
            warn!(
                "{} of the other workers did not answer within {GATHER_TIMEOUT:?}; replying without them",
                g.waiting
            );
            self.finish_gather(g);
        }
    }

    fn finish_gather(&mut self, g: Gather) {
        self.deliver(g.cref, g.seq, g.kind.reply(g.proto));
    }

    /// CLIENT LIST: this worker's clients, and the other workers' (`None`: the reply
    /// comes when they have answered).
    fn client_list(
        &mut self,
        me: ClientRef,
        seq: u64,
        my_cmd: &'static str,
        argv: &[Vec<u8>],
    ) -> Option<Vec<u8>> {
        let filter = match list_filter(argv) {
            Ok(f) => f,
            Err(e) => return Some(e),
        };
        let mine = Gathered::Lines(self.list_lines(&filter, Some((me, my_cmd))));
        // master and replica: no worker has one.
        if filter.kind == Some(ClientType::NoneHere) {
            return Some(mine.reply(self.proto_of(me)));
        }
        self.ask_peers(me, seq, &Question::List(filter), mine)
    }

    /// This worker's CLIENT LIST lines, with ids; `me` is the asking client, whose line shows
    /// the command it is running.
    fn list_lines(
        &self,
        f: &ListFilter,
        me: Option<(ClientRef, &'static str)>,
    ) -> Vec<(u64, String)> {
        self.clients
            .iter()
            .filter(|(_, c)| f.kind.is_none_or(|k| k == client_type(c)))
            .filter(|(_, c)| f.ids.is_empty() || f.ids.contains(&c.id))
            .map(|(idx, c)| {
                let cmd = match me {
                    Some((r, cmd)) if r.idx == idx && r.gen == c.gen => cmd,
                    _ => c.last_cmd,
                };
                let flags = self.core.flags(c, idx);
                (c.id, client_line(c, self.core.now, cmd, flags))
            })
            .collect()
    }

    /// CLIENT KILL addr:port (old form, +OK) or CLIENT KILL <filter value> ... (count), over
    /// every worker's clients (`None`: the reply comes when the others have answered).
    fn client_kill(&mut self, me: ClientRef, seq: u64, argv: &[Vec<u8>]) -> Option<Vec<u8>> {
        let (filter, skipme) = match kill_filter(argv) {
            Ok(f) => f,
            Err(e) => return Some(e),
        };
        let n = self.kill_matching(&filter, Some((me, skipme)));
        let mine = Gathered::Killed {
            first_only: filter.first_only,
            n,
        };
        // An address or an id names one client of the process: found here, it is nowhere
        // else.
        if n > 0 && (filter.first_only || filter.id.is_some()) {
            return Some(mine.reply(self.proto_of(me)));
        }
        self.ask_peers(me, seq, &Question::Kill(filter), mine)
    }

    /// Marks this worker's clients that match for closing; `me` is the asking client and
    /// whether SKIPME spares it.
    fn kill_matching(&mut self, f: &KillFilter, me: Option<(ClientRef, bool)>) -> usize {
        if !f.user_ok || f.kind == Some(ClientType::NoneHere) {
            return 0;
        }
        let mut victims: Vec<usize> = self
            .clients
            .iter()
            .filter(|(idx, c)| {
                let is_me = me.is_some_and(|(r, _)| r.idx == *idx && r.gen == c.gen);
                !(is_me && me.is_some_and(|(_, skip)| skip))
                    && f.kind.is_none_or(|k| k == client_type(c))
                    && f.id.is_none_or(|id| c.id == id)
                    && f.addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
                    && f.laddr
                        .as_ref()
                        .is_none_or(|a| c.local_addr.to_string() == *a)
            })
            .map(|(idx, _)| idx)
            .collect();
        if f.first_only {
            victims.truncate(1);
        }
        for &v in &victims {
            let is_me = me.is_some_and(|(r, _)| {
                r.idx == v && self.clients.get(v).is_some_and(|c| c.gen == r.gen)
            });
            self.kill_later(v, is_me);
        }
        victims.len()
    }

    /// A killed client is closed once the turn's replies are written (its own reply
    /// included, when it killed itself).
    fn kill_later(&mut self, idx: usize, me: bool) {
        if let Some(c) = self.clients.get_mut(idx) {
            c.state = ClientState::Closing;
            // Its own CLIENT KILL reply is still to come.
            if !me {
                c.kill_pending();
            }
            self.core.mark_client(&mut self.clients, idx);
        }
    }

    /// PROXY INFO | PROXY CONFIG GET pattern | PROXY SHUTDOWN.
    fn proxy_command(&mut self, cref: ClientRef, argv: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let sub = argv
            .get(1)
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default();
        let proto = self.proto_of(cref);
        match (sub.as_str(), argv.len()) {
            ("INFO", 2) => cluster_view::text(&mut out, &self.core.proxy_section(), proto),
            ("CONFIG", 4) if argv[2].eq_ignore_ascii_case(b"GET") => {
                let pattern = String::from_utf8_lossy(&argv[3]).to_ascii_lowercase();
                let pairs: Vec<(String, String)> = self
                    .core
                    .config_pairs()
                    .into_iter()
                    .filter(|(k, _)| glob_match(pattern.as_bytes(), k.as_bytes()))
                    .collect();
                encode::map_header(&mut out, pairs.len(), proto);
                for (k, v) in pairs {
                    encode::bulk(&mut out, k.as_bytes());
                    encode::bulk(&mut out, v.as_bytes());
                }
            }
            ("SHUTDOWN", 2) => {
                if self.core.cfg.allow_admin_commands {
                    let who = self.clients.get(cref.idx).map(|c| c.addr.to_string());
                    warn!("PROXY SHUTDOWN from {}", who.unwrap_or_default());
                    self.core.shutdown = true;
                    encode::simple(&mut out, "OK");
                } else {
                    encode::error(
                        &mut out,
                        "ERR PROXY SHUTDOWN is not allowed through the proxy (allow_admin_commands)",
                    );
                }
            }
            _ => encode::error(
                &mut out,
                "ERR unknown PROXY subcommand; try PROXY INFO, PROXY CONFIG GET <pattern>, PROXY SHUTDOWN",
            ),
        }
        out
    }

    /// Appends this turn's MONITOR lines to every monitor's output, here and, when another
    /// worker has monitors, there.
    fn feed_monitors(&mut self) {
        if self.core.monitor_feed.is_empty() {
            return;
        }
        let feed = self.core.monitor_feed.split().freeze();
        if self.core.monitor_elsewhere {
            if let Some(crew) = &self.crew {
                crew.broadcast_monitor(&feed, |w| self.core.totals.has_monitors(w));
            }
        }
        self.feed_local_monitors(&feed);
    }

    fn feed_local_monitors(&mut self, feed: &Bytes) {
        if self.core.monitors.is_empty() {
            return;
        }
        let mut monitors = std::mem::take(&mut self.core.monitors);
        monitors.retain(|m| {
            let Some(c) = self.clients.get_mut(m.idx).filter(|c| c.gen == m.gen) else {
                // close_client takes monitors out; should one be missed, the count follows.
                self.core.totals.monitor_ended(self.core.worker);
                return false;
            };
            c.reply_now(feed);
            if c.output_len() > self.core.wake.limits.hard_output {
                self.core.wake.kill.push((*m, Kill::OutputLimit));
            }
            true
        });
        for m in &monitors {
            self.core.mark_client(&mut self.clients, m.idx);
        }
        self.core.monitors = monitors;
    }

    /// Stops taking clients and requests; what was taken is still answered (`drained`).
    fn start_drain(&mut self, sig: &str) {
        let due = self.replies_due();
        let waiting = if due == 0 {
            String::new()
        } else {
            format!("; waiting for them up to {DRAIN:?}")
        };
        info!(
            "shutting down ({sig}): {} clients, {due} replies due{waiting}",
            self.clients.len()
        );
        let _ = self.core.registry.deregister(&mut self.listener);
        // Input is taken only under this many pending replies: none now.
        self.core.wake.limits.max_pending = 0;
        self.drain_until = Some(Instant::now() + DRAIN);
    }

    /// Replies still owed, counting a client with unsent output as one at least; a blocked
    /// client's reply (BLPOP 0) and a subscriber's stream are not waited for.
    fn replies_due(&self) -> usize {
        self.clients
            .iter()
            .filter(|&(idx, c)| !self.core.holds_connection(ClientRef { idx, gen: c.gen }))
            .map(|(_, c)| c.pending().max(usize::from(c.output_len() > 0)))
            .sum()
    }

    fn accept(&mut self) {
        if self.drain_until.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    // The limit is the process's, over every worker.
                    if !self.core.totals.try_connect(self.core.cfg.max_clients) {
                        use std::io::Write;
                        // Best effort, as Redis: the socket is new, its buffer empty.
                        let _ = stream.write(b"-ERR max number of clients reached\r\n");
                        warn!(
                            "client {addr} refused: max_clients ({}) reached",
                            self.core.cfg.max_clients
                        );
                        continue;
                    }
                    if let Err(e) = net::apply_stream_options(&stream, &self.core.cfg.socket) {
                        debug!("client {addr}: socket options not applied: {e}");
                    }
                    let entry = self.clients.vacant_entry();
                    let idx = entry.key();
                    if let Err(e) = self.core.registry.register(
                        &mut stream,
                        client_token(idx),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("client {addr}: cannot register: {e}");
                        self.core.totals.disconnect();
                        continue;
                    }
                    let gen = self.core.gen();
                    let id = self.core.next_client_id;
                    self.core.next_client_id += self.core.cfg.workers.max(1) as u64;
                    let laddr = stream.local_addr().unwrap_or(addr);
                    let c = entry.insert(Client::new(gen, id, addr, stream, self.core.now));
                    c.local_addr = laddr;
                    self.core.stats.connections_received += 1;
                    debug!("client {addr} connected (id {id})");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: the pending connection stays in the
                    // backlog and is tried again shortly (not at once: that would spin).
                    warn!("accept failed: {e}");
                    return self.accept_later(ACCEPT_RETRY);
                }
            }
        }
        // The budget ran out: the rest of the backlog next turn, after the others' events.
        self.accept_later(Duration::ZERO);
    }

    fn accept_later(&mut self, after: Duration) {
        if !self.accept_again {
            self.accept_again = true;
            let at = self.core.now + after;
            self.core.timers.add(at, TimerKind::Accept);
        }
    }

    /// `stop_short`: see `net::read_via`; false when the peer may have closed, or when
    /// resuming a client whose socket may hold more than one read's worth.
    /// `hung_up`: the poller saw the peer's end of the stream (or an error), which is told
    /// even while input is left unread.
    fn client_input(&mut self, idx: usize, stop_short: bool, hung_up: bool) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        if c.state != ClientState::Open {
            // A closing client is read only to notice a hang-up while a blocking command
            // holds a node connection for it (that reply may never come).
            let cref = ClientRef { idx, gen: c.gen };
            if self.core.holds_connection(cref) {
                let outcome = c.read(&mut self.core.scratch, false);
                c.rbuf.clear();
                if matches!(outcome, ReadOutcome::Closed | ReadOutcome::Failed(_)) {
                    self.close_client(idx, "closed while blocked");
                }
            }
            return;
        }
        if !c.rbuf.is_empty() {
            // Requests already buffered go first (a client resumed after its limits held it):
            // reading more while they wait would only grow its buffer.
            self.process_requests(idx);
        }
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        // Evaluated in this order so the common case (it takes input) costs one check.
        let read_it = c.wants_input(&self.core.wake.limits)
            || (c.rbuf.len() < client::READ_BUDGET
                && self.core.holds_connection(ClientRef { idx, gen: c.gen }));
        let mut eof = c.eof;
        match c.eof {
            // The peer sent all it will send: only what is buffered is left to answer.
            true => {}
            // Backpressure: what it sends meanwhile waits in its socket, not in the proxy's
            // memory; it is read again when resumed (see `deliver` and `flush`). Except a
            // client blocked on a node (BLPOP 0): it is read, up to one read budget, so that
            // its hang-up is noticed and the node connection released.
            false if !read_it => {
                if c.state == ClientState::Open {
                    c.paused = true;
                }
            }
            false => match c.read(&mut self.core.scratch, stop_short) {
                ReadOutcome::Drained { more } => {
                    if more {
                        c.paused = true;
                    }
                }
                ReadOutcome::Closed => {
                    eof = true;
                    c.eof = true;
                }
                ReadOutcome::Failed(e) => {
                    debug!("client {}: read failed: {e}", c.addr);
                    self.close_client(idx, "read error");
                    return;
                }
            },
        }
        self.process_requests(idx);
        if let Some(c) = self.clients.get_mut(idx) {
            let cref = ClientRef { idx, gen: c.gen };
            // A blocking command's reply may never come (BLPOP 0): a client that hung up
            // while waiting for one is closed now, as Redis does, not drained. The poller's
            // word for the hang-up counts too: past the read-ahead budget its end of stream
            // is never read.
            if (eof || hung_up) && self.core.holds_connection(cref) {
                self.close_client(idx, "closed while blocked");
                return;
            }
            let Some(c) = self.clients.get_mut(idx) else {
                return;
            };
            if eof && c.state == ClientState::Open && !c.paused {
                // Everything it sent was taken: answer it, then close.
                c.state = ClientState::Closing;
            }
            if c.paused && c.wants_input(&self.core.wake.limits) {
                c.paused = false;
                self.core.wake.resume_clients.push(idx);
            }
            self.core.mark_client(&mut self.clients, idx);
        }
    }

    /// Parses and routes the client's complete requests while it may take more.
    fn process_requests(&mut self, idx: usize) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        let cref = ClientRef { idx, gen: c.gen };
        // The parser is taken out so its argument ranges can be read while the client is
        // changed; it goes back at the end (no allocation: the Vec moves).
        let mut parser = std::mem::take(&mut c.parser);
        loop {
            if !c.wants_input(&self.core.wake.limits) {
                if c.state == ClientState::Open && !c.rbuf.is_empty() {
                    c.paused = true;
                }
                break;
            }
            match parser.parse(&c.rbuf) {
                Ok(None) => break,
                Ok(Some(Frame::Empty { consumed })) => c.rbuf.advance(consumed),
                Ok(Some(Frame::Multibulk { len })) => {
                    let routed = router::route_cmd(&FrameArgs {
                        frame: &c.rbuf[..len],
                        ranges: parser.args(),
                    });
                    if self.core.stream_order(c, routed.1) || c.must_wait(lane(c, &routed)) {
                        // The frame stays in the buffer and is parsed again on resuming.
                        c.paused = true;
                        break;
                    }
                    let frame = c.rbuf.split_to(len).freeze();
                    self.core.dispatch(c, cref, frame, parser.args(), routed);
                }
                Ok(Some(Frame::Inline { consumed, encoded })) => {
                    let routed = router::route_cmd(&FrameArgs {
                        frame: &encoded,
                        ranges: parser.args(),
                    });
                    if self.core.stream_order(c, routed.1) || c.must_wait(lane(c, &routed)) {
                        c.paused = true;
                        break;
                    }
                    c.rbuf.advance(consumed);
                    self.core
                        .dispatch(c, cref, Bytes::from(encoded), parser.args(), routed);
                }
                Err(e) => {
                    debug!("client {}: protocol error: {e}", c.addr);
                    c.reply_now(&ProxyError::Protocol(e).to_frame());
                    c.state = ClientState::Closing;
                    c.rbuf.clear();
                    break;
                }
            }
        }
        c.shrink();
        c.parser = parser;
    }

    fn backend_event(&mut self, idx: usize, readable: bool, writable: bool, stop_short: bool) {
        let Some(b) = self.core.backends.get_mut(idx) else {
            return;
        };
        if writable {
            let was_connecting = matches!(b.state, BackendState::Connecting { .. });
            if let backend::Verdict::Broken(why) = b.on_writable() {
                self.core.backend_failed(&mut self.clients, idx, &why);
                return;
            }
            if was_connecting && b.state == BackendState::Ready {
                let node = b.node;
                let addr = &self.core.topo.node(node).addr;
                if self.core.pool.mark_up(node) {
                    info!("node {addr} reachable again");
                } else {
                    debug!("connected to node {addr}");
                }
            }
        }
        if readable {
            self.backend_input(idx, stop_short);
        }
    }

    fn backend_input(&mut self, idx: usize, stop_short: bool) {
        let Some(b) = self.core.backends.get_mut(idx) else {
            return;
        };
        let mut replies = std::mem::take(&mut self.core.replies);
        let (verdict, more) = b.on_readable(&mut self.core.scratch, stop_short, &mut replies);
        let (node, proto) = (b.node, b.proto);
        for (req, frame) in replies.drain(..) {
            self.core
                .on_reply(&mut self.clients, node, proto, req, frame);
        }
        self.core.replies = replies;
        if let backend::Verdict::Broken(why) = verdict {
            self.core.backend_failed(&mut self.clients, idx, &why);
        } else if more {
            self.core.resume_backends.push(idx);
        } else {
            self.core.release_dedicated(idx);
        }
    }

    fn fire_timers(&mut self) {
        while let Some(kind) = self.core.timers.pop_due(self.core.now) {
            match kind {
                TimerKind::Refresh => {
                    if let RefreshState::Scheduled { at } = self.core.refresh {
                        if at <= self.core.now {
                            self.core.start_refresh();
                        }
                    }
                }
                TimerKind::Backend { idx, gen } => {
                    self.core.check_backend(&mut self.clients, idx, gen)
                }
                TimerKind::Parked => self.core.resend_parked(&mut self.clients),
                TimerKind::ClientSweep => self.sweep_idle_clients(),
                TimerKind::Accept => {
                    self.accept_again = false;
                    self.accept();
                }
                TimerKind::Gather { ticket } => self.gather_deadline(ticket),
            }
        }
    }

    fn resume(&mut self) {
        let clients = std::mem::take(&mut self.core.wake.resume_clients);
        for idx in clients {
            self.client_input(idx, false, false);
        }
        let backends = std::mem::take(&mut self.core.resume_backends);
        for idx in backends {
            self.backend_input(idx, false);
        }
    }

    fn flush(&mut self) {
        let kill = std::mem::take(&mut self.core.wake.kill);
        for (cref, why) in kill {
            let idx = cref.idx;
            // The generation: a slot freed and taken again this turn is another client.
            if let Some(c) = self.clients.get(idx).filter(|c| c.gen == cref.gen) {
                match why {
                    Kill::OutputLimit => warn!(
                        "client {} (id {}) disconnected: {} bytes of replies unread, over client_output_limit",
                        c.addr,
                        c.id,
                        c.output_len()
                    ),
                    Kill::SubscriptionLost => warn!(
                        "client {} (id {}) disconnected: its subscription connection to the node was lost",
                        c.addr, c.id
                    ),
                }
                self.close_client(idx, "killed");
            }
        }
        let mut dirty = std::mem::take(&mut self.core.dirty_backends);
        for &idx in &dirty {
            let Some(b) = self.core.backends.get_mut(idx) else {
                continue;
            };
            b.dirty = false;
            if let backend::Verdict::Broken(why) = b.flush() {
                self.core.backend_failed(&mut self.clients, idx, &why);
            }
        }
        dirty.clear();
        // A failure above may have queued more; keep what was added.
        dirty.append(&mut self.core.dirty_backends);
        self.core.dirty_backends = dirty;

        let mut dirty = std::mem::take(&mut self.core.wake.dirty_clients);
        let mut held_clients = std::mem::take(&mut self.core.wake.held_clients);
        let mut held = false;
        for &idx in &dirty {
            let Some(c) = self.clients.get_mut(idx) else {
                continue;
            };
            if c.hold_output() {
                // Stays dirty: flushed next turn whatever arrives.
                held_clients.push(idx);
                held = true;
                continue;
            }
            c.dirty = false;
            let close = match c.flush() {
                client::Verdict::Close(why) => Some(why),
                client::Verdict::Continue if c.finished() => Some("closed"),
                client::Verdict::Continue => None,
            };
            // Output drained below the limit: a client paused for it reads again.
            if close.is_none() && c.paused && c.wants_input(&self.core.wake.limits) {
                c.paused = false;
                self.core.wake.resume_clients.push(idx);
            }
            if let Some(why) = close {
                self.close_client(idx, why);
            }
        }
        dirty.clear();
        dirty.append(&mut held_clients);
        dirty.append(&mut self.core.wake.dirty_clients);
        self.core.wake.dirty_clients = dirty;
        self.core.wake.held_clients = held_clients;
        self.core.held_output = held;
    }

    /// Closes clients idle past `client_timeout`: nothing pending, nothing unsent, and no
    /// complete request for that long (bytes of a request that never completes do not count,
    /// so a client trickling a request forever is closed too).
    /// Also gives back the buffers of clients idle for a second: active clients keep theirs so
    /// the steady state allocates nothing, idle ones cost no buffer memory.
    fn sweep_idle_clients(&mut self) {
        let timeout = self.core.cfg.client_timeout;
        let now = self.core.now;
        let mut idle = Vec::new();
        for (i, c) in self.clients.iter_mut() {
            let quiet = now.duration_since(c.last_request);
            if quiet >= BUFFER_IDLE {
                c.release_buffers();
            }
            // Subscribers and monitors wait by design, as Redis exempts them.
            let listening = c.pubsub.is_some()
                || self
                    .core
                    .monitors
                    .iter()
                    .any(|m| m.idx == i && m.gen == c.gen);
            if !timeout.is_zero()
                && !listening
                && c.pending() == 0
                && !c.has_output()
                && quiet >= timeout
            {
                idle.push(i);
            }
        }
        for idx in idle {
            self.close_client(idx, "idle past client_timeout");
        }
        self.core
            .timers
            .add(now + sweep_period(timeout), TimerKind::ClientSweep);
    }

    fn close_client(&mut self, idx: usize, why: &str) {
        if !self.clients.contains(idx) {
            return;
        }
        let mut c = self.clients.remove(idx);
        c.deregister(&self.core.registry);
        self.core.totals.disconnect();
        let me = ClientRef { idx, gen: c.gen };
        if let Some(i) = self.core.monitors.iter().position(|m| *m == me) {
            self.core.monitors.swap_remove(i);
            self.core.totals.monitor_ended(self.core.worker);
        }
        self.core.client_gone(me);
        debug!("client {} disconnected (id {}): {why}", c.addr, c.id);
    }
}

impl Core {
    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    fn mark_client(&mut self, clients: &mut Slab<Client>, idx: usize) {
        if let Some(c) = clients.get_mut(idx) {
            if !c.dirty {
                c.dirty = true;
                self.wake.dirty_clients.push(idx);
            }
        }
    }

    fn mark_backend(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            if !b.dirty {
                b.dirty = true;
                self.dirty_backends.push(idx);
            }
        }
    }

    /// Queues one routed request (or answers it).
    fn dispatch(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        ranges: &[Range<usize>],
        (route, cmd): (Route, Option<&'static Command>),
    ) {
        let args = FrameArgs {
            frame: &frame,
            ranges,
        };
        self.stats.commands += 1;
        c.last_request = self.now;
        c.last_cmd = cmd.map(|c| c.name).unwrap_or("unknown");
        if !self.monitors.is_empty() || self.monitor_elsewhere {
            monitor_line(&mut self.monitor_feed, c.addr, &args);
        }
        trace!(
            "client {} {:?}: {:?}",
            c.id,
            String::from_utf8_lossy(args.arg(0)),
            route
        );
        let name = cmd.map(|c| c.name).unwrap_or("");
        // CLIENT REPLY: this command's reply is dropped under OFF, or once after SKIP.
        c.silent = match c.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                c.reply_mode = ReplyMode::On;
                true
            }
        };
        self.route_request(c, cref, frame.clone(), &args, route, name);
        c.silent = false;
    }

    fn route_request(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        route: Route,
        name: &str,
    ) {
        if c.tx.is_some() || is_tx_command(name) {
            self.transaction(c, cref, frame.clone(), name, route);
            return;
        }
        if c.pubsub.is_some()
            || matches!(
                name,
                "SUBSCRIBE"
                    | "PSUBSCRIBE"
                    | "SSUBSCRIBE"
                    | "UNSUBSCRIBE"
                    | "PUNSUBSCRIBE"
                    | "SUNSUBSCRIBE"
            )
        {
            self.pubsub(c, cref, frame.clone(), name, args, route);
            return;
        }
        if matches!(
            name,
            "PUBLISH" | "PUBSUB|CHANNELS" | "PUBSUB|NUMSUB" | "PUBSUB|NUMPAT"
        ) {
            if let Some(home) = self.pubsub_home() {
                self.send_new(c, cref, home, frame.clone(), None);
                return;
            }
        }
        self.execute(c, cref, frame.clone(), args, route);
    }

    /// Pub/sub: a subscriber gets a connection of its own to one node and every frame on it
    /// (subscription replies, messages) streams to the client. Classic channels live on one
    /// fixed master (the cluster forwards every PUBLISH to every node, and PUBSUB CHANNELS /
    /// NUMSUB are asked there too); shard channels on their slot's master.
    fn pubsub(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        name: &str,
        args: &FrameArgs<'_>,
        route: Route,
    ) {
        if let Some(r) = c.pubsub {
            if self.backends.get(r.idx).is_none_or(|b| b.gen != r.gen) {
                c.pubsub = None;
                return c
                    .reply_now(b"-ERR the subscription connection was lost; subscribe again\r\n");
            }
            let node = self.backends[r.idx].node;
            match name {
                // Not before the replies of what came before it, still on their way.
                "QUIT" | "RESET" => {
                    let local = if name == "QUIT" {
                        Local::Quit
                    } else {
                        Local::Reset
                    };
                    self.stream_push(c, r, StreamItem::Leave(local));
                    c.stream_wait = true;
                }
                // The node would answer MOVED for a channel of another shard; one connection
                // per node is not there yet.
                "SSUBSCRIBE" => match self.shard_channels_node(args) {
                    Err(e) => self.stream_push(c, r, StreamItem::Reply(e)),
                    Ok(owner) if owner != node => {
                        self.stream_push(c, r, StreamItem::Reply(other_shard(name)))
                    }
                    Ok(_) => {
                        self.backends[r.idx].push_raw(&frame);
                        self.mark_backend(r.idx);
                        c.stream_busy = true;
                    }
                },
                "SUNSUBSCRIBE"
                    if (1..args.argc())
                        .any(|i| self.topo.owner(key_slot(args.arg(i))) != Some(node)) =>
                {
                    self.stream_push(c, r, StreamItem::Reply(other_shard(name)))
                }
                _ if name.contains("SUBSCRIBE") || name == "PING" => {
                    // Replies come back on the stream, after whatever this client still waits
                    // for: in order, as from one server.
                    self.backends[r.idx].push_raw(&frame);
                    self.mark_backend(r.idx);
                    c.stream_busy = true;
                    if name.contains("UNSUBSCRIBE") {
                        self.stream_push(c, r, StreamItem::Resume);
                        c.stream_wait = true;
                    }
                }
                // The subscription connection speaks RESP3 and would go on pushing messages
                // in it: refused rather than mixing the two.
                "HELLO" if c.proto == Proto::Resp3 && args.argc() > 1 && args.arg(1) != b"3" => {
                    let mut out = Vec::new();
                    encode::error(
                        &mut out,
                        "ERR HELLO with another protocol version while subscribed is not supported through this proxy yet; unsubscribe first",
                    );
                    self.stream_push(c, r, StreamItem::Reply(out));
                }
                // RESP3 lets a subscriber run any command: routed as usual, once what it sent
                // on the stream before came back (`stream_order`).
                _ if c.proto == Proto::Resp3 => self.execute(c, cref, frame.clone(), args, route),
                _ => {
                    let shown = String::from_utf8_lossy(args.arg(0)).to_ascii_lowercase();
                    let mut out = Vec::new();
                    encode::error(
                        &mut out,
                        &format!(
                            "ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                        ),
                    );
                    self.stream_push(c, r, StreamItem::Reply(out));
                }
            }
            return;
        }
        if name.contains("UNSUBSCRIBE") {
            // Not subscribed: what Redis answers, one reply per channel (or one without).
            let kind = name.to_ascii_lowercase();
            let mut out = Vec::new();
            let mut one = |ch: Option<&[u8]>| {
                match c.proto {
                    Proto::Resp3 => out.extend_from_slice(b">3\r\n"),
                    Proto::Resp2 => out.extend_from_slice(b"*3\r\n"),
                }
                encode::bulk(&mut out, kind.as_bytes());
                match ch {
                    Some(ch) => encode::bulk(&mut out, ch),
                    None => encode::null(&mut out, c.proto),
                }
                encode::integer(&mut out, 0);
            };
            if args.argc() == 1 {
                one(None);
            } else {
                for i in 1..args.argc() {
                    one(Some(args.arg(i)));
                }
            }
            return c.reply_now(&out);
        }
        let node = if name == "SSUBSCRIBE" {
            self.shard_channels_node(args)
        } else {
            self.pubsub_home().ok_or_else(|| no_master().to_frame())
        };
        let node = match node {
            Ok(node) => node,
            Err(e) => return c.reply_now(&e),
        };
        let idx = match self.connect_one(node, c.proto) {
            Ok(idx) => idx,
            Err(e) => return c.reply_now(&e.to_frame()),
        };
        let b = &mut self.backends[idx];
        b.dedicated = true;
        b.pinned = true;
        b.stream_to = Some(cref);
        let bref = BackendRef { idx, gen: b.gen };
        b.push_raw(&frame);
        self.hold((cref, bref));
        self.mark_backend(idx);
        c.pubsub = Some(bref);
        c.stream_busy = true;
    }

    /// Something of the proxy's in its place among the frames streaming from the node: it
    /// is released by the echo of a PING queued behind the client's earlier commands on the
    /// subscription connection (see `stream_frame`).
    fn stream_push(&mut self, c: &mut Client, r: BackendRef, item: StreamItem) {
        c.stream_marks += 1;
        let mark = format!("{STREAM_MARK}{}", c.stream_marks);
        c.stream_items.push_back((c.stream_marks, item));
        let mut ping = Vec::new();
        encode::array_header(&mut ping, 2);
        encode::bulk(&mut ping, b"PING");
        encode::bulk(&mut ping, mark.as_bytes());
        self.backends[r.idx].push_raw(&ping);
        self.mark_backend(r.idx);
    }

    /// A RESP3 subscriber's command answered elsewhere than on the stream waits until what
    /// it sent on the stream before came back, so that their replies keep their order.
    /// Returns whether it waits.
    fn stream_order(&mut self, c: &mut Client, cmd: Option<&'static Command>) -> bool {
        let Some(r) = c
            .pubsub
            .filter(|_| c.stream_busy && c.proto == Proto::Resp3)
        else {
            return false;
        };
        let name = cmd.map_or("", |c| c.name);
        if name.contains("SUBSCRIBE") || matches!(name, "PING" | "QUIT" | "RESET") {
            return false;
        }
        if self.backends.get(r.idx).is_none_or(|b| b.gen != r.gen) {
            return false;
        }
        c.stream_busy = false;
        self.stream_push(c, r, StreamItem::Resume);
        c.stream_wait = true;
        true
    }

    /// CLIENT LIST flags: P subscribed, x in MULTI, b blocked (a blocking command on a
    /// connection of its own), else N.
    fn flags(&self, c: &Client, idx: usize) -> LineFlags {
        let blocked = || {
            self.busy_dedicated
                .iter()
                .any(|(r, b)| r.idx == idx && r.gen == c.gen && self.is_blocking(*b))
        };
        let me = ClientRef { idx, gen: c.gen };
        let flags = if c.pubsub.is_some() {
            "P"
        } else if self.monitors.contains(&me) {
            "O"
        } else if c.tx.as_ref().is_some_and(|t| t.multi) {
            "x"
        } else if blocked() {
            "b"
        } else {
            "N"
        };
        let multi = match &c.tx {
            Some(t) if t.multi => t.commands as i64,
            _ => -1,
        };
        LineFlags { flags, multi }
    }

    /// Whether the client holds a connection of its own (a blocking command's, or its
    /// subscriptions'), whose reply or stream may never end.
    fn holds_connection(&self, cref: ClientRef) -> bool {
        self.busy_dedicated.iter().any(|(c, _)| *c == cref)
    }

    /// Answers QUIT or RESET (neither takes arguments) as on any connection.
    fn answer_quit_or_reset(&self, c: &mut Client, local: Local) {
        let info = ServerInfo {
            version: &self.server_version,
        };
        let name: [&[u8]; 1] = [match local {
            Local::Quit => b"QUIT",
            _ => b"RESET",
        }];
        local::answer(local, name.as_slice(), c, &info);
    }

    /// Whether a connection held for one client carries a blocking command (not its
    /// subscriptions or its transaction).
    fn is_blocking(&self, r: BackendRef) -> bool {
        self.backends
            .get(r.idx)
            .is_some_and(|b| b.gen == r.gen && !b.pinned && b.stream_to.is_none())
    }

    /// The master of SSUBSCRIBE's channels (all in one slot, as a cluster requires), or the
    /// error frame to answer.
    fn shard_channels_node(&self, args: &FrameArgs<'_>) -> Result<NodeId, Vec<u8>> {
        let slot = key_slot(args.arg(1));
        if (2..args.argc()).any(|i| key_slot(args.arg(i)) != slot) {
            return Err(ProxyError::CrossSlot.to_frame());
        }
        self.topo.owner(slot).ok_or_else(|| no_master().to_frame())
    }

    /// The master classic subscriptions go to: the first in address order, so PUBSUB
    /// CHANNELS / NUMSUB asked through the proxy see them.
    fn pubsub_home(&self) -> Option<NodeId> {
        self.topo.masters_sorted().into_iter().next()
    }

    /// WATCH / MULTI ... EXEC / DISCARD / UNWATCH on a connection pinned to one node: the node
    /// of the first command with keys (a transaction's keys must be on one node, as on a
    /// cluster). Commands before that are answered +QUEUED by the proxy and sent ahead of it.
    fn transaction(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        name: &str,
        route: Route,
    ) {
        let err = |c: &mut Client, msg: &str| {
            let mut out = Vec::new();
            encode::error(&mut out, msg);
            c.reply_now(&out);
        };
        if let Route::Local(Local::Reset) = route {
            // RESET ends the transaction, as on Redis: the node forgets what was queued and
            // watched, and the connection goes back (closed: it was pinned) once that is
            // answered.
            if let Some((multi, r)) = c.tx.take().and_then(|t| Some((t.multi, t.conn?.1))) {
                if let Some(b) = self.backends.get_mut(r.idx).filter(|b| b.gen == r.gen) {
                    let end: &'static [u8] = if multi {
                        b"*1\r\n$7\r\nDISCARD\r\n"
                    } else {
                        b"*1\r\n$7\r\nUNWATCH\r\n"
                    };
                    b.push(Bytes::from_static(end), Owner::Internal, None, self.now);
                    b.pinned = false;
                    self.held_changed = true;
                    self.mark_backend(r.idx);
                }
            }
            return self.answer_quit_or_reset(c, Local::Reset);
        }
        let multi = c.tx.as_ref().is_some_and(|t| t.multi);
        // A pinned connection that broke: inside MULTI every command fails and EXEC answers
        // EXECABORT, so nothing after the break runs outside the transaction.
        if let Some((_, r)) = c.tx.as_ref().and_then(|t| t.conn) {
            if self.backends.get(r.idx).is_none_or(|b| b.gen != r.gen) {
                match name {
                    "EXEC" if multi => {
                        c.tx = None;
                        return err(
                            c,
                            "EXECABORT Transaction discarded because of previous errors.",
                        );
                    }
                    "DISCARD" | "UNWATCH" => {
                        c.tx = None;
                        return c.reply_now(b"+OK\r\n");
                    }
                    _ if multi => {
                        if let Some(t) = c.tx.as_mut() {
                            t.aborted = true;
                        }
                    }
                    _ => c.tx = None,
                }
                return err(
                    c,
                    "ERR the transaction's connection to its node was lost; start it again",
                );
            }
        }
        // Inside a transaction only what one node can run goes to the pinned connection:
        // what the proxy answers itself, fans out, or refuses is refused here (and aborts the
        // transaction, as a queuing error does on Redis).
        let tx_cmd = matches!(name, "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH");
        if !tx_cmd {
            let refusal = match &route {
                _ if name.contains("SUBSCRIBE") || name == "MONITOR" => Some(format!(
                    "ERR {} is not allowed in a transaction through the proxy",
                    name.replace('|', " ")
                )),
                Route::Slot(_)
                | Route::ReadSlot(_)
                | Route::Blocking(_)
                | Route::AnyMaster
                | Route::Local(Local::Ping | Local::Echo) => None,
                Route::Local(Local::Quit) => {
                    return self.answer_quit_or_reset(c, Local::Quit);
                }
                Route::Refuse(e) => Some(e.to_string()),
                Route::Admin(inner) if self.cfg.allow_admin_commands => match **inner {
                    Route::AnyMaster => None,
                    _ => Some(format!(
                        "ERR {} cannot run inside a transaction through the proxy",
                        name.replace('|', " ")
                    )),
                },
                Route::Admin(_) => Some(format!(
                    "ERR {} is not allowed through the proxy (allow_admin_commands)",
                    name.replace('|', " ")
                )),
                _ => Some(format!(
                    "ERR {} cannot run inside a transaction through the proxy",
                    name.replace('|', " ")
                )),
            };
            if let Some(msg) = refusal {
                match c.tx.as_mut() {
                    Some(t) if t.multi => t.aborted = true,
                    _ => {}
                }
                return err(c, &msg);
            }
            if let Some(t) = c.tx.as_mut().filter(|t| t.multi) {
                t.commands += 1;
            }
        }
        match name {
            "MULTI" if multi => return err(c, "ERR MULTI calls can not be nested"),
            "EXEC" if !multi => return err(c, "ERR EXEC without MULTI"),
            "DISCARD" if !multi => return err(c, "ERR DISCARD without MULTI"),
            "WATCH" if multi => return err(c, "ERR WATCH inside MULTI is not allowed"),
            "MULTI" => {
                let tx = c.tx.get_or_insert_with(Default::default);
                tx.multi = true;
                if tx.conn.is_none() {
                    c.reply_now(b"+OK\r\n");
                    return;
                }
            }
            "UNWATCH" if !multi && c.tx.as_ref().is_none_or(|t| t.conn.is_none()) => {
                c.tx = None;
                c.reply_now(b"+OK\r\n");
                return;
            }
            "DISCARD" if c.tx.as_ref().is_some_and(|t| t.conn.is_none()) => {
                c.tx = None;
                c.reply_now(b"+OK\r\n");
                return;
            }
            _ => {}
        }
        // The node: the pinned one, else the first command with keys decides, else (EXEC of
        // a transaction without keys) any master.
        let tx_conn = c.tx.as_ref().and_then(|t| t.conn);
        let (_node, bref) = match tx_conn {
            Some(nb) => nb,
            None => {
                let slot = match &route {
                    Route::Slot(s) | Route::ReadSlot(s) | Route::Blocking(s) => Some(*s),
                    Route::Split { .. } => {
                        return err(c, "CROSSSLOT Keys in request don't hash to the same slot")
                    }
                    // Refused before any node is involved (unknown command, wrong arity).
                    Route::Refuse(e) => return c.reply_now(&e.to_frame()),
                    _ => None,
                };
                let node = match slot {
                    Some(s) => self.topo.owner(s),
                    None if name == "EXEC" => self.any_master(),
                    None => {
                        // Keyless, node unknown yet: queued here, sent ahead of the first
                        // command with keys.
                        if let Some(t) = c.tx.as_mut() {
                            t.queued.push(frame);
                        }
                        c.reply_now(b"+QUEUED\r\n");
                        return;
                    }
                };
                let abort = |c: &mut Client| match c.tx.as_mut() {
                    Some(t) if t.multi && name != "EXEC" => t.aborted = true,
                    _ => c.tx = None,
                };
                let Some(node) = node else {
                    abort(c);
                    return err(c, "CLUSTERDOWN the transaction's slot is not served");
                };
                let idx = match self.dedicated_backend(node, c.proto) {
                    Ok(idx) => idx,
                    Err(e) => {
                        abort(c);
                        return c.reply_now(&e.to_frame());
                    }
                };
                let b = &mut self.backends[idx];
                b.pinned = true;
                b.tainted = true;
                let bref = BackendRef { idx, gen: b.gen };
                self.hold((cref, bref));
                let tx = c.tx.get_or_insert_with(Default::default);
                tx.conn = Some((node, bref));
                // What the client was already told: MULTI's OK and the queued commands'
                // QUEUED; the node's answers to them are not passed on again.
                let ahead = std::mem::take(&mut tx.queued);
                let in_multi = tx.multi && name != "MULTI";
                let b = &mut self.backends[idx];
                if in_multi {
                    b.push(
                        Bytes::from_static(b"*1\r\n$5\r\nMULTI\r\n"),
                        Owner::Internal,
                        None,
                        self.now,
                    );
                }
                for q in ahead {
                    b.push(q, Owner::Internal, None, self.now);
                }
                (node, bref)
            }
        };
        // Keys owned by another node cannot join this transaction: refused here, and the
        // transaction then fails at EXEC, never half applied.
        let slot = match &route {
            Route::Slot(s) | Route::ReadSlot(s) | Route::Blocking(s) => Some(*s),
            _ => None,
        };
        let foreign = slot.is_some_and(|s| self.topo.owner(s) != Some(_node))
            || matches!(route, Route::Split { .. });
        if foreign && name != "EXEC" && name != "DISCARD" {
            if let Some(t) = c.tx.as_mut() {
                t.aborted |= t.multi;
            }
            return err(
                c,
                "CROSSSLOT Keys in request don't hash to the same slot as the transaction's",
            );
        }
        let aborted = c.tx.as_ref().is_some_and(|t| t.aborted);
        if name == "EXEC" && aborted {
            // The node discards what it queued; the client hears why.
            let b = &mut self.backends[bref.idx];
            b.push(
                Bytes::from_static(b"*1\r\n$7\r\nDISCARD\r\n"),
                Owner::Internal,
                None,
                self.now,
            );
            c.reply_now(b"-EXECABORT Transaction discarded because of previous errors.\r\n");
            self.mark_backend(bref.idx);
            c.tx = None;
            if let Some(b) = self.backends.get_mut(bref.idx) {
                b.pinned = false;
                self.held_changed = true;
            }
            return;
        }
        let seq = c.reserve();
        let b = &mut self.backends[bref.idx];
        b.push(
            frame,
            Owner::Client {
                client: cref,
                seq,
                part: 0,
            },
            None,
            self.now,
        );
        self.mark_backend(bref.idx);
        let ends = match name {
            "EXEC" | "DISCARD" => true,
            "UNWATCH" => !multi,
            _ => false,
        };
        if ends {
            c.tx = None;
            if let Some(b) = self.backends.get_mut(bref.idx) {
                b.pinned = false;
                self.held_changed = true;
            }
            // Given back once the last reply is in (release_dedicated after the read).
        }
    }

    fn execute(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        args: &FrameArgs<'_>,
        route: Route,
    ) {
        match route {
            Route::Local(
                l @ (Local::ClientInfo | Local::ClientList | Local::ClientKill | Local::Proxy),
            ) => {
                // Needs every client, or may stop the proxy: answered after this client's
                // requests are parsed, in order, through its reply queue.
                let seq = c.reserve();
                let argv = (0..args.argc()).map(|i| args.arg(i).to_vec()).collect();
                self.deferred.push((cref, seq, l, argv, c.last_cmd));
            }
            Route::Local(Local::Monitor) => {
                c.reply_now(b"+OK\r\n");
                if !self.monitors.contains(&cref) {
                    self.monitors.push(cref);
                    self.totals.monitor_started(self.worker);
                }
            }
            Route::Local(l) => {
                let info = ServerInfo {
                    version: &self.server_version,
                };
                local::answer(l, args, c, &info);
            }
            Route::Slot(slot) => match self.topo.owner(slot) {
                Some(node) => self.send_new(c, cref, node, frame, Some(slot)),
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::ReadSlot(slot) => match self.topo.owner(slot) {
                Some(master) => match self.read_node(master) {
                    Ok(node) => self.send_new(c, cref, node, frame, Some(slot)),
                    Err(e) => c.reply_now(&e.to_frame()),
                },
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::AnyMaster => match self.any_master() {
                Some(node) => self.send_new(c, cref, node, frame, None),
                None => c.reply_now(&no_master().to_frame()),
            },
            Route::Blocking(slot) => match self.topo.owner(slot) {
                Some(node) => {
                    let seq = c.reserve();
                    self.send_client(c, cref, seq, 0, node, frame, Some(slot), true);
                }
                None => {
                    c.reply_now(&ProxyError::SlotUnserved(slot.0).to_frame());
                    self.request_refresh(Duration::ZERO);
                }
            },
            Route::Split { per_key, merge } => {
                // MGET and EXISTS read: their parts follow read_from like any read.
                let read = matches!(merge, Merge::Mget { .. })
                    || args.arg(0).eq_ignore_ascii_case(b"EXISTS");
                let (parts, merge) = split::split(args, per_key, merge);
                let seq = c.reserve_parts(parts.len(), merge);
                for (k, part) in parts.into_iter().enumerate() {
                    let mut node = self.topo.owner(part.slot);
                    if let (true, Some(master)) = (read, node) {
                        match self.read_node(master) {
                            Ok(n) => node = Some(n),
                            Err(e) => {
                                c.complete(seq, k as u32, Bytes::from(e.to_frame()));
                                continue;
                            }
                        }
                    }
                    self.send_part(c, cref, seq, k as u32, node, part.frame, Some(part.slot));
                }
            }
            Route::FanOut(mut merge) => {
                if args.argc() == 3
                    && args.arg(0).eq_ignore_ascii_case(b"SCRIPT")
                    && args.arg(1).eq_ignore_ascii_case(b"LOAD")
                {
                    self.remember_script(args.arg(2));
                }
                let masters = self.topo.masters_sorted();
                if masters.is_empty() {
                    c.reply_now(&no_master().to_frame());
                    return;
                }
                if let Merge::FirstNonNull { start } = &mut merge {
                    self.any_rr = self.any_rr.wrapping_add(1);
                    *start = (self.any_rr % masters.len()) as u32;
                }
                let seq = c.reserve_parts(masters.len(), merge);
                for (k, m) in masters.into_iter().enumerate() {
                    self.send_part(c, cref, seq, k as u32, Some(m), frame.clone(), None);
                }
            }
            Route::FanOutAll(mut merge) => {
                if args.argc() == 2
                    && args.arg(0).eq_ignore_ascii_case(b"CONFIG")
                    && args.arg(1).eq_ignore_ascii_case(b"RESETSTAT")
                {
                    self.totals.reset(self.worker, self.stats);
                }
                if args.argc() >= 2 && args.arg(0).eq_ignore_ascii_case(b"SCRIPT") {
                    if args.arg(1).eq_ignore_ascii_case(b"LOAD") && args.argc() == 3 {
                        self.remember_script(args.arg(2));
                    } else if args.arg(1).eq_ignore_ascii_case(b"FLUSH") {
                        // A client that flushes scripts must see NOSCRIPT afterwards, as from
                        // Redis: nothing is loaded again behind its back.
                        self.scripts.clear();
                        self.scripts_bytes = 0;
                    }
                }
                let nodes = self.topo.nodes_sorted();
                if nodes.is_empty() {
                    c.reply_now(&no_master().to_frame());
                    return;
                }
                let names: Vec<String> = nodes
                    .iter()
                    .map(|&n| self.addr_map.public(&self.topo.node(n).addr).to_string())
                    .collect();
                match &mut merge {
                    Merge::AllOkNamed { nodes } | Merge::Slowlog { nodes, .. } => *nodes = names,
                    _ => {}
                }
                let seq = c.reserve_parts(nodes.len(), merge);
                for (k, n) in nodes.into_iter().enumerate() {
                    self.send_part(c, cref, seq, k as u32, Some(n), frame.clone(), None);
                }
            }
            Route::Scan => self.scan(c, cref, args),
            Route::Info => self.info(c, cref, args, frame.clone()),
            Route::Cluster(view) => {
                if self.cfg.cluster_view == ClusterView::Proxy {
                    c.reply_now(&cluster_view::proxy_answer(view, &self.announce, c.proto));
                    return;
                }
                let Some(node) = self.any_master() else {
                    c.reply_now(&no_master().to_frame());
                    return;
                };
                if self.addr_map.is_empty() {
                    self.send_new(c, cref, node, frame, None);
                } else {
                    let map = self.addr_map.clone();
                    let seq = c.reserve_parts(1, Merge::Rewrite { view, map });
                    self.send_part(c, cref, seq, 0, Some(node), frame, None);
                }
            }
            Route::Admin(inner) => {
                if self.cfg.allow_admin_commands {
                    self.execute(c, cref, frame, args, *inner);
                } else {
                    let mut name = String::from_utf8_lossy(args.arg(0)).to_uppercase();
                    let has_subs = router::has_subcommands(&name);
                    if has_subs && args.argc() > 1 {
                        name.push(' ');
                        name.push_str(&String::from_utf8_lossy(args.arg(1)).to_uppercase());
                    }
                    c.reply_now(
                        &ProxyError::Other(format!(
                            "ERR {name} is not allowed through the proxy (allow_admin_commands)"
                        ))
                        .to_frame(),
                    );
                }
            }
            Route::Refuse(e) => c.reply_now(&e.to_frame()),
        }
    }

    fn remember_script(&mut self, body: &[u8]) {
        let sha = crate::sha1::sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return;
        }
        if self.scripts.len() >= MAX_SCRIPTS || self.scripts_bytes + body.len() > MAX_SCRIPT_BYTES {
            warn!("script cache full ({MAX_SCRIPTS} scripts, {MAX_SCRIPT_BYTES} bytes): {sha} not remembered");
            return;
        }
        self.scripts_bytes += body.len();
        self.scripts.insert(sha, Bytes::copy_from_slice(body));
    }

    /// INFO: `INFO proxy` alone is the proxy's; anything else goes to every master and is
    /// merged (see `Merge::Info`), with the proxy's `server` section in place of a node's and
    /// its own section added when asked for (no argument, default, all, everything, proxy).
    fn info(&mut self, c: &mut Client, cref: ClientRef, args: &FrameArgs<'_>, frame: Bytes) {
        let sections: Vec<String> = (1..args.argc())
            .map(|i| String::from_utf8_lossy(args.arg(i)).to_ascii_lowercase())
            .collect();
        let all = sections.is_empty()
            || sections
                .iter()
                .any(|s| matches!(s.as_str(), "default" | "all" | "everything"));
        let wants = |name: &str| all || sections.iter().any(|s| s == name);
        if !all && sections.iter().all(|s| s == "proxy") {
            let mut out = Vec::new();
            cluster_view::text(&mut out, &self.proxy_section(), c.proto);
            c.reply_now(&out);
            return;
        }
        let masters = self.topo.masters_sorted();
        if masters.is_empty() {
            c.reply_now(&no_master().to_frame());
            return;
        }
        let proxy = if wants("proxy") {
            self.proxy_section()
        } else {
            String::new()
        };
        let server = if wants("server") {
            self.server_section()
        } else {
            String::new()
        };
        let clients = if wants("clients") {
            self.clients_section()
        } else {
            String::new()
        };
        let seq = c.reserve_parts(
            masters.len(),
            Merge::Info {
                proxy,
                server,
                clients,
            },
        );
        for (k, m) in masters.into_iter().enumerate() {
            self.send_part(c, cref, seq, k as u32, Some(m), frame.clone(), None);
        }
    }

    /// The proxy's own settings, for PROXY CONFIG GET.
    fn config_pairs(&self) -> Vec<(String, String)> {
        let c = &self.cfg;
        let d = |d: Duration| match d.subsec_micros() % 1000 {
            0 => format!("{}ms", d.as_millis()),
            _ => format!("{}us", d.as_micros()),
        };
        vec![
            ("proxy_port".into(), c.proxy_port.to_string()),
            ("bind".into(), c.bind.clone()),
            ("redis_nodes".into(), c.redis_nodes.join(",")),
            (
                "address_map".into(),
                c.address_map
                    .iter()
                    .map(|(from, to)| format!("{from}={to}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("auto_redirect".into(), c.auto_redirect.to_string()),
            ("max_redirects".into(), c.max_redirects.to_string()),
            ("refresh_interval".into(), d(c.refresh_interval)),
            ("connect_timeout".into(), d(c.connect_timeout)),
            ("backend_timeout".into(), d(c.backend_timeout)),
            (
                "backend_connections".into(),
                c.backend_connections.to_string(),
            ),
            ("log_level".into(), c.log_level.clone()),
            (
                "cluster_view".into(),
                format!("{:?}", c.cluster_view).to_ascii_lowercase(),
            ),
            ("announce_address".into(), self.announce.clone()),
            (
                "allow_admin_commands".into(),
                c.allow_admin_commands.to_string(),
            ),
            (
                "read_from".into(),
                match c.read_from {
                    crate::config::ReadFrom::Master => "master",
                    crate::config::ReadFrom::Replica => "replica",
                    crate::config::ReadFrom::PreferReplica => "prefer_replica",
                }
                .into(),
            ),
            ("workers".into(), c.workers.to_string()),
            ("max_clients".into(), c.max_clients.to_string()),
            ("client_timeout".into(), d(c.client_timeout)),
            ("busy_poll".into(), d(c.busy_poll)),
            (
                "client_max_pending".into(),
                c.client_max_pending.to_string(),
            ),
            (
                "client_output_limit".into(),
                c.client_output_limit.to_string(),
            ),
            (
                "socket.tcp_nodelay".into(),
                c.socket.tcp_nodelay.to_string(),
            ),
            ("socket.tcp_keepalive".into(), d(c.socket.tcp_keepalive)),
            (
                "socket.send_buffer".into(),
                c.socket
                    .send_buffer
                    .map_or("default".into(), |n| n.to_string()),
            ),
            (
                "socket.recv_buffer".into(),
                c.socket
                    .recv_buffer
                    .map_or("default".into(), |n| n.to_string()),
            ),
            ("socket.backlog".into(), c.socket.backlog.to_string()),
            ("socket.reuse_port".into(), c.socket.reuse_port.to_string()),
        ]
    }

    /// INFO's `server` section, from the proxy: it is the server the client talks to; the
    /// cluster's Redis version stands beside the proxy's own.
    fn server_section(&self) -> String {
        let up = self.now.duration_since(self.started).as_secs();
        format!(
            "# Server\r\nredis_version:{}\r\nredis_mode:standalone\r\nproxy:redis-cluster-proxy\r\n\
             proxy_version:{}\r\nos:{} {}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n",
            self.server_version,
            crate::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            crate::config::split_host_port(&self.announce)
                .map(|(_, p)| p)
                .unwrap_or(self.cfg.proxy_port),
            up / 86400,
        )
    }

    /// INFO's `clients` section, over every worker. Fields the proxy cannot know truly (input and output buffer peaks) are
    /// left out; none of its clients track keys (CLIENT TRACKING is refused).
    fn clients_section(&mut self) -> String {
        let sums = self.sums();
        format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\
             tracking_clients:0\r\n",
            sums.connected, self.cfg.max_clients, sums.blocked,
        )
    }

    fn proxy_section(&mut self) -> String {
        let sums = self.sums();
        let s = sums.counters;
        format!(
            "# Proxy\r\nproxy_version:{}\r\nuptime_in_seconds:{}\r\nconnected_clients:{}\r\n\
             total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             redirects_moved:{}\r\nredirects_ask:{}\r\nretries_tryagain_clusterdown:{}\r\n\
             node_connection_failures:{}\r\ncluster_masters:{}\r\ncluster_nodes:{}\r\n\
             workers:{}\r\nauto_redirect:{}\r\n",
            crate::VERSION,
            self.now.duration_since(self.started).as_secs(),
            sums.connected,
            s.connections_received,
            s.commands,
            s.moved,
            s.ask,
            s.retries,
            s.node_failures,
            self.topo.masters().count(),
            self.topo
                .nodes()
                .iter()
                .filter(|n| n.role != Role::Gone)
                .count(),
            self.cfg.workers.max(1),
            if self.cfg.auto_redirect { "yes" } else { "no" },
        ) + &crate::alloc::allocations()
            .map(|n| format!("allocations:{n}\r\n"))
            .unwrap_or_default()
    }

    /// The process's figures, with this worker's as they are now.
    fn sums(&mut self) -> Sums {
        let blocked = self.blocked_clients();
        self.totals.sums(self.worker, self.stats, blocked)
    }

    /// Clients blocked on a blocking command (BLPOP...), not a subscriber's or a
    /// transaction's held connection; a client counts once.
    fn blocked_clients(&mut self) -> u64 {
        if self.busy_dedicated.is_empty() {
            return 0;
        }
        let mut blocked = std::mem::take(&mut self.blocked_scratch);
        blocked.clear();
        blocked.extend(
            self.busy_dedicated
                .iter()
                .filter(|(_, b)| self.is_blocking(*b))
                .map(|(c, _)| *c),
        );
        blocked.sort_unstable_by_key(|c| (c.idx, c.gen));
        blocked.dedup();
        let n = blocked.len() as u64;
        self.blocked_scratch = blocked;
        n
    }

    /// End of a turn: this worker's figures where the others' INFO reads them. Blocked
    /// clients are recounted (a sort of the held connections) only after a change, and at
    /// most every `BLOCKED_RECOUNT`, so a turn of a busy queue consumer costs a few stores.
    fn publish(&mut self) {
        let due = self.now.duration_since(self.blocked_counted) >= BLOCKED_RECOUNT;
        let blocked = if self.held_changed && due {
            self.held_changed = false;
            self.blocked_counted = self.now;
            Some(self.blocked_clients())
        } else {
            None
        };
        self.totals.publish(self.worker, self.stats, blocked);
    }

    fn hold(&mut self, held: (ClientRef, BackendRef)) {
        self.busy_dedicated.push(held);
        self.held_changed = true;
    }

    fn unhold(&mut self, keep: impl FnMut(&(ClientRef, BackendRef)) -> bool) {
        let before = self.busy_dedicated.len();
        self.busy_dedicated.retain(keep);
        self.held_changed |= self.busy_dedicated.len() != before;
    }

    /// SCAN over the cluster: the proxy's cursor names a master (in address order) and that
    /// master's cursor; the request goes to that master with its own cursor.
    fn scan(&mut self, c: &mut Client, cref: ClientRef, args: &FrameArgs<'_>) {
        let masters = self.topo.masters_sorted();
        // As Redis's strtoul: a negative number wraps around (-1 is the largest cursor).
        let cursor = std::str::from_utf8(args.arg(1)).ok().and_then(|s| {
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<i64>().ok().map(|n| n as u64))
        });
        let Some((idx, node_cursor)) = cursor.map(split::decode_scan_cursor) else {
            c.reply_now(&ProxyError::Other("ERR invalid cursor".into()).to_frame());
            return;
        };
        if masters.is_empty() {
            return c.reply_now(&no_master().to_frame());
        }
        let Some(&node) = masters.get(idx as usize) else {
            // A number the proxy did not hand out (or from before masters went away): the
            // iteration is over, as Redis takes any number for a cursor without an error.
            return c.reply_now(b"*2\r\n$1\r\n0\r\n*0\r\n");
        };
        let mut out = BytesMut::new();
        encode::array_header(&mut out, args.argc());
        encode::bulk(&mut out, args.arg(0));
        encode::bulk(&mut out, node_cursor.to_string().as_bytes());
        for i in 2..args.argc() {
            encode::bulk(&mut out, args.arg(i));
        }
        let merge = Merge::Scan {
            master: idx,
            masters: masters.len() as u32,
        };
        let seq = c.reserve_parts(1, merge);
        self.send_part(c, cref, seq, 0, Some(node), out.freeze(), None);
    }

    /// Sends one part of a split or fanned-out request; a part that cannot be sent is
    /// answered with its error, which the merge turns into the whole reply's error.
    #[allow(clippy::too_many_arguments)]
    fn send_part(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        seq: u64,
        part: u32,
        node: Option<NodeId>,
        frame: Bytes,
        slot: Option<Slot>,
    ) {
        let Some(node) = node else {
            let e = ProxyError::SlotUnserved(slot.map(|s| s.0).unwrap_or(0));
            c.complete(seq, part, Bytes::from(e.to_frame()));
            self.request_refresh(Duration::ZERO);
            return;
        };
        self.send_client(c, cref, seq, part, node, frame, slot, false);
    }

    /// Sends a client's request (or part of one) for reply place `seq`; a request that
    /// cannot be sent is answered with its error. `dedicated`: on a connection of its own
    /// (a blocking command).
    #[allow(clippy::too_many_arguments)]
    fn send_client(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        seq: u64,
        part: u32,
        node: NodeId,
        frame: Bytes,
        slot: Option<Slot>,
        dedicated: bool,
    ) {
        let req = InFlight {
            owner: Owner::Client {
                client: cref,
                seq,
                part,
            },
            req: frame,
            slot,
            attempt: Attempt::Sent { redirects: 0 },
            sent_at: self.now,
            dedicated,
            pinned: false,
        };
        if let Err(failed) = self.send(node, c.proto, cref.idx, req, None) {
            let (e, _) = *failed;
            c.complete(seq, part, Bytes::from(e.to_frame()));
        }
    }

    /// The node that serves a read for `master`'s slots under `read_from`: one of its
    /// replicas (round-robin over those not down), or the master itself.
    fn read_node(&mut self, master: NodeId) -> Result<NodeId, ProxyError> {
        if self.cfg.read_from == ReadFrom::Master {
            return Ok(master);
        }
        let reps = &self.topo.node(master).replicas;
        let n = reps.len();
        self.any_rr = self.any_rr.wrapping_add(1);
        let pick = (0..n)
            .map(|k| reps[(self.any_rr + k) % n])
            .find(|&r| !self.pool.is_down(r) && self.topo.node(r).role == Role::Replica);
        match (pick, self.cfg.read_from) {
            (Some(r), _) => Ok(r),
            (None, ReadFrom::PreferReplica) => Ok(master),
            (None, _) => Err(ProxyError::NodeUnavailable {
                node: self.topo.node(master).addr.clone(),
                why: "no replica of it is up (read_from: replica)".into(),
            }),
        }
    }

    fn any_master(&mut self) -> Option<NodeId> {
        let masters: usize = self.topo.masters().count();
        if masters == 0 {
            return None;
        }
        self.any_rr = self.any_rr.wrapping_add(1);
        // Prefer a master that is not known to be down.
        (0..masters)
            .filter_map(|k| self.topo.masters().nth((self.any_rr + k) % masters))
            .find(|&m| !self.pool.is_down(m))
            .or_else(|| self.topo.masters().nth(self.any_rr % masters))
    }

    /// Sends a client's new request to `node`, reserving its place in the reply order.
    fn send_new(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        node: NodeId,
        frame: Bytes,
        slot: Option<Slot>,
    ) {
        let seq = c.reserve();
        self.send_part(c, cref, seq, 0, Some(node), frame, slot);
    }

    /// Queues a request on the node's shared connection for this client (optionally preceded
    /// by ASKING). On failure the request comes back with the error.
    fn send(
        &mut self,
        node: NodeId,
        proto: Proto,
        client_idx: usize,
        req: InFlight,
        prefix: Option<Bytes>,
    ) -> Result<(), Box<(ProxyError, InFlight)>> {
        let chosen = if req.dedicated {
            self.dedicated_backend(node, proto)
        } else {
            self.backend_for(node, proto, client_idx)
        };
        let idx = match chosen {
            Ok(idx) => idx,
            Err(e) => return Err(Box::new((e, req))),
        };
        if let (true, Owner::Client { client, .. }) = (req.dedicated, &req.owner) {
            self.hold((
                *client,
                BackendRef {
                    idx,
                    gen: self.backends[idx].gen,
                },
            ));
        }
        let now = self.now;
        let timeout = self.cfg.backend_timeout;
        let b = &mut self.backends[idx];
        if let Some(p) = prefix {
            b.push(p, Owner::Internal, req.slot, now);
        }
        b.push_attempt(req.req, req.owner, req.slot, req.attempt, now);
        if !b.timer_armed && !timeout.is_zero() && !b.dedicated {
            b.timer_armed = true;
            let gen = b.gen;
            self.timers
                .add(now + timeout, TimerKind::Backend { idx, gen });
        }
        self.mark_backend(idx);
        Ok(())
    }

    /// The shared connection a client's requests to `node` use: always the same one for the
    /// same client, so its requests to one node are executed in the order it sent them.
    fn backend_for(
        &mut self,
        node: NodeId,
        proto: Proto,
        client_idx: usize,
    ) -> Result<usize, ProxyError> {
        let p = proto_index(proto);
        let places = self.cfg.backend_connections;
        let set = &mut self.pool.node(node).sets[p];
        if set.len() != places {
            set.resize(places, None);
        }
        let i = client_idx % places;
        if let Some(r) = set[i] {
            return Ok(r.idx);
        }
        let idx = self.connect_one(node, proto)?;
        let gen = self.backends[idx].gen;
        self.pool.node(node).sets[p][i] = Some(BackendRef { idx, gen });
        Ok(idx)
    }

    /// A connection of its own for a blocking command: an idle dedicated one to the node, or
    /// a new one. Bounded, so clients cannot open connections to the nodes without limit.
    fn dedicated_backend(&mut self, node: NodeId, proto: Proto) -> Result<usize, ProxyError> {
        let p = proto_index(proto);
        while let Some(r) = self.pool.node(node).idle_dedicated[p].pop() {
            if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                return Ok(r.idx);
            }
        }
        let open = self.backends.iter().filter(|(_, b)| b.dedicated).count();
        if open >= MAX_DEDICATED {
            return Err(ProxyError::Other(format!(
                "ERR too many blocking commands in progress through the proxy ({MAX_DEDICATED})"
            )));
        }
        let idx = self.connect_one(node, proto)?;
        self.backends[idx].dedicated = true;
        Ok(idx)
    }

    /// After a reply: a dedicated connection with nothing left in flight goes back to the
    /// node's idle list (or is closed when enough are idle).
    fn release_dedicated(&mut self, idx: usize) {
        let Some(b) = self.backends.get(idx) else {
            return;
        };
        // Held by a transaction or a subscriber: never lent while theirs.
        if !b.dedicated || !b.inflight.is_empty() || b.pinned || b.stream_to.is_some() {
            return;
        }
        let (node, proto, r) = (b.node, b.proto, BackendRef { idx, gen: b.gen });
        let tainted = b.tainted;
        self.unhold(|(_, d)| *d != r);
        if tainted {
            self.close_backend(idx);
            return;
        }
        let idle = &mut self.pool.node(node).idle_dedicated[proto_index(proto)];
        if idle.contains(&r) {
            return;
        }
        if idle.len() < MAX_IDLE_DEDICATED {
            idle.push(r);
        } else {
            self.close_backend(idx);
        }
    }

    /// Closes a connection that carries nothing anyone waits for.
    fn close_backend(&mut self, idx: usize) {
        self.take_backend(idx);
    }

    /// Takes a connection out of the slab, the poll and the pool; what it carried is the
    /// caller's to settle.
    fn take_backend(&mut self, idx: usize) -> Option<Backend> {
        if !self.backends.contains(idx) {
            return None;
        }
        let mut b = self.backends.remove(idx);
        b.deregister(&self.registry);
        self.pool
            .remove(b.node, b.proto, BackendRef { idx, gen: b.gen });
        Some(b)
    }

    /// A client left: the blocking commands it was waiting on would hold their connections
    /// forever (BLPOP 0), so those connections are closed.
    fn client_gone(&mut self, cref: ClientRef) {
        if self.busy_dedicated.is_empty() {
            return;
        }
        let mine: Vec<BackendRef> = self
            .busy_dedicated
            .iter()
            .filter(|(c, _)| *c == cref)
            .map(|(_, b)| *b)
            .collect();
        self.unhold(|(c, _)| *c != cref);
        for r in mine {
            if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
                debug!("closing the blocking command of a departed client");
                self.close_backend(r.idx);
            }
        }
    }

    /// Starts one connection to the node (not yet in any pool list).
    fn connect_one(&mut self, node: NodeId, proto: Proto) -> Result<usize, ProxyError> {
        let n = self.topo.node(node);
        if !self.pool.may_connect(node, self.now) {
            return Err(ProxyError::NodeUnavailable {
                node: n.addr.clone(),
                why: "its last connection failed; retrying shortly".into(),
            });
        }
        let Some(addr) = n.sockaddr else {
            return Err(ProxyError::NodeUnavailable {
                node: n.addr.clone(),
                why: "its address does not resolve".into(),
            });
        };
        let entry = self.backends.vacant_entry();
        let idx = entry.key();
        self.next_gen += 1;
        let gen = self.next_gen;
        match Backend::connect(
            &self.registry,
            backend_token(idx),
            gen,
            node,
            addr,
            proto,
            self.cfg.read_from != ReadFrom::Master,
            &self.cfg.socket,
            self.now,
        ) {
            Ok(mut b) => {
                b.timer_armed = true;
                entry.insert(b);
                self.timers.add(
                    self.now + self.cfg.connect_timeout,
                    TimerKind::Backend { idx, gen },
                );
                debug!(
                    "connecting to node {} ({proto:?})",
                    self.topo.node(node).addr
                );
                Ok(idx)
            }
            Err(e) => {
                let addr = self.topo.node(node).addr.clone();
                warn!("cannot connect to node {addr}: {e}");
                self.pool.mark_down(node, self.now);
                self.request_refresh(Duration::ZERO);
                Err(ProxyError::NodeUnavailable {
                    node: addr,
                    why: e.to_string(),
                })
            }
        }
    }

    /// A reply from `from` for `req`: redirect it, or deliver it.
    fn on_reply(
        &mut self,
        clients: &mut Slab<Client>,
        from: NodeId,
        proto: Proto,
        mut req: InFlight,
        frame: Bytes,
    ) {
        let (client, seq, part) = match req.owner {
            Owner::Client { client, seq, part } => (client, seq, part),
            Owner::Internal => {
                if frame.first() == Some(&b'-') {
                    debug!(
                        "node {} refused ASKING/READONLY: {}",
                        self.topo.node(from).addr,
                        String::from_utf8_lossy(&frame).trim_end()
                    );
                }
                return;
            }
            Owner::Hello => {
                if frame.first() == Some(&b'-') {
                    error!(
                        "node {} refused HELLO 3 (RESP3 clients will get RESP2 replies): {}",
                        self.topo.node(from).addr,
                        String::from_utf8_lossy(&frame).trim_end()
                    );
                }
                return;
            }
            Owner::Refresh => {
                self.refresh_done(from, &frame);
                return;
            }
            Owner::Stream(to) => {
                self.stream_frame(clients, to, frame);
                return;
            }
        };
        if frame.first() != Some(&b'-') || req.pinned {
            deliver(clients, &mut self.wake, client, seq, part, frame);
            return;
        }
        let kind = classify_error(&frame);
        let next = inflight::on_error(
            req.attempt,
            kind.clone(),
            self.cfg.auto_redirect,
            self.cfg.max_redirects,
            self.now,
        );
        let from_addr = self.topo.node(from).addr.clone();
        match next {
            Next::Deliver => {
                let redirect = matches!(kind, ErrorKind::Redirect(_));
                // Passed on to the client; the proxy still learns from a MOVED.
                if let ErrorKind::Redirect(Redirect::Moved { slot, addr }) = kind {
                    let addr = full_addr(addr, &from_addr);
                    self.topo.set_owner(Slot(slot), &addr);
                    self.request_refresh(MOVED_REFRESH_DELAY);
                }
                let out = match self.addr_map.rewrite_redirect(&frame) {
                    Some(rewritten) if redirect => Bytes::from(rewritten),
                    _ => frame,
                };
                deliver(clients, &mut self.wake, client, seq, part, out);
            }
            Next::Moved {
                slot,
                addr,
                attempt,
            } => {
                let addr = full_addr(addr, &from_addr);
                info!("MOVED slot {slot}: {from_addr} -> {addr}");
                self.stats.moved += 1;
                req.attempt = attempt;
                match self.topo.set_owner(Slot(slot), &addr) {
                    Some(node) => {
                        self.request_refresh(MOVED_REFRESH_DELAY);
                        self.resend(clients, node, proto, req, None);
                    }
                    None => fail(
                        clients,
                        &mut self.wake,
                        req,
                        ProxyError::Other("ERR node table full".into()),
                    ),
                }
            }
            Next::Ask { addr, attempt } => {
                let addr = full_addr(addr, &from_addr);
                debug!("ASK slot {:?}: {from_addr} -> {addr}", req.slot);
                self.stats.ask += 1;
                req.attempt = attempt;
                match self.topo.intern(&addr, Role::Master) {
                    Some(node) => {
                        self.resend(clients, node, proto, req, Some(Bytes::from_static(ASKING)))
                    }
                    None => fail(
                        clients,
                        &mut self.wake,
                        req,
                        ProxyError::Other("ERR node table full".into()),
                    ),
                }
            }
            Next::Retry { attempt } => {
                debug!(
                    "{} from {from_addr}; retrying after a backoff",
                    String::from_utf8_lossy(&frame).trim_end()
                );
                self.stats.retries += 1;
                if let Attempt::Backoff { until, .. } = attempt {
                    self.timers.add(until, TimerKind::Parked);
                }
                req.attempt = attempt;
                if matches!(kind, ErrorKind::ClusterDown) {
                    self.request_refresh(Duration::ZERO);
                }
                self.parked.push((req, proto));
            }
            Next::LoadScript { attempt } => {
                let body = script_sha(&req.req).and_then(|sha| self.scripts.get(&sha).cloned());
                match body {
                    Some(body) => {
                        debug!("NOSCRIPT from {from_addr}: loading the script there and retrying");
                        req.attempt = attempt;
                        let mut load = BytesMut::new();
                        encode::command(&mut load, &[b"SCRIPT", b"LOAD", &body]);
                        self.resend(clients, from, proto, req, Some(load.freeze()));
                    }
                    None => deliver(clients, &mut self.wake, client, seq, part, frame),
                }
            }
            Next::GiveUp { max } => {
                let last = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
                warn!("giving up after {max} redirections: {last}");
                deliver(
                    clients,
                    &mut self.wake,
                    client,
                    seq,
                    part,
                    Bytes::from(ProxyError::TooManyRedirects { max, last }.to_frame()),
                );
            }
        }
    }

    /// A frame on a subscriber's connection, to its client. The unsubscription that leaves
    /// no subscription ends subscribed mode, as on Redis, and the connection is closed.
    fn stream_frame(&mut self, clients: &mut Slab<Client>, to: ClientRef, frame: Bytes) {
        // Frames read in one go behind the end of subscribed mode are not the client's.
        let Some(c) = clients
            .get_mut(to.idx)
            .filter(|c| c.gen == to.gen && c.pubsub.is_some())
        else {
            return;
        };
        // An echo is the proxy's, never the client's: it releases the reply it orders, or is
        // dropped when that went out already (subscribed mode ended before it came back).
        let released = match stream_mark(&frame) {
            Some(n) if c.stream_items.front().is_some_and(|(m, _)| *m == n) => {
                c.stream_items.pop_front().map(|(_, item)| item)
            }
            Some(_) => return,
            None => None,
        };
        match released {
            Some(item) => self.release(c, to.idx, item),
            None => c.reply_now(&frame),
        }
        if !c.dirty {
            c.dirty = true;
            self.wake.dirty_clients.push(to.idx);
        }
        if c.output_len() > self.wake.limits.hard_output {
            self.wake.kill.push((to, Kill::OutputLimit));
        }
        if let Some(els) = split::elements(&frame).map(|(_, e)| e) {
            let kind = els.first().map(|r| frame[r.clone()].to_ascii_lowercase());
            if let (Some(k), [_, _, n]) = (kind.as_deref(), &els[..]) {
                count_subscriptions(c, k, &frame[n.clone()]);
            }
            let unsub = kind
                .as_deref()
                .is_some_and(|k| k.ends_with(b"unsubscribe\r\n") && k.starts_with(b"$"));
            if unsub && els.len() == 3 && &frame[els[2].clone()] == b":0\r\n" {
                // Subscribed mode is over and the connection closes: replies still waiting
                // for their echo were sent after this unsubscription, so they follow it now.
                // The next command (waiting since the unsubscription) runs as on any connection.
                self.leave_stream(c, to.idx);
            }
        }
    }

    fn release(&mut self, c: &mut Client, idx: usize, item: StreamItem) {
        match item {
            StreamItem::Reply(reply) => c.reply_now(&reply),
            StreamItem::Resume => self.end_stream_wait(c, idx),
            StreamItem::Leave(local) => {
                self.leave_stream(c, idx);
                self.answer_quit_or_reset(c, local);
            }
        }
    }

    /// Subscribed mode is over: what still waits for its turn follows at once (it was sent
    /// after what ended it), and the subscription connection closes.
    fn leave_stream(&mut self, c: &mut Client, idx: usize) {
        if let Some(r) = c.pubsub.take() {
            self.unhold(|(_, b)| *b != r);
            self.close_backend(r.idx);
        }
        while let Some((_, item)) = c.stream_items.pop_front() {
            self.release(c, idx, item);
        }
        c.subscriptions = [0; 3];
        c.stream_busy = false;
        self.end_stream_wait(c, idx);
    }

    fn end_stream_wait(&mut self, c: &mut Client, idx: usize) {
        c.stream_wait = false;
        if c.paused && c.wants_input(&self.wake.limits) {
            c.paused = false;
            self.wake.resume_clients.push(idx);
        }
    }

    fn resend(
        &mut self,
        clients: &mut Slab<Client>,
        node: NodeId,
        proto: Proto,
        req: InFlight,
        prefix: Option<Bytes>,
    ) {
        let client_idx = match req.owner {
            Owner::Client { client, .. } => {
                // Its client left: a re-send would only run a command nobody waits for (a
                // BLPOP taking an element no one receives).
                if clients.get(client.idx).is_none_or(|c| c.gen != client.gen) {
                    return;
                }
                client.idx
            }
            _ => 0,
        };
        if let Err(failed) = self.send(node, proto, client_idx, req, prefix) {
            let (e, req) = *failed;
            fail(clients, &mut self.wake, req, e);
        }
    }

    fn resend_parked(&mut self, clients: &mut Slab<Client>) {
        let now = self.now;
        let parked = std::mem::take(&mut self.parked);
        for (mut req, proto) in parked {
            let Attempt::Backoff { redirects, until } = req.attempt else {
                continue;
            };
            if until > now {
                self.parked.push((req, proto));
                continue;
            }
            req.attempt = Attempt::Sent { redirects };
            let node = match req.slot {
                Some(s) => self.topo.owner(s),
                None => self.any_master(),
            };
            match node {
                Some(node) => self.resend(clients, node, proto, req, None),
                None => {
                    let e = ProxyError::SlotUnserved(req.slot.map(|s| s.0).unwrap_or(0));
                    fail(clients, &mut self.wake, req, e);
                }
            }
        }
    }

    /// Drops a broken connection: its requests fail with an error naming the node, the node
    /// is marked down (new connections wait out a backoff), and the topology is refreshed.
    fn backend_failed(&mut self, clients: &mut Slab<Client>, idx: usize, why: &str) {
        let Some(mut b) = self.take_backend(idx) else {
            return;
        };
        let addr = self.topo.node(b.node).addr.clone();
        // A node closing an idle connection (its own `timeout`) is not a node failure.
        let failure = matches!(b.state, BackendState::Connecting { .. }) || !b.inflight.is_empty();
        let wait = if failure {
            self.stats.node_failures += 1;
            self.pool.mark_down(b.node, self.now)
        } else {
            Duration::ZERO
        };
        self.unhold(|(_, d)| d.idx != idx || d.gen != b.gen);
        match b.state {
            BackendState::Connecting { .. } => {
                warn!("cannot connect to node {addr}: {why} (retry in {wait:?})")
            }
            BackendState::Ready => warn!(
                "connection to node {addr} lost: {why} ({} requests in flight failed)",
                b.inflight.len()
            ),
        }
        if let Some(to) = b.stream_to {
            // The subscriber's connection is gone, and its subscriptions with it: closing the
            // client lets it reconnect and subscribe again, as after a server restart.
            self.wake.kill.push((to, Kill::SubscriptionLost));
        }
        for req in b.inflight.drain(..) {
            match req.owner {
                Owner::Client { .. } => {
                    let e = ProxyError::NodeUnavailable {
                        node: addr.clone(),
                        why: why.to_string(),
                    };
                    fail(clients, &mut self.wake, req, e);
                }
                Owner::Refresh => {
                    warn!("topology refresh from {addr} failed: {why}");
                    self.refresh = RefreshState::Idle;
                    self.request_refresh(Duration::ZERO);
                }
                Owner::Internal | Owner::Hello => {}
                Owner::Stream(to) => self.wake.kill.push((to, Kill::SubscriptionLost)),
            }
        }
        if failure {
            self.request_refresh(Duration::ZERO);
        }
    }

    /// A backend's timer: connect timeout while connecting, reply timeout once ready.
    fn check_backend(&mut self, clients: &mut Slab<Client>, idx: usize, gen: u64) {
        let now = self.now;
        let (connect_to, reply_to) = (self.cfg.connect_timeout, self.cfg.backend_timeout);
        let Some(b) = self.backends.get_mut(idx).filter(|b| b.gen == gen) else {
            return;
        };
        b.timer_armed = false;
        let deadline = match b.state {
            BackendState::Connecting { since } => Some((since + connect_to, "connect timeout")),
            BackendState::Ready if !reply_to.is_zero() && !b.dedicated => b
                .inflight
                .front()
                .map(|r| (r.sent_at + reply_to, "no reply within backend_timeout")),
            BackendState::Ready => None,
        };
        match deadline {
            Some((at, why)) if at <= now => self.backend_failed(clients, idx, why),
            Some((at, _)) => {
                b.timer_armed = true;
                self.timers.add(at, TimerKind::Backend { idx, gen });
            }
            None => {}
        }
    }

    /// Asks for a refresh no later than `delay` from now; one refresh runs at a time.
    fn request_refresh(&mut self, delay: Duration) {
        let at = self.now + delay;
        match self.refresh {
            RefreshState::Scheduled { at: cur } if cur <= at => {}
            RefreshState::Running => self.refresh_again |= delay < self.cfg.refresh_interval,
            _ => {
                self.refresh = RefreshState::Scheduled { at };
                self.timers.add(at, TimerKind::Refresh);
            }
        }
    }

    fn degraded(&self) -> bool {
        self.topo.uncovered() > 0 || self.topo.masters().any(|m| self.pool.is_down(m))
    }

    /// Sends CLUSTER NODES to a known node that is not down (rotating), falling back to the
    /// configured seeds, so the view survives the loss of any one node, seeds included.
    fn start_refresh(&mut self) {
        // While degraded, down masters whose backoff has passed are probed with a connection,
        // so one that comes back is used again without waiting for a client to try it.
        if self.degraded() {
            let down: Vec<NodeId> = self
                .topo
                .masters()
                .filter(|&m| self.pool.is_down(m) && self.pool.may_connect(m, self.now))
                .collect();
            for m in down {
                let _ = self.backend_for(m, Proto::Resp2, 0);
            }
        }
        let mut candidates: Vec<NodeId> = self
            .topo
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role != Role::Gone)
            .map(|(i, _)| NodeId(i as u16))
            .filter(|&id| !self.pool.is_down(id))
            .collect();
        if candidates.is_empty() {
            let seeds = self.seeds.clone();
            for s in seeds {
                let id = self.topo.intern(&s, Role::Gone);
                if let Some(id) = id.filter(|&id| self.pool.may_connect(id, self.now)) {
                    candidates.push(id);
                }
            }
        }
        self.refresh_rr = self.refresh_rr.wrapping_add(1);
        let n = candidates.len();
        for k in 0..n {
            let node = candidates[(self.refresh_rr + k) % n];
            let req = InFlight {
                owner: Owner::Refresh,
                req: Bytes::from_static(CLUSTER_NODES),
                slot: None,
                attempt: Attempt::Sent { redirects: 0 },
                sent_at: self.now,
                dedicated: false,
                pinned: false,
            };
            if self
                .send(node, Proto::Resp2, self.refresh_rr, req, None)
                .is_ok()
            {
                trace!("topology refresh from {}", self.topo.node(node).addr);
                self.refresh = RefreshState::Running;
                return;
            }
        }
        warn!("topology refresh: no node could be asked; retrying");
        self.refresh = RefreshState::Idle;
        self.request_refresh(DEGRADED_REFRESH_SLOW);
    }

    fn refresh_done(&mut self, from: NodeId, frame: &[u8]) {
        self.refresh = RefreshState::Idle;
        let asked = self.topo.node(from).addr.clone();
        let parsed = value::decode(frame)
            .map_err(|e| e.to_string())
            .and_then(|v| match v {
                value::Value::Str(t) => {
                    topology::parse_cluster_nodes(&String::from_utf8_lossy(&t), &asked)
                }
                value::Value::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
                _ => Err("CLUSTER NODES reply is not text".into()),
            });
        match parsed {
            Ok(ranges) if !ranges.is_empty() => {
                let change = self.topo.apply(&ranges);
                if !change.is_empty() {
                    info!(
                        "topology from {asked}: {} slots changed owner{}{}",
                        change.slots_moved,
                        if change.nodes_added.is_empty() {
                            String::new()
                        } else {
                            format!(", nodes added {:?}", change.nodes_added)
                        },
                        if change.nodes_gone.is_empty() {
                            String::new()
                        } else {
                            format!(", nodes gone {:?}", change.nodes_gone)
                        },
                    );
                }
                self.close_gone_idle();
            }
            Ok(_) => warn!("topology refresh from {asked}: the node reports no slots"),
            Err(e) => warn!("topology refresh from {asked} failed: {e}"),
        }
        let degraded = self.degraded();
        let next = if degraded || self.refresh_again {
            let since = *self.degraded_since.get_or_insert(self.now);
            if self.now.duration_since(since) > DEGRADED_FAST_FOR {
                DEGRADED_REFRESH_SLOW
            } else {
                DEGRADED_REFRESH
            }
        } else {
            self.cfg.refresh_interval
        };
        if !degraded {
            self.degraded_since = None;
        }
        self.refresh_again = false;
        self.request_refresh(next);
    }

    /// Closes idle connections to nodes that left the cluster.
    fn close_gone_idle(&mut self) {
        let gone: Vec<usize> = self
            .backends
            .iter()
            .filter(|(_, b)| {
                b.inflight.is_empty() && !b.pinned && self.topo.node(b.node).role == Role::Gone
            })
            .map(|(i, _)| i)
            .collect();
        for idx in gone {
            let Some(b) = self.take_backend(idx) else {
                continue;
            };
            if let Some(to) = b.stream_to {
                // Its subscriptions leave with the node: the client reconnects and subscribes
                // again, as after a restart.
                self.wake.kill.push((to, Kill::SubscriptionLost));
            }
            debug!(
                "closed connection to departed node {}",
                self.topo.node(b.node).addr
            );
        }
    }
}

/// The digest an EVALSHA/EVALSHA_RO request names, lower-cased.
fn script_sha(req: &[u8]) -> Option<String> {
    let mut p = crate::resp::request::RequestParser::new();
    match p.parse(req).ok()?? {
        Frame::Multibulk { .. } => {}
        _ => return None,
    }
    let args = p.args();
    let name = req.get(args.first()?.clone())?;
    if !name.eq_ignore_ascii_case(b"EVALSHA") && !name.eq_ignore_ascii_case(b"EVALSHA_RO") {
        return None;
    }
    let sha = req.get(args.get(1)?.clone())?;
    Some(String::from_utf8_lossy(sha).to_ascii_lowercase())
}

/// A client's CLIENT LIST flags and transaction length, as Redis would show them.
struct LineFlags {
    flags: &'static str,
    /// Commands queued in MULTI, or -1.
    multi: i64,
}

/// One CLIENT LIST line, in Redis's field order.
/// Keeps a subscriber's counts from a node's (un)subscription reply: `kind` is its first
/// element (`$9\r\nsubscribe\r\n`, lower-cased), `count` its last (`:2\r\n`). A channel or
/// pattern reply counts both together, a shard channel reply those alone.
fn count_subscriptions(c: &mut Client, kind: &[u8], count: &[u8]) {
    let Some(n) = count
        .strip_prefix(b":")
        .and_then(|n| n.strip_suffix(b"\r\n"))
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok())
    else {
        return;
    };
    let name = kind.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
    let [sub, psub, ssub] = &mut c.subscriptions;
    match name {
        b"subscribe\r\n" | b"unsubscribe\r\n" => *sub = n.saturating_sub(*psub),
        b"psubscribe\r\n" | b"punsubscribe\r\n" => *psub = n.saturating_sub(*sub),
        b"ssubscribe\r\n" | b"sunsubscribe\r\n" => *ssub = n,
        _ => {}
    }
}

/// CLIENT LIST [TYPE normal|...] [ID id ...]: every proxy client is "normal".
fn list_filter(argv: &[Vec<u8>]) -> Result<ListFilter, Vec<u8>> {
    let mut f = ListFilter::default();
    let mut i = 2;
    while i + 1 < argv.len() {
        if argv[i].eq_ignore_ascii_case(b"TYPE") {
            f.kind = Some(client_type_arg(&argv[i + 1])?);
            i += 2;
        } else if argv[i].eq_ignore_ascii_case(b"ID") {
            for a in &argv[i + 1..] {
                if let Some(id) = std::str::from_utf8(a).ok().and_then(|s| s.parse().ok()) {
                    f.ids.push(id);
                }
            }
            break;
        } else {
            let mut out = Vec::new();
            encode::error(&mut out, "ERR syntax error");
            return Err(out);
        }
    }
    Ok(f)
}

/// A TYPE argument, or Redis's error for one it does not know.
fn client_type_arg(name: &[u8]) -> Result<ClientType, Vec<u8>> {
    ClientType::parse(name).ok_or_else(|| {
        let mut out = Vec::new();
        let msg = format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        );
        encode::error(&mut out, &msg);
        out
    })
}

fn client_type(c: &Client) -> ClientType {
    if c.pubsub.is_some() {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

/// The whole CLIENT LIST, oldest client first as Redis lists them.
fn lines_reply(mut lines: Vec<(u64, String)>, proto: Proto) -> Vec<u8> {
    lines.sort_unstable_by_key(|(id, _)| *id);
    let text: String = lines.into_iter().map(|(_, l)| l).collect();
    let mut out = Vec::with_capacity(text.len() + 16);
    cluster_view::text(&mut out, &text, proto);
    out
}

/// CLIENT KILL's filters and SKIPME, or the error to answer.
fn kill_filter(argv: &[Vec<u8>]) -> Result<(KillFilter, bool), Vec<u8>> {
    let mut out = Vec::new();
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut f = KillFilter {
        user_ok: true,
        ..KillFilter::default()
    };
    if argv.len() == 3 {
        // The old form can kill the asking client itself.
        f.addr = Some(text(&argv[2]));
        f.first_only = true;
        return Ok((f, false));
    }
    let mut skipme = true;
    let mut i = 2;
    while i + 1 < argv.len() {
        let (k, v) = (&argv[i], text(&argv[i + 1]));
        if k.eq_ignore_ascii_case(b"ID") {
            match v.parse::<u64>() {
                Ok(n) => f.id = Some(n),
                Err(_) => {
                    encode::error(&mut out, "ERR client-id should be greater than 0");
                    return Err(out);
                }
            }
        } else if k.eq_ignore_ascii_case(b"ADDR") {
            f.addr = Some(v);
        } else if k.eq_ignore_ascii_case(b"LADDR") {
            f.laddr = Some(v);
        } else if k.eq_ignore_ascii_case(b"USER") {
            f.user_ok &= v == "default";
        } else if k.eq_ignore_ascii_case(b"TYPE") {
            f.kind = Some(client_type_arg(&argv[i + 1])?);
        } else if k.eq_ignore_ascii_case(b"SKIPME") && v.eq_ignore_ascii_case("yes") {
            skipme = true;
        } else if k.eq_ignore_ascii_case(b"SKIPME") && v.eq_ignore_ascii_case("no") {
            skipme = false;
        } else {
            encode::error(&mut out, "ERR syntax error");
            return Err(out);
        }
        i += 2;
    }
    if i != argv.len() {
        encode::error(&mut out, "ERR syntax error");
        return Err(out);
    }
    Ok((f, skipme))
}

/// The old form answers OK or no such client; the filter form, how many were killed.
fn kill_reply(first_only: bool, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match (first_only, n) {
        (true, 0) => encode::error(&mut out, "ERR No such client"),
        (true, _) => encode::simple(&mut out, "OK"),
        (false, n) => encode::integer(&mut out, n as i64),
    }
    out
}

fn client_line(c: &Client, now: Instant, cmd: &str, f: LineFlags) -> String {
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
         multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll={} omem={} \
         tot-mem={} events=r{} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.local_addr,
        c.fd(),
        c.name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
        now.duration_since(c.since).as_secs(),
        now.duration_since(c.last_request).as_secs(),
        f.flags,
        c.subscriptions[0],
        c.subscriptions[1],
        c.subscriptions[2],
        f.multi,
        c.rbuf.len(),
        c.rbuf.capacity(),
        c.output_len(),
        c.replies_waiting(),
        c.output_len(),
        c.rbuf.capacity() + c.output_len(),
        if c.has_output() { "w" } else { "" },
        cmd.to_ascii_lowercase(),
        if c.proto == Proto::Resp3 { 3 } else { 2 },
        c.lib_name.as_deref().unwrap_or(""),
        c.lib_ver.as_deref().unwrap_or(""),
    )
}

/// A MONITOR line: `+<secs>.<micros> [0 <addr>] "arg" ...`, arguments quoted as Redis does.
fn monitor_line(out: &mut BytesMut, addr: SocketAddr, args: &FrameArgs<'_>) {
    use std::fmt::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!("+{}.{:06} [0 {addr}]", now.as_secs(), now.subsec_micros());
    for i in 0..args.argc() {
        line.push_str(" \"");
        for &b in args.arg(i) {
            match b {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                7 => line.push_str("\\a"),
                8 => line.push_str("\\b"),
                b if b.is_ascii_graphic() || b == b' ' => line.push(b as char),
                b => {
                    let _ = write!(line, "\\x{b:02x}");
                }
            }
        }
        line.push('"');
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// Redis-style glob: `*`, `?`, and literal characters (enough for CONFIG GET patterns).
/// Iterative, backtracking to the last star only: linear in practice, never recursive.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// How often idle clients are looked for: often enough that one is closed within a tenth of
/// the timeout (at least 10 ms, at most 1 s) after it expires; every second without one.
fn sweep_period(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A client this long without a request gives its buffers back.
const BUFFER_IDLE: Duration = Duration::from_secs(1);

/// The PING argument that orders a subscriber's stream (`stream_push`).
const STREAM_MARK: &str = "__rcp_order__:";

/// The mark of a frame from a subscription connection that echoes a `stream_push` PING:
/// RESP2 subscribed mode answers `["pong", arg]`, RESP3 (and a connection no longer
/// subscribed) the argument itself.
fn stream_mark(frame: &[u8]) -> Option<u64> {
    // Never a message or a push, whatever its payload.
    let echo_form = frame.starts_with(b"*2\r\n$4\r\npong\r\n") || frame.first() == Some(&b'$');
    if frame.len() >= 80 || !echo_form {
        return None;
    }
    let body = frame.strip_suffix(b"\r\n")?;
    let at = body
        .windows(STREAM_MARK.len())
        .rposition(|w| w == STREAM_MARK.as_bytes())?;
    crate::resp::parse_int(&body[at + STREAM_MARK.len()..]).and_then(|n| u64::try_from(n).ok())
}

/// The refusal of a shard channel on another node than the subscription connection's.
fn other_shard(cmd: &str) -> Vec<u8> {
    format!(
        "-ERR {cmd} of a channel on another shard than this connection's subscriptions is not \
         supported through the proxy yet; use another connection for it\r\n"
    )
    .into_bytes()
}

fn no_master() -> ProxyError {
    ProxyError::Other("CLUSTERDOWN no master is known to the proxy".into())
}

/// A redirect's address, completed with the replying node's host when the cluster left it
/// out (`:7001`, from a node that does not know its own IP).
fn full_addr(addr: &str, from: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => {
            let host = crate::config::split_host_port(from)
                .map(|(h, _)| h)
                .unwrap_or("127.0.0.1");
            format!("{host}:{port}")
        }
        None => addr.to_string(),
    }
}

/// The connection a request leaves on, for `Client::must_wait`; None for requests that
/// no node connection carries in order with others (answered by the proxy, refused, or a
/// subscriber's, whose replies stream).
fn lane(c: &Client, (route, cmd): &(Route, Option<&'static Command>)) -> Option<Lane> {
    let name = cmd.map_or("", |c| c.name);
    if c.tx.is_some() || is_tx_command(name) {
        let opens = c.tx.is_none() && matches!(name, "MULTI" | "WATCH");
        return Some(if opens { Lane::NewPinned } else { Lane::Pinned });
    }
    if c.pubsub.is_some() {
        return None;
    }
    match route {
        Route::Local(_) | Route::Refuse(_) => None,
        Route::Blocking(_) => Some(Lane::Dedicated),
        _ if matches!(name, "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE") => None,
        _ => Some(Lane::Shared),
    }
}

/// The commands that open, run or close a transaction (`Core::transaction` takes them).
fn is_tx_command(name: &str) -> bool {
    matches!(name, "MULTI" | "WATCH" | "EXEC" | "DISCARD" | "UNWATCH")
}

/// Puts a reply in its client's queue, if the client is still the one that asked.
fn deliver(
    clients: &mut Slab<Client>,
    wake: &mut Wake,
    cref: ClientRef,
    seq: u64,
    part: u32,
    frame: Bytes,
) {
    let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
        return;
    };
    if !c.complete(seq, part, frame) {
        error!(
            "client {}: reply for an unknown request {seq} dropped",
            c.id
        );
        return;
    }
    if !c.dirty {
        c.dirty = true;
        wake.dirty_clients.push(cref.idx);
    }
    if c.output_len() > wake.limits.hard_output {
        wake.kill.push((cref, Kill::OutputLimit));
    } else if c.paused && c.wants_input(&wake.limits) {
        c.paused = false;
        wake.resume_clients.push(cref.idx);
    }
}

fn fail(clients: &mut Slab<Client>, wake: &mut Wake, req: InFlight, e: ProxyError) {
    if let Owner::Client { client, seq, part } = req.owner {
        deliver(clients, wake, client, seq, part, Bytes::from(e.to_frame()));
    }
}

#[cfg(test)]
mod tests {
    use super::{glob_match, stream_mark};

    #[test]
    fn stream_marks_are_the_proxys_echoes_only() {
        let resp2 = b"*2\r\n$4\r\npong\r\n$15\r\n__rcp_order__:7\r\n";
        assert_eq!(stream_mark(resp2), Some(7));
        assert_eq!(stream_mark(b"$16\r\n__rcp_order__:12\r\n"), Some(12));
        // A message or push that carries the same text is the client's.
        let message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$15\r\n__rcp_order__:7\r\n";
        assert_eq!(stream_mark(message), None);
        assert_eq!(
            stream_mark(b">2\r\n$4\r\npong\r\n$15\r\n__rcp_order__:7\r\n"),
            None
        );
        assert_eq!(stream_mark(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"), None);
        assert_eq!(stream_mark(b""), None);
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"max*", b"max_clients"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"?ind", b"bind"));
        assert!(glob_match(b"*_port", b"proxy_port"));
        assert!(!glob_match(b"max*", b"bind"));
        assert!(!glob_match(b"a?", b"a"));
        // A pathological pattern ends at once (it used to take exponential time).
        let p = [b"*".repeat(60), b"Z".to_vec()].concat();
        assert!(!glob_match(&p, &b"a".repeat(60)));
    }
}
