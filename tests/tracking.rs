//! Client-side caching through the proxy (issue 18): CLIENT TRACKING in default, BCAST,
//! OPTIN and NOLOOP modes, RESP3 pushes and RESP2 REDIRECT, invalidations for keys on every
//! master, a FLUSHALL and a lost node connection flushing everything, TRACKINGINFO and
//! GETREDIR as Redis shapes them; and redis-py 8's cache_config in RESP3.

mod common;

use common::*;
use std::time::Duration;

/// The keys of an `invalidate` push (None: flush everything), or None if `r` is not one.
fn invalidated(r: &Resp) -> Option<Option<Vec<String>>> {
    let (Resp::Push(v) | Resp::Array(v)) = r else {
        return None;
    };
    let is_msg = v.len() == 3 && v[0].text().as_deref() == Some("message");
    let (kind, keys) = match (v.len(), is_msg) {
        (2, _) => (v[0].text()?, &v[1]),
        (3, true) if v[1].text().as_deref() == Some("__redis__:invalidate") => {
            ("invalidate".into(), &v[2])
        }
        _ => return None,
    };
    if kind != "invalidate" {
        return None;
    }
    Some(match keys {
        Resp::Array(ks) => Some(ks.iter().filter_map(|k| k.text()).collect()),
        _ => None,
    })
}

/// Invalidated keys that arrive on `c` within `wait` (pushes only; anything else fails).
fn pushes(c: &mut RawClient, wait: Duration) -> Vec<Option<String>> {
    c.set_timeout(wait);
    let mut out = Vec::new();
    while let Ok(r) = c.read_reply() {
        match invalidated(&r) {
            Some(Some(keys)) => out.extend(keys.into_iter().map(Some)),
            Some(None) => out.push(None),
            None => panic!("not an invalidation: {r:?}"),
        }
        c.set_timeout(Duration::from_millis(300));
    }
    c.set_timeout(Duration::from_secs(10));
    out
}

/// A command's reply on a RESP3 connection, the invalidations that came before it set
/// aside in `seen` (Redis sends them whenever they happen).
fn cmd3(c: &mut RawClient, args: &[&str], seen: &mut Vec<Option<String>>) -> Resp {
    c.send_cmd(args);
    loop {
        let r = c.reply();
        match invalidated(&r) {
            Some(Some(keys)) if matches!(r, Resp::Push(_)) => {
                seen.extend(keys.into_iter().map(Some))
            }
            Some(None) if matches!(r, Resp::Push(_)) => seen.push(None),
            _ => return r,
        }
    }
}

fn resp3(proxy: &Proxy) -> RawClient {
    let mut c = proxy.raw();
    assert!(matches!(c.cmd(&["HELLO", "3"]), Resp::Map(_)));
    c
}

