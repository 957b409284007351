//! The event loop: poll, dispatch by token, timers, and the flush pass that writes each
//! dirty connection once per turn; `Core`, everything but the clients, whose methods live
//! in the feature modules (`input`, `dispatch`, `send`, `reply`, `refresh`, `tx`, `pubsub`,
//! `local`). docs/architecture.md walks one request through them.
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use log::{info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::conn::backend::{self, Backend};
use crate::conn::client::{self, Client, Limits};
use crate::conn::net::{self};
use crate::conn::pool::{BackendRef, Pool};
use crate::crew::Gather;
use crate::crew::{Crew, WAKER};
use crate::inflight::{ClientRef, InFlight};
use crate::resp::encode::Proto;
use crate::route::Local;
use crate::signals;
use crate::timer::{TimerKind, Timers};
use crate::topology::RefreshState;
use crate::topology::{AddressMap, Topology};
use crate::totals::BLOCKED_RECOUNT;
use crate::totals::{Counters, Totals};

const LISTENER: Token = Token(usize::MAX);
/// Odd, as node tokens are, but never one: node slab indexes stay far below it.
pub(crate) const TLS_LISTENER: Token = Token(usize::MAX - 2);
/// Connections accepted per listener event before other sockets get their turn.
pub(crate) const ACCEPT_BUDGET: usize = 256;
/// How soon a failed accept (out of file descriptors) is tried again.
pub(crate) const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The longest an idle reactor sleeps before looking for a stop signal another thread took.
const SIGNAL_CHECK: Duration = Duration::from_secs(1);
/// How long a stopping proxy waits for the replies it owes, and how often it looks.
const DRAIN: Duration = Duration::from_secs(2);
const DRAIN_CHECK: Duration = Duration::from_millis(20);

pub(crate) fn client_token(idx: usize) -> Token {
    Token(idx << 1)
}

pub(crate) fn backend_token(idx: usize) -> Token {
    Token((idx << 1) | 1)
}

/// Everything but the client slab, so client handlers can borrow a client and the core at
/// the same time.
pub struct Core {
    pub(crate) registry: Registry,
    pub(crate) cfg: Config,
    pub(crate) backends: Slab<Backend>,
    pub(crate) pool: Pool,
    pub(crate) topo: Topology,
    pub(crate) addr_map: AddressMap,
    pub(crate) timers: Timers,
    pub(crate) now: Instant,
    pub(crate) next_gen: u64,
    pub(crate) next_client_id: u64,
    pub(crate) dirty_backends: Vec<usize>,
    /// Some client's output waits one turn (`Client::hold_output`): the next poll does not
    /// sleep.
    pub(crate) held_output: bool,
    pub(crate) wake: Wake,
    pub(crate) resume_backends: Vec<usize>,
    /// Requests waiting out a TRYAGAIN/CLUSTERDOWN backoff, with the protocol they use.
    pub(crate) parked: Vec<(InFlight, Proto)>,
    /// Requests waiting for their node or a new master (`hold.rs`), oldest first.
    pub(crate) held: std::collections::VecDeque<crate::inflight::Held>,
    /// How many requests each client has in `held`: its new requests wait behind them.
    pub(crate) held_by: std::collections::HashMap<ClientRef, u32>,
    /// A `TimerKind::Hold` is pending: one at a time.
    pub(crate) hold_armed: bool,
    pub(crate) refresh: RefreshState,
    /// A refresh was asked for while one was running.
    pub(crate) refresh_again: bool,
    pub(crate) degraded_since: Option<Instant>,
    pub(crate) seeds: Vec<String>,
    pub(crate) refresh_rr: usize,
    pub(crate) any_rr: usize,
    /// Scratch for the replies split off one backend read.
    pub(crate) replies: Vec<(InFlight, Bytes)>,
    pub(crate) server_version: String,
    /// The proxy's own address in the `proxy` cluster view.
    pub(crate) announce: String,
    /// This worker's counters for INFO, published to `totals` at the end of each turn.
    pub(crate) stats: Counters,
    /// Node reply times by command family and node, for /metrics (`latency`); published
    /// once a second.
    pub(crate) latency: crate::latency::Latency,
    pub(crate) latency_published: Instant,
    pub(crate) counts: crate::latency::Counts,
    pub(crate) started: Instant,
    pub(crate) totals: Arc<Totals>,
    pub(crate) worker: usize,
    /// `busy_dedicated` changed, or one of its connections stopped being pinned, this turn:
    /// the count of blocked clients is published again.
    pub(crate) held_changed: bool,
    /// Kept between publications of the blocked clients, so counting them allocates nothing.
    pub(crate) blocked_scratch: Vec<ClientRef>,
    /// When the blocked clients were last counted for `totals`.
    pub(crate) blocked_counted: Instant,
    /// Scripts loaded through the proxy (SCRIPT LOAD), by digest, to load again on a node
    /// that answers NOSCRIPT (a promoted replica, a restarted node).
    pub(crate) scripts: HashMap<String, Bytes>,
    pub(crate) scripts_bytes: usize,
    /// Requests answered once this turn's parsing is done (they need every client).
    /// The client's command name then is kept: by the time the list is rendered the client
    /// may have sent more.
    pub(crate) deferred: Vec<Deferred>,
    /// MONITOR clients, and this turn's lines for them.
    pub(crate) monitors: Vec<ClientRef>,
    /// The fan-in connections to every master: keyspace notifications, shard channels,
    /// tracking's invalidations (`fanin/`).
    pub(crate) fanin: crate::fanin::table::FanIn,
    /// When a client's TLS failure was last logged (at most one a second at info).
    pub(crate) tls_failure_logged: Option<Instant>,
    /// CLIENT TRACKING's table (`tracking/`).
    pub(crate) tracking: crate::tracking::table::Table,
    /// Clients whose next command waits for a CLIENT PAUSE to end (`pause/`).
    pub(crate) pause_held: crate::pause::word::Held,
    pub(crate) monitor_feed: BytesMut,
    /// Another worker has a MONITOR client (read once per turn): lines are kept for it.
    pub(crate) monitor_elsewhere: bool,
    /// PROXY SHUTDOWN was asked: the loop ends after this turn's writes.
    pub(crate) shutdown: bool,
    /// Client reads land here first, so buffers hold only what arrived.
    pub(crate) scratch: Box<[u8]>,
    /// The clients' users (`auth`); with no `auth`, the one `default` user, who may do
    /// anything and needs no password.
    pub(crate) users: crate::acl::Users,
    /// No `auth`: nothing to check on the request path.
    pub(crate) acl_open: bool,
    /// Protected mode is on: only loopback clients are served.
    pub(crate) protected: bool,
    /// When refused passwords were last logged, and how many since.
    pub(crate) auth_warned: Option<Instant>,
    pub(crate) auth_failures_unlogged: u64,
    /// When a node's NOAUTH was last logged.
    pub(crate) noauth_warned: Option<Instant>,
    /// Repeated warnings about one node, rate-limited (`lograte`).
    pub(crate) log_gate: crate::lograte::Gate,
    /// `backend_tls`'s client configuration, for every node connection.
    pub(crate) backend_tls: Option<crate::conn::tls::BackendTls>,
    /// `backend_auth`'s requests, sent first on every node connection.
    pub(crate) creds: Option<crate::auth::NodeCredentials>,
    /// Dedicated connections in use, with the client whose blocking command they carry.
    pub(crate) busy_dedicated: Vec<(ClientRef, BackendRef)>,
}

/// A request answered after the turn's parsing: who asked, its place in the reply order, what
/// it is, its arguments, and the client's command name when it asked.
pub(crate) type Deferred = (ClientRef, u64, Local, Vec<Vec<u8>>, &'static str);

/// What replies set in motion for clients: output to flush, clients to read again now
/// that their queue has room, clients over the output limit.
pub(crate) struct Wake {
    pub(crate) dirty_clients: Vec<usize>,
    /// Clients whose output `flush` holds for a turn; kept between turns so that holding
    /// allocates nothing.
    pub(crate) held_clients: Vec<usize>,
    pub(crate) resume_clients: Vec<usize>,
    /// Clients with a staged write whose stage is complete (`Core::run_staged`).
    pub(crate) staged: Vec<ClientRef>,
    /// Clients to disconnect, and why.
    pub(crate) kill: Vec<(ClientRef, Kill)>,
    pub(crate) limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    OutputLimit,
    SubscriptionLost,
}

pub struct Reactor {
    pub(crate) poll: Poll,
    pub(crate) listener: TcpListener,
    /// `tls_port`'s listener and the TLS configuration its clients get.
    pub(crate) tls_listener: Option<TcpListener>,
    pub(crate) tls_acceptor: Option<crate::conn::tls::TlsAcceptor>,
    /// Where the configuration came from (file, flags), for reloads, and the reload
    /// generation this worker has applied.
    pub(crate) source: Option<crate::config::Source>,
    pub(crate) reloads_seen: u64,
    pub(crate) clients: Slab<Client>,
    pub(crate) core: Core,
    /// A `TimerKind::Accept` is due.
    pub(crate) accept_again: bool,
    /// Stopping (SIGTERM/SIGINT): no new clients or requests, and exit once every reply
    /// due is written, or at this time.
    pub(crate) drain_until: Option<Instant>,
    /// The other workers, when there are any.
    pub(crate) crew: Option<Crew>,
    pub(crate) gathers: Vec<Gather>,
    pub(crate) next_ticket: u64,
}

impl Core {
    fn new(
        registry: Registry,
        cfg: Config,
        topo: Topology,
        server_version: String,
        announce: String,
        worker: usize,
        totals: Arc<Totals>,
    ) -> Core {
        let creds = cfg.backend_auth.as_ref().and_then(|a| {
            crate::auth::NodeCredentials::new(a.user.as_deref(), a.resolved.as_ref()?)
        });
        // Validated at start-up (`Users::from_config` in load_config): cannot fail here.
        let users = match &cfg.auth {
            // Never open on an error: a configuration that cannot be read lets no one in.
            Some(a) => {
                crate::acl::Users::from_config(a).unwrap_or_else(|_| crate::acl::Users::closed())
            }
            None => crate::acl::Users::open(),
        };
        let acl_open = cfg.auth.is_none();
        // Loaded once at start-up (`load_config`), where an error stops the start.
        let backend_tls = cfg
            .backend_tls
            .as_ref()
            .and_then(|t| crate::conn::tls::BackendTls::new(t).ok());
        // Refused peers are the non-loopback ones (`auth::protected_refuses`): this says
        // whether any is, for the bind address.
        let bind: std::net::IpAddr = cfg.bind.parse().unwrap_or([127, 0, 0, 1].into());
        let protected = crate::auth::protected_refuses(
            cfg.protected_mode,
            cfg.auth.is_some(),
            bind,
            [10, 0, 0, 1].into(),
        );
        let limits = Limits {
            max_pending: cfg.client_max_pending,
            soft_output: (cfg.client_output_limit / 8).max(64 * 1024),
            hard_output: cfg.client_output_limit,
        };
        let now = Instant::now();
        Core {
            registry,
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
                staged: Vec::new(),
                kill: Vec::new(),
                limits,
            },
            resume_backends: Vec::new(),
            parked: Vec::new(),
            held: std::collections::VecDeque::new(),
            held_by: std::collections::HashMap::new(),
            hold_armed: false,
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
            fanin: Default::default(),
            pause_held: Default::default(),
            tracking: Default::default(),
            tls_failure_logged: None,
            monitor_feed: BytesMut::new(),
            monitor_elsewhere: false,
            shutdown: false,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            busy_dedicated: Vec::new(),
            creds,
            backend_tls,
            users,
            acl_open,
            protected,
            auth_warned: None,
            auth_failures_unlogged: 0,
            noauth_warned: None,
            log_gate: Default::default(),
            stats: Counters::default(),
            latency: Default::default(),
            latency_published: Instant::now(),
            counts: Default::default(),
            started: now,
            totals,
            worker,
            held_changed: false,
            blocked_scratch: Vec::new(),
            blocked_counted: now,
        }
    }
}

/// The address the `proxy` cluster view announces: `announce_address`, else the bound
/// address (127.0.0.1 for a wildcard bind) and the listening port.
fn announce_address(cfg: &Config, ip: std::net::IpAddr, port: u16) -> String {
    cfg.announce_address.clone().unwrap_or_else(|| {
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            ip.to_string()
        };
        format!("{host}:{port}")
    })
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
        let mut listener =
            net::listen(addr, &cfg.socket).map_err(|e| net::listen_error(addr, e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let port = listener.local_addr().map_or(cfg.proxy_port, |a| a.port());
        let (tls_listener, tls_acceptor) =
            crate::conn::tls::tls_listener(&cfg, ip, poll.registry(), TLS_LISTENER)?;
        let announce = announce_address(&cfg, ip, port);
        let registry = poll.registry().try_clone()?;
        let mut core = Core::new(
            registry,
            cfg,
            topo,
            server_version,
            announce,
            worker,
            totals,
        );
        let now = core.now;
        if worker == 0 {
            // Discovery brought the first slot map before any reactor was made.
            let nodes = core.topo.nodes().len();
            core.totals.set_cluster(core.topo.masters().count(), nodes);
            core.totals.set_ready(true);
        }
        if core.protected && worker == 0 {
            warn!(
                "protected mode: bound to {} with no auth configured, so only loopback clients are served; set auth (a password or users) or protected_mode: false",
                core.cfg.bind
            );
        }
        // A first refresh soon after start: a cluster just created may not have gossiped
        // every replica to the seed yet. Then every refresh_interval.
        let first = core.cfg.refresh_interval.min(Duration::from_secs(2));
        core.request_refresh(first);
        let at = now + sweep_period(core.cfg.client_timeout);
        core.timers.add(at, TimerKind::ClientSweep);
        Ok(Reactor {
            poll,
            listener,
            tls_listener,
            tls_acceptor,
            source: None,
            reloads_seen: crate::signals::reload_generation(),
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

    /// The configuration's file and flags, so that SIGHUP and PROXY RELOAD can load it again.
    pub fn set_source(
        &mut self,
        path: Option<std::path::PathBuf>,
        overrides: Vec<(String, String)>,
    ) {
        self.source = Some((path, overrides));
    }

    /// The process-wide figures, for the metrics endpoint.
    pub fn totals(&self) -> Arc<Totals> {
        Arc::clone(&self.core.totals)
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
            if signals::reload_generation() != self.reloads_seen {
                self.reload();
            }
            let timeout = self.poll_timeout();
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
            self.turn(&events);
            if self.core.shutdown {
                info!("shutting down (PROXY SHUTDOWN)");
                return Ok(());
            }
        }
    }

    /// How long the next poll may sleep: not at all while clients or nodes wait to be
    /// resumed, else until the nearest timer, and never past the next look for a stop
    /// signal (or a recount of blocked clients put off by `publish_counters`).
    fn poll_timeout(&self) -> Option<Duration> {
        let timeout = if self.core.wake.resume_clients.is_empty()
            && self.core.resume_backends.is_empty()
            && self.core.wake.staged.is_empty()
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
        let check = if self.crew.is_some() && self.core.held_changed {
            check.min(BLOCKED_RECOUNT)
        } else {
            check
        };
        Some(timeout.map_or(check, |t| t.min(check)))
    }

    /// One turn: the poll's events, due timers, resumed connections, deferred answers and
    /// MONITOR lines, then the flush pass.
    fn turn(&mut self, events: &Events) {
        self.core.now = Instant::now();
        self.core.monitor_elsewhere =
            self.crew.is_some() && self.core.totals.monitors() > self.core.monitors.len();
        for ev in events.iter() {
            let t = ev.token();
            if t == LISTENER {
                self.accept_from(false);
            } else if t == TLS_LISTENER {
                self.accept_from(true);
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
                let readable = ev.is_readable() || closed;
                self.backend_event(t.0 >> 1, readable, ev.is_writable(), !closed);
            }
        }
        self.fire_timers();
        self.resume();
        if !self.core.wake.staged.is_empty() {
            self.core.run_staged(&mut self.clients);
        }
        self.run_deferred();
        self.feed_monitors();
        if self.crew.is_some() || self.core.cfg.metrics_address.is_some() {
            // Before the replies go out: whoever reads one and asks another worker
            // finds its command counted (and a scrape sees it).
            self.core.publish_counters();
        }
        self.flush();
        if self.crew.is_some() && self.core.held_changed {
            // Closing clients and failed connections in flush change the blocked ones.
            self.core.publish_counters();
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

    /// Stops taking clients and requests; what was taken is still answered (`drained`).
    pub(crate) fn start_drain(&mut self, sig: &str) {
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
        self.core.totals.set_ready(false);
        let _ = self.core.registry.deregister(&mut self.listener);
        if let Some(l) = self.tls_listener.as_mut() {
            let _ = self.core.registry.deregister(l);
        }
        // Input is taken only under this many pending replies: none now.
        self.core.wake.limits.max_pending = 0;
        self.drain_until = Some(Instant::now() + DRAIN);
    }

    /// Replies still owed, counting a client with unsent output as one at least; a blocked
    /// client's reply (BLPOP 0) and a subscriber's stream are not waited for.
    pub(crate) fn replies_due(&self) -> usize {
        self.clients
            .iter()
            .filter(|&(idx, c)| !self.core.holds_connection(ClientRef { idx, gen: c.gen }))
            .map(|(_, c)| c.pending().max(usize::from(c.output_len() > 0)))
            .sum()
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
                TimerKind::Hold => {
                    self.core.hold_armed = false;
                    self.core.release_held(&mut self.clients);
                }
                TimerKind::ClientSweep => self.sweep_idle_clients(),
                TimerKind::Accept => {
                    self.accept_again = false;
                    self.accept();
                }
                TimerKind::Gather { ticket } => self.gather_deadline(ticket),
                TimerKind::FanIn => self.core.fanin_tick(&mut self.clients),
                TimerKind::Pause => self.core.pause_check(&mut self.clients),
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
            let unsent = c.unsent();
            let flushed = c.flush();
            self.core.stats.bytes_out += unsent.saturating_sub(c.unsent()) as u64;
            let close = match flushed {
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

    pub(crate) fn close_client(&mut self, idx: usize, why: &str) {
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
        self.core.fanin_drop(me, None);
        self.core.tracking_forget(me);
        let level = if self.core.cfg.log_connections {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(level, "client {} disconnected (id {}): {why}", c.addr, c.id);
    }
}

impl Core {
    pub(crate) fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    pub(crate) fn mark_client(&mut self, clients: &mut Slab<Client>, idx: usize) {
        if let Some(c) = clients.get_mut(idx) {
            if !c.dirty {
                c.dirty = true;
                self.wake.dirty_clients.push(idx);
            }
        }
    }

    pub(crate) fn mark_backend(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            if !b.dirty {
                b.dirty = true;
                self.dirty_backends.push(idx);
            }
        }
    }
}

/// How often idle clients are looked for: often enough that one is closed within a tenth of
/// the timeout (at least 10 ms, at most 1 s) after it expires; every second without one.
pub(crate) fn sweep_period(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A client this long without a request gives its buffers back.
const BUFFER_IDLE: Duration = Duration::from_secs(1);
