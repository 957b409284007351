//! The configuration as the proxy loads it, at start and again on SIGHUP or PROXY RELOAD:
//! the file, the command line's flags over it, every check that can refuse it (values,
//! password sources, TLS files, users' rules). On a reload, what can change live changes
//! for every worker at its next turn; a key that needs a restart is named and keeps its
//! value; a file that does not load keeps the whole previous configuration. No client is
//! dropped by a reload.
//!
//! ```text
//!   SIGHUP / PROXY RELOAD --> signals::reload_generation() moves on
//!   each worker's turn: generation seen? no --> load(file, flags)
//!        --Err--> warn, keep everything
//!        --Ok(new)--> restart-only keys that differ: warn by name, keep the old value
//!                     the rest: into Core (limits, timeouts, address_map, users, creds...)
//! ```

use std::path::Path;

use log::{info, warn};

use crate::config::{parse_duration, Config};
use crate::reactor::Core;

pub use crate::config::Source;

/// The configuration file (or the defaults), the flags' overrides, validated and with its
/// secrets read.
pub fn load(path: Option<&Path>, overrides: &[(String, String)]) -> Result<Config, String> {
    let mut cfg = match path {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    apply_overrides(&mut cfg, overrides).and_then(|_| cfg.validate().map_err(|e| e.0))?;
    if let Some(auth) = cfg.backend_auth.as_mut() {
        auth.resolve().map_err(|e| e.0)?;
    }
    // The TLS files, loaded now so that a missing or bad one is a configuration error.
    if let (Some(t), true) = (&cfg.tls, cfg.tls_port != 0) {
        crate::conn::tls::server_config(t)?;
    }
    if let Some(t) = &cfg.backend_tls {
        crate::conn::tls::client_config(t)?;
    }
    // The users' rules, checked now so that a bad one is a configuration error.
    if let Some(auth) = &cfg.auth {
        crate::acl::Users::from_config(auth).map_err(|e| e.0)?;
    }
    Ok(cfg)
}

/// The command line's flags, which win over the file.
pub fn apply_overrides(cfg: &mut Config, overrides: &[(String, String)]) -> Result<(), String> {
    for (k, v) in overrides {
        match k.as_str() {
            "port" => {
                cfg.proxy_port = v
                    .parse()
                    .map_err(|_| format!("--port: '{v}' is not a port number"))?
            }
            "bind" => cfg.bind = v.clone(),
            "nodes" => {
                cfg.redis_nodes = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "auto_redirect" => {
                cfg.auto_redirect = match v.as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => return Err(format!("--auto-redirect: '{v}' is not true or false")),
                }
            }
            "refresh_interval" => {
                cfg.refresh_interval = parse_duration(v)
                    .ok_or_else(|| format!("--refresh-interval: '{v}' is not a duration"))?
            }
            "log_level" => cfg.log_level = v.clone(),
            "busy_poll" => {
                cfg.busy_poll = parse_duration(v)
                    .ok_or_else(|| format!("--busy-poll: '{v}' is not a duration"))?
            }
            "workers" => {
                cfg.workers = v
                    .parse()
                    .map_err(|_| format!("--workers: '{v}' is not a number"))?
            }
            _ => {}
        }
    }
    Ok(())
}

/// The log level of `log_level` when it is a plain level (not per-module directives).
pub fn plain_level(s: &str) -> Option<log::LevelFilter> {
    s.trim().parse().ok()
}

/// Where the new configuration differs from the running one: each key's name and whether a
/// reload applies it live (false: the listeners, the worker threads, the pools, which need a
/// restart). Names only: some values are secrets.
fn changes(old: &Config, new: &Config) -> Vec<(&'static str, bool)> {
    let keys = [
        ("proxy_port", false, old.proxy_port != new.proxy_port),
        ("bind", false, old.bind != new.bind),
        ("workers", false, old.workers != new.workers),
        ("tls_port", false, old.tls_port != new.tls_port),
        ("socket", false, old.socket != new.socket),
        ("busy_poll", false, old.busy_poll != new.busy_poll),
        // Other files or names are taken live; turning TLS to the nodes on or off is not
        // (the nodes' ports differ).
        (
            "backend_tls",
            old.backend_tls.is_some() == new.backend_tls.is_some(),
            old.backend_tls != new.backend_tls,
        ),
        ("cluster_view", false, old.cluster_view != new.cluster_view),
        ("log_level", true, old.log_level != new.log_level),
        (
            "max_redirects",
            true,
            old.max_redirects != new.max_redirects,
        ),
        (
            "auto_redirect",
            true,
            old.auto_redirect != new.auto_redirect,
        ),
        ("address_map", true, old.address_map != new.address_map),
        ("read_from", true, old.read_from != new.read_from),
        ("redis_nodes", true, old.redis_nodes != new.redis_nodes),
        (
            "client_timeout",
            true,
            old.client_timeout != new.client_timeout,
        ),
        ("max_clients", true, old.max_clients != new.max_clients),
        ("auth", true, old.auth != new.auth),
        ("backend_auth", true, old.backend_auth != new.backend_auth),
        (
            "protected_mode",
            true,
            old.protected_mode != new.protected_mode,
        ),
        ("tls", true, old.tls != new.tls),
        (
            "backend_connections",
            false,
            old.backend_connections != new.backend_connections,
        ),
        (
            "announce_address",
            false,
            old.announce_address != new.announce_address,
        ),
        (
            "metrics_address",
            false,
            old.metrics_address != new.metrics_address,
        ),
        (
            "refresh_interval",
            true,
            old.refresh_interval != new.refresh_interval,
        ),
        (
            "connect_timeout",
            true,
            old.connect_timeout != new.connect_timeout,
        ),
        (
            "backend_timeout",
            true,
            old.backend_timeout != new.backend_timeout,
        ),
        (
            "failover_wait",
            true,
            old.failover_wait != new.failover_wait,
        ),
        (
            "slow_command_threshold",
            true,
            old.slow_command_threshold != new.slow_command_threshold,
        ),
        (
            "client_max_pending",
            true,
            old.client_max_pending != new.client_max_pending,
        ),
        (
            "client_output_limit",
            true,
            old.client_output_limit != new.client_output_limit,
        ),
        (
            "allow_admin_commands",
            true,
            old.allow_admin_commands != new.allow_admin_commands,
        ),
        (
            "log_connections",
            true,
            old.log_connections != new.log_connections,
        ),
        (
            "cross_slot_writes",
            true,
            old.cross_slot_writes != new.cross_slot_writes,
        ),
        (
            "tracking_max_keys",
            true,
            old.tracking_max_keys != new.tracking_max_keys,
        ),
    ];
    keys.into_iter()
        .filter(|(_, _, differs)| *differs)
        .map(|(name, live, _)| (name, live))
        .collect()
}

/// The changed keys that are (`live`) or are not applied by a reload.
fn changed_keys(old: &Config, new: &Config, live: bool) -> Vec<&'static str> {
    changes(old, new)
        .into_iter()
        .filter(|(_, l)| *l == live)
        .map(|(name, _)| name)
        .collect()
}

