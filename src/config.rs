//! The proxy's configuration: the YAML file's schema, its defaults, and validation whose
//! messages name the offending key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

pub const DEFAULT_PORT: u16 = 6379;
pub const DEFAULT_BIND: &str = "127.0.0.1";
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Longer than a failover takes with Redis's default `cluster-node-timeout` of 15 s would
/// be too long for a client to wait; 5 s covers a cluster tuned for fast failover (2-3 s)
/// and the promotion itself.
pub const DEFAULT_FAILOVER_WAIT: Duration = Duration::from_secs(5);
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKEND_CONNECTIONS: usize = 1;
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);
pub const DEFAULT_BACKLOG: i32 = 1024;
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
pub const DEFAULT_CLIENT_MAX_PENDING: usize = 1024;
pub const DEFAULT_CLIENT_OUTPUT_LIMIT: usize = 64 << 20;

/// Everything the proxy reads from `config.yaml`; every field has a default so an empty file
/// is a valid configuration (apart from `redis_nodes`, which must name at least one node).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Port the proxy listens on.
    pub proxy_port: u16,
    /// Address the proxy listens on.
    pub bind: String,
    /// Seed nodes (`host:port`): any subset of the cluster; the rest is discovered.
    pub redis_nodes: Vec<String>,
    /// Follow MOVED/ASK inside the proxy (true) or pass them on to the client (false).
    pub auto_redirect: bool,
    /// Redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN retries) one request may take.
    pub max_redirects: u32,
    /// Period of the topology refresh.
    #[serde(deserialize_with = "duration")]
    pub refresh_interval: Duration,
    /// Time allowed for a TCP connect to a node.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Time a node may take to answer a request before its connection is declared broken;
    /// 0 disables the check.
    #[serde(deserialize_with = "duration")]
    pub backend_timeout: Duration,
    /// How long a request for a node that is down (refused, reset, timed out) or that
    /// answers CLUSTERDOWN, MASTERDOWN, TRYAGAIN or LOADING waits for the cluster to mend
    /// (a replica promoted, the node back) before its client gets an error; 0 fails at once.
    #[serde(deserialize_with = "duration")]
    pub failover_wait: Duration,
    /// A shared node connection whose oldest request has waited this long (a slow script,
    /// a paused node) takes no other client's requests: they go on a fresh connection, so
    /// one slow command never stalls every client of its node. 0 disables it.
    #[serde(deserialize_with = "duration")]
    pub slow_command_threshold: Duration,
    /// Shared, pipelined connections per node (and per protocol).
    pub backend_connections: usize,
    /// Internal `host:port` -> public `host:port`, applied to addresses shown to clients.
    pub address_map: BTreeMap<String, String>,
    /// error, warn, info, debug or trace; RUST_LOG wins when set.
    pub log_level: String,
    /// How CLUSTER INFO/NODES/SLOTS/SHARDS are answered: `passthrough` (from a node, with
    /// addresses rewritten by `address_map`) or `proxy` (the proxy presents itself as a
    /// one-node cluster owning every slot, so cluster-mode clients stay on it).
    pub cluster_view: ClusterView,
    /// The `host:port` the proxy gives as its own address in the `proxy` cluster view;
    /// unset: the listen address (127.0.0.1 when listening on every interface).
    pub announce_address: Option<String>,
    /// Let cluster-changing commands (CLUSTER ADDSLOTS/SETSLOT/FAILOVER/..., through to a
    /// node. Refused by default.
    pub allow_admin_commands: bool,
    /// Writes whose keys span slots (SUNIONSTORE, RENAME, SMOVE, LMOVE, PFMERGE, BITOP,
    /// MSETNX, ...) done by the proxy in stages, never atomically; off: CROSSSLOT, as Redis
    /// Cluster answers. docs/commands.md lists what each does.
    pub cross_slot_writes: bool,
    /// CLIENT TRACKING: keys remembered per worker at most (Redis's
    /// tracking-table-max-keys); past it the oldest keys' clients are told to drop them.
    pub tracking_max_keys: usize,
    /// Client connects and disconnects logged at info (at debug otherwise): who came, from
    /// where, and why they left.
    pub log_connections: bool,
    /// Where read-only commands go: `master`, `replica` (a replica of the slot's master,
    /// round-robin; an error when none is up) or `prefer_replica` (a replica, else the master).
    pub read_from: ReadFrom,
    /// Independent reactors (threads), each with its own listener on the same port
    /// (SO_REUSEPORT), its own copy of the topology and its own node connections; the kernel
    /// spreads new clients over them.
    pub workers: usize,
    /// Clients connected at once; the next one gets `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// Close a client idle (no request, nothing pending) this long; 0 disables it. A request
    /// that never completes does not count as activity.
    #[serde(deserialize_with = "duration")]
    pub client_timeout: Duration,
    /// Requests one client may have waiting for replies before the proxy stops reading it.
    pub client_max_pending: usize,
    /// Unsent reply bytes past which a client that does not read is disconnected (Redis's
    /// client-output-buffer-limit); reading it stops at an eighth of this.
    #[serde(deserialize_with = "byte_size")]
    pub client_output_limit: usize,
    /// After traffic, poll without sleeping for this long before blocking: a request or
    /// reply arriving meanwhile is taken without the wakeup a sleeping thread needs. Cuts
    /// latency; costs CPU (the thread spins while traffic keeps coming). 0 disables it.
    #[serde(deserialize_with = "duration")]
    pub busy_poll: Duration,
    /// Socket options for the listener, client and backend sockets.
    pub socket: SocketOptions,
    /// Credentials the proxy presents to every node (a cluster with `requirepass`, or an
    /// ACL user); unset: none.
    pub backend_auth: Option<BackendAuth>,
    /// Clients' authentication: the default user's password (Redis's `requirepass`) and
    /// users with ACL rules; unset: no authentication (see `protected_mode`).
    pub auth: Option<AuthConfig>,
    /// TLS towards the nodes (a cluster with `tls-port`, `port 0`, `tls-cluster yes`).
    pub backend_tls: Option<BackendTlsConfig>,
    /// `host:port` of the metrics endpoint (Prometheus /metrics, /healthz, /readyz); unset:
    /// none.
    pub metrics_address: Option<String>,
    /// A second port for TLS clients (0: none); needs `tls`.
    pub tls_port: u16,
    /// The TLS port's certificate and key, and a CA for client certificates (mTLS).
    pub tls: Option<TlsConfig>,
    /// With no `auth`, answer only loopback clients (Redis's protected mode): a proxy bound
    /// to a reachable address is not an open door by default.
    pub protected_mode: bool,
}

