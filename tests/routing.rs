//! Routing through the proxy on a stable cluster: key distribution over the masters, hash
//! tags, cross-slot MGET/MSET/DEL split per slot and CROSSSLOT for what cannot be split,
//! deep pipelining on one connection, many concurrent clients.

mod common;

use common::*;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[test]
fn ten_thousand_keys_land_on_all_masters_and_read_back() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut con = proxy.conn_timeout(Duration::from_secs(30));
    const N: usize = 10_000;

    let t0 = Instant::now();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(format!("key:{i}"))
                .arg(format!("value:{i}"))
                .ignore();
        }
        p.query::<()>(&mut con)
            .or_log(&proxy, "pipelined SETs through the proxy");
    }
    eprintln!("wrote {N} keys through the proxy in {:?}", t0.elapsed());

    // Each master holds a share; together exactly N (replicas are not counted).
    let masters = cluster.masters();
    let sizes: Vec<u64> = masters
        .iter()
        .map(|&m| cluster.query(m, &["DBSIZE"]))
        .collect();
    eprintln!("DBSIZE per master {masters:?}: {sizes:?}");
    assert!(
        sizes.iter().all(|&s| s > 0),
        "a master got no keys: {sizes:?}"
    );
    assert_eq!(
        sizes.iter().sum::<u64>(),
        N as u64,
        "sum of DBSIZE over masters {sizes:?}"
    );

    // Every key sits on the master that owns its slot (spot check with direct reads).
    for i in (0..N).step_by(497) {
        let k = format!("key:{i}");
        let owner = cluster.slot_owner(key_slot(k.as_bytes()));
        let v: Option<String> = cluster.query(owner, &["GET", &k]);
        assert_eq!(
            v.as_deref(),
            Some(format!("value:{i}").as_str()),
            "{k} on its owner {owner}"
        );
    }

    // Read back through the proxy.
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("GET").arg(format!("key:{i}"));
        }
        let got: Vec<Option<String>> = p.query(&mut con).or_log(&proxy, "pipelined GETs");
        for (i, v) in chunk.iter().zip(got) {
            assert_eq!(
                v,
                Some(format!("value:{i}")),
                "key:{i} read through the proxy"
            );
        }
    }
}

#[test]
fn hash_tags_share_a_slot_and_cross_slot_requests_are_split_or_refused() {
    split_and_cross_slot(Server::Redis);
}

#[test]
fn split_and_cross_slot_on_valkey() {
    split_and_cross_slot(Server::Valkey);
}

