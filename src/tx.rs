//! Transactions: WATCH / MULTI ... EXEC / DISCARD / UNWATCH on a connection pinned to one
//! node, the node of the first command with keys (a transaction's keys must be on one node,
//! as on a cluster). Commands before that are answered +QUEUED by the proxy and sent ahead
//! of it once the node is known.
//!
//! ```text
//!   (none) --WATCH k--> Watching --MULTI--> Queuing --EXEC/DISCARD--> (none)
//!   (none) --MULTI----> Queuing (keyless commands kept, +QUEUED) --first key--> Pinned
//!   Watching/Queuing --first command with keys--> Pinned { node, connection }
//!   Watching --a command not for the pinned node's slots--> Watching (run as outside one)
//!   Pinned --EXEC/DISCARD (UNWATCH outside MULTI)--> (none), the connection Spent: closed
//!          once its last reply is in (its state after a transaction is unknown)
//!   any --RESET--> (none): DISCARD/UNWATCH sent on the pinned connection
//!   any --connection lost--> every command refused, EXEC answers EXECABORT
//! ```
//! `control` is the pure part: what a transaction command does in a given state.
//!
//! Watching (WATCH given, no MULTI yet) queues nothing, so a command that is not a
//! transaction command runs as it would outside a transaction (`Client::runs_outside_tx`): fanned out,
//! split, answered by the proxy, on a blocking connection. Only a single-slot command on the
//! pinned node stays on the pinned connection (`Core::tx_takes`), so that a read between
//! WATCH and MULTI is the master's, in order with the WATCH. Whatever writes a watched key,
//! on whichever connection of the proxy, touches it on its node, so EXEC aborts as on Redis.

use crate::conn::client::Client;
use crate::conn::pool::BackendRef;
use crate::error::ProxyError;
use crate::inflight::{ClientRef, Owner};
use crate::reactor::Core;
use crate::route::{Kind, Local, Route, Routed, TxOp};
use crate::topology::NodeId;
use bytes::Bytes;

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const DISCARD: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n";
const UNWATCH: &[u8] = b"*1\r\n$7\r\nUNWATCH\r\n";

/// What a transaction command does, decided from the state alone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Refused as Redis refuses it; nothing changes.
    Refuse(ProxyError),
    /// MULTI before the node is known: the proxy answers OK and queues from now on.
    BeginQueuing,
    /// UNWATCH or DISCARD before the node is known: nothing reached a node, the proxy
    /// answers OK and the transaction is over.
    EndLocally,
    /// To the node (MULTI once pinned marks the transaction as queuing first).
    Forward,
}

/// `multi`: MULTI was given; `pinned`: the node is known and a connection pinned.
pub(crate) fn control(op: Option<TxOp>, multi: bool, pinned: bool) -> Control {
    match op {
        Some(TxOp::Multi) if multi => Control::Refuse(ProxyError::NestedMulti),
        Some(TxOp::Exec) if !multi => Control::Refuse(ProxyError::ExecWithoutMulti),
        Some(TxOp::Discard) if !multi => Control::Refuse(ProxyError::DiscardWithoutMulti),
        Some(TxOp::Watch) if multi => Control::Refuse(ProxyError::WatchInsideMulti),
        Some(TxOp::Multi) if !pinned => Control::BeginQueuing,
        Some(TxOp::Unwatch) if !multi && !pinned => Control::EndLocally,
        Some(TxOp::Discard) if !pinned => Control::EndLocally,
        _ => Control::Forward,
    }
}

/// Whether the command, once on the node, ends the transaction.
fn ends(op: Option<TxOp>, multi: bool) -> bool {
    match op {
        Some(TxOp::Exec | TxOp::Discard) => true,
        Some(TxOp::Unwatch) => !multi,
        _ => false,
    }
}

