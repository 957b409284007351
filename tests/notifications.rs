//! Keyspace and keyevent notifications from every master (issue 18): a Redis Cluster
//! publishes them only on the node that holds the key, so a subscriber through the proxy
//! must hear those of every master, once each, in RESP2 and RESP3 (redis-py), also after a
//! failover of a master.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn require_redis_py() {
    require_python_module("redis");
}

/// A pub/sub frame's elements as text (integers in decimal).
fn words(r: &Resp) -> Vec<String> {
    match r {
        Resp::Array(v) | Resp::Push(v) => v
            .iter()
            .map(|e| match e {
                Resp::Int(n) => n.to_string(),
                e => e.text().unwrap_or_else(|| format!("{e:?}")),
            })
            .collect(),
        other => vec![format!("{other:?}")],
    }
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/keyspace_events.py");

#[test]
fn redis_py_hears_the_notifications_of_every_master() {
    require_redis_py();
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let args = [SCRIPT.to_string(), proxy.port.to_string(), "all".into()];
    let (ok, stdout, stderr) = run_python(&args, "KEYSPACE OK", Duration::from_secs(120));
    if !ok {
        proxy.fail(&format!(
            "keyspace_events.py failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ));
    }
    assert!(
        stdout.contains("protocol 2: ok") && stdout.contains("protocol 3: ok"),
        "{stdout}"
    );
    // Every master was set, not only the one the subscriptions live on.
    for m in cluster.masters() {
        let v: Vec<String> = cluster.query(m, &["CONFIG", "GET", "notify-keyspace-events"]);
        assert!(v.get(1).is_some_and(|f| f.contains('K')), "{m}: {v:?}");
    }
}

/// A master fails over while a redis-py subscriber listens: once the proxy follows the
/// promoted replica, the notifications of its keys come again, and none twice.
#[test]
fn notifications_follow_a_failover() {
    require_redis_py();
    let cluster = Cluster::start();
    for m in cluster.masters() {
        let _: String = cluster.query(m, &["CONFIG", "SET", "notify-keyspace-events", "KA"]);
        for r in cluster.replicas_of(m) {
            let _: String = cluster.query(r, &["CONFIG", "SET", "notify-keyspace-events", "KA"]);
        }
    }
    let proxy = Proxy::start(&cluster, "");
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(proxy.port.to_string())
        .arg("listen")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |within: Duration| rx.recv_timeout(within).ok();
    assert_eq!(
        next(Duration::from_secs(10)).as_deref(),
        Some("LISTENING"),
        "the listener did not subscribe"
    );
    // The master that is not the subscription's own (the first in address order): its
    // events come through the fan-in connection.
    let mut masters = cluster.masters();
    masters.sort_by_key(|p| format!("127.0.0.1:{p}"));
    let victim = masters[2];
    let mut c = proxy.raw();
    // Writes on the victim's keys until one is heard (the fan-in connection is up), then a
    // batch whose every event must come.
    let heard = |c: &mut RawClient, victim: u16, round: &str| {
        let probe = key_owned_by(&cluster, victim, &format!("fo:probe:{round}"));
        let got = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
            c.cmd(&["SET", &probe, "1"]);
            while let Some(line) = next(Duration::from_millis(50)) {
                if line == format!("GOT {probe}") {
                    return Some(());
                }
            }
            None
        });
        assert!(got.is_some(), "{round}: no event for {probe} on {victim}");
        let keys: Vec<String> = (0..40)
            .map(|i| key_owned_by(&cluster, victim, &format!("fo:{round}:{i}")))
            .collect();
        for k in &keys {
            assert_eq!(c.cmd(&["SET", k, "v"]).text().as_deref(), Some("OK"));
        }
        let mut counts = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.len() < keys.len() && Instant::now() < deadline {
            if let Some(line) = next(Duration::from_millis(200)) {
                if let Some(k) = line.strip_prefix("GOT ") {
                    if keys.iter().any(|x| x == k) {
                        *counts.entry(k.to_string()).or_insert(0) += 1;
                    }
                }
            }
        }
        // Late duplicates would show within a moment.
        while let Some(line) = next(Duration::from_millis(300)) {
            if let Some(k) = line.strip_prefix("GOT ") {
                if let Some(n) = counts.get_mut(k) {
                    *n += 1;
                }
            }
        }
        assert_eq!(
            counts.len(),
            keys.len(),
            "{round}: events missing: {counts:?}"
        );
        assert!(
            counts.values().all(|&n| n == 1),
            "{round}: twice: {counts:?}"
        );
    };
    heard(&mut c, victim, "before");
    let replica = cluster.replica_of(victim);
    let r: String = cluster.query(replica, &["CLUSTER", "FAILOVER"]);
    assert_eq!(r, "OK");
    cluster.wait_promoted(replica, Duration::from_secs(30));
    // The proxy follows the promotion (its log names where the slots went); until then
    // its fan-in connection to the demoted node may still hear that node's events as a
    // replica, and the switch in the middle of a batch would lose some.
    let moved = format!("-> 127.0.0.1:{replica}");
    let followed = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        c.cmd(&["GET", &key_owned_by(&cluster, replica, "fo:nudge")]);
        proxy.log_text().contains(&moved).then_some(())
    });
    assert!(followed.is_some(), "the proxy never followed the promotion");
    // The promoted replica now holds the keys: its events, through a new fan-in connection.
    heard(&mut c, replica, "after");
    let _ = child.kill();
    let _ = child.wait();
}

