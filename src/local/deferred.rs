//! Requests answered once a turn's parsing is done, because they need every client or may
//! stop the proxy (CLIENT LIST/INFO/KILL/UNBLOCK, PROXY ...), delivered in their place in the
//! client's reply order.

use crate::inflight::ClientRef;
use crate::local::clients::client_line;
use crate::reactor::Reactor;
use crate::resp::encode::{self};
use crate::route::Local;
use bytes::Bytes;

impl Reactor {
    /// Answers CLIENT LIST/INFO/KILL and PROXY commands queued during parsing.
    pub(crate) fn run_deferred(&mut self) {
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
                        encode::text(&mut out, &line, c.proto);
                        out
                    }
                    None => continue,
                },
                Local::ClientKill => match self.client_kill(cref, seq, &argv) {
                    Some(reply) => reply,
                    None => continue,
                },
                Local::ClientTracking => {
                    let reply = self.core.tracking_redirect(&mut self.clients, cref, &argv);
                    if reply.is_empty() {
                        // Answered once every master tracks.
                        self.core.tracking.waiting.push((cref, seq));
                        continue;
                    }
                    reply
                }
                Local::ClientUnblock => match self.client_unblock(cref, seq, &argv) {
                    Some(reply) => reply,
                    None => continue,
                },
                _ => self.proxy_command(cref, &argv),
            };
            self.answer_later(cref, seq, reply);
        }
    }

    /// A reply the proxy composed itself, in its place among the client's replies.
    pub(crate) fn answer_later(&mut self, cref: ClientRef, seq: u64, reply: Vec<u8>) {
        if let Some(c) = self.clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) {
            c.complete(seq, 0, Bytes::from(reply));
            if c.paused && c.wants_input(&self.core.wake.limits) {
                c.paused = false;
                self.core.wake.resume_clients.push(cref.idx);
            }
            self.core.mark_client(&mut self.clients, cref.idx);
        }
    }
}