#[test]
fn invalidations_reach_tracking_clients_for_keys_of_every_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let ok = Resp::Simple("OK".into());
    let keys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "trk:"))
        .collect();
    let mut w = proxy.raw();
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "v1"]), ok);
    }

    // Default mode, RESP3: a key read is told when another client writes it, once; a key
    // not read is not.
    let mut t = resp3(&proxy);
    assert_eq!(t.cmd(&["CLIENT", "TRACKING", "ON"]), ok);
    // The first tracking client turns tracking on at every master; the flush that follows
    // comes before anything it reads is remembered.
    let _ = pushes(&mut t, Duration::from_millis(500));
    for k in &keys {
        assert_eq!(t.cmd(&["GET", k]).text().as_deref(), Some("v1"));
    }
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "v2"]), ok);
    }
    assert_eq!(w.cmd(&["SET", "trk:unread", "x"]), ok);
    let mut got = pushes(&mut t, Duration::from_secs(5));
    got.sort();
    let mut want: Vec<Option<String>> = keys.iter().cloned().map(Some).collect();
    want.sort();
    assert_eq!(got, want, "one invalidation per key read, on every master");
    // Told once: the key is no longer tracked until read again.
    assert_eq!(w.cmd(&["SET", &keys[0], "v3"]), ok);
    assert!(pushes(&mut t, Duration::from_millis(500)).is_empty());
    // Read again (MGET across slots: every key), then FLUSHALL: a null (everything).
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(|k| k.as_str()));
    assert!(matches!(t.cmd(&mget), Resp::Array(_)));
    let info = t.cmd(&["INFO", "proxy"]).text().unwrap_or_default();
    assert!(info.contains("tracking_clients:1"), "{info}");
    assert!(info.contains("tracking_total_keys:3"), "{info}");
    assert_eq!(w.cmd(&["FLUSHALL"]), ok);
    let got = pushes(&mut t, Duration::from_secs(5));
    assert!(got.contains(&None), "FLUSHALL: {got:?}");

    // OPTIN: only a read after CLIENT CACHING YES is remembered; NOLOOP: the client's own
    // write ends its interest without telling it (as Redis does), so a later write by
    // another client is not told either.
    let mut o = resp3(&proxy);
    let mut seen = Vec::new();
    assert_eq!(
        cmd3(
            &mut o,
            &["CLIENT", "TRACKING", "ON", "OPTIN", "NOLOOP"],
            &mut seen
        ),
        ok
    );
    cmd3(&mut o, &["GET", &keys[0]], &mut seen);
    for k in [&keys[1], &keys[2]] {
        assert_eq!(cmd3(&mut o, &["CLIENT", "CACHING", "YES"], &mut seen), ok);
        cmd3(&mut o, &["GET", k], &mut seen);
    }
    assert_eq!(w.cmd(&["SET", &keys[0], "x"]), ok);
    assert_eq!(w.cmd(&["SET", &keys[1], "x"]), ok);
    assert_eq!(cmd3(&mut o, &["SET", &keys[2], "own"], &mut seen), ok);
    assert_eq!(w.cmd(&["SET", &keys[2], "other"]), ok);
    seen.extend(pushes(&mut o, Duration::from_secs(2)));
    assert_eq!(seen, vec![Some(keys[1].clone())], "OPTIN/NOLOOP: {seen:?}");
    let info = cmd3(&mut o, &["CLIENT", "TRACKINGINFO"], &mut seen);
    let Resp::Map(fields) = info else {
        panic!("{info:?}")
    };
    assert_eq!(fields[0].0.text().as_deref(), Some("flags"));
    let flags: Vec<String> = match &fields[0].1 {
        Resp::Set(v) | Resp::Array(v) => v.iter().filter_map(|f| f.text()).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(flags, ["on", "optin", "noloop"]);
    assert_eq!(o.cmd(&["CLIENT", "GETREDIR"]), Resp::Int(0));

    // BCAST with a prefix: every write under it, whoever reads nothing.
    let mut b = resp3(&proxy);
    assert_eq!(
        b.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc:"]),
        ok
    );
    let _ = pushes(&mut b, Duration::from_millis(300));
    let bkeys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "bc:"))
        .collect();
    for k in &bkeys {
        assert_eq!(w.cmd(&["SET", k, "1"]), ok);
    }
    assert_eq!(w.cmd(&["SET", "nb:1", "1"]), ok);
    let mut got = pushes(&mut b, Duration::from_secs(5));
    got.sort();
    got.dedup();
    let mut want: Vec<Option<String>> = bkeys.iter().cloned().map(Some).collect();
    want.sort();
    assert_eq!(got, want, "BCAST PREFIX bc:");
    // One write of two keys, one invalidation naming both (as Redis batches BCAST's).
    assert_eq!(w.cmd(&["MSET", "bc:{t}1", "1", "bc:{t}2", "2"]), ok);
    b.set_timeout(Duration::from_secs(5));
    let r = b.reply();
    assert_eq!(
        invalidated(&r),
        Some(Some(vec!["bc:{t}1".to_string(), "bc:{t}2".to_string()])),
        "{r:?}"
    );
    b.set_timeout(Duration::from_secs(10));

    // RESP2 with REDIRECT to a subscribed client: `__redis__:invalidate` messages there.
    let mut target = proxy.raw();
    let Resp::Int(tid) = target.cmd(&["CLIENT", "ID"]) else {
        panic!()
    };
    target.send_cmd(&["SUBSCRIBE", "__redis__:invalidate"]);
    let _ = target.reply();
    let mut r2 = proxy.raw();
    assert_eq!(
        r2.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &tid.to_string()]),
        ok
    );
    assert_eq!(r2.cmd(&["CLIENT", "GETREDIR"]), Resp::Int(tid));
    r2.cmd(&["GET", &keys[1]]);
    assert_eq!(w.cmd(&["SET", &keys[1], "y"]), ok);
    let got = pushes(&mut target, Duration::from_secs(5));
    assert!(got.contains(&Some(keys[1].clone())), "REDIRECT: {got:?}");
    assert_eq!(
        r2.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"])
            .error_text()
            .as_deref(),
        Some("ERR The client ID you want redirect to does not exist")
    );

    // A lost node connection: every tracking client flushes (changes may have gone unseen).
    t.cmd(&["GET", &keys[0]]);
    let _ = pushes(&mut t, Duration::from_millis(300));
    for m in cluster.masters() {
        let _ = cluster.cli(m, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        let _ = cluster.cli(m, &["CLIENT", "KILL", "TYPE", "normal"]);
    }
    let got = pushes(&mut t, Duration::from_secs(5));
    assert!(
        got.contains(&None),
        "a lost node connection flushes: {got:?}"
    );
    // And tracking goes on over the new connections.
    let tracked = poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        t.cmd(&["GET", &keys[2]]);
        w.cmd(&["SET", &keys[2], "z"]);
        pushes(&mut t, Duration::from_millis(300))
            .contains(&Some(keys[2].clone()))
            .then_some(())
    });
    assert!(tracked.is_some(), "no invalidation after the reconnection");

    // OFF: nothing more; TRACKINGINFO says off.
    assert_eq!(t.cmd(&["CLIENT", "TRACKING", "OFF"]), ok);
    assert_eq!(t.cmd(&["CLIENT", "GETREDIR"]), Resp::Int(-1));
}

