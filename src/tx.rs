//! Transactions: WATCH / MULTI ... EXEC / DISCARD / UNWATCH on a connection pinned to one
//! node, the node of the first command with keys.

use crate::conn::client::Client;
use crate::conn::pool::BackendRef;
use crate::inflight::{ClientRef, Owner};
use crate::reactor::Core;
use crate::resp::encode::{self};
use crate::route::{Local, Route};
use bytes::Bytes;

impl Core {
    /// WATCH / MULTI ... EXEC / DISCARD / UNWATCH on a connection pinned to one node: the node
    /// of the first command with keys (a transaction's keys must be on one node, as on a
    /// cluster). Commands before that are answered +QUEUED by the proxy and sent ahead of it.
    pub(crate) fn transaction(
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
}

/// The commands that open, run or close a transaction (`Core::transaction` takes them).
pub(crate) fn is_tx_command(name: &str) -> bool {
    matches!(name, "MULTI" | "WATCH" | "EXEC" | "DISCARD" | "UNWATCH")
}
