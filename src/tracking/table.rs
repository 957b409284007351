//! CLIENT TRACKING's table (`tracking/mod.rs`) and its pure parts: the command's
//! arguments checked as Redis checks them, the frames sent, TRACKINGINFO.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use slab::Slab;

use crate::command::Args;
use crate::conn::client::{Client, ClientTracking};
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::resp::encode::{self, Proto};

/// What CLIENT TRACKING ON asks, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrackingRequest {
    pub on: bool,
    pub redirect: Option<u64>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

fn syntax() -> String {
    "ERR syntax error".into()
}

/// CLIENT TRACKING's arguments (from `on|off`), checked as Redis checks them.
pub fn parse<A: Args + ?Sized>(args: &A) -> Result<TrackingRequest, String> {
    let mut r = TrackingRequest::default();
    let onoff = args.arg(2);
    r.on = if onoff.eq_ignore_ascii_case(b"on") {
        true
    } else if onoff.eq_ignore_ascii_case(b"off") {
        false
    } else {
        return Err(syntax());
    };
    let mut i = 3;
    while i < args.argc() {
        let a = args.arg(i);
        let more = i + 1 < args.argc();
        if a.eq_ignore_ascii_case(b"REDIRECT") && more {
            if r.redirect.is_some() {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            let id = std::str::from_utf8(args.arg(i + 1))
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| "ERR value is not an integer or out of range".to_string())?;
            r.redirect = Some(id.max(0) as u64);
            i += 1;
        } else if a.eq_ignore_ascii_case(b"BCAST") {
            r.bcast = true;
        } else if a.eq_ignore_ascii_case(b"OPTIN") {
            r.optin = true;
        } else if a.eq_ignore_ascii_case(b"OPTOUT") {
            r.optout = true;
        } else if a.eq_ignore_ascii_case(b"NOLOOP") {
            r.noloop = true;
        } else if a.eq_ignore_ascii_case(b"PREFIX") && more {
            r.prefixes.push(Bytes::copy_from_slice(args.arg(i + 1)));
            i += 1;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    Ok(r)
}

/// The checks of CLIENT TRACKING ON against the client's state, in Redis's order.
pub fn check_on(r: &TrackingRequest, now: Option<&ClientTracking>) -> Result<(), String> {
    if !r.bcast && !r.prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if let Some(t) = now {
        if t.bcast != r.bcast {
            return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
    }
    if r.bcast && (r.optin || r.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if r.optin && r.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if let Some(t) = now {
        if (r.optin && t.optout) || (r.optout && t.optin) {
            return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
    }
    if r.bcast {
        let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
        for (i, p) in r.prefixes.iter().enumerate() {
            if let Some(old) = now.and_then(|t| t.prefixes.iter().find(|o| overlap(o, p))) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(old)
                ));
            }
            if let Some(other) = r.prefixes[i + 1..].iter().find(|o| overlap(o, p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(other)
                ));
            }
        }
    }
    Ok(())
}

/// The worker's tracking table.
#[derive(Default)]
pub(crate) struct Table {
    /// Default-mode reads: key -> the clients told when it changes.
    pub(crate) keys: HashMap<Bytes, Vec<ClientRef>>,
    /// Keys in the order they entered, for the bound (`tracking_max_keys`); a key may
    /// appear again after it left and came back (skipped when not in `keys`).
    pub(crate) order: VecDeque<Bytes>,
    /// (key, client) pairs in `keys`.
    pub(crate) items: usize,
    /// Tracking clients of this worker, and those in BCAST mode.
    pub(crate) clients: Vec<ClientRef>,
    pub(crate) bcast: Vec<ClientRef>,
    /// BCAST NOLOOP clients' own writes, not told on the next invalidation of the key.
    pub(crate) own_writes: HashMap<Bytes, Vec<ClientRef>>,
    /// Entries pushed out by the bound, to be told.
    pub(crate) evicted: Vec<(Bytes, Vec<ClientRef>)>,
    /// CLIENT TRACKING ON answers waiting for every master to track (the first client's,
    /// or while a master has not confirmed yet): (client, its reply's place).
    pub(crate) waiting: Vec<(ClientRef, u64)>,
    /// Some were answered before every master confirmed: a flush is due once they did.
    pub(crate) flush_when_ready: bool,
}

impl Table {
    pub(crate) fn active(&self) -> bool {
        !self.clients.is_empty()
    }

    /// INFO's figures (this worker's): tracking clients, keys, (key, client) pairs.
    pub(crate) fn figures(&self) -> (usize, usize, usize) {
        (self.clients.len(), self.keys.len(), self.items)
    }

    /// Clients that stopped tracking without saying (RESET) leave the lists.
    pub(crate) fn prune(&mut self, clients: &Slab<Client>) -> bool {
        let live = |r: &ClientRef| {
            clients
                .get(r.idx)
                .is_some_and(|c| c.gen == r.gen && c.tracking.is_some())
        };
        self.clients.retain(live);
        self.bcast.retain(live);
        self.clients.is_empty()
    }
}

/// A RESP3 invalidation push for one key, or for everything (None).
pub(crate) fn push(out: &mut Vec<u8>, keys: Option<&[Bytes]>) {
    out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    keys_or(out, keys, b"_\r\n");
}

/// The same as a `__redis__:invalidate` message to a RESP2 subscriber.
pub(crate) fn message(out: &mut Vec<u8>, keys: Option<&[Bytes]>) {
    out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    keys_or(out, keys, b"$-1\r\n");
}

/// The invalidated keys as an array, or `null` (the protocol's) for everything.
fn keys_or(out: &mut Vec<u8>, keys: Option<&[Bytes]>, null: &[u8]) {
    match keys {
        Some(ks) => {
            encode::array_header(out, ks.len());
            for k in ks {
                encode::bulk(out, k);
            }
        }
        None => out.extend_from_slice(null),
    }
}

/// CLIENT CACHING YES|NO: the next command's reads are (not) remembered.
pub(crate) fn client_caching<A: Args + ?Sized>(c: &mut Client, args: &A) -> Vec<u8> {
    let refuse = |e: &str| ProxyError::Redis(e.into()).to_frame();
    let Some(t) = c.tracking.as_deref_mut().filter(|t| t.optin || t.optout) else {
        return refuse("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    let arg = if args.argc() > 2 {
        args.arg(2).to_ascii_uppercase()
    } else {
        Vec::new()
    };
    match &arg[..] {
        b"YES" if !t.optin => {
            refuse("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        }
        b"NO" if !t.optout => {
            refuse("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        }
        b"YES" | b"NO" => {
            t.caching = Some(&arg[..] == b"YES");
            b"+OK\r\n".to_vec()
        }
        _ => refuse("ERR syntax error"),
    }
}

/// A set's header: RESP3 `~`, RESP2 an array.
fn set_header(out: &mut Vec<u8>, n: usize, proto: Proto) {
    out.push(if proto == Proto::Resp3 { b'~' } else { b'*' });
    encode::decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// CLIENT TRACKINGINFO.
pub(crate) fn trackinginfo(t: Option<&ClientTracking>, proto: Proto) -> Vec<u8> {
    let mut out = Vec::new();
    encode::map_header(&mut out, 3, proto);
    encode::bulk(&mut out, b"flags");
    let mut flags: Vec<&str> = Vec::new();
    match t {
        None => flags.push("off"),
        Some(t) => {
            flags.push("on");
            if t.bcast {
                flags.push("bcast");
            }
            if t.optin {
                flags.push("optin");
                if t.caching == Some(true) {
                    flags.push("caching-yes");
                }
            }
            if t.optout {
                flags.push("optout");
                if t.caching == Some(false) {
                    flags.push("caching-no");
                }
            }
            if t.noloop {
                flags.push("noloop");
            }
            if t.broken {
                flags.push("broken_redirect");
            }
        }
    }
    set_header(&mut out, flags.len(), proto);
    for f in flags {
        encode::bulk(&mut out, f.as_bytes());
    }
    encode::bulk(&mut out, b"redirect");
    encode::integer(&mut out, t.map_or(-1, |t| t.redirect as i64));
    encode::bulk(&mut out, b"prefixes");
    let prefixes = t.map(|t| &t.prefixes[..]).unwrap_or_default();
    encode::array_header(&mut out, prefixes.len());
    for p in prefixes {
        encode::bulk(&mut out, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Result<TrackingRequest, String> {
        let argv: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        parse(&argv[..])
    }

    #[test]
    fn tracking_requests_are_checked_as_redis_checks_them() {
        let on =
            |line: &str, now: Option<&ClientTracking>| req(line).and_then(|r| check_on(&r, now));
        assert!(on("CLIENT TRACKING on", None).is_ok());
        assert_eq!(req("CLIENT TRACKING foo").unwrap_err(), "ERR syntax error");
        assert_eq!(
            req("CLIENT TRACKING on noloop bogus").unwrap_err(),
            "ERR syntax error"
        );
        assert_eq!(
            on("CLIENT TRACKING on prefix a", None).unwrap_err(),
            "ERR PREFIX option requires BCAST mode to be enabled"
        );
        assert_eq!(
            on("CLIENT TRACKING on bcast optin", None).unwrap_err(),
            "ERR OPTIN and OPTOUT are not compatible with BCAST"
        );
        assert_eq!(
            on("CLIENT TRACKING on optin optout", None).unwrap_err(),
            "ERR You can't specify both OPTIN mode and OPTOUT mode"
        );
        assert_eq!(
            on("CLIENT TRACKING on bcast prefix a prefix ab", None).unwrap_err(),
            "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap."
        );
        let bcast_a = ClientTracking {
            bcast: true,
            prefixes: vec![Bytes::from_static(b"a")],
            ..Default::default()
        };
        assert_eq!(
            on("CLIENT TRACKING on bcast prefix ab", Some(&bcast_a)).unwrap_err(),
            "ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single client must not overlap."
        );
        assert!(on("CLIENT TRACKING on bcast prefix b noloop", Some(&bcast_a)).is_ok());
        let optin = ClientTracking {
            optin: true,
            ..Default::default()
        };
        assert!(on("CLIENT TRACKING on bcast", Some(&optin))
            .unwrap_err()
            .contains("switch BCAST"));
        assert!(on("CLIENT TRACKING on optout", Some(&optin))
            .unwrap_err()
            .contains("switch OPTIN/OPTOUT"));
        assert_eq!(
            req("CLIENT TRACKING on redirect x").unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            req("CLIENT TRACKING on redirect 7").unwrap().redirect,
            Some(7)
        );
    }

    #[test]
    fn trackinginfo_is_redis_shaped() {
        let r2 = trackinginfo(None, Proto::Resp2);
        assert_eq!(
            r2,
            b"*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n"
        );
        let t = ClientTracking {
            optin: true,
            caching: Some(true),
            ..Default::default()
        };
        let r3 = trackinginfo(Some(&t), Proto::Resp3);
        assert!(r3.starts_with(
            b"%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n"
        ));
        let mut out = Vec::new();
        push(&mut out, Some(&[Bytes::from_static(b"k")]));
        assert_eq!(out, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
    }
}