/// `tls`: PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// `backend_tls`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendTlsConfig {
    /// The CA that signed the nodes' certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// The proxy's certificate and key, for nodes with `tls-auth-clients yes`.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// The name the nodes' certificates are checked against; unset: each node's address.
    pub server_name: Option<String>,
    /// Verify the nodes' certificates (false: encrypted, but not authenticated).
    pub verify: bool,
}

impl Default for BackendTlsConfig {
    fn default() -> Self {
        BackendTlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            verify: true,
        }
    }
}

/// `auth`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The `default` user's password (AUTH <password>).
    pub password: Option<crate::auth::Secret>,
    pub users: Vec<UserConfig>,
}

/// One of `auth.users`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain, or `sha256:<64 hex digits>` (as ACL's `#<hash>`).
    #[serde(default)]
    pub passwords: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Redis ACL rules, space separated: `+@all -@dangerous ~app:* &*`, `nopass`, ...
    #[serde(default)]
    pub rules: String,
}

fn yes() -> bool {
    true
}

/// Never prints the passwords.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("passwords", &self.passwords.len())
            .field("enabled", &self.enabled)
            .field("rules", &self.rules)
            .finish()
    }
}

/// `backend_auth`: the user (Redis's `default` when unset) and its password, given in the
/// file itself, in a file of its own, or in an environment variable, so that it need not
/// sit in the YAML. Exactly one of the three.
#[derive(Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BackendAuth {
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    /// The password, read once at start-up from whichever source was given.
    #[serde(skip)]
    pub resolved: Option<crate::auth::Secret>,
}

