//! The other workers of the process, for the commands that must see every worker's clients
//! (CLIENT LIST, CLIENT KILL, MONITOR): the asking worker sends its question to each peer
//! through a channel and wakes it; each peer answers from its own clients; the asker
//! completes the reply once every peer has answered, or at a deadline with what came. While
//! a MONITOR is open anywhere, each worker also sends the others its commands' lines once
//! per poll turn. Nothing else is on the request path: a worker is woken only by these.
//!
//! ```text
//!   asker:  Gather { waiting: peers } --Answer--> waiting - 1 --0, or deadline--> reply
//!   peer:   Ask --its own clients--> Answer
//! ```

use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use mio::{Registry, Token, Waker};

/// The poll token of a worker's waker.
pub const WAKER: Token = Token(usize::MAX - 1);

/// A client's type as CLIENT LIST and KILL's `TYPE` name it. The proxy's clients are
/// `normal` or, while subscribed, `pubsub`; `master` and `replica` match none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    PubSub,
    NoneHere,
}

impl ClientType {
    /// Redis's names; `None` for one it does not know.
    pub fn parse(name: &[u8]) -> Option<ClientType> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("normal") {
            Some(ClientType::Normal)
        } else if is("pubsub") {
            Some(ClientType::PubSub)
        } else if is("master") || is("replica") || is("slave") {
            Some(ClientType::NoneHere)
        } else {
            None
        }
    }
}

/// CLIENT LIST's filter: `TYPE`, and `ID` for only those ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub kind: Option<ClientType>,
    pub ids: Vec<u64>,
}

/// CLIENT KILL's filters, all of which a client must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub kind: Option<ClientType>,
    /// USER: the clients authenticated as this user.
    pub user: Option<String>,
    /// The old form, `CLIENT KILL addr:port`: at most one client.
    pub first_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    List(ListFilter),
    Kill(KillFilter),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Client lines with their ids, so the asker can order the whole list.
    Lines(Vec<(u64, String)>),
    Killed(usize),
}

#[derive(Debug)]
pub enum Msg {
    /// MONITOR lines of the sender's commands, for the receiver's monitors.
    Monitor(bytes::Bytes),
    Ask {
        from: usize,
        ticket: u64,
        question: Question,
    },
    Answer {
        ticket: u64,
        answer: Answer,
    },
}

/// Every worker's waker: a stop signal taken by a thread that is not a worker's (the
/// process's main thread, waiting for them) is passed on through these at once, rather
/// than seen by each worker on its next idle wakeup.
pub struct Wakers(Vec<Arc<Waker>>);

impl Wakers {
    pub fn wake_all(&self) {
        for w in &self.0 {
            let _ = w.wake();
        }
    }
}

struct Peer {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
}

/// One worker's end: its inbox and a way to reach every other worker.
pub struct Crew {
    me: usize,
    inbox: Receiver<Msg>,
    /// Indexed by worker; `None` at `me`.
    peers: Vec<Option<Peer>>,
}

impl Crew {
    /// One `Crew` per worker, in worker order, each with a waker registered in that
    /// worker's poll under `WAKER`; and those wakers, for the thread that waits for them.
    pub fn build(registries: &[&Registry]) -> io::Result<(Vec<Crew>, Wakers)> {
        let mut wakers = Vec::with_capacity(registries.len());
        let mut txs = Vec::with_capacity(registries.len());
        let mut rxs = Vec::with_capacity(registries.len());
        for r in registries {
            wakers.push(Arc::new(Waker::new(r, WAKER)?));
            let (tx, rx) = channel();
            txs.push(tx);
            rxs.push(rx);
        }
        let crews = rxs
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| Crew {
                me,
                inbox,
                peers: (0..txs.len())
                    .map(|w| {
                        (w != me).then(|| Peer {
                            tx: txs[w].clone(),
                            waker: Arc::clone(&wakers[w]),
                        })
                    })
                    .collect(),
            })
            .collect();
        Ok((crews, Wakers(wakers)))
    }

    /// Sends the question to every peer; returns how many took it (a worker that has
    /// stopped takes none, and is not waited for).
    pub fn ask(&self, ticket: u64, question: &Question) -> usize {
        self.peers
            .iter()
            .flatten()
            .filter(|p| {
                let msg = Msg::Ask {
                    from: self.me,
                    ticket,
                    question: question.clone(),
                };
                p.tx.send(msg).is_ok() && p.waker.wake().is_ok()
            })
            .count()
    }

    /// MONITOR lines for the other workers that `has_monitors`.
    pub fn broadcast_monitor(&self, lines: &bytes::Bytes, has_monitors: impl Fn(usize) -> bool) {
        for (w, p) in self.peers.iter().enumerate() {
            let Some(p) = p.as_ref().filter(|_| has_monitors(w)) else {
                continue;
            };
            if p.tx.send(Msg::Monitor(lines.clone())).is_ok() {
                let _ = p.waker.wake();
            }
        }
    }

    pub fn answer(&self, to: usize, ticket: u64, answer: Answer) {
        if let Some(Some(p)) = self.peers.get(to) {
            // The asker may have stopped; then nobody waits for this.
            if p.tx.send(Msg::Answer { ticket, answer }).is_ok() {
                let _ = p.waker.wake();
            }
        }
    }

    /// The next message waiting, if any. The waker's event comes once for any number of
    /// messages, so the caller takes them until this says there are none.
    pub fn next(&self) -> Option<Msg> {
        // Empty, or every peer gone: either way nothing more to take.
        self.inbox.try_recv().ok()
    }
}

/// A CLIENT LIST or CLIENT KILL waiting for the other workers' answers.
pub struct Gather {
    pub ticket: u64,
    pub cref: crate::conn::role::ClientRef,
    pub seq: u64,
    /// Workers yet to answer.
    pub waiting: usize,
    pub proto: crate::resp::encode::Proto,
    pub kind: Gathered,
}

pub enum Gathered {
    Lines(Vec<(u64, String)>),
    Killed { first_only: bool, n: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Duration;

    #[test]
    fn a_question_wakes_the_peer_and_its_answer_wakes_the_asker() {
        let polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let registries: Vec<&Registry> = polls.iter().map(|p| p.registry()).collect();
        let (crews, _) = Crew::build(&registries).unwrap();
        let mut polls = polls;
        let mut events = Events::with_capacity(4);

        let q = Question::List(ListFilter::default());
        assert_eq!(crews[0].ask(7, &q), 1);
        polls[1]
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == WAKER));
        match crews[1].next() {
            Some(Msg::Ask {
                from: 0,
                ticket: 7,
                question,
            }) => assert_eq!(question, q),
            other => panic!("{other:?}"),
        }
        assert!(crews[1].next().is_none());

        crews[1].answer(0, 7, Answer::Killed(2));
        polls[0]
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == WAKER));
        assert!(matches!(
            crews[0].next(),
            Some(Msg::Answer {
                ticket: 7,
                answer: Answer::Killed(2)
            })
        ));
    }

    #[test]
    fn a_stopped_peer_is_not_waited_for() {
        let polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let registries: Vec<&Registry> = polls.iter().map(|p| p.registry()).collect();
        let (mut crews, _) = Crew::build(&registries).unwrap();
        drop(crews.pop());
        let q = Question::Kill(KillFilter::default());
        assert_eq!(crews[0].ask(1, &q), 0);
    }
}
