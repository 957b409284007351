//! The PROXY command: PROXY INFO, PROXY CONFIG GET, PROXY SHUTDOWN.

use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::reactor::{Core, Reactor};
use crate::resp::encode::{self};
use log::{info, warn};
use std::time::Duration;

impl Reactor {
    /// PROXY INFO | PROXY CONFIG GET pattern | PROXY SHUTDOWN.
    pub(crate) fn proxy_command(&mut self, cref: ClientRef, argv: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let sub = argv
            .get(1)
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default();
        let proto = self.proto_of(cref);
        match (sub.as_str(), argv.len()) {
            ("INFO", 2) => encode::text(&mut out, &self.core.proxy_section(), proto),
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
            ("RELOAD", 2) if self.core.cfg.allow_admin_commands => {
                let who = self.clients.get(cref.idx).map(|c| c.addr.to_string());
                info!("PROXY RELOAD from {}", who.unwrap_or_default());
                crate::signals::request_reload();
                encode::simple(&mut out, "OK");
            }
            ("RELOAD", 2) => out = ProxyError::AdminRefused("PROXY RELOAD".into()).to_frame(),
            ("SHUTDOWN", 2) => {
                if self.core.cfg.allow_admin_commands {
                    let who = self.clients.get(cref.idx).map(|c| c.addr.to_string());
                    warn!("PROXY SHUTDOWN from {}", who.unwrap_or_default());
                    self.core.shutdown = true;
                    encode::simple(&mut out, "OK");
                } else {
                    out = ProxyError::ProxyShutdownRefused.to_frame();
                }
            }
            _ => out = ProxyError::UnknownProxySubcommand.to_frame(),
        }
        out
    }
}

impl Core {
    /// The proxy's own settings, for PROXY CONFIG GET.
    pub(crate) fn config_pairs(&self) -> Vec<(String, String)> {
        let c = &self.cfg;
        let d = |d: Duration| match d.subsec_micros() % 1000 {
            0 => format!("{}ms", d.as_millis()),
            _ => format!("{}us", d.as_micros()),
        };
        let mut pairs = vec![
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
            ("failover_wait".into(), d(c.failover_wait)),
            ("slow_command_threshold".into(), d(c.slow_command_threshold)),
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
            ("cross_slot_writes".into(), c.cross_slot_writes.to_string()),
            ("tracking_max_keys".into(), c.tracking_max_keys.to_string()),
            ("log_connections".into(), c.log_connections.to_string()),
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
            (
                "backend_auth.user".into(),
                c.backend_auth
                    .as_ref()
                    .and_then(|a| a.user.clone())
                    .unwrap_or_default(),
            ),
        ];
        pairs.extend(self.access_pairs());
        pairs
    }

    /// Who may connect and how (passwords shown as set, never themselves).
    fn access_pairs(&self) -> Vec<(String, String)> {
        let c = &self.cfg;
        vec![
            ("protected_mode".into(), c.protected_mode.to_string()),
            (
                "auth.users".into(),
                c.auth
                    .as_ref()
                    .map(|a| {
                        a.users
                            .iter()
                            .map(|u| u.name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            ),
            (
                "auth.password".into(),
                match c.auth.as_ref().and_then(|a| a.password.as_ref()) {
                    Some(_) => "(set)".into(),
                    None => String::new(),
                },
            ),
            ("tls_port".into(), c.tls_port.to_string()),
            (
                "tls.cert_file".into(),
                tls_file(c.tls.as_ref().map(|t| &t.cert_file)),
            ),
            (
                "tls.key_file".into(),
                tls_file(c.tls.as_ref().map(|t| &t.key_file)),
            ),
            (
                "tls.ca_file".into(),
                tls_file(c.tls.as_ref().and_then(|t| t.ca_file.as_ref())),
            ),
            (
                "backend_tls.ca_file".into(),
                tls_file(c.backend_tls.as_ref().and_then(|t| t.ca_file.as_ref())),
            ),
            (
                "backend_tls.cert_file".into(),
                tls_file(c.backend_tls.as_ref().and_then(|t| t.cert_file.as_ref())),
            ),
            (
                "backend_tls.server_name".into(),
                c.backend_tls
                    .as_ref()
                    .and_then(|t| t.server_name.clone())
                    .unwrap_or_default(),
            ),
            (
                "metrics_address".into(),
                c.metrics_address.clone().unwrap_or_default(),
            ),
            (
                "backend_tls".into(),
                match &c.backend_tls {
                    Some(t) if t.verify => "on".into(),
                    Some(_) => "on, nodes not verified".into(),
                    None => "off".into(),
                },
            ),
            // Whether one is set, never the password itself.
            (
                "backend_auth.password".into(),
                match &c.backend_auth {
                    Some(_) => "(set)".into(),
                    None => String::new(),
                },
            ),
        ]
    }
}

/// Redis-style glob: `*`, `?`, and literal characters (enough for CONFIG GET patterns).
/// Iterative, backtracking to the last star only: linear in practice, never recursive.
pub(crate) fn glob_match(p: &[u8], s: &[u8]) -> bool {
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

/// A file's path as PROXY CONFIG GET shows it (empty when unset).
fn tls_file(p: Option<&std::path::PathBuf>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

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