impl Core {
    /// Whether the request is the transaction's to take (`transaction`), rather than
    /// `execute`'s: a client in a transaction, or a command that starts one, except what runs
    /// outside between WATCH and MULTI (`Client::runs_outside_tx`) and, there too, a command whose one
    /// slot is another node's than the pinned one (a key WATCH cannot be watching: it runs
    /// where it lives, as it would outside a transaction).
    pub(crate) fn tx_takes(&self, c: &Client, r: &Routed) -> bool {
        if c.tx.is_none() && !r.kind.is_tx() {
            return false;
        }
        if c.runs_outside_tx(r) {
            return false;
        }
        let watching = c.tx.as_ref().filter(|t| !t.multi).and_then(|t| t.conn);
        match (watching, &r.route, r.kind) {
            (Some((node, _)), Route::Slot(s) | Route::ReadSlot(s), k) if !k.is_tx() => {
                self.topo.owner(*s) == Some(node)
            }
            _ => true,
        }
    }

    /// A command of a client in a transaction, or one that starts one.
    pub(crate) fn transaction(&mut self, c: &mut Client, cref: ClientRef, frame: Bytes, r: Routed) {
        let op = match r.kind {
            Kind::Tx(op) => Some(op),
            _ => None,
        };
        if let Route::Local(Local::Reset) = r.route {
            return self.tx_reset(c);
        }
        let multi = c.tx.as_ref().is_some_and(|t| t.multi);
        if self.tx_broken(c, op, multi) {
            return;
        }
        if op.is_none() {
            if let Route::Local(Local::Quit) = r.route {
                return self.answer_quit_or_reset(c, Local::Quit);
            }
            // Inside a transaction only what one node can run goes to the pinned connection:
            // what the proxy answers itself, fans out, or refuses is refused here (and aborts
            // the transaction, as a queuing error does on Redis).
            if let Some(e) = self.tx_refusal(&r) {
                if let Some(t) = c.tx.as_mut().filter(|t| t.multi) {
                    t.aborted = true;
                }
                return c.reply_now(&e.to_frame());
            }
            if let Some(t) = c.tx.as_mut().filter(|t| t.multi) {
                t.commands += 1;
            }
        }
        let pinned = c.tx.as_ref().is_some_and(|t| t.conn.is_some());
        match control(op, multi, pinned) {
            Control::Refuse(e) => return c.reply_now(&e.to_frame()),
            Control::BeginQueuing => {
                c.tx.get_or_insert_with(Default::default).multi = true;
                return c.reply_now(b"+OK\r\n");
            }
            Control::EndLocally => {
                c.tx = None;
                return c.reply_now(b"+OK\r\n");
            }
            Control::Forward => {}
        }
        if op == Some(TxOp::Multi) {
            c.tx.get_or_insert_with(Default::default).multi = true;
        }
        let conn = match c.tx.as_ref().and_then(|t| t.conn) {
            Some(conn) => conn,
            None => match self.tx_pin(c, cref, &frame, &r.route, op) {
                Some(conn) => conn,
                None => return,
            },
        };
        self.tx_forward(c, cref, frame, &r.route, op, multi, conn);
    }

    /// RESET ends the transaction, as on Redis: the node forgets what was queued and
    /// watched, and the connection goes back (closed: it was pinned) once that is answered.
    fn tx_reset(&mut self, c: &mut Client) {
        if let Some((multi, r)) = c.tx.take().and_then(|t| Some((t.multi, t.conn?.1))) {
            if let Some(b) = self.backends.get_mut(r.idx).filter(|b| b.gen == r.gen) {
                let end = if multi { DISCARD } else { UNWATCH };
                b.push(Bytes::from_static(end), Owner::Internal, None, self.now);
                b.role = b.role.unpin();
                self.held_changed = true;
                self.mark_backend(r.idx);
            }
        }
        self.answer_quit_or_reset(c, Local::Reset);
    }

