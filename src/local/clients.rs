//! CLIENT LIST, CLIENT INFO flags and CLIENT KILL, over every worker's clients: this
//! worker's part, and the gather of the other workers' answers (`crew`).

use crate::conn::client::{Client, ClientState};
use crate::crew::{Answer, ClientType, Crew, KillFilter, ListFilter, Msg, Question};
use crate::crew::{Gather, Gathered};
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::reactor::{Core, Reactor};
use crate::resp::encode::{self, Proto};
use crate::timer::TimerKind;
use log::warn;
use std::time::{Duration, Instant};

/// How long CLIENT LIST or KILL waits for the other workers (each answers on its next poll
/// turn, so only a worker stuck or gone takes this long).
pub(crate) const GATHER_TIMEOUT: Duration = Duration::from_secs(1);

impl Reactor {
    /// Sends a question to the other workers, with this worker's part of the answer: the
    /// reply when there are no others to wait for, else `None` (it comes when they have
    /// answered).
    pub(crate) fn ask_peers(
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
            return Some(gathered_reply(mine, proto));
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
    pub(crate) fn proto_of(&self, cref: ClientRef) -> Proto {
        self.clients.get(cref.idx).map_or(Proto::Resp2, |c| c.proto)
    }

    /// The other workers' questions and answers (the waker's event).
    pub(crate) fn crew_inbox(&mut self) {
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
    pub(crate) fn gather_deadline(&mut self, ticket: u64) {
        if let Some(i) = self.gathers.iter().position(|g| g.ticket == ticket) {
            let g = self.gathers.swap_remove(i);
            warn!(
                "{} of the other workers did not answer within {GATHER_TIMEOUT:?}; replying without them",
                g.waiting
            );
            self.finish_gather(g);
        }
    }

    pub(crate) fn finish_gather(&mut self, g: Gather) {
        self.answer_later(g.cref, g.seq, gathered_reply(g.kind, g.proto));
    }

    /// CLIENT LIST: this worker's clients, and the other workers' (`None`: the reply
    /// comes when they have answered).
    pub(crate) fn client_list(
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
            return Some(gathered_reply(mine, self.proto_of(me)));
        }
        self.ask_peers(me, seq, &Question::List(filter), mine)
    }

    /// This worker's CLIENT LIST lines, with ids; `me` is the asking client, whose line shows
    /// the command it is running.
    pub(crate) fn list_lines(
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
    pub(crate) fn client_kill(
        &mut self,
        me: ClientRef,
        seq: u64,
        argv: &[Vec<u8>],
    ) -> Option<Vec<u8>> {
        let (filter, skipme) = match kill_filter(argv) {
            Ok(f) => f,
            Err(e) => return Some(e),
        };
        if let Some(u) = filter.user.as_deref() {
            if self.core.users.find(u.as_bytes()).is_none() {
                return Some(ProxyError::NoSuchUser(u.to_string()).to_frame());
            }
        }
        let n = self.kill_matching(&filter, Some((me, skipme)));
        let mine = Gathered::Killed {
            first_only: filter.first_only,
            n,
        };
        // An address or an id names one client of the process: found here, it is nowhere
        // else.
        if n > 0 && (filter.first_only || filter.id.is_some()) {
            return Some(gathered_reply(mine, self.proto_of(me)));
        }
        self.ask_peers(me, seq, &Question::Kill(filter), mine)
    }

    /// Marks this worker's clients that match for closing; `me` is the asking client and
    /// whether SKIPME spares it.
    pub(crate) fn kill_matching(&mut self, f: &KillFilter, me: Option<(ClientRef, bool)>) -> usize {
        if f.kind == Some(ClientType::NoneHere) {
            return 0;
        }
        let users = &self.core.users;
        let user_of = |c: &Client| c.user.and_then(|u| users.get(u)).map(|u| u.name.as_str());
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
                    && f.user.as_deref().is_none_or(|u| user_of(c) == Some(u))
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
    pub(crate) fn kill_later(&mut self, idx: usize, me: bool) {
        if let Some(c) = self.clients.get_mut(idx) {
            c.state = ClientState::Closing;
            // Its own CLIENT KILL reply is still to come.
            if !me {
                c.kill_pending();
            }
            self.core.mark_client(&mut self.clients, idx);
        }
    }
}

impl Core {
    /// CLIENT LIST flags: P subscribed, x in MULTI, b blocked (a blocking command on a
    /// connection of its own), else N.
    pub(crate) fn flags(&self, c: &Client, idx: usize) -> LineFlags {
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
        let user = c
            .user
            .and_then(|u| self.users.get(u))
            .map_or(String::new(), |u| u.name.clone());
        LineFlags { flags, multi, user }
    }
}

/// A client's CLIENT LIST flags and transaction length, as Redis would show them.
pub(crate) struct LineFlags {
    flags: &'static str,
    /// Commands queued in MULTI, or -1.
    multi: i64,
    /// The user it authenticated as (empty before AUTH, as Redis shows it).
    user: String,
}

/// CLIENT LIST [TYPE normal|...] [ID id ...]: every proxy client is "normal".
pub(crate) fn list_filter(argv: &[Vec<u8>]) -> Result<ListFilter, Vec<u8>> {
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
            return Err(ProxyError::SyntaxError.to_frame());
        }
    }
    Ok(f)
}

/// A TYPE argument, or Redis's error for one it does not know.
pub(crate) fn client_type_arg(name: &[u8]) -> Result<ClientType, Vec<u8>> {
    ClientType::parse(name).ok_or_else(|| {
        ProxyError::UnknownClientType(String::from_utf8_lossy(name).into_owned()).to_frame()
    })
}

pub(crate) fn client_type(c: &Client) -> ClientType {
    if c.pubsub.is_some() {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

/// The whole CLIENT LIST, oldest client first as Redis lists them.
pub(crate) fn lines_reply(mut lines: Vec<(u64, String)>, proto: Proto) -> Vec<u8> {
    lines.sort_unstable_by_key(|(id, _)| *id);
    let text: String = lines.into_iter().map(|(_, l)| l).collect();
    let mut out = Vec::with_capacity(text.len() + 16);
    encode::text(&mut out, &text, proto);
    out
}

/// CLIENT KILL's filters and SKIPME, or the error to answer.
pub(crate) fn kill_filter(argv: &[Vec<u8>]) -> Result<(KillFilter, bool), Vec<u8>> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut f = KillFilter::default();
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
                    return Err(ProxyError::InvalidClientId.to_frame());
                }
            }
        } else if k.eq_ignore_ascii_case(b"ADDR") {
            f.addr = Some(v);
        } else if k.eq_ignore_ascii_case(b"LADDR") {
            f.laddr = Some(v);
        } else if k.eq_ignore_ascii_case(b"USER") {
            f.user = Some(v);
        } else if k.eq_ignore_ascii_case(b"TYPE") {
            f.kind = Some(client_type_arg(&argv[i + 1])?);
        } else if k.eq_ignore_ascii_case(b"SKIPME") && v.eq_ignore_ascii_case("yes") {
            skipme = true;
        } else if k.eq_ignore_ascii_case(b"SKIPME") && v.eq_ignore_ascii_case("no") {
            skipme = false;
        } else {
            return Err(ProxyError::SyntaxError.to_frame());
        }
        i += 2;
    }
    if i != argv.len() {
        return Err(ProxyError::SyntaxError.to_frame());
    }
    Ok((f, skipme))
}

/// The old form answers OK or no such client; the filter form, how many were killed.
pub(crate) fn kill_reply(first_only: bool, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match (first_only, n) {
        (true, 0) => out = ProxyError::NoSuchClient.to_frame(),
        (true, _) => encode::simple(&mut out, "OK"),
        (false, n) => encode::integer(&mut out, n as i64),
    }
    out
}

pub(crate) fn client_line(c: &Client, now: Instant, cmd: &str, f: LineFlags) -> String {
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
         multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll={} omem={} \
         tot-mem={} events=r{} cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}\n",
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
        f.user,
        if c.proto == Proto::Resp3 { 3 } else { 2 },
        c.lib_name.as_deref().unwrap_or(""),
        c.lib_ver.as_deref().unwrap_or(""),
    )
}

/// The whole answer to a CLIENT LIST or KILL, once every worker's part is in.
fn gathered_reply(g: Gathered, proto: Proto) -> Vec<u8> {
    match g {
        Gathered::Lines(lines) => lines_reply(lines, proto),
        Gathered::Killed { first_only, n } => kill_reply(first_only, n),
    }
}