/// Never prints the password.
impl fmt::Debug for BackendAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendAuth")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl BackendAuth {
    /// Reads the password from its source; the error names the key, never the secret.
    pub fn resolve(&mut self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let given = [
            self.password.is_some(),
            self.password_file.is_some(),
            self.password_env.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            return err(
                "backend_auth: give exactly one of password, password_file, password_env".into(),
            );
        }
        let secret = if let Some(p) = &self.password {
            p.clone()
        } else if let Some(path) = &self.password_file {
            match std::fs::read_to_string(path) {
                // A trailing newline (echo secret > file) is not part of the password.
                Ok(text) => text.trim_end_matches(['\r', '\n']).to_string(),
                Err(e) => {
                    return err(format!(
                        "backend_auth.password_file: cannot read {path}: {e}"
                    ))
                }
            }
        } else {
            let name = self.password_env.as_deref().unwrap_or_default();
            match std::env::var(name) {
                Ok(v) => v,
                Err(_) => {
                    return err(format!(
                        "backend_auth.password_env: the environment variable {name} is not set"
                    ))
                }
            }
        };
        if secret.is_empty() || secret.len() > crate::auth::MAX_PASSWORD {
            return err(format!(
                "backend_auth: the password must be 1 to {} bytes",
                crate::auth::MAX_PASSWORD
            ));
        }
        if let Some(u) = &self.user {
            if u.is_empty()
                || u.len() > crate::auth::MAX_PASSWORD
                || u.contains(char::is_whitespace)
            {
                return err("backend_auth.user: a user name without spaces, 1 to 512 bytes".into());
            }
        }
        self.resolved = Some(crate::auth::Secret::new(secret));
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClusterView {
    #[default]
    Passthrough,
    Proxy,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Master,
    Replica,
    PreferReplica,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SocketOptions {
    /// TCP_NODELAY on client and backend sockets.
    pub tcp_nodelay: bool,
    /// TCP keepalive idle time on client and backend sockets; 0 disables keepalive.
    #[serde(deserialize_with = "duration")]
    pub tcp_keepalive: Duration,
    /// SO_SNDBUF in bytes for every socket; unset leaves the kernel's default.
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF in bytes for every socket; unset leaves the kernel's default.
    pub recv_buffer: Option<usize>,
    /// Listen backlog.
    pub backlog: i32,
    /// SO_REUSEPORT on the listener, so several proxies can share one port.
    pub reuse_port: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            tcp_nodelay: true,
            tcp_keepalive: DEFAULT_KEEPALIVE,
            send_buffer: None,
            recv_buffer: None,
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            proxy_port: DEFAULT_PORT,
            bind: DEFAULT_BIND.to_string(),
            redis_nodes: Vec::new(),
            auto_redirect: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            backend_timeout: DEFAULT_BACKEND_TIMEOUT,
            failover_wait: DEFAULT_FAILOVER_WAIT,
            slow_command_threshold: Duration::from_secs(1),
            backend_connections: DEFAULT_BACKEND_CONNECTIONS,
            address_map: BTreeMap::new(),
            log_level: "info".to_string(),
            cluster_view: ClusterView::Passthrough,
            announce_address: None,
            allow_admin_commands: false,
            cross_slot_writes: false,
            tracking_max_keys: 1_000_000,
            log_connections: false,
            read_from: ReadFrom::Master,
            workers: 1,
            max_clients: DEFAULT_MAX_CLIENTS,
            client_timeout: Duration::ZERO,
            busy_poll: Duration::ZERO,
            client_max_pending: DEFAULT_CLIENT_MAX_PENDING,
            client_output_limit: DEFAULT_CLIENT_OUTPUT_LIMIT,
            socket: SocketOptions::default(),
            backend_auth: None,
            auth: None,
            tls_port: 0,
            metrics_address: None,
            backend_tls: None,
            tls: None,
            protected_mode: true,
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::from_yaml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        // An empty file or one with only comments is the all-defaults configuration.
        if text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---"
        }) {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text).map_err(|e| ConfigError(locate(text, &e)))
    }

    /// Checks what serde cannot: values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.redis_nodes.is_empty() {
            return err("redis_nodes: at least one node (host:port) is required".into());
        }
        for n in &self.redis_nodes {
            // A seed with credentials (redis://user:pass@host:port): refused without
            // repeating it, so the password reaches no log.
            if n.contains('@') || n.contains("://") {
                return err(format!(
                    "redis_nodes: '{}' is a URL; give host:port, and credentials in backend_auth",
                    crate::auth::redact_url(n)
                ));
            }
            if split_host_port(n).is_none() {
                return err(format!("redis_nodes: '{n}' is not host:port"));
            }
        }
        self.validate_access()?;
        if self.bind.parse::<IpAddr>().is_err() {
            return err(format!("bind: '{}' is not an IP address", self.bind));
        }
        if self.busy_poll > MAX_BUSY_POLL {
            return err("busy_poll: must be at most 10ms (it is a spin, not a sleep)".into());
        }
        if self.backend_connections == 0 || self.backend_connections > 64 {
            return err("backend_connections: must be between 1 and 64".into());
        }
        if self.tracking_max_keys == 0 {
            return err("tracking_max_keys: must be at least 1".into());
        }
        if self.max_redirects > 100 {
            return err("max_redirects: must be at most 100".into());
        }
        if self.refresh_interval < Duration::from_millis(100) {
            return err("refresh_interval: must be at least 100ms".into());
        }
        if self.connect_timeout.is_zero() {
            return err("connect_timeout: must be greater than 0".into());
        }
        for (k, v) in &self.address_map {
            if split_host_port(k).is_none() {
                return err(format!("address_map: key '{k}' is not host:port"));
            }
            if split_host_port(v).is_none() {
                return err(format!(
                    "address_map: value '{v}' for '{k}' is not host:port"
                ));
            }
        }
        if self.log_level.parse::<log::LevelFilter>().is_err() {
            return err(format!(
                "log_level: '{}' is not one of off, error, warn, info, debug, trace",
                self.log_level
            ));
        }
        if let Some(a) = &self.announce_address {
            if split_host_port(a).is_none() {
                return err(format!("announce_address: '{a}' is not host:port"));
            }
        }
        if self.workers == 0 || self.workers > 64 {
            return err("workers: must be between 1 and 64".into());
        }
        if self.max_clients == 0 {
            return err("max_clients: must be greater than 0".into());
        }
        if self.client_max_pending == 0 {
            return err("client_max_pending: must be greater than 0".into());
        }
        if self.client_output_limit < 1 << 20 {
            return err("client_output_limit: must be at least 1mb".into());
        }
        if self.socket.backlog <= 0 {
            return err("socket.backlog: must be greater than 0".into());
        }
        for (name, v) in [
            ("socket.send_buffer", self.socket.send_buffer),
            ("socket.recv_buffer", self.socket.recv_buffer),
        ] {
            if let Some(v) = v {
                if !(1024..=64 << 20).contains(&v) {
                    return err(format!("{name}: must be between 1024 and 67108864 bytes"));
                }
            }
        }
        Ok(())
    }

    /// `auth`, `metrics_address`, `tls_port`: who may connect and where.
    fn validate_access(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if let Some(a) = &self.auth {
            if a.password.is_none() && a.users.is_empty() {
                return err(
                    "auth: give a password (the default user's) or users; an empty auth lets no one in"
                        .into(),
                );
            }
        }
        if let Some(m) = &self.metrics_address {
            if m.parse::<std::net::SocketAddr>().is_err() {
                return err(format!("metrics_address: '{m}' is not ip:port"));
            }
        }
        if self.tls_port != 0 && self.tls.is_none() {
            return err("tls_port: needs tls (cert_file and key_file)".into());
        }
        if self.tls_port != 0 && self.tls_port == self.proxy_port {
            return err("tls_port: must differ from proxy_port".into());
        }
        Ok(())
    }
}