/// A shard channel's slot moves to another master while a client is subscribed: the node
/// drops its subscribers (SUNSUBSCRIBE), the proxy subscribes again on the new owner, the
/// client sees none of it and its messages keep coming.
#[test]
fn shard_channels_follow_their_slot_to_another_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let ch = key_owned_by(&cluster, masters[1], "mv:ch");
    let slot = key_slot(ch.as_bytes());
    let mut sub = proxy.raw();
    sub.set_timeout(Duration::from_secs(5));
    sub.send_cmd(&["SSUBSCRIBE", &ch]);
    let r = words(&sub.reply());
    assert_eq!(r, ["ssubscribe", ch.as_str(), "1"]);
    let mut pubc = proxy.raw();
    // Published until one arrives: the proxy's subscription on the node is in place.
    let message = |pubc: &mut RawClient, sub: &mut RawClient, tag: &str| {
        poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
            pubc.cmd(&["SPUBLISH", &ch, tag]);
            sub.set_timeout(Duration::from_millis(200));
            let r = words(&sub.read_reply().ok()?);
            assert_ne!(r[0], "sunsubscribe", "the client saw the move: {r:?}");
            (r[0] == "smessage" && r[2] == tag).then_some(())
        })
    };
    assert!(message(&mut pubc, &mut sub, "before").is_some());
    cluster.move_slot(slot, masters[1], masters[2]);
    assert!(
        message(&mut pubc, &mut sub, "after-move").is_some(),
        "no message after the slot moved"
    );
    // The node did drop the proxy's subscription when the slot left it.
    let log = proxy.log_text();
    assert!(
        log.contains("dropped by"),
        "no SUNSUBSCRIBE from the node seen:\n{log}"
    );
    // Still subscribed, with its count: one more channel makes two (the messages of the
    // polls above are read out first).
    sub.set_timeout(Duration::from_millis(300));
    while let Ok(r) = sub.read_reply() {
        assert_eq!(words(&r)[0], "smessage", "{r:?}");
    }
    sub.set_timeout(Duration::from_secs(5));
    sub.send_cmd(&["SSUBSCRIBE", "mv:other"]);
    assert_eq!(words(&sub.reply()), ["ssubscribe", "mv:other", "2"]);
}

/// redis-py's sharded pub/sub on one connection (PubSub.ssubscribe) with channels of all
/// three masters: each channel's messages arrive.
#[test]
fn redis_py_ssubscribes_channels_of_every_shard_on_one_connection() {
    require_redis_py();
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let chans: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "pysh:"))
        .collect();
    let code = r#"
import sys, time, redis
port, chans = int(sys.argv[1]), sys.argv[2:]
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto, decode_responses=True)
    p = r.pubsub()
    p.ssubscribe(*chans)
    subs = []
    end = time.monotonic() + 5
    while len(subs) < len(chans) and time.monotonic() < end:
        m = p.get_sharded_message(timeout=0.2)
        if m and m["type"] == "ssubscribe":
            subs.append(m["data"])
    assert subs == [1, 2, 3], subs
    got = {}
    end = time.monotonic() + 10
    while len(got) < len(chans) and time.monotonic() < end:
        for c in chans:
            if c not in got:
                r.spublish(c, "hi " + c)
        m = p.get_sharded_message(ignore_subscribe_messages=True, timeout=0.2)
        while m is not None:
            if m["type"] == "smessage":
                got[m["channel"]] = m["data"]
            m = p.get_sharded_message(ignore_subscribe_messages=True, timeout=0.05)
    assert sorted(got) == sorted(chans), got
    assert all(v == "hi " + k for k, v in got.items()), got
    p.sunsubscribe()
    p.close()
    print("protocol %d: ok" % proto, flush=True)