impl Core {
    /// Takes what can change live from `new`; names what cannot.
    pub(crate) fn apply_reload(&mut self, mut new: Config) {
        let kept = changed_keys(&self.cfg, &new, false);
        if !kept.is_empty() {
            warn!(
                "reload: {} changed in the file, but a restart is needed for that; the running values stay",
                kept.join(", ")
            );
        }
        // The restart-only keys keep their running values.
        new.proxy_port = self.cfg.proxy_port;
        new.bind = self.cfg.bind.clone();
        new.workers = self.cfg.workers;
        new.tls_port = self.cfg.tls_port;
        new.socket = self.cfg.socket.clone();
        new.busy_poll = self.cfg.busy_poll;
        new.backend_connections = self.cfg.backend_connections;
        new.announce_address = self.cfg.announce_address.clone();
        match (self.backend_tls.as_mut(), &new.backend_tls) {
            // Checked by `load`; a file changed since then keeps the previous configuration.
            (Some(t), Some(files)) => {
                if let Err(e) = t.replace(files) {
                    warn!("reload: {e}; keeping the previous backend_tls files");
                    new.backend_tls = self.cfg.backend_tls.clone();
                }
            }
            _ => new.backend_tls = self.cfg.backend_tls.clone(),
        }
        new.cluster_view = self.cfg.cluster_view;
        new.metrics_address = self.cfg.metrics_address.clone();
        if new.log_level != self.cfg.log_level && std::env::var_os("RUST_LOG").is_none() {
            match plain_level(&new.log_level) {
                Some(level) => log::set_max_level(level),
                None => warn!(
                    "reload: log_level '{}' is not a plain level; keeping the running one",
                    new.log_level
                ),
            }
        }
        self.addr_map = crate::topology::AddressMap::new(new.address_map.clone());
        self.creds = new.backend_auth.as_ref().and_then(|a| {
            crate::auth::NodeCredentials::new(a.user.as_deref(), a.resolved.as_ref()?)
        });
        if let Some(a) = &new.auth {
            // Checked by `load`: cannot fail; clients keep the user they logged in as.
            if let Ok(users) = crate::acl::Users::from_config(a) {
                self.users = users;
            }
        }
        self.acl_open = new.auth.is_none();
        if new.auth.is_none() && self.cfg.auth.is_some() {
            self.users = crate::acl::Users::open();
        }
        let bind: std::net::IpAddr = new.bind.parse().unwrap_or([127, 0, 0, 1].into());
        self.protected = crate::auth::protected_refuses(
            new.protected_mode,
            new.auth.is_some(),
            bind,
            [10, 0, 0, 1].into(),
        );
        self.wake.limits.max_pending = new.client_max_pending;
        self.wake.limits.soft_output = (new.client_output_limit / 8).max(64 * 1024);
        self.wake.limits.hard_output = new.client_output_limit;
        self.seeds = new.redis_nodes.clone();
        if self.worker == 0 {
            let changed = changed_keys(&self.cfg, &new, true);
            match changed.is_empty() {
                true => info!("configuration reloaded: nothing that applies live changed"),
                false => info!("configuration reloaded: {} changed", changed.join(", ")),
            }
        }
        self.cfg = new;
    }
}
