//! Taking clients: the plain and the TLS listener, protected mode and `max_clients` at the
//! door, a TLS session for the TLS port's clients; and the configuration reload each
//! worker applies on its next turn.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, warn};
use mio::Interest;

use crate::conn::client::Client;
use crate::conn::net;
use crate::error::ProxyError;
use crate::reactor::{client_token, Reactor, ACCEPT_BUDGET, ACCEPT_RETRY};
use crate::signals;
use crate::timer::TimerKind;

impl Reactor {
    /// A reload was asked for: the configuration is loaded again and what can change live
    /// is taken (`Core::apply_reload`); a file that does not load changes nothing.
    pub(crate) fn reload(&mut self) {
        self.reloads_seen = signals::reload_generation();
        let Some((path, overrides)) = &self.source else {
            return;
        };
        match crate::reload::load(path.as_deref(), overrides) {
            Ok(new) => {
                if let (Some(acceptor), Some(files)) = (self.tls_acceptor.as_mut(), &new.tls) {
                    if let Err(e) = acceptor.replace(files) {
                        warn!("reload: tls: {e}; keeping the previous certificates");
                    }
                }
                self.core.apply_reload(new);
            }
            Err(e) => {
                if self.core.worker == 0 {
                    warn!("reload: {e}; keeping the previous configuration");
                }
            }
        }
    }

    /// Takes the connections waiting on both listeners.
    pub(crate) fn accept(&mut self) {
        self.accept_from(false);
        if self.tls_listener.is_some() {
            self.accept_from(true);
        }
    }

    /// Takes connections waiting on the plain listener, or the TLS one.
    pub(crate) fn accept_from(&mut self, tls: bool) {
        if self.drain_until.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let accepted = match (&self.tls_listener, tls) {
                (Some(l), true) => l.accept(),
                _ => self.listener.accept(),
            };
            match accepted {
                Ok((stream, addr)) => self.admit(stream, addr, tls),
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

    /// A new client, unless protected mode or `max_clients` refuses it.
    pub(crate) fn admit(&mut self, mut stream: mio::net::TcpStream, addr: SocketAddr, tls: bool) {
        use std::io::Write;
        // Protected mode, as Redis's: no `auth` and a reachable address, so only loopback
        // clients are served; the others hear why (decided at start-up for the bind:
        // auth::protected_refuses). Over TLS they would not read it: just closed.
        if self.core.protected && !addr.ip().is_loopback() {
            if !tls {
                let _ = stream.write(&ProxyError::ProtectedMode.to_frame());
            }
            debug!("client {addr} refused: protected mode");
            self.core.stats.rejected += 1;
            return;
        }
        // The limit is the process's, over every worker.
        if !self.core.totals.try_connect(self.core.cfg.max_clients) {
            // Best effort, as Redis: the socket is new, its buffer empty.
            if !tls {
                let _ = stream.write(&ProxyError::MaxClients.to_frame());
            }
            warn!(
                "client {addr} refused: max_clients ({}) reached",
                self.core.cfg.max_clients
            );
            self.core.stats.rejected += 1;
            return;
        }
        let session = match (tls, self.tls_acceptor.as_mut()) {
            (true, Some(acceptor)) => match acceptor.accept(self.core.now) {
                Ok(s) => Some(Box::new(rustls::Connection::Server(s))),
                Err(e) => {
                    warn!("client {addr}: no TLS session: {e}");
                    self.core.totals.disconnect();
                    return;
                }
            },
            _ => None,
        };
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
            return;
        }
        let gen = self.core.gen();
        let id = self.core.next_client_id;
        self.core.next_client_id += self.core.cfg.workers.max(1) as u64;
        let laddr = stream.local_addr().unwrap_or(addr);
        let c = entry.insert(Client::new(gen, id, addr, stream, self.core.now));
        c.local_addr = laddr;
        c.user = self.core.users.initial();
        c.tls = session;
        self.core.stats.connections_received += 1;
        let level = if self.core.cfg.log_connections {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "client {addr} connected (id {id}{})",
            if tls { ", TLS" } else { "" }
        );
    }

    pub(crate) fn accept_later(&mut self, after: Duration) {
        if !self.accept_again {
            self.accept_again = true;
            let at = self.core.now + after;
            self.core.timers.add(at, TimerKind::Accept);
        }
    }
}