/// Errors and shapes compared with a standalone Redis.
#[test]
fn tracking_commands_answer_as_redis() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let server = Standalone::start();
    let cases: &[&[&str]] = &[
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKING", "foo"],
        &["CLIENT", "TRACKING", "on", "prefix", "a"],
        &["CLIENT", "TRACKING", "on", "bcast", "optin"],
        &["CLIENT", "TRACKING", "on", "optin", "optout"],
        &[
            "CLIENT", "TRACKING", "on", "bcast", "prefix", "a", "prefix", "ab",
        ],
        &["CLIENT", "CACHING", "yes"],
        &["CLIENT", "TRACKING", "on", "optin"],
        &["CLIENT", "CACHING", "no"],
        &["CLIENT", "CACHING", "maybe"],
        &["CLIENT", "CACHING", "yes"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "on", "bcast"],
        &["CLIENT", "TRACKING", "on", "optout"],
        &["CLIENT", "TRACKING", "off"],
        &["CLIENT", "TRACKING", "on", "bcast", "prefix", "a", "noloop"],
        &["CLIENT", "TRACKING", "on", "bcast", "prefix", "ab"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "off"],
        &["CLIENT", "TRACKINGINFO"],
    ];
    for hello3 in [false, true] {
        let mut p = proxy.raw();
        let mut s = server.raw();
        if hello3 {
            p.cmd(&["HELLO", "3"]);
            s.cmd(&["HELLO", "3"]);
        }
        for args in cases {
            let (a, b) = (p.cmd(args), s.cmd(args));
            assert_eq!(a, b, "{args:?} (RESP3: {hello3})");
        }
    }
}

/// redis-py 8's client-side cache (protocol 3, cache_config): reads are served from its
/// cache until another client writes the key, for keys on every master.
#[test]
fn redis_py_cache_is_invalidated_through_the_proxy() {
    require_python_module("redis.cache");
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let keys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "pyc:"))
        .collect();
    let code = r#"
import sys, time, redis
from redis.cache import CacheConfig
port, keys = int(sys.argv[1]), sys.argv[2:]
w = redis.Redis(port=port, decode_responses=True)
for k in keys:
    w.set(k, "v1")
# redis-py enables its cache only for a server that says Redis >= 7.4 in HELLO; the proxy
# passes the nodes' version on (7.0 here) and does the tracking itself, so the gate is
# lowered for this test.
redis.connection.CacheProxyConnection.MIN_ALLOWED_VERSION = "7.0.0"
r = redis.Redis(port=port, protocol=3, cache_config=CacheConfig(), decode_responses=True)
def served():
    return int(w.info("proxy")["total_commands_processed"])
for k in keys:
    assert r.get(k) == "v1"
before = served()
for _ in range(5):
    for k in keys:
        assert r.get(k) == "v1"
# Each read counted by the proxy would show; INFO itself is one.
assert served() - before <= 1, ("reads not cached", served() - before)
for k in keys:
    w.set(k, "v2")
end = time.monotonic() + 5
while time.monotonic() < end:
    if all(r.get(k) == "v2" for k in keys):
        break
    time.sleep(0.05)
assert all(r.get(k) == "v2" for k in keys), [r.get(k) for k in keys]
print("CACHE OK")
"#;
    let mut args = vec!["-c".to_string(), code.to_string(), proxy.port.to_string()];
    args.extend(keys);
    let (ok, stdout, stderr) = run_python(&args, "CACHE OK", Duration::from_secs(60));
    if !ok {
        proxy.fail(&format!(
            "redis-py cache failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ));
    }
}

/// `tracking_max_keys` bounds the table: past it the oldest keys' clients are told to
/// drop them (as Redis does when its tracking table is full), and INFO counts what is kept.
#[test]
fn the_tracking_table_is_bounded() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "tracking_max_keys: 5\n");
    let mut t = resp3(&proxy);
    let mut seen = Vec::new();
    let ok = Resp::Simple("OK".into());
    assert_eq!(cmd3(&mut t, &["CLIENT", "TRACKING", "ON"], &mut seen), ok);
    let keys: Vec<String> = (0..10).map(|i| format!("bound:{i}")).collect();
    for k in &keys {
        cmd3(&mut t, &["GET", k], &mut seen);
    }
    seen.extend(pushes(&mut t, Duration::from_secs(3)));
    let want: Vec<Option<String>> = keys[..5].iter().cloned().map(Some).collect();
    assert_eq!(seen, want, "the five oldest told");
    let info = cmd3(&mut t, &["INFO", "proxy"], &mut seen)
        .text()
        .unwrap_or_default();
    assert!(info.contains("tracking_total_keys:5"), "{info}");
    assert!(info.contains("tracking_total_items:5"), "{info}");
}
