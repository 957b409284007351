//! Credentials: the proxy's own towards the nodes (`backend_auth`), sent first on every
//! node connection, pipelined with the requests behind it (no extra round trip). Secrets
//! are held in a type that never prints them.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::resp::encode;

/// Redis accepts longer passwords, but nothing reasonable is longer than this, and a bound
/// keeps a hostile AUTH from sizing anything.
pub const MAX_PASSWORD: usize = 512;

/// A password: compared and sent, never shown (`Debug` and `Display` print `(secret)`).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

/// What the proxy sends first on a node connection: `AUTH [user] password` for RESP2, or
/// `HELLO 3 AUTH user password` where the connection speaks RESP3 (one request does both).
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    auth: Bytes,
    hello3: Bytes,
}

impl NodeCredentials {
    /// `user`: None for Redis's `default` user.
    pub fn new(user: Option<&str>, password: &Secret) -> Option<NodeCredentials> {
        let pass = password.expose().as_bytes();
        let mut auth = BytesMut::new();
        match user {
            Some(user) => encode::command(&mut auth, &[b"AUTH", user.as_bytes(), pass]),
            None => encode::command(&mut auth, &[b"AUTH", pass]),
        }
        let user = user.unwrap_or("default").as_bytes();
        let mut hello3 = BytesMut::new();
        encode::command(&mut hello3, &[b"HELLO", b"3", b"AUTH", user, pass]);
        Some(NodeCredentials {
            auth: auth.freeze(),
            hello3: hello3.freeze(),
        })
    }

    pub fn auth(&self) -> Bytes {
        self.auth.clone()
    }

    pub fn hello3(&self) -> Bytes {
        self.hello3.clone()
    }
}

/// Protected mode, as Redis's: with no `auth`, a proxy bound to a reachable address serves
/// loopback clients only. Whether a client from `peer` is refused.
pub fn protected_refuses(
    protected_mode: bool,
    has_auth: bool,
    bind: std::net::IpAddr,
    peer: std::net::IpAddr,
) -> bool {
    protected_mode && !has_auth && !bind.is_loopback() && !peer.is_loopback()
}

/// A URL with its password replaced by `***`, for an error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        (None, Some(at)) => format!("***{}", &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "(secret) (secret)");
        let creds = NodeCredentials::new(None, &s).unwrap();
        assert_eq!(&creds.auth()[..], b"*2\r\n$4\r\nAUTH\r\n$7\r\nhunter2\r\n");
        assert!(creds
            .hello3()
            .starts_with(b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n"));
    }

    #[test]
    fn protected_mode_decision() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // protected_mode, auth, bind, peer -> refused
        let table = [
            (true, false, "0.0.0.0", "10.1.2.3", true),
            (true, false, "0.0.0.0", "127.0.0.1", false),
            (true, false, "0.0.0.0", "::1", false),
            (true, true, "0.0.0.0", "10.1.2.3", false),
            (false, false, "0.0.0.0", "10.1.2.3", false),
            (true, false, "127.0.0.1", "127.0.0.1", false),
        ];
        for (pm, auth, bind, peer, want) in table {
            assert_eq!(
                protected_refuses(pm, auth, ip(bind), ip(peer)),
                want,
                "{pm} {auth} {bind} {peer}"
            );
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("redis://u:secret@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_url("u:secret@h:1"), "***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}