    /// A pinned connection that broke: inside MULTI every command fails and EXEC answers
    /// EXECABORT, so nothing after the break runs outside the transaction. Returns whether
    /// the command was answered so.
    fn tx_broken(&mut self, c: &mut Client, op: Option<TxOp>, multi: bool) -> bool {
        let Some((_, r)) = c.tx.as_ref().and_then(|t| t.conn) else {
            return false;
        };
        if self.backends.get(r.idx).is_some_and(|b| b.gen == r.gen) {
            return false;
        }
        match op {
            Some(TxOp::Exec) if multi => {
                c.tx = None;
                c.reply_now(&ProxyError::ExecAbort.to_frame());
                return true;
            }
            Some(TxOp::Discard | TxOp::Unwatch) => {
                c.tx = None;
                c.reply_now(b"+OK\r\n");
                return true;
            }
            _ if multi => {
                if let Some(t) = c.tx.as_mut() {
                    t.aborted = true;
                }
            }
            _ => c.tx = None,
        }
        c.reply_now(&ProxyError::TransactionConnectionLost.to_frame());
        true
    }

    /// Why a command that is not a transaction command cannot join one, if it cannot.
    fn tx_refusal(&self, r: &Routed) -> Option<ProxyError> {
        let name = || r.cmd.map_or(String::new(), |c| c.name.replace('|', " "));
        if matches!(r.kind, Kind::Sub(_) | Kind::Monitor) {
            return Some(ProxyError::NotInTransaction(name()));
        }
        match &r.route {
            Route::Slot(_)
            | Route::ReadSlot(_)
            | Route::Blocking(_)
            | Route::AnyMaster
            | Route::Local(Local::Ping | Local::Echo) => None,
            Route::Refuse(e) => Some(e.clone()),
            Route::Admin(inner) if self.cfg.allow_admin_commands => match **inner {
                Route::AnyMaster => None,
                _ => Some(ProxyError::CannotRunInTransaction(name())),
            },
            Route::Admin(_) => Some(ProxyError::AdminRefused(name())),
            // As a cluster node answers keys of several slots in a transaction.
            Route::Split { .. } | Route::Compute(_) => Some(ProxyError::CrossSlot),
            _ => Some(ProxyError::CannotRunInTransaction(name())),
        }
    }

    /// Pins the transaction to the node of its first command with keys (or, for EXEC of a
    /// transaction without keys, any master), sending ahead what the client was already
    /// told about: MULTI's OK and the queued commands' QUEUED. `None`: the command was
    /// answered here (queued, or refused).
    fn tx_pin(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: &Bytes,
        route: &Route,
        op: Option<TxOp>,
    ) -> Option<(NodeId, BackendRef)> {
        let exec = op == Some(TxOp::Exec);
        let node = match route {
            Route::Slot(s) | Route::ReadSlot(s) | Route::Blocking(s) => self.topo.owner(*s),
            Route::Split { .. } | Route::Compute(_) => {
                c.reply_now(&ProxyError::CrossSlot.to_frame());
                return None;
            }
            // Refused before any node is involved (unknown command, wrong arity).
            Route::Refuse(e) => {
                c.reply_now(&e.to_frame());
                return None;
            }
            _ if exec => self.any_master(),
            _ => {
                // Keyless, node unknown yet: queued here, sent ahead of the first command
                // with keys.
                if let Some(t) = c.tx.as_mut() {
                    t.queued.push(frame.clone());
                }
                c.reply_now(b"+QUEUED\r\n");
                return None;
            }
        };
        let abort = |c: &mut Client| match c.tx.as_mut() {
            Some(t) if t.multi && !exec => t.aborted = true,
            _ => c.tx = None,
        };
        let Some(node) = node else {
            abort(c);
            c.reply_now(&ProxyError::TransactionSlotUnserved.to_frame());
            return None;
        };
        let idx = match self.dedicated_backend(node, c.proto) {
            Ok(idx) => idx,
            Err(e) => {
                abort(c);
                c.reply_now(&e.to_frame());
                return None;
            }
        };
        let b = &mut self.backends[idx];
        b.role = b.role.pin(cref);
        let bref = BackendRef { idx, gen: b.gen };
        self.hold((cref, bref));
        let tx = c.tx.get_or_insert_with(Default::default);
        tx.conn = Some((node, bref));
        let ahead = std::mem::take(&mut tx.queued);
        let in_multi = tx.multi && op != Some(TxOp::Multi);
        let b = &mut self.backends[idx];
        if in_multi {
            b.push(Bytes::from_static(MULTI), Owner::Internal, None, self.now);
        }
        for q in ahead {
            b.push(q, Owner::Internal, None, self.now);
        }
        Some((node, bref))
    }