fn split_and_cross_slot(server: Server) {
    let cluster = Cluster::start_on(server);
    let proxy = Proxy::start(&cluster, "");
    let mut con = proxy.conn();

    // Same hash tag: same slot, multi-key commands work.
    assert_eq!(key_slot(b"{user1}:name"), key_slot(b"{user1}:email"));
    let r: String = redis::cmd("MSET")
        .arg("{user1}:name")
        .arg("alice")
        .arg("{user1}:email")
        .arg("alice@example.com")
        .query(&mut con)
        .or_log(&proxy, "same-slot MSET");
    assert_eq!(r, "OK");
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg("{user1}:name")
        .arg("{user1}:email")
        .arg("{user1}:missing")
        .query(&mut con)
        .or_log(&proxy, "same-slot MGET");
    assert_eq!(
        got,
        vec![Some("alice".into()), Some("alice@example.com".into()), None]
    );
    let owner = cluster.slot_owner(key_slot(b"user1"));
    let n: u64 = cluster.query(owner, &["EXISTS", "{user1}:name", "{user1}:email"]);
    assert_eq!(n, 2, "both tagged keys on the slot owner {owner}");

    // Two untagged keys that happen to share a slot are fine too.
    let s0 = key_slot(b"same0");
    let twin = (1..)
        .map(|i| format!("same{i}"))
        .find(|k| key_slot(k.as_bytes()) == s0)
        .unwrap();
    let r: String = redis::cmd("MSET")
        .arg("same0")
        .arg("a")
        .arg(&twin)
        .arg("b")
        .query(&mut con)
        .or_log(&proxy, "MSET of two untagged same-slot keys");
    assert_eq!(r, "OK");
    let got: Vec<String> = redis::cmd("MGET")
        .arg("same0")
        .arg(&twin)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, vec!["a", "b"]);

    // Different slots: MSET/MGET/DEL are split per slot by the proxy and merged back.
    assert_ne!(key_slot(b"foo"), key_slot(b"bar"));
    assert_ne!(
        cluster.slot_owner(key_slot(b"foo")),
        cluster.slot_owner(key_slot(b"bar")),
        "foo and bar live on different masters"
    );
    let mut raw = proxy.raw();
    assert_eq!(
        raw.cmd(&["MSET", "foo", "1", "bar", "2"]),
        Resp::Simple("OK".into()),
        "cross-slot MSET is split"
    );
    for (k, v) in [("foo", "1"), ("bar", "2")] {
        let owner = cluster.slot_owner(key_slot(k.as_bytes()));
        let got: Option<String> = cluster.query(owner, &["GET", k]);
        assert_eq!(got.as_deref(), Some(v), "{k} written to its owner {owner}");
    }
    assert_eq!(
        raw.cmd(&["MGET", "bar", "nosuchkey", "foo", "{user1}:name"]),
        Resp::Array(vec![
            Resp::Bulk(b"2".to_vec()),
            Resp::NullBulk,
            Resp::Bulk(b"1".to_vec()),
            Resp::Bulk(b"alice".to_vec()),
        ]),
        "cross-slot MGET: values in the order asked"
    );
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg("foo")
        .arg("bar")
        .query(&mut con)
        .or_log(&proxy, "cross-slot MGET via redis-rs");
    assert_eq!(got, vec![Some("1".into()), Some("2".into())]);
    assert_eq!(
        raw.cmd(&["DEL", "foo", "bar", "nosuchkey"]),
        Resp::Int(2),
        "cross-slot DEL counts the keys deleted on every master"
    );
    for k in ["foo", "bar"] {
        let owner = cluster.slot_owner(key_slot(k.as_bytes()));
        let v: Option<String> = cluster.query(owner, &["GET", k]);
        assert_eq!(v, None, "{k} deleted by the split DEL");
    }

    // Writes across slots, with cross_slot_writes off: CROSSSLOT, Redis's words and the way
    // out, nothing written.
    let want = Resp::Error("CROSSSLOT Keys in request don't hash to the same slot (give the keys one hash tag, or set cross_slot_writes: true to have the proxy do this write in stages)".into());
    assert_eq!(
        raw.cmd(&["MSETNX", "foo", "1", "bar", "2"]),
        want,
        "cross-slot MSETNX"
    );
    for k in ["foo", "bar"] {
        let owner = cluster.slot_owner(key_slot(k.as_bytes()));
        let v: Option<String> = cluster.query(owner, &["GET", k]);
        assert_eq!(
            v, None,
            "{k} must not have been written by the refused MSETNX"
        );
    }
    assert_eq!(
        raw.cmd(&["SUNIONSTORE", "{user1}:set", "other"]),
        want,
        "cross-slot SUNIONSTORE"
    );
    let err = redis::cmd("SUNIONSTORE")
        .arg("foo")
        .arg("bar")
        .query::<Vec<String>>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");

    // The connection stays usable after the errors.
    assert_eq!(
        raw.cmd(&["DEL", "{user1}:name", "{user1}:email"]),
        Resp::Int(2)
    );
    assert_eq!(raw.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

#[test]
fn ten_thousand_pipelined_commands_in_one_write_reply_in_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    const N: usize = 10_000;

    // A mix of forwarded commands to all masters and commands the proxy answers itself,
    // whose replies are all distinguishable, so any reordering shows.
    let mut bytes = Vec::new();
    let mut expected = Vec::with_capacity(N);
    let mut counters = std::collections::HashMap::new();
    for i in 0..N {
        match i % 4 {
            0 => {
                let k = format!("cnt:{}", i % 37);
                let c = counters.entry(k.clone()).or_insert(0i64);
                *c += 1;
                bytes.extend(encode_cmd(&["INCR", &k]));
                expected.push(Resp::Int(*c));
            }
            1 => {
                bytes.extend(encode_cmd(&["SET", &format!("pv:{i}"), &i.to_string()]));
                expected.push(Resp::Simple("OK".into()));
            }
            2 => {
                bytes.extend(encode_cmd(&["GET", &format!("pv:{}", i - 1)]));
                expected.push(Resp::Bulk((i - 1).to_string().into_bytes()));
            }
            _ if i % 100 == 3 => {
                bytes.extend(encode_cmd(&["GET", &format!("missing:{i}")]));
                expected.push(Resp::NullBulk);
            }
            _ => {
                bytes.extend(encode_cmd(&["ECHO", &format!("e{i}")]));
                expected.push(Resp::Bulk(format!("e{i}").into_bytes()));
            }
        }
    }

    let mut client = proxy.raw_timeout(Duration::from_secs(30));
    let mut writer = client.stream.try_clone().unwrap();
    let len = bytes.len();
    let t0 = Instant::now();
    // One write_all from another thread so the reader below drains replies meanwhile.
    let w = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&bytes).map_err(|e| e.to_string())
    });
    for (i, want) in expected.iter().enumerate() {
        let got = client.reply();
        if &got != want {
            proxy.fail(&format!("reply #{i} of {N}: got {got:?}, want {want:?}"));
        }
    }
    w.join().unwrap().or_log(&proxy, "writing the pipeline");
    eprintln!(
        "{N} pipelined commands ({len} bytes) answered in order in {:?}",
        t0.elapsed()
    );

    // Nothing extra arrives, and the counters add up on the cluster.
    client.set_timeout(Duration::from_millis(300));
    match client.read_reply() {
        Err(ReadEnd::Timeout { pending }) if pending.is_empty() => {}
        other => panic!("unexpected data after the last reply: {other:?}"),
    }
    let k = "cnt:0";
    let owner = cluster.slot_owner(key_slot(k.as_bytes()));
    let v: i64 = cluster.query(owner, &["GET", k]);
    assert_eq!(v, counters[k]);
}