/// Splits `host:port` (or `[v6]:port`) into its parts; None when it is not of that form.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    if port == 0 {
        return None;
    }
    Some((host, port))
}

/// Parses `30s`, `500ms`, `50us`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    if secs > 365.0 * 86400.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses `64mb`, `512kb`, `1gb` or a bare number of bytes.
pub fn parse_byte_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = s.strip_suffix("gb") {
        (n, 1usize << 30)
    } else if let Some(n) = s.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = s.strip_suffix('b') {
        (n, 1)
    } else {
        (s.as_str(), 1)
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mult)
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Int(n) => n.to_string(),
        Raw::Text(t) => t,
    };
    parse_byte_size(&text).ok_or_else(|| {
        de::Error::custom(format!(
            "'{text}' is not a size (write it as 64mb, 512kb, 1gb or a number of bytes)"
        ))
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Int(n) => n.to_string(),
        Raw::Float(f) => f.to_string(),
        Raw::Text(t) => t,
    };
    parse_duration(&text).ok_or_else(|| {
        de::Error::custom(format!(
            "'{text}' is not a duration (write it as 30s, 500ms, 2m or a number of seconds)"
        ))
    })
}

/// A parse error with its key and line. serde_yaml places syntax errors, but a value
/// refused after it was read (a duration, a size) it places at the document's start, or
/// not at all: each top-level key is tried alone to find the one refused, and the line it
/// starts on.
fn locate(text: &str, e: &serde_yaml::Error) -> String {
    let full = e.to_string();
    // serde_yaml's own position, replaced below by the key's.
    let msg = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let Ok(serde_yaml::Value::Mapping(all)) = serde_yaml::from_str::<serde_yaml::Value>(text)
    else {
        return full;
    };
    for (k, v) in all {
        let Some(key) = k.as_str().map(str::to_string) else {
            continue;
        };
        let one: serde_yaml::Mapping = [(k, v)].into_iter().collect();
        if serde_yaml::from_value::<Config>(serde_yaml::Value::Mapping(one)).is_err() {
            let line = text.lines().position(|l| {
                l.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            });
            let at = line
                .map(|n| format!(" at line {}", n + 1))
                .unwrap_or_default();
            let msg = msg.strip_prefix(&format!("{key}: ")).unwrap_or(&msg);
            return format!("{key}{at}: {msg}");
        }
    }
    full
}