    /// The command on the pinned connection, its reply in the client's order; keys of
    /// another node refused (the transaction then fails at EXEC, never half applied).
    #[allow(clippy::too_many_arguments)]
    fn tx_forward(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        frame: Bytes,
        route: &Route,
        op: Option<TxOp>,
        multi: bool,
        (node, bref): (NodeId, BackendRef),
    ) {
        let slot = match route {
            Route::Slot(s) | Route::ReadSlot(s) | Route::Blocking(s) => Some(*s),
            _ => None,
        };
        let foreign = slot.is_some_and(|s| self.topo.owner(s) != Some(node))
            || matches!(route, Route::Split { .. } | Route::Compute(_));
        if foreign && !matches!(op, Some(TxOp::Exec | TxOp::Discard)) {
            if let Some(t) = c.tx.as_mut() {
                t.aborted |= t.multi;
            }
            return c.reply_now(&ProxyError::TransactionCrossSlot.to_frame());
        }
        let aborted = c.tx.as_ref().is_some_and(|t| t.aborted);
        if op == Some(TxOp::Exec) && aborted {
            // The node discards what it queued; the client hears why.
            let b = &mut self.backends[bref.idx];
            b.push(Bytes::from_static(DISCARD), Owner::Internal, None, self.now);
            c.reply_now(&ProxyError::ExecAbort.to_frame());
            self.mark_backend(bref.idx);
            return self.tx_end(c, bref);
        }
        let seq = c.reserve();
        let owner = Owner::Client {
            client: cref,
            seq,
            part: 0,
        };
        self.backends[bref.idx].push(frame, owner, None, self.now);
        self.mark_backend(bref.idx);
        if ends(op, multi) {
            // Closed once the last reply is in (release_dedicated after the read).
            self.tx_end(c, bref);
        }
    }

    fn tx_end(&mut self, c: &mut Client, bref: BackendRef) {
        c.tx = None;
        if let Some(b) = self.backends.get_mut(bref.idx) {
            b.role = b.role.unpin();
            self.held_changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_table() {
        use Control::*;
        use TxOp::*;
        // (op, multi, pinned) -> control
        let table = [
            (Some(Multi), false, false, BeginQueuing),
            (Some(Multi), false, true, Forward),
            (Some(Multi), true, false, Refuse(ProxyError::NestedMulti)),
            (
                Some(Exec),
                false,
                true,
                Refuse(ProxyError::ExecWithoutMulti),
            ),
            (Some(Exec), true, false, Forward),
            (Some(Exec), true, true, Forward),
            (
                Some(Discard),
                false,
                false,
                Refuse(ProxyError::DiscardWithoutMulti),
            ),
            (Some(Discard), true, false, EndLocally),
            (Some(Discard), true, true, Forward),
            (
                Some(Watch),
                true,
                true,
                Refuse(ProxyError::WatchInsideMulti),
            ),
            (Some(Watch), false, false, Forward),
            (Some(Unwatch), false, false, EndLocally),
            (Some(Unwatch), false, true, Forward),
            (Some(Unwatch), true, false, Forward),
            (None, true, false, Forward),
            (None, false, true, Forward),
        ];
        for (op, multi, pinned, want) in table {
            assert_eq!(
                control(op, multi, pinned),
                want,
                "{op:?} multi={multi} pinned={pinned}"
            );
        }
        assert!(ends(Some(Exec), true));
        assert!(ends(Some(Unwatch), false));
        assert!(!ends(Some(Unwatch), true));
        assert!(!ends(None, true));
    }
}