#[test]
fn two_hundred_concurrent_clients_see_only_their_own_values() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    const CLIENTS: usize = 200;
    const ROUNDS: usize = 25;
    let port = proxy.port;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let mut con = redis_conn(port, Duration::from_secs(30))
                        .map_err(|e| format!("client {c}: connect: {e}"));
                    barrier.wait();
                    let con = con.as_mut().map_err(|e| e.clone())?;
                    for r in 0..ROUNDS {
                        let k = format!("client:{c}:key:{}", r % 5);
                        let v = format!("client {c} round {r}");
                        redis::cmd("SET")
                            .arg(&k)
                            .arg(&v)
                            .query::<()>(con)
                            .map_err(|e| format!("client {c}: SET {k}: {e}"))?;
                        let got: Option<String> = redis::cmd("GET")
                            .arg(&k)
                            .query(con)
                            .map_err(|e| format!("client {c}: GET {k}: {e}"))?;
                        if got.as_deref() != Some(v.as_str()) {
                            return Err(format!("client {c}: GET {k} = {got:?}, want {v:?}"));
                        }
                        redis::cmd("INCR")
                            .arg("shared:counter")
                            .query::<i64>(con)
                            .map_err(|e| format!("client {c}: INCR: {e}"))?;
                    }
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    let errors: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("client thread panicked".into()),
        })
        .collect();
    eprintln!("{CLIENTS} clients x {ROUNDS} rounds in {:?}", t0.elapsed());
    if !errors.is_empty() {
        proxy.fail(&format!(
            "{} of {CLIENTS} clients failed; first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        ));
    }
    let mut con = proxy.conn();
    let total: i64 = redis::cmd("GET")
        .arg("shared:counter")
        .query(&mut con)
        .unwrap();
    assert_eq!(total, (CLIENTS * ROUNDS) as i64, "no INCR lost");
    let owner = cluster.slot_owner(key_slot(b"client:7:key:3"));
    let v: String = cluster.query(owner, &["GET", "client:7:key:3"]);
    assert_eq!(v, format!("client 7 round {}", ROUNDS - 2));
}