print("SHARDED OK")
"#;
    let mut args = vec!["-c".to_string(), code.to_string(), proxy.port.to_string()];
    args.extend(chans);
    let (ok, stdout, stderr) = run_python(&args, "SHARDED OK", Duration::from_secs(60));
    if !ok {
        proxy.fail(&format!(
            "redis-py sharded pub/sub failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ));
    }
}

/// The fan-in's own subscriptions do not show in what a client counts: a PUBLISH reaches
/// one `PSUBSCRIBE *` subscriber (1, not 2), NUMSUB of a notification channel counts its one
/// subscriber; PUBSUB SHARDCHANNELS lists the shard channels of every master and
/// SHARDNUMSUB counts the proxy's subscribers of each.
#[test]
fn subscription_counts_are_one_server_s() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut sub = proxy.raw();
    sub.send_cmd(&["PSUBSCRIBE", "*"]);
    assert_eq!(words(&sub.reply())[0], "psubscribe");
    sub.send_cmd(&["SUBSCRIBE", "__keyspace@0__:cnt"]);
    assert_eq!(words(&sub.reply())[0], "subscribe");
    let mut c = proxy.raw();
    for m in cluster.masters() {
        let _: String = cluster.query(m, &["CONFIG", "SET", "notify-keyspace-events", "KA"]);
    }
    // The fan-in connections are up once an event of every master arrives; the count must
    // be one subscriber's then too.
    let probes: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "cnt:probe"))
        .collect();
    let mut heard = std::collections::HashSet::new();
    let up = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        for k in &probes {
            c.cmd(&["SET", k, "1"]);
        }
        sub.set_timeout(Duration::from_millis(100));
        while let Ok(r) = sub.read_reply() {
            let w = words(&r);
            if let Some(k) = w.get(2).and_then(|ch| ch.strip_prefix("__keyspace@0__:")) {
                heard.insert(k.to_string());
            }
        }
        (heard.len() == probes.len()).then_some(())
    });
    assert!(up.is_some(), "events of every master: {heard:?}");
    sub.set_timeout(Duration::from_secs(5));
    for k in &probes {
        assert_eq!(c.cmd(&["DEL", k]), Resp::Int(1));
    }
    for _ in 0..3 {
        assert_eq!(c.cmd(&["PUBLISH", "plainchan", "x"]), Resp::Int(1));
    }
    let r = c.cmd(&["PUBSUB", "NUMSUB", "__keyspace@0__:cnt"]);
    assert_eq!(words(&r), ["__keyspace@0__:cnt", "1"]);

    // Shard channels of every master, two subscribers on one of them.
    let chans: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "cnt:sh"))
        .collect();
    let mut s1 = proxy.raw();
    let mut s2 = proxy.raw();
    let mut ss = vec!["SSUBSCRIBE"];
    ss.extend(chans.iter().map(|c| c.as_str()));
    s1.send_cmd(&ss);
    for _ in &chans {
        assert_eq!(words(&s1.reply())[0], "ssubscribe");
    }
    s2.send_cmd(&["SSUBSCRIBE", &chans[0]]);
    assert_eq!(words(&s2.reply())[0], "ssubscribe");
    let listed = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let mut got = words(&c.cmd(&["PUBSUB", "SHARDCHANNELS"]));
        got.sort();
        let mut want = chans.clone();
        want.sort();
        (got == want).then_some(())
    });
    assert!(
        listed.is_some(),
        "SHARDCHANNELS does not list every master's channels"
    );
    // A subscriber straight on the node counts too (the proxy's clients stand in for its
    // one fan-in subscription there).
    let owner1 = cluster.masters()[1];
    let mut direct = RawClient::connect(owner1, Duration::from_secs(5)).unwrap();
    direct.send_cmd(&["SSUBSCRIBE", &chans[1]]);
    assert_eq!(words(&direct.reply())[0], "ssubscribe");
    let r = c.cmd(&["PUBSUB", "SHARDNUMSUB", &chans[0], &chans[1], "cnt:none"]);
    assert_eq!(
        words(&r),
        [
            chans[0].as_str(),
            "2",
            chans[1].as_str(),
            "2",
            "cnt:none",
            "0"
        ]
    );
    assert_eq!(c.cmd(&["SPUBLISH", &chans[0], "x"]), Resp::Int(2));
    assert_eq!(c.cmd(&["SPUBLISH", &chans[1], "x"]), Resp::Int(2));
    // RESP3: a flat array, as Redis 7.0 answers it (not a map).
    let mut c3 = proxy.raw();
    c3.cmd(&["HELLO", "3"]);
    let r = c3.cmd(&["PUBSUB", "SHARDNUMSUB", &chans[0]]);
    assert!(matches!(r, Resp::Array(_)), "{r:?}");
}