/// Where a configuration comes from: its file (none: the defaults) and the command line's
/// flags, which win over it.
pub type Source = (Option<std::path::PathBuf>, Vec<(String, String)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::from_yaml("# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn seed_keys_parse() {
        let c = Config::from_yaml(
            "proxy_port: 7777\nredis_nodes: [\"127.0.0.1:7000\"]\nauto_redirect: false\n",
        )
        .unwrap();
        assert_eq!(c.proxy_port, 7777);
        assert!(!c.auto_redirect);
        assert_eq!(c.redis_nodes, vec!["127.0.0.1:7000"]);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_yaml("proxy_prot: 1\n").unwrap_err();
        assert!(e.0.contains("proxy_prot"), "{e}");
        let e = Config::from_yaml("socket:\n  nodelay: true\n").unwrap_err();
        assert!(e.0.contains("nodelay"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_yaml("refresh_interval: soon\n").unwrap_err();
        assert!(
            e.0.contains("refresh_interval") || e.0.contains("soon"),
            "{e}"
        );
        let e = Config::from_yaml("proxy_port: 70000\n").unwrap_err();
        assert!(e.0.contains("proxy_port"), "{e}");
        let mut c = Config {
            redis_nodes: vec!["nohost".into()],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("redis_nodes"));
        c.redis_nodes = vec!["127.0.0.1:7000".into()];
        c.busy_poll = Duration::from_millis(11);
        assert!(c.validate().unwrap_err().0.contains("busy_poll"));
        c.busy_poll = Duration::from_micros(50);
        assert!(c.validate().is_ok());
        c.backend_connections = 0;
        assert!(c.validate().unwrap_err().0.contains("backend_connections"));
    }

    #[test]
    fn enums() {
        let c = Config::from_yaml("cluster_view: proxy\nread_from: prefer_replica\n").unwrap();
        assert_eq!(c.cluster_view, ClusterView::Proxy);
        assert_eq!(c.read_from, ReadFrom::PreferReplica);
        let e = Config::from_yaml("read_from: slaves\n").unwrap_err();
        assert!(e.0.contains("slaves") || e.0.contains("read_from"), "{e}");
    }

    /// A refused value names its key and line (serde_yaml alone says neither for it).
    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let e = Config::from_yaml("redis_nodes: [\"a:1\"]\n\nbackend_timeout: 10 seconds\n")
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("backend_timeout at line 3: '10 seconds' is not a duration"),
            "{e}"
        );
        let e = Config::from_yaml("client_output_limit: lots\n")
            .unwrap_err()
            .0;
        assert!(e.starts_with("client_output_limit at line 1: "), "{e}");
        // After comments, as in the sample config.yaml: still the key's own line.
        let e = Config::from_yaml("# c\n\nproxy_port: 6379\nbackend_timeout: 10 seconds\n")
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("backend_timeout at line 4: '10 seconds'"),
            "{e}"
        );
        assert!(!e.contains("column"), "{e}");
        // Syntax and unknown keys: serde_yaml's own words, with its line.
        let e = Config::from_yaml("nosuch: 1\n").unwrap_err().0;
        assert!(e.contains("nosuch") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("50us"), Some(Duration::from_micros(50)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("-1"), None);
        let c = Config::from_yaml("refresh_interval: 2s\nconnect_timeout: 250ms\n").unwrap();
        assert_eq!(c.refresh_interval, Duration::from_secs(2));
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_byte_size("64mb"), Some(64 << 20));
        assert_eq!(parse_byte_size("1GB"), Some(1 << 30));
        assert_eq!(parse_byte_size("100"), Some(100));
        assert_eq!(parse_byte_size("x"), None);
        let c = Config::from_yaml("client_output_limit: 2mb\nmax_clients: 5\n").unwrap();
        assert_eq!(c.client_output_limit, 2 << 20);
        assert_eq!(c.max_clients, 5);
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("127.0.0.1:7000"), Some(("127.0.0.1", 7000)));
        assert_eq!(split_host_port("[::1]:7000"), Some(("::1", 7000)));
        assert_eq!(split_host_port("a:0"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[test]
    fn one_source_and_bounded() {
        let mut both = BackendAuth {
            password: Some("a".into()),
            password_env: Some("X".into()),
            ..BackendAuth::default()
        };
        assert!(both.resolve().is_err());
        let mut missing = BackendAuth {
            password_file: Some("/nonexistent/rcp-password".into()),
            ..BackendAuth::default()
        };
        let e = missing.resolve().unwrap_err().0;
        assert!(e.starts_with("backend_auth.password_file:"), "{e}");
        let mut huge = BackendAuth {
            password: Some("x".repeat(crate::auth::MAX_PASSWORD + 1)),
            ..BackendAuth::default()
        };
        assert!(huge.resolve().is_err());
    }
}
