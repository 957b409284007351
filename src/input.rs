//! The client side of a turn: read a client's socket, parse its requests, route each and
//! hand it to `dispatch`, with backpressure (a client whose replies pile up is not read).

use crate::command::Args;
use crate::conn::client::{self, Client, ClientState, Lane};
use crate::conn::net::ReadOutcome;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::reactor::Reactor;
use crate::resp::request::Frame;
use crate::route::Route;
use crate::route::{Kind, Routed, SubOp, TxOp};
use bytes::{Buf, Bytes};
use log::debug;
use std::ops::Range;

/// A request's arguments as ranges of its frame.
pub(crate) struct FrameArgs<'a> {
    pub(crate) frame: &'a [u8],
    pub(crate) ranges: &'a [Range<usize>],
}

impl Args for FrameArgs<'_> {
    fn argc(&self) -> usize {
        self.ranges.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self.frame[self.ranges[i].clone()]
    }
}

impl Reactor {
    /// `stop_short`: see `net::read_via`; false when the peer may have closed, or when
    /// resuming a client whose socket may hold more than one read's worth.
    /// `hung_up`: the poller saw the peer's end of the stream (or an error), which is told
    /// even while input is left unread.
    pub(crate) fn client_input(&mut self, idx: usize, stop_short: bool, hung_up: bool) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        if c.state != ClientState::Open {
            return self.closing_input(idx);
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
            false => {
                let before = c.rbuf.len();
                let outcome = c.read(&mut self.core.scratch, stop_short);
                self.core.stats.bytes_in += c.rbuf.len().saturating_sub(before) as u64;
                match outcome {
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
                        // A TLS failure (a certificate refused, a bad record) says why, at
                        // most once a second, so an operator can see it without debug logs.
                        let tls = c.tls.is_some() && e.kind() == std::io::ErrorKind::InvalidData;
                        let due = self
                            .core
                            .tls_failure_logged
                            .is_none_or(|t| self.core.now.duration_since(t).as_secs() >= 1);
                        if tls && due {
                            self.core.tls_failure_logged = Some(self.core.now);
                            log::info!(
                                "client {}: TLS failed, closed: {e}{}",
                                c.addr,
                                tls_hint(&e.to_string())
                            );
                        } else {
                            debug!("client {}: read failed: {e}", c.addr);
                        }
                        self.close_client(idx, "read error");
                        return;
                    }
                }
            }
        }
        self.process_requests(idx);
        self.after_input(idx, eof || hung_up);
    }

    /// A closing client is read only to notice a hang-up while a blocking command holds a
    /// node connection for it (that reply may never come).
    fn closing_input(&mut self, idx: usize) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        let cref = ClientRef { idx, gen: c.gen };
        if self.core.holds_connection(cref) {
            let outcome = c.read(&mut self.core.scratch, false);
            c.rbuf.clear();
            if matches!(outcome, ReadOutcome::Closed | ReadOutcome::Failed(_)) {
                self.close_client(idx, "closed while blocked");
            }
        }
    }

    /// After its requests were taken: a client that hung up is closed (blocked) or answered
    /// then closed; one paused that may take input again is resumed.
    fn after_input(&mut self, idx: usize, hung_up: bool) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        let cref = ClientRef { idx, gen: c.gen };
        // A blocking command's reply may never come (BLPOP 0): a client that hung up while
        // waiting for one is closed now, as Redis does, not drained. The poller's word for
        // the hang-up counts too: past the read-ahead budget its end of stream is never read.
        if hung_up && self.core.holds_connection(cref) {
            self.close_client(idx, "closed while blocked");
            return;
        }
        if c.eof && c.state == ClientState::Open && !c.paused {
            // Everything it sent was taken: answer it, then close.
            c.state = ClientState::Closing;
        }
        if c.paused && c.wants_input(&self.core.wake.limits) {
            c.paused = false;
            self.core.wake.resume_clients.push(idx);
        }
        self.core.mark_client(&mut self.clients, idx);
    }

    /// Parses and routes the client's complete requests while it may take more.
    pub(crate) fn process_requests(&mut self, idx: usize) {
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
                    let routed = crate::route::routed(&FrameArgs {
                        frame: &c.rbuf[..len],
                        ranges: parser.args(),
                    });
                    if self.core.pause_holds(c, cref, &routed) {
                        break;
                    }
                    if self.core.stream_order(c, routed.kind) || c.must_wait(lane(c, &routed)) {
                        // The frame stays in the buffer and is parsed again on resuming.
                        c.paused = true;
                        break;
                    }
                    let frame = c.rbuf.split_to(len).freeze();
                    self.core.dispatch(c, cref, frame, parser.args(), routed);
                    if !c.staged.is_empty() {
                        // A staged write whose first stage completed at once (no node).
                        self.core.wake.staged.push(cref);
                    }
                }
                Ok(Some(Frame::Inline { consumed, encoded })) => {
                    let routed = crate::route::routed(&FrameArgs {
                        frame: &encoded,
                        ranges: parser.args(),
                    });
                    if self.core.pause_holds(c, cref, &routed) {
                        break;
                    }
                    if self.core.stream_order(c, routed.kind) || c.must_wait(lane(c, &routed)) {
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
}

/// The connection a request leaves on, for `Client::must_wait`; None for requests that
/// no node connection carries in order with others (answered by the proxy, refused, or a
/// subscriber's, whose replies stream).
pub(crate) fn lane(c: &Client, routed: &Routed) -> Option<Lane> {
    if (c.tx.is_some() || routed.kind.is_tx()) && !c.runs_outside_tx(routed) {
        let opens = c.tx.is_none() && matches!(routed.kind, Kind::Tx(TxOp::Multi | TxOp::Watch));
        return Some(if opens { Lane::NewPinned } else { Lane::Pinned });
    }
    if c.pubsub.is_some() {
        return None;
    }
    match routed.route {
        Route::Local(_) | Route::Refuse(_) => None,
        Route::Blocking(_) => Some(Lane::Dedicated),
        Route::Compute(ref c) if c.is_write() => Some(Lane::Staged),
        _ if matches!(routed.kind, Kind::Sub(SubOp::Subscribe(_))) => None,
        _ => Some(Lane::Shared),
    }
}

/// What a rustls error means for an operator, where its words are rustls's own.
fn tls_hint(e: &str) -> &'static str {
    if e.contains("InvalidContentType") || e.contains("corrupt message") {
        " (not TLS: plain RESP sent to the TLS port?)"
    } else if e.contains("received fatal alert") {
        " (the client refused the proxy's certificate, or the TLS session)"
    } else if e.contains("peer sent no certificates") {
        " (mutual TLS: the client sent no certificate)"
    } else if e.contains("invalid peer certificate") {
        " (mutual TLS: the client's certificate is not accepted: not signed by tls.ca_file, expired, or not X.509 v3)"
    } else {
        ""
    }
}
