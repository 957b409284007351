//! Commands the proxy splits, fans out or routes by their key specs:
//! MGET/MSET/DEL/UNLINK/EXISTS/TOUCH across slots (compared with a standalone redis-server
//! fed the same operations), split MGET/MSET during a migration and after a move, SCAN
//! through every master, KEYS/DBSIZE/RANDOMKEY/FLUSHALL/FLUSHDB fan-out, EVAL/EVALSHA/SCRIPT,
//! FUNCTION/FCALL, and key positions of XREAD, ZUNIONSTORE, SORT ... STORE and friends.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The standalone (non-cluster) redis-server compared with is `common::Standalone`.

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// A write across slots while `cross_slot_writes` is off: CROSSSLOT, with the way out.
const CROSSSLOT_WRITE: &str = "CROSSSLOT Keys in request don't hash to the same slot (give the keys one hash tag, or set cross_slot_writes: true to have the proxy do this write in stages)";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn bulk(x: &str) -> Resp {
    Resp::Bulk(x.as_bytes().to_vec())
}

fn ok() -> Resp {
    Resp::Simple("OK".into())
}

fn owner_of(owners: &[u16], key: &str) -> u16 {
    owners[key_slot(key.as_bytes()) as usize]
}

/// Texts of an array reply of bulk strings (nil -> None).
fn opt_texts(r: &Resp) -> Vec<Option<String>> {
    match r {
        Resp::Array(items) => items
            .iter()
            .map(|i| match i {
                Resp::NullBulk | Resp::Null => None,
                other => Some(
                    other
                        .text()
                        .unwrap_or_else(|| panic!("not a string: {other:?}")),
                ),
            })
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

fn texts(r: &Resp) -> Vec<String> {
    opt_texts(r)
        .into_iter()
        .map(|x| x.expect("nil in array"))
        .collect()
}

/// A deterministic permutation (LCG-driven Fisher-Yates).
fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..out.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((x >> 33) as usize) % (i + 1);
        out.swap(i, j);
    }
    out
}

/// The sequence of operations run against both the proxy and the standalone server.
fn split_ops(keys: &[String], new_keys: &[String]) -> Vec<Vec<String>> {
    let mut ops: Vec<Vec<String>> = Vec::new();
    let missing: Vec<String> = (0..50).map(|i| format!("mk:missing:{i}")).collect();

    // 1. MSET of every key in one command.
    let mut c = s(&["MSET"]);
    for (i, k) in keys.iter().enumerate() {
        c.push(k.clone());
        c.push(format!("v{i}"));
    }
    ops.push(c);
    // 2. MGET of all keys with missing keys and duplicates mixed in.
    let mut c = s(&["MGET"]);
    for (i, k) in keys.iter().enumerate() {
        c.push(k.clone());
        if i % 7 == 0 {
            c.push(missing[i % missing.len()].clone());
        }
        if i % 11 == 0 {
            c.push(keys[(i * 31) % keys.len()].clone());
        }
    }
    ops.push(c);
    // 3. EXISTS with duplicates (each counted) and missing keys.
    let mut c = s(&["EXISTS"]);
    c.extend(keys.iter().cloned());
    c.extend(keys.iter().step_by(9).cloned());
    c.extend(missing.iter().cloned());
    ops.push(c);
    // 4. MSET overwriting every third key and creating new ones, in shuffled order.
    let mut pairs: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(i, k)| (k.clone(), format!("w{i}")))
        .collect();
    pairs.extend(
        new_keys
            .iter()
            .enumerate()
            .map(|(j, k)| (k.clone(), format!("n{j}"))),
    );
    let mut c = s(&["MSET"]);
    for (k, v) in shuffled(&pairs, 1) {
        c.push(k);
        c.push(v);
    }
    ops.push(c);
    // 5. MGET of everything in shuffled order.
    let all: Vec<String> = keys.iter().chain(new_keys).cloned().collect();
    let mut c = s(&["MGET"]);
    c.extend(shuffled(&all, 2));
    ops.push(c);
    // 6. TOUCH half the keys and some missing ones.
    let mut c = s(&["TOUCH"]);
    c.extend(keys.iter().step_by(2).cloned());
    c.extend(missing.iter().take(10).cloned());
    ops.push(c);
    // 7. DEL every fifth key, some twice (same slot: counted once), and missing keys.
    let mut c = s(&["DEL"]);
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        c.push(k.clone());
        if i % 3 == 0 {
            c.push(k.clone());
        }
    }
    c.extend(missing.iter().take(20).cloned());
    ops.push(c);
    // 8. UNLINK every seventh key (overlapping with the deleted ones).
    let mut c = s(&["UNLINK"]);
    c.extend(keys.iter().step_by(7).cloned());
    ops.push(c);
    // 9. EXISTS of everything.
    let mut c = s(&["EXISTS"]);
    c.extend(all.iter().cloned());
    ops.push(c);
    // 10. MGET of everything (shuffled again) and DBSIZE.
    let mut c = s(&["MGET"]);
    c.extend(shuffled(&all, 3));
    ops.push(c);
    ops.push(s(&["DBSIZE"]));
    // 11. Single-slot forms still work inside the mix.
    ops.push(vec!["MGET".into(), keys[1].clone()]);
    ops.push(vec!["EXISTS".into(), keys[1].clone()]);
    // 12. DEL of everything, then nothing is left.
    let mut c = s(&["DEL"]);
    c.extend(shuffled(&all, 4));
    ops.push(c);
    ops.push(s(&["DBSIZE"]));
    let mut c = s(&["MGET"]);
    c.extend(keys.iter().step_by(13).cloned());
    ops.push(c);
    ops
}

fn describe_op(op: &[String]) -> String {
    format!("{} with {} arguments", op[0], op.len() - 1)
}

// ---------------------------------------------------------------------------------------------
// Split multi-key commands
// ---------------------------------------------------------------------------------------------

#[test]
fn split_multi_key_commands_match_a_standalone_server() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let solo = Standalone::start();
    let owners = cluster.slot_owners();
    let masters = cluster.masters();

    const N: usize = 1000;
    let keys: Vec<String> = (0..N).map(|i| format!("mk:{i}")).collect();
    let new_keys: Vec<String> = (0..100).map(|i| format!("mk:new:{i}")).collect();
    let slots: HashSet<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    assert!(slots.len() > 900, "{} distinct slots", slots.len());
    for m in &masters {
        let n = keys.iter().filter(|k| owner_of(&owners, k) == *m).count();
        assert!(n > 200, "master {m} owns only {n} of the keys");
    }

    let ops = split_ops(&keys, &new_keys);
    let mut p = proxy.raw_timeout(Duration::from_secs(30));
    let mut r = solo.raw();

    // Sequentially, one command at a time.
    for (i, op) in ops.iter().enumerate() {
        let want = r.cmd(op.as_slice());
        assert!(!want.is_error(), "reference server: {want:?}");
        let got = p.cmd(op.as_slice());
        if got != want {
            let detail = match (&got, &want) {
                (Resp::Array(g), Resp::Array(w)) if g.len() == w.len() => {
                    let idx = g.iter().zip(w).position(|(a, b)| a != b).unwrap();
                    format!(
                        "first difference at element {idx} (key {}): proxy {:?}, standalone {:?}",
                        op[idx + 1],
                        g[idx],
                        w[idx]
                    )
                }
                (Resp::Array(g), Resp::Array(w)) => {
                    format!("proxy gave {} elements, standalone {}", g.len(), w.len())
                }
                _ => format!("proxy {got:?}, standalone {want:?}"),
            };
            proxy.fail(&format!("op #{i} ({}): {detail}", describe_op(op)));
        }
        if i == 0 {
            // The cross-slot MSET really wrote every key to its slot's owner.
            for (j, k) in keys.iter().enumerate().step_by(37) {
                let v: Option<String> = cluster.query(owner_of(&owners, k), &["GET", k]);
                assert_eq!(v, Some(format!("v{j}")), "{k} on its owner after MSET");
            }
            let sizes: Vec<u64> = masters
                .iter()
                .map(|&m| cluster.query(m, &["DBSIZE"]))
                .collect();
            assert_eq!(sizes.iter().sum::<u64>(), N as u64, "{sizes:?}");
        }
        if i == 3 {
            for (j, k) in new_keys.iter().enumerate().step_by(9) {
                let v: Option<String> = cluster.query(owner_of(&owners, k), &["GET", k]);
                assert_eq!(
                    v,
                    Some(format!("n{j}")),
                    "{k} on its owner after the second MSET"
                );
            }
        }
    }
    let left: Vec<u64> = masters
        .iter()
        .map(|&m| cluster.query(m, &["DBSIZE"]))
        .collect();
    assert_eq!(left, vec![0, 0, 0], "keys left after the final DEL");

    // Again, all operations pipelined in one write: replies in order and still identical.
    let mut bytes = Vec::new();
    for op in &ops {
        bytes.extend(encode_cmd(op.as_slice()));
    }
    r.send(&bytes);
    let want: Vec<Resp> = ops.iter().map(|_| r.reply()).collect();
    let t0 = Instant::now();
    p.send(&bytes);
    for (i, (op, w)) in ops.iter().zip(&want).enumerate() {
        let got = p.reply();
        if &got != w {
            proxy.fail(&format!(
                "pipelined op #{i} ({}): proxy {:.200}, standalone {:.200}",
                describe_op(op),
                format!("{got:?}"),
                format!("{w:?}")
            ));
        }
    }
    eprintln!(
        "{} split commands pipelined in one write answered in {:?}",
        ops.len(),
        t0.elapsed()
    );

    // Commands that cannot be split are refused across slots, and write nothing.
    assert_ne!(key_slot(b"mk:0"), key_slot(b"mk:1"));
    assert_eq!(
        p.cmd(&["MSETNX", "mk:0", "a", "mk:1", "b"]),
        Resp::Error(CROSSSLOT_WRITE.into()),
        "cross-slot MSETNX"
    );
    for k in ["mk:0", "mk:1"] {
        let v: Option<String> = cluster.query(owner_of(&owners, k), &["GET", k]);
        assert_eq!(v, None, "{k} written by a refused MSETNX");
    }
    // Same-slot MSETNX works.
    let t = keys_in_slot(key_slot(b"mk:0"), "nx", 2);
    assert_eq!(p.cmd(&["MSETNX", &t[0], "a", &t[1], "b"]), Resp::Int(1));
    assert_eq!(p.cmd(&["MSETNX", &t[0], "c", &t[1], "d"]), Resp::Int(0));
    // Wrong arity of a split command is an error, not a partial write.
    let e = p.cmd(&["MSET", "mk:0", "a", "mk:1"]);
    assert!(
        e.error_text()
            .map(|t| t.contains("wrong number of arguments"))
            == Some(true),
        "MSET with an odd number of arguments: {e:?}"
    );
    let v: Option<String> = cluster.query(owner_of(&owners, "mk:0"), &["GET", "mk:0"]);
    assert_eq!(v, None, "mk:0 written by a malformed MSET");
    assert_eq!(p.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

#[test]
fn split_mget_and_mset_during_a_migration_and_after_a_move() {
    let cluster = Cluster::start();
    let masters = cluster.masters();
    // Only MOVED/ASK replies can teach the proxy about the changes below.
    let proxy = Proxy::start(&cluster, "refresh_interval: \"600s\"\n");
    let mut p = proxy.raw_timeout(Duration::from_secs(20));

    let slot_a = cluster.first_slot_of(masters[0]) + 50; // migrating m0 -> m1
    let slot_b = cluster.first_slot_of(masters[1]) + 60; // moved m1 -> m2
    let a_keys = keys_in_slot(slot_a, "ma", 10);
    let b_keys = keys_in_slot(slot_b, "mb", 10);
    let others: Vec<String> = (0..30).map(|i| format!("mo:{i}")).collect();
    for k in others
        .iter()
        .cloned()
        .chain((0..10).map(|i| format!("mo:absent:{i}")))
    {
        let sl = key_slot(k.as_bytes());
        assert!(
            sl != slot_a && sl != slot_b,
            "{k} falls into a slot under test"
        );
    }
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut mset = s(&["MSET"]);
    for k in a_keys.iter().chain(&b_keys).chain(&others) {
        let v = format!("val-{k}");
        mset.push(k.clone());
        mset.push(v.clone());
        expected.insert(k.clone(), v);
    }
    assert_eq!(
        p.cmd(mset.as_slice()),
        ok(),
        "cross-slot MSET before any change"
    );

    let mget = |p: &mut RawClient, keys: &[String]| -> Resp {
        let mut c = s(&["MGET"]);
        c.extend(keys.iter().cloned());
        p.cmd(c.as_slice())
    };
    let want = |keys: &[String], exp: &BTreeMap<String, String>| -> Vec<Option<String>> {
        keys.iter().map(|k| exp.get(k).cloned()).collect()
    };

    // Warm the proxy's slot map with one MGET touching every slot involved.
    let all: Vec<String> = a_keys
        .iter()
        .chain(&b_keys)
        .chain(&others)
        .cloned()
        .collect();
    assert_eq!(opt_texts(&mget(&mut p, &all)), want(&all, &expected));

    cluster.move_slot(slot_b, masters[1], masters[2]);
    cluster.begin_migration(slot_a, masters[0], masters[1]);
    cluster.migrate_keys(masters[0], masters[1], &a_keys[..5]);
    assert_eq!(cluster.count_keys_in_slot(masters[0], slot_a), 5);
    assert_eq!(cluster.count_keys_in_slot(masters[1], slot_a), 5);

    // MGETs mixing the moved slot (MOVED), the moved half of the migrating slot (ASK) and
    // untouched slots; then one with the unmoved half (served by the source).
    let mut mixed1: Vec<String> = Vec::new();
    for i in 0..10 {
        mixed1.push(b_keys[i].clone());
        mixed1.push(others[i].clone());
        if i < 5 {
            mixed1.push(a_keys[i].clone());
        }
        mixed1.push(format!("mo:absent:{i}"));
    }
    let mut mixed2: Vec<String> = a_keys[5..].to_vec();
    mixed2.extend(others[10..].iter().cloned());
    mixed2.extend(b_keys.iter().rev().cloned());
    for round in 0..3 {
        for (name, keys) in [("moved+ask", &mixed1), ("moved+unmoved", &mixed2)] {
            let r = mget(&mut p, keys);
            if r.is_error() {
                proxy.fail(&format!("round {round}: MGET {name}: {r:?}"));
            }
            assert_eq!(
                opt_texts(&r),
                want(keys, &expected),
                "round {round}: MGET {name}"
            );
        }
    }
    // Counting commands split the same way.
    let mut ex = s(&["EXISTS"]);
    ex.extend(mixed1.iter().cloned());
    assert_eq!(
        p.cmd(ex.as_slice()),
        Resp::Int(25),
        "EXISTS over moved, migrated and other keys"
    );

    // Keys of the migrating slot on both sides in one MGET: same slot, so one part; the
    // source answers TRYAGAIN for such a request. Either the right values come back or an
    // error saying so; never wrong values.
    let split_pair = vec![a_keys[0].clone(), others[0].clone(), a_keys[9].clone()];
    let r = mget(&mut p, &split_pair);
    match &r {
        Resp::Error(e) => {
            assert!(
                e.contains("TRYAGAIN"),
                "MGET across both halves of a migrating slot: {e}"
            );
            eprintln!("MGET over both halves of a migrating slot: {e}");
        }
        other => assert_eq!(opt_texts(other), want(&split_pair, &expected)),
    }

    // A split MSET during the migration: the moved slot's keys land on its new owner, the
    // migrated keys on the target, other keys on their owners.
    let mut mset = s(&["MSET"]);
    for k in b_keys.iter().chain(&a_keys[..5]).chain(&others[..10]) {
        let v = format!("new-{k}");
        mset.push(k.clone());
        mset.push(v.clone());
        expected.insert(k.clone(), v);
    }
    let r = p.cmd(mset.as_slice());
    if r != ok() {
        proxy.fail(&format!("split MSET during the migration: {r:?}"));
    }
    for k in &b_keys {
        let v: Option<String> = cluster.query(masters[2], &["GET", k]);
        assert_eq!(v.as_ref(), expected.get(k), "{k} on the slot's new owner");
    }
    for k in &a_keys[..5] {
        let mut con = cluster.conn(masters[1]);
        let (v,): (Option<String>,) = redis::pipe()
            .cmd("ASKING")
            .ignore()
            .cmd("GET")
            .arg(k)
            .query(&mut con)
            .unwrap();
        assert_eq!(v.as_ref(), expected.get(k), "{k} on the migration target");
    }
    assert_eq!(
        cluster.count_keys_in_slot(masters[0], slot_a),
        5,
        "the source keeps only the unmoved keys"
    );

    // Finish the migration: everything reads back right.
    let rest = cluster.keys_in_slot(masters[0], slot_a);
    cluster.migrate_keys(masters[0], masters[1], &rest);
    cluster.finish_migration(slot_a, masters[0], masters[1]);
    for round in 0..2 {
        let shuffled_all = shuffled(&all, round);
        let r = mget(&mut p, &shuffled_all);
        if r.is_error() {
            proxy.fail(&format!("MGET after the migration: {r:?}"));
        }
        assert_eq!(
            opt_texts(&r),
            want(&shuffled_all, &expected),
            "after the migration"
        );
    }
    let mut del = s(&["DEL"]);
    del.extend(all.iter().cloned());
    assert_eq!(p.cmd(del.as_slice()), Resp::Int(all.len() as i64));
}

// ---------------------------------------------------------------------------------------------
// SCAN, KEYS, DBSIZE, RANDOMKEY, FLUSHALL, FLUSHDB
// ---------------------------------------------------------------------------------------------

/// Runs a full SCAN iteration through the proxy; returns every key returned (with
/// repetitions) and the number of calls.
fn scan_all(proxy: &Proxy, p: &mut RawClient, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    let t0 = Instant::now();
    loop {
        let mut c = vec!["SCAN".to_string(), cursor.clone()];
        c.extend(extra.iter().map(|x| x.to_string()));
        let r = p.cmd(&c);
        calls += 1;
        let Resp::Array(items) = &r else {
            proxy.fail(&format!("SCAN {cursor} {extra:?}: {r:?}"))
        };
        assert_eq!(items.len(), 2, "SCAN reply {r:?}");
        cursor = items[0].text().expect("cursor is a string");
        assert!(
            cursor.parse::<u64>().is_ok(),
            "cursor {cursor:?} is not an unsigned number"
        );
        keys.extend(texts(&items[1]));
        if cursor == "0" {
            break;
        }
        if calls > 200_000 || t0.elapsed() > Duration::from_secs(120) {
            proxy.fail(&format!(
                "SCAN {extra:?} did not end after {calls} calls ({} keys so far)",
                keys.len()
            ));
        }
    }
    (keys, calls)
}

fn assert_each_once(got: &[String], want: &BTreeSet<String>, what: &str) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for k in got {
        *seen.entry(k.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(10).collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|k| !seen.contains_key(k.as_str()))
        .take(10)
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !want.contains(**k))
        .take(10)
        .collect();
    assert!(
        dups.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: {} returned for {} wanted; duplicates {dups:?}, missing {missing:?}, unexpected {extra:?}",
        got.len(),
        want.len()
    );
}

#[test]
fn scan_visits_every_key_exactly_once() {
    // DEBUG HTSTATS on the nodes tells when their incremental rehashing is over.
    let cluster = Cluster::start_with(ClusterOptions {
        enable_debug_command: true,
        ..Default::default()
    });
    let proxy = Proxy::start(&cluster, "");
    let mut con = proxy.conn_timeout(Duration::from_secs(30));
    const N: usize = 10_000;
    let strings: BTreeSet<String> = (0..N).map(|i| format!("sc:{i}")).collect();
    let hashes: BTreeSet<String> = (0..200).map(|i| format!("sch:{i}")).collect();
    for chunk in strings.iter().collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("SET").arg(*k).arg("x").ignore();
        }
        pipe.query::<()>(&mut con).or_log(&proxy, "SETs");
    }
    let mut pipe = redis::pipe();
    for k in &hashes {
        pipe.cmd("HSET").arg(k).arg("f").arg("v").ignore();
    }
    pipe.query::<()>(&mut con).or_log(&proxy, "HSETs");
    let masters = cluster.masters();
    let sizes: Vec<u64> = masters
        .iter()
        .map(|&m| cluster.query(m, &["DBSIZE"]))
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), (N + 200) as u64, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    // Until no master is still rehashing its keyspace (growing it left two hash tables for a
    // while), so that the servers themselves return each key once.
    let mut rehashing = Vec::new();
    let settled = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        rehashing = masters
            .iter()
            .copied()
            .filter(|&m| {
                cluster
                    .query::<String>(m, &["DEBUG", "HTSTATS", "0"])
                    .contains("rehashing target")
            })
            .collect();
        rehashing.is_empty().then_some(())
    });
    assert!(
        settled.is_some(),
        "masters {rehashing:?} still rehashing their keyspace"
    );

    let all: BTreeSet<String> = strings.union(&hashes).cloned().collect();
    let mut p = proxy.raw_timeout(Duration::from_secs(20));

    let t0 = Instant::now();
    let (got, calls) = scan_all(&proxy, &mut p, &[]);
    eprintln!(
        "SCAN (default COUNT): {} keys in {calls} calls, {:?}",
        got.len(),
        t0.elapsed()
    );
    assert_each_once(&got, &all, "SCAN");
    assert!(
        calls > masters.len(),
        "only {calls} SCAN calls for {} keys",
        all.len()
    );

    let (got, calls) = scan_all(&proxy, &mut p, &["COUNT", "1000"]);
    eprintln!("SCAN COUNT 1000: {} keys in {calls} calls", got.len());
    assert_each_once(&got, &all, "SCAN COUNT 1000");

    let (got, calls_small) = scan_all(&proxy, &mut p, &["COUNT", "3"]);
    assert_each_once(&got, &all, "SCAN COUNT 3");
    assert!(
        calls_small > calls,
        "COUNT is passed on: COUNT 3 took {calls_small} calls, COUNT 1000 took {calls}"
    );

    let want_match: BTreeSet<String> = strings
        .iter()
        .filter(|k| k.starts_with("sc:12"))
        .cloned()
        .collect();
    assert_eq!(want_match.len(), 111);
    let (got, _) = scan_all(&proxy, &mut p, &["MATCH", "sc:12*", "COUNT", "500"]);
    assert_each_once(&got, &want_match, "SCAN MATCH sc:12* COUNT 500");

    let (got, _) = scan_all(&proxy, &mut p, &["MATCH", "sch:*"]);
    assert_each_once(&got, &hashes, "SCAN MATCH sch:*");

    let (got, _) = scan_all(&proxy, &mut p, &["COUNT", "800", "TYPE", "hash"]);
    assert_each_once(&got, &hashes, "SCAN COUNT 800 TYPE hash");

    let (got, _) = scan_all(&proxy, &mut p, &["MATCH", "nothing:*"]);
    assert!(got.is_empty(), "SCAN MATCH nothing:* returned {got:?}");

    // A cursor the proxy never handed out (its low bits name no master) ends the iteration,
    // as Redis takes any number; a cursor that is not a number is Redis's error.
    assert_eq!(
        p.cmd(&["SCAN", "12345678901234"]),
        Resp::Array(vec![Resp::Bulk(b"0".to_vec()), Resp::Array(vec![])])
    );
    assert_eq!(
        p.cmd(&["SCAN", "-1"]),
        Resp::Array(vec![Resp::Bulk(b"0".to_vec()), Resp::Array(vec![])])
    );
    assert_eq!(
        p.cmd(&["SCAN", "abc"]),
        Resp::Error("ERR invalid cursor".into())
    );
}

#[test]
fn keys_dbsize_randomkey_flushall_and_flushdb_cover_every_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let mut con = proxy.conn();
    let mut p = proxy.raw();

    assert_eq!(
        p.cmd(&["DBSIZE"]),
        Resp::Int(0),
        "DBSIZE of an empty cluster"
    );
    let r = p.cmd(&["RANDOMKEY"]);
    assert!(
        matches!(r, Resp::NullBulk | Resp::Null),
        "RANDOMKEY of an empty cluster: {r:?}"
    );

    let write = |con: &mut redis::Connection, prefix: &str, n: usize| -> BTreeSet<String> {
        let keys: BTreeSet<String> = (0..n).map(|i| format!("{prefix}:{i}")).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("SET").arg(k).arg("v").ignore();
        }
        pipe.query::<()>(con).or_log(&proxy, "SETs");
        keys
    };
    let keys = write(&mut con, "kd", 600);

    // KEYS through the proxy: exactly the union of every master's KEYS.
    let direct_keys = |pattern: &str| -> Vec<String> {
        let mut v: Vec<String> = masters
            .iter()
            .flat_map(|&m| cluster.query::<Vec<String>>(m, &["KEYS", pattern]))
            .collect();
        v.sort();
        v
    };
    for m in &masters {
        let n: u64 = cluster.query(*m, &["DBSIZE"]);
        assert!(n > 100, "master {m} holds only {n} keys");
    }
    let mut got = texts(&p.cmd(&["KEYS", "*"]));
    got.sort();
    assert_eq!(got.len(), 600, "KEYS * count");
    assert_eq!(got, direct_keys("*"), "KEYS * vs the masters' KEYS");
    assert_eq!(got, keys.iter().cloned().collect::<Vec<_>>());
    let mut got = texts(&p.cmd(&["KEYS", "kd:5*"]));
    got.sort();
    assert_eq!(got.len(), 111, "KEYS kd:5*");
    assert_eq!(got, direct_keys("kd:5*"));
    assert_eq!(texts(&p.cmd(&["KEYS", "none:*"])), Vec::<String>::new());

    // DBSIZE: the sum over the masters.
    let sum: u64 = masters
        .iter()
        .map(|&m| cluster.query::<u64>(m, &["DBSIZE"]))
        .sum();
    assert_eq!(sum, 600);
    assert_eq!(
        p.cmd(&["DBSIZE"]),
        Resp::Int(600),
        "DBSIZE through the proxy"
    );

    // RANDOMKEY returns existing keys (from more than one master over many calls).
    let mut from_masters = HashSet::new();
    let owners = cluster.slot_owners();
    for _ in 0..60 {
        let k = p
            .cmd(&["RANDOMKEY"])
            .text()
            .expect("RANDOMKEY returned a key");
        assert!(keys.contains(&k), "RANDOMKEY returned {k:?}");
        from_masters.insert(owner_of(&owners, &k));
    }
    assert!(
        from_masters.len() > 1,
        "60 RANDOMKEYs all came from one master {from_masters:?}"
    );

    // FLUSHALL empties every master (and, through replication, every replica).
    assert_eq!(p.cmd(&["FLUSHALL"]), ok(), "FLUSHALL");
    for m in &masters {
        let n: u64 = cluster.query(*m, &["DBSIZE"]);
        assert_eq!(n, 0, "master {m} after FLUSHALL");
    }
    assert_eq!(p.cmd(&["DBSIZE"]), Resp::Int(0));
    assert_eq!(texts(&p.cmd(&["KEYS", "*"])), Vec::<String>::new());
    for m in &masters {
        let r = cluster.replica_of(*m);
        let ok = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            (cluster.query::<u64>(r, &["DBSIZE"]) == 0).then_some(())
        });
        assert!(ok.is_some(), "replica {r} still has keys after FLUSHALL");
    }

    // FLUSHDB (and FLUSHALL ASYNC) the same way.
    write(&mut con, "fd", 300);
    assert_eq!(p.cmd(&["DBSIZE"]), Resp::Int(300));
    assert_eq!(p.cmd(&["FLUSHDB"]), ok(), "FLUSHDB");
    for m in &masters {
        let n: u64 = cluster.query(*m, &["DBSIZE"]);
        assert_eq!(n, 0, "master {m} after FLUSHDB");
    }
    write(&mut con, "fa", 300);
    assert_eq!(p.cmd(&["FLUSHALL", "ASYNC"]), ok(), "FLUSHALL ASYNC");
    let ok = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        masters
            .iter()
            .all(|&m| cluster.query::<u64>(m, &["DBSIZE"]) == 0)
            .then_some(())
    });
    assert!(ok.is_some(), "masters not empty after FLUSHALL ASYNC");
}

// ---------------------------------------------------------------------------------------------
// Scripts and functions
// ---------------------------------------------------------------------------------------------

fn script_exists_direct(cluster: &Cluster, port: u16, sha: &str) -> bool {
    let v: Vec<i64> = cluster.query(port, &["SCRIPT", "EXISTS", sha]);
    v == vec![1]
}

#[test]
fn eval_evalsha_script_and_functions_follow_their_keys() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let owners = cluster.slot_owners();
    let mut p = proxy.raw();

    // EVAL with two keys in one slot.
    let body = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); \
                return redis.call('MGET', KEYS[1], KEYS[2])";
    for (i, &m) in masters.iter().enumerate() {
        let base = key_owned_by(&cluster, m, &format!("ev{i}:"));
        let tag = format!("{{{base}}}");
        let (k1, k2) = (format!("{tag}a"), format!("{tag}b"));
        let r = p.cmd(&["EVAL", body, "2", &k1, &k2, "x", "y"]);
        if r.is_error() {
            proxy.fail(&format!("EVAL with keys {k1} {k2} on master {m}: {r:?}"));
        }
        assert_eq!(texts(&r), vec!["x", "y"]);
        let v: Option<String> = cluster.query(m, &["GET", &k2]);
        assert_eq!(v.as_deref(), Some("y"), "{k2} on master {m}");
    }
    // EVAL with keys in different slots: CROSSSLOT, nothing written.
    assert_ne!(key_slot(b"ev:a"), key_slot(b"ev:b"));
    assert_eq!(
        p.cmd(&["EVAL", body, "2", "ev:a", "ev:b", "x", "y"]),
        Resp::Error(CROSSSLOT.into()),
        "cross-slot EVAL"
    );
    for k in ["ev:a", "ev:b"] {
        let v: Option<String> = cluster.query(owner_of(&owners, k), &["GET", k]);
        assert_eq!(v, None, "{k} written by a refused EVAL");
    }
    // Arguments are not keys: keys in one slot, ARGV anything.
    let r = p.cmd(&["EVAL", "return ARGV[1]", "1", "ev:a", "ev:b"]);
    assert_eq!(
        r,
        bulk("ev:b"),
        "EVAL with one key and an argument in another slot"
    );
    // No keys: runs on some master.
    assert_eq!(p.cmd(&["EVAL", "return 7", "0"]), Resp::Int(7));
    assert_eq!(
        p.cmd(&["EVAL", "return #ARGV", "0", "a", "b"]),
        Resp::Int(2)
    );

    // SCRIPT LOAD goes to every master; EVALSHA works for keys on every master.
    let incr = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha = p
        .cmd(&["SCRIPT", "LOAD", incr])
        .text()
        .expect("SCRIPT LOAD returns the sha");
    assert_eq!(sha.len(), 40, "sha {sha:?}");
    for &m in &masters {
        assert!(
            script_exists_direct(&cluster, m, &sha),
            "script not loaded on master {m}"
        );
    }
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        p.cmd(&["SCRIPT", "EXISTS", &sha, unknown]),
        Resp::Array(vec![Resp::Int(1), Resp::Int(0)])
    );
    for (i, &m) in masters.iter().enumerate() {
        let k = key_owned_by(&cluster, m, &format!("es{i}:"));
        let r = p.cmd(&["EVALSHA", &sha, "1", &k, "5"]);
        if r != Resp::Int(5) {
            proxy.fail(&format!("EVALSHA with key {k} on master {m}: {r:?}"));
        }
        let v: String = cluster.query(m, &["GET", &k]);
        assert_eq!(v, "5", "{k} on master {m}");
    }
    assert_eq!(
        p.cmd(&["EVALSHA", &sha, "2", "ev:a", "ev:b", "1"]),
        Resp::Error(CROSSSLOT.into()),
        "cross-slot EVALSHA"
    );
    // A script present on one master only is not reported as existing.
    let partial: String = cluster.query(masters[0], &["SCRIPT", "LOAD", "return 'partial'"]);
    assert_eq!(
        p.cmd(&["SCRIPT", "EXISTS", &partial, &sha]),
        Resp::Array(vec![Resp::Int(0), Resp::Int(1)]),
        "SCRIPT EXISTS of a script loaded on one master only"
    );
    // A master that lost a script loaded through the proxy (restart, failover, a direct
    // SCRIPT FLUSH) gets it again: EVALSHA keeps working.
    let m2 = masters[2];
    let _: String = cluster.query(m2, &["SCRIPT", "FLUSH"]);
    assert!(!script_exists_direct(&cluster, m2, &sha));
    let k = key_owned_by(&cluster, m2, "es2:");
    let r = p.cmd(&["EVALSHA", &sha, "1", &k, "1"]);
    if r != Resp::Int(6) {
        proxy.fail(&format!(
            "EVALSHA on master {m2} after it lost the script: {r:?}"
        ));
    }
    assert!(
        script_exists_direct(&cluster, m2, &sha),
        "script loaded again on {m2}"
    );

    // SCRIPT FLUSH reaches every master, and a flushed script is gone for the client too
    // (NOSCRIPT, as from Redis): the proxy must not load it again behind its back.
    assert_eq!(p.cmd(&["SCRIPT", "FLUSH"]), ok());
    for &m in &masters {
        assert!(
            !script_exists_direct(&cluster, m, &sha),
            "script still on master {m}"
        );
        assert!(!script_exists_direct(&cluster, m, &partial));
    }
    let r = p.cmd(&["EVALSHA", &sha, "1", "es0:x", "1"]);
    assert!(
        r.error_text().map(|e| e.starts_with("NOSCRIPT")) == Some(true),
        "EVALSHA after SCRIPT FLUSH through the proxy must be NOSCRIPT: {r:?}"
    );

    // Functions: loaded on every master, FCALL by key, deleted everywhere.
    let lib = "#!lua name=rcptest\n\
               redis.register_function('rcp_incr', function(keys, args) \
               return redis.call('INCRBY', keys[1], args[1]) end)";
    assert_eq!(
        p.cmd(&["FUNCTION", "LOAD", lib]),
        bulk("rcptest"),
        "FUNCTION LOAD"
    );
    for &m in &masters {
        let v: redis::Value = cluster.query(m, &["FUNCTION", "LIST", "LIBRARYNAME", "rcptest"]);
        assert!(
            matches!(&v, redis::Value::Array(a) if a.len() == 1),
            "library not on master {m}: {v:?}"
        );
    }
    for (i, &m) in masters.iter().enumerate() {
        let k = key_owned_by(&cluster, m, &format!("fc{i}:"));
        let r = p.cmd(&["FCALL", "rcp_incr", "1", &k, "3"]);
        if r != Resp::Int(3) {
            proxy.fail(&format!("FCALL with key {k} on master {m}: {r:?}"));
        }
        let v: String = cluster.query(m, &["GET", &k]);
        assert_eq!(v, "3");
    }
    assert_eq!(
        p.cmd(&["FCALL", "rcp_incr", "2", "ev:a", "ev:b", "1"]),
        Resp::Error(CROSSSLOT.into()),
        "cross-slot FCALL"
    );
    assert_eq!(p.cmd(&["FUNCTION", "DELETE", "rcptest"]), ok());
    for &m in &masters {
        let v: redis::Value = cluster.query(m, &["FUNCTION", "LIST"]);
        assert!(
            matches!(&v, redis::Value::Array(a) if a.is_empty()),
            "functions left on master {m}: {v:?}"
        );
    }
    let r = p.cmd(&["FCALL", "rcp_incr", "1", "fc0:x", "1"]);
    assert!(r.is_error(), "FCALL after FUNCTION DELETE: {r:?}");
    assert_eq!(p.cmd(&["FUNCTION", "LOAD", lib]), bulk("rcptest"));
    assert_eq!(p.cmd(&["FUNCTION", "FLUSH"]), ok());
    for &m in &masters {
        let v: redis::Value = cluster.query(m, &["FUNCTION", "LIST"]);
        assert!(
            matches!(&v, redis::Value::Array(a) if a.is_empty()),
            "functions left on master {m} after FUNCTION FLUSH: {v:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Key positions (Redis 7 key specs)
// ---------------------------------------------------------------------------------------------

/// A hash tag owned by a master that does not own any of the `decoys` (the words a naive
/// "first argument is the key" router would hash), when there is such a master.
fn tag_avoiding(cluster: &Cluster, owners: &[u16], decoys: &[&str], name: &str) -> String {
    let masters = cluster.masters();
    let bad: HashSet<u16> = decoys.iter().map(|d| owner_of(owners, d)).collect();
    let m = masters
        .iter()
        .copied()
        .find(|m| !bad.contains(m))
        .unwrap_or(masters[0]);
    let base = key_owned_by(cluster, m, name);
    format!("{{{base}}}")
}

#[test]
fn xread_zunionstore_and_sort_store_are_routed_by_their_key_specs() {
    let cluster = Cluster::start();
    // Without auto_redirect a command routed to the wrong master comes back as MOVED.
    let proxy = Proxy::start(&cluster, "auto_redirect: false\n");
    let owners = cluster.slot_owners();
    let mut p = proxy.raw();
    let other_tag = "{elsewhere}";

    // XREAD COUNT n STREAMS k1 k2 k3 id id id
    let t = tag_avoiding(&cluster, &owners, &["COUNT", "STREAMS", "10"], "xr");
    let streams: Vec<String> = (1..=3).map(|i| format!("{t}s{i}")).collect();
    assert_ne!(
        key_slot(other_tag.as_bytes()),
        key_slot(streams[0].as_bytes())
    );
    for (i, st) in streams.iter().enumerate() {
        for j in 0..=i {
            let r = p.cmd(&["XADD", st, "*", "n", &j.to_string()]);
            assert!(!r.is_error(), "XADD {st}: {r:?}");
        }
    }
    let r = p.cmd(&[
        "XREAD",
        "COUNT",
        "10",
        "STREAMS",
        &streams[0],
        &streams[1],
        &streams[2],
        "0",
        "0",
        "0",
    ]);
    let Resp::Array(per_stream) = &r else {
        proxy.fail(&format!("XREAD over three streams in one slot: {r:?}"))
    };
    assert_eq!(per_stream.len(), 3, "{r:?}");
    for (i, entry) in per_stream.iter().enumerate() {
        let Resp::Array(pair) = entry else {
            panic!("{entry:?}")
        };
        assert_eq!(pair[0], bulk(&streams[i]));
        let Resp::Array(entries) = &pair[1] else {
            panic!("{entry:?}")
        };
        assert_eq!(entries.len(), i + 1, "entries of {}", streams[i]);
    }
    let other_stream = format!("{other_tag}s");
    // Streams in two slots: computed by the proxy, one XREAD per stream, joined (the
    // missing stream has nothing to say, as from one Redis).
    let r = p.cmd(&["XREAD", "STREAMS", &streams[0], &other_stream, "0", "0"]);
    let Resp::Array(per_stream) = &r else {
        panic!("XREAD over streams in two slots: {r:?}")
    };
    assert_eq!(per_stream.len(), 1, "{r:?}");
    assert!(
        matches!(&per_stream[0], Resp::Array(pair) if pair[0] == bulk(&streams[0])),
        "{r:?}"
    );
    // XREADGROUP GROUP g c COUNT n STREAMS k >
    assert_eq!(p.cmd(&["XGROUP", "CREATE", &streams[2], "g", "0"]), ok());
    let r = p.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        "2",
        "STREAMS",
        &streams[2],
        ">",
    ]);
    let Resp::Array(per_stream) = &r else {
        proxy.fail(&format!("XREADGROUP: {r:?}"))
    };
    let Resp::Array(pair) = &per_stream[0] else {
        panic!("{r:?}")
    };
    let Resp::Array(entries) = &pair[1] else {
        panic!("{r:?}")
    };
    assert_eq!(entries.len(), 2, "XREADGROUP COUNT 2: {r:?}");

    // ZUNIONSTORE dest numkeys k1 k2 WEIGHTS w1 w2, and ZUNION numkeys k1 k2
    let t = tag_avoiding(&cluster, &owners, &["2", "WEIGHTS"], "zu");
    let (z1, z2, dest) = (format!("{t}z1"), format!("{t}z2"), format!("{t}zdest"));
    assert_eq!(p.cmd(&["ZADD", &z1, "1", "a", "2", "b"]), Resp::Int(2));
    assert_eq!(p.cmd(&["ZADD", &z2, "3", "b", "4", "c"]), Resp::Int(2));
    let r = p.cmd(&["ZUNIONSTORE", &dest, "2", &z1, &z2, "WEIGHTS", "1", "10"]);
    if r != Resp::Int(3) {
        proxy.fail(&format!("ZUNIONSTORE: {r:?}"));
    }
    let owner = owner_of(&owners, &dest);
    let direct: Vec<String> = cluster.query(owner, &["ZRANGE", &dest, "0", "-1", "WITHSCORES"]);
    assert_eq!(
        direct,
        vec!["a", "1", "b", "32", "c", "40"],
        "{dest} on {owner}"
    );
    let r = p.cmd(&["ZUNION", "2", &z1, &z2]);
    assert_eq!(
        texts(&r),
        vec!["a", "c", "b"],
        "ZUNION numkeys (scores 1, 4, 5)"
    );
    let r = p.cmd(&["ZINTERSTORE", &dest, "2", &z1, &z2]);
    assert_eq!(r, Resp::Int(1), "ZINTERSTORE");
    let other_z = format!("{other_tag}z");
    assert_eq!(
        p.cmd(&["ZUNIONSTORE", &dest, "2", &z1, &other_z]),
        Resp::Error(CROSSSLOT_WRITE.into()),
        "ZUNIONSTORE over two slots"
    );
    assert_eq!(
        p.cmd(&["ZUNIONSTORE", &other_z, "2", &z1, &z2]),
        Resp::Error(CROSSSLOT_WRITE.into()),
        "ZUNIONSTORE with the destination in another slot"
    );

    // SORT src ... STORE dest
    let t = tag_avoiding(&cluster, &owners, &["BY", "nosort", "STORE"], "so");
    let (list, sorted) = (format!("{t}list"), format!("{t}sorted"));
    assert_eq!(p.cmd(&["RPUSH", &list, "3", "1", "2"]), Resp::Int(3));
    let r = p.cmd(&["SORT", &list, "STORE", &sorted]);
    if r != Resp::Int(3) {
        proxy.fail(&format!("SORT ... STORE: {r:?}"));
    }
    assert_eq!(
        texts(&p.cmd(&["LRANGE", &sorted, "0", "-1"])),
        vec!["1", "2", "3"]
    );
    let owner = owner_of(&owners, &sorted);
    let direct: Vec<String> = cluster.query(owner, &["LRANGE", &sorted, "0", "-1"]);
    assert_eq!(direct, vec!["1", "2", "3"], "{sorted} on its owner {owner}");
    for m in cluster.masters().into_iter().filter(|&m| m != owner) {
        let n: u64 = cluster.query(m, &["DBSIZE"]);
        let has: Vec<String> = cluster.query(m, &["KEYS", "*sorted"]);
        assert!(has.is_empty(), "master {m} ({n} keys) has {has:?}");
    }
    let r = p.cmd(&["SORT", &list, "DESC", "LIMIT", "0", "2", "STORE", &sorted]);
    assert_eq!(r, Resp::Int(2), "SORT DESC LIMIT STORE");
    assert_eq!(
        texts(&p.cmd(&["LRANGE", &sorted, "0", "-1"])),
        vec!["3", "2"]
    );
    let other_dest = format!("{other_tag}sorted");
    assert_eq!(
        p.cmd(&["SORT", &list, "STORE", &other_dest]),
        Resp::Error(CROSSSLOT.into()),
        "SORT ... STORE into another slot"
    );
    assert_eq!(
        texts(&p.cmd(&["SORT", &list, "BY", "nosort"])),
        vec!["3", "1", "2"]
    );
}

#[test]
fn more_key_positions_lmpop_sintercard_bitop_object_xinfo_memory() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "auto_redirect: false\n");
    let owners = cluster.slot_owners();
    let mut p = proxy.raw();
    let mut failures = Vec::new();
    let mut check = |what: &str, got: Resp, want: &dyn Fn(&Resp) -> bool| {
        if !want(&got) {
            failures.push(format!("{what}: {got:?}"));
        }
    };

    let t = tag_avoiding(
        &cluster,
        &owners,
        &["2", "ENCODING", "STREAM", "USAGE", "AND", "0"],
        "kp",
    );
    let (l1, l2) = (format!("{t}l1"), format!("{t}l2"));
    let (b1, b2, bd) = (format!("{t}b1"), format!("{t}b2"), format!("{t}bd"));
    let st = format!("{t}st");
    assert_eq!(p.cmd(&["RPUSH", &l2, "x", "y"]), Resp::Int(2));
    assert_eq!(p.cmd(&["SET", &b1, "ab"]), ok());
    assert_eq!(p.cmd(&["SET", &b2, "ac"]), ok());
    assert!(!p.cmd(&["XADD", &st, "*", "f", "v"]).is_error());

    check(
        "LMPOP 2 l1 l2 LEFT",
        p.cmd(&["LMPOP", "2", &l1, &l2, "LEFT"]),
        &|r| matches!(r, Resp::Array(a) if a.first() == Some(&bulk(&l2))),
    );
    check(
        "LMPOP 2 l1 l2 RIGHT COUNT 5",
        p.cmd(&["LMPOP", "2", &l1, &l2, "RIGHT", "COUNT", "5"]),
        &|r| matches!(r, Resp::Array(a) if a.first() == Some(&bulk(&l2))),
    );
    check(
        "SINTERCARD 2 k k",
        p.cmd(&["SINTERCARD", "2", &l1, &l2]),
        &|r| *r == Resp::Int(0),
    );
    check(
        "ZINTERCARD 2 k k",
        p.cmd(&["ZINTERCARD", "2", &l1, &b1]),
        &|r| {
            // both missing or of the wrong type: not MOVED/CROSSSLOT
            !matches!(r, Resp::Error(e) if e.starts_with("MOVED") || e.starts_with("CROSSSLOT"))
        },
    );
    check(
        "BITOP AND dest a b",
        p.cmd(&["BITOP", "AND", &bd, &b1, &b2]),
        &|r| *r == Resp::Int(2),
    );
    check(
        "OBJECT ENCODING key",
        p.cmd(&["OBJECT", "ENCODING", &b1]),
        &|r| r.text().is_some(),
    );
    check("XINFO STREAM key", p.cmd(&["XINFO", "STREAM", &st]), &|r| {
        matches!(r, Resp::Array(_) | Resp::Map(_))
    });
    check(
        "MEMORY USAGE key",
        p.cmd(&["MEMORY", "USAGE", &b1]),
        &|r| matches!(r, Resp::Int(n) if *n > 0),
    );
    check(
        "LMPOP across slots",
        p.cmd(&["LMPOP", "2", &l1, "{elsewhere}l", "LEFT"]),
        &|r| *r == Resp::Error(CROSSSLOT_WRITE.into()),
    );
    check(
        "BITOP across slots",
        p.cmd(&["BITOP", "OR", "{elsewhere}d", &b1]),
        &|r| *r == Resp::Error(CROSSSLOT_WRITE.into()),
    );
    let owner = owner_of(&owners, &bd);
    let v: Option<String> = cluster.query(owner, &["GET", &bd]);
    if v.as_deref() != Some("ab") {
        failures.push(format!("BITOP result on the owner {owner}: {v:?}"));
    }
    if !failures.is_empty() {
        proxy.fail(&format!(
            "{} key-position checks failed:\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
}

/// SCAN pages as one Redis fills them: a master that runs out of keys hands over to the
/// next in the same call, so a small keyspace comes back whole with cursor 0.
#[test]
fn scan_pages_go_on_to_the_next_master_like_one_redis() {
    let cluster = Cluster::start_masters(3);
    let masters = cluster.masters();
    let proxy = Proxy::start(&cluster, "");
    let mut raw = proxy.raw_timeout(Duration::from_secs(10));
    let page = |raw: &mut RawClient, args: &[&str]| -> (String, BTreeSet<String>) {
        match raw.cmd(args) {
            Resp::Array(v) if v.len() == 2 => {
                let cursor = v[0].text().expect("cursor");
                let Resp::Array(keys) = &v[1] else {
                    panic!("{v:?}")
                };
                (cursor, keys.iter().map(|k| k.text().unwrap()).collect())
            }
            other => panic!("SCAN answered {other:?}"),
        }
    };
    // One key, on the last master: the first call finds it and ends the iteration.
    let only = key_owned_by(&cluster, masters[2], "only:");
    assert_eq!(raw.cmd(&["SET", &only, "v"]), Resp::Simple("OK".into()));
    assert_eq!(
        page(&mut raw, &["SCAN", "0"]),
        ("0".to_string(), BTreeSet::from([only.clone()]))
    );
    // Ten keys over two masters (and the one above), COUNT allowing: one call.
    let mut all = BTreeSet::from([only.clone()]);
    for i in 0..5 {
        for &m in &masters[..2] {
            let k = key_owned_by(&cluster, m, &format!("ten{i}:"));
            assert_eq!(raw.cmd(&["SET", &k, "v"]), Resp::Simple("OK".into()));
            all.insert(k);
        }
    }
    assert_eq!(
        page(&mut raw, &["SCAN", "0", "COUNT", "100"]),
        ("0".to_string(), all.clone())
    );
    // The default COUNT (10): pages of at least 10 keys until the last, every key once.
    let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (next, keys) = page(&mut raw, &["SCAN", &cursor]);
        calls += 1;
        if next != "0" {
            assert!(
                keys.len() >= 10,
                "a page of {} keys before the end",
                keys.len()
            );
        }
        seen.extend(keys);
        cursor = next;
        if cursor == "0" || calls > 20 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, all.iter().cloned().collect::<Vec<_>>());
    assert!(calls <= 2, "{calls} calls for 11 keys");
    // MATCH and TYPE hold across the masters.
    let mut hashes = BTreeSet::new();
    for &m in &masters {
        let k = key_owned_by(&cluster, m, "hash:");
        assert_eq!(raw.cmd(&["HSET", &k, "f", "v"]), Resp::Int(1));
        hashes.insert(k);
    }
    assert_eq!(
        page(&mut raw, &["SCAN", "0", "TYPE", "hash", "COUNT", "1000"]),
        ("0".to_string(), hashes.clone())
    );
    assert_eq!(
        page(&mut raw, &["SCAN", "0", "MATCH", "hash:*", "COUNT", "1000"]),
        ("0".to_string(), hashes)
    );
    assert_eq!(
        page(
            &mut raw,
            &["SCAN", "0", "MATCH", "nothing*", "COUNT", "1000"]
        ),
        ("0".to_string(), BTreeSet::new())
    );
}

/// SUNION, SINTER and SDIFF over keys on three masters, computed by the proxy: the same
/// members (Redis's order is its hash table's, so compared as sets), the same reply type
/// (RESP2 array, RESP3 set) and the same errors as one standalone Redis.
#[test]
fn set_reads_across_slots_match_a_standalone_server() {
    let cluster = Cluster::start_masters(3);
    let masters = cluster.masters();
    let proxy = Proxy::start(&cluster, "");
    let solo = Standalone::start();
    let s: Vec<String> = masters
        .iter()
        .map(|&m| key_owned_by(&cluster, m, "set:"))
        .collect();
    let str_key = key_owned_by(&cluster, masters[1], "str:");
    let none = key_owned_by(&cluster, masters[2], "none:");
    let setup: Vec<Vec<String>> = vec![
        ["SADD", &s[0], "a", "b", "c", "d"]
            .map(String::from)
            .to_vec(),
        ["SADD", &s[1], "b", "c", "e"].map(String::from).to_vec(),
        ["SADD", &s[2], "c", "d", "e", "f"]
            .map(String::from)
            .to_vec(),
        ["SET", &str_key, "x"].map(String::from).to_vec(),
    ];
    let norm = |r: Resp| -> Resp {
        match r {
            Resp::Array(mut v) => {
                v.sort_by_key(|e| format!("{e:?}"));
                Resp::Array(v)
            }
            Resp::Set(mut v) => {
                v.sort_by_key(|e| format!("{e:?}"));
                Resp::Set(v)
            }
            other => other,
        }
    };
    for proto in ["2", "3"] {
        let mut p = proxy.raw_timeout(Duration::from_secs(10));
        let mut r = solo.raw();
        for c in [&mut p, &mut r] {
            assert!(!c.cmd(&["HELLO", proto]).is_error());
            for cmd in &setup {
                c.cmd(cmd);
            }
        }
        let cases: Vec<Vec<&str>> = vec![
            vec![&s[0], &s[1], &s[2]],
            vec![&s[2], &s[0]],
            vec![&s[0], &none],
            vec![&none, &s[1], &s[2]],
            vec![&s[0], &s[1], &s[1]],
            vec![&s[0], &str_key],
            vec![&str_key, &s[2]],
        ];
        let mut computed = 0;
        for op in ["SUNION", "SINTER", "SDIFF"] {
            for keys in &cases {
                let mut args = vec![op];
                args.extend(keys.iter().copied());
                let want = norm(r.cmd(&args));
                let got = norm(p.cmd(&args));
                assert_eq!(got, want, "RESP{proto} {args:?}");
                computed += 1;
            }
        }
        assert_eq!(computed, 21);
    }
    // The STORE forms write to one key: still CROSSSLOT.
    let mut p = proxy.raw_timeout(Duration::from_secs(10));
    let e = p.cmd(&["SUNIONSTORE", &s[0], &s[1], &s[2]]);
    assert!(
        e.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{e:?}"
    );
    // A blocking command over several slots is refused, saying why.
    let e = p.cmd(&["BLPOP", &s[0], &s[1], "0"]);
    assert!(
        e.error_text()
            .is_some_and(|e| e.starts_with("CROSSSLOT") && e.contains("blocking command")),
        "{e:?}"
    );
    let info = parse_info(&p.cmd(&["INFO", "proxy"]).text().unwrap());
    assert_eq!(
        info["cross_slot_computed"], "42",
        "21 cases in RESP2 and in RESP3"
    );
}

/// ZUNION/ZINTER/ZDIFF/ZINTERCARD, SINTERCARD, PFCOUNT, LCS and XREAD with keys on three
/// masters, in RESP2 and RESP3: each reply (errors included, doubles as text) equal to a
/// standalone Redis's given the same commands.
#[test]
fn computed_reads_across_slots_match_a_standalone_server() {
    computed_reads(Server::Redis);
}

/// The same on Valkey 9, which writes doubles in their shortest form.
#[test]
fn computed_reads_across_slots_match_a_standalone_server_on_valkey() {
    computed_reads(Server::Valkey);
}

fn computed_reads(server: Server) {
    let cluster = Cluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        server,
        ..Default::default()
    });
    let masters = cluster.masters();
    let proxy = Proxy::start(&cluster, "");
    let solo = Standalone::start_on(server);
    let on = |i: usize, prefix: &str| key_owned_by(&cluster, masters[i], prefix);
    let z: Vec<String> = (0..3).map(|i| on(i, "z:")).collect();
    let set = on(1, "set:");
    let st = on(2, "str:");
    let list = on(0, "list:");
    let none = on(1, "none:");
    let h: Vec<String> = (0..3).map(|i| on(i, "hll:")).collect();
    let x: Vec<String> = (0..3).map(|i| on(i, "x:")).collect();
    let (a, b) = (on(0, "lcs:"), on(2, "lcs:"));
    let mut setup: Vec<Vec<String>> = Vec::new();
    let mut add = |words: &[&str]| setup.push(words.iter().map(|w| w.to_string()).collect());
    add(&["FLUSHALL"]);
    add(&["ZADD", &z[0], "1", "a", "2", "b", "0.1", "c", "inf", "d"]);
    add(&[
        "ZADD",
        &z[1],
        "3",
        "b",
        "0.3333333333333333",
        "c",
        "-inf",
        "d",
        "5",
        "e",
    ]);
    add(&["ZADD", &z[2], "1", "a", "1", "c", "1.5", "e", "-2", "f"]);
    add(&["SADD", &set, "a", "c", "g"]);
    add(&["SET", &st, "not an hll"]);
    add(&["RPUSH", &list, "x"]);
    add(&["PFADD", &h[0], "a", "b", "c"]);
    add(&["PFADD", &h[1], "c", "d"]);
    let many: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
    let mut pf = vec!["PFADD", h[2].as_str()];
    pf.extend(many.iter().map(String::as_str));
    add(&pf);
    add(&["SET", &a, "ohmytext"]);
    add(&["SET", &b, "mynewtext"]);
    for (i, k) in x.iter().enumerate().take(2) {
        add(&["XADD", k, &format!("{}-1", i + 1), "f", "1"]);
        add(&["XADD", k, &format!("{}-2", i + 1), "f", "2"]);
    }
    let cases: Vec<Vec<&str>> = vec![
        vec!["ZUNION", "3", &z[0], &z[1], &z[2]],
        vec!["ZUNION", "3", &z[0], &z[1], &z[2], "WITHSCORES"],
        vec![
            "ZUNION",
            "3",
            &z[0],
            &z[1],
            &z[2],
            "WEIGHTS",
            "2",
            "0.5",
            "-1",
            "WITHSCORES",
        ],
        vec![
            "ZUNION",
            "2",
            &z[0],
            &z[1],
            "AGGREGATE",
            "MIN",
            "WITHSCORES",
        ],
        vec![
            "ZUNION",
            "2",
            &z[0],
            &z[1],
            "AGGREGATE",
            "max",
            "WITHSCORES",
        ],
        vec!["ZUNION", "3", &z[0], &set, &none, "WITHSCORES"],
        vec!["ZUNION", "2", &z[0], &st],
        vec!["ZUNION", "2", &z[0], &z[1], "WEIGHTS", "1", "x"],
        vec!["ZUNION", "2", &st, &z[1], "WEIGHTS", "1", "x"],
        vec!["ZUNION", "2", &z[0], &z[1], "AGGREGATE", "avg"],
        vec!["ZINTER", "3", &z[0], &z[1], &z[2], "WITHSCORES"],
        vec![
            "ZINTER",
            "2",
            &z[0],
            &z[1],
            "WEIGHTS",
            "0",
            "2",
            "WITHSCORES",
        ],
        vec!["ZINTER", "2", &z[0], &set, "AGGREGATE", "MAX", "WITHSCORES"],
        vec!["ZINTER", "2", &z[0], &none],
        vec!["ZDIFF", "2", &z[0], &z[1], "WITHSCORES"],
        vec!["ZDIFF", "3", &z[2], &set, &none],
        vec!["ZDIFF", "2", &z[0], &z[1], "WEIGHTS", "1", "1"],
        vec!["ZINTERCARD", "2", &z[0], &z[1]],
        vec!["ZINTERCARD", "3", &z[0], &z[1], &z[2], "LIMIT", "1"],
        vec!["ZINTERCARD", "2", &z[0], &z[1], "LIMIT", "-1"],
        vec!["SINTERCARD", "2", &set, &z[0]],
        vec!["SINTERCARD", "2", &set, &none],
        vec!["PFCOUNT", &h[0], &h[1]],
        vec!["PFCOUNT", &h[0], &h[1], &h[2]],
        vec!["PFCOUNT", &h[0], &none, &h[2]],
        vec!["PFCOUNT", &h[0], &st],
        vec!["PFCOUNT", &h[0], &list],
        vec!["LCS", &a, &b],
        vec!["LCS", &a, &b, "LEN"],
        vec!["LCS", &a, &b, "IDX"],
        vec!["LCS", &a, &b, "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
        vec!["LCS", &a, &none],
        vec!["LCS", &a, &list],
        vec!["LCS", &a, &b, "LEN", "IDX"],
        vec!["LCS", &a, &b, "NOSUCH"],
        vec![
            "XREAD", "COUNT", "1", "STREAMS", &x[0], &x[1], &x[2], "0", "0", "0",
        ],
        vec!["XREAD", "STREAMS", &x[0], &x[1], "1-2", "0"],
        vec!["XREAD", "STREAMS", &x[0], &x[1], "9-9", "9-9"],
        vec!["XREAD", "STREAMS", &x[0], &x[1], "0", "nonsense"],
    ];
    compare_with_standalone(&proxy, &solo, &setup, &cases, &[]);
    let mut p = proxy.raw_timeout(Duration::from_secs(10));
    let info = parse_info(&p.cmd(&["INFO", "proxy"]).text().unwrap());
    let want = (2 * cases.len()).to_string();
    assert_eq!(
        info["cross_slot_computed"], want,
        "every case, RESP2 and RESP3"
    );
}

/// In RESP2, then RESP3: `setup` on both, then each case's reply through the proxy equal to
/// the standalone server's, and after each case every key of `keys` in the same state.
fn compare_with_standalone<S: AsRef<str>>(
    proxy: &Proxy,
    solo: &Standalone,
    setup: &[Vec<S>],
    cases: &[Vec<&str>],
    keys: &[String],
) {
    for proto in ["2", "3"] {
        let mut p = proxy.raw_timeout(Duration::from_secs(10));
        let mut r = solo.raw();
        for c in [&mut p, &mut r] {
            assert!(!c.cmd(&["HELLO", proto]).is_error());
            for cmd in setup {
                let cmd: Vec<&str> = cmd.iter().map(AsRef::as_ref).collect();
                assert!(!c.cmd(&cmd).is_error(), "{cmd:?}");
            }
        }
        for args in cases {
            let want = r.cmd(args);
            let got = p.cmd(args);
            assert_eq!(got, want, "RESP{proto} {args:?}");
            for k in keys {
                assert_eq!(
                    key_state(&mut p, k),
                    key_state(&mut r, k),
                    "RESP{proto} key {k} after {args:?}"
                );
            }
        }
    }
}

/// A key's whole state as a standalone-comparable value: its type, its content read in a
/// fixed order, and whether it has a TTL.
fn key_state(c: &mut RawClient, key: &str) -> Vec<Resp> {
    let t = c.cmd(&["TYPE", key]);
    let content = match &t {
        Resp::Simple(t) if t == "string" => match c.cmd(&["GET", key]) {
            // A HyperLogLog's bytes depend on its encoding (sparse or dense), which may
            // differ for the same registers: its count is what must match.
            Resp::Bulk(v) if v.starts_with(b"HYLL") => c.cmd(&["PFCOUNT", key]),
            other => other,
        },
        Resp::Simple(t) if t == "set" => {
            let mut r = c.cmd(&["SMEMBERS", key]);
            if let Resp::Array(v) | Resp::Set(v) = &mut r {
                v.sort_by_key(|e| format!("{e:?}"));
            }
            r
        }
        Resp::Simple(t) if t == "zset" => c.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        Resp::Simple(t) if t == "list" => c.cmd(&["LRANGE", key, "0", "-1"]),
        Resp::Simple(t) if t == "hash" => c.cmd(&["HGETALL", key]),
        _ => Resp::Null,
    };
    let ttl = matches!(c.cmd(&["PTTL", key]), Resp::Int(n) if n > 0);
    vec![t, content, Resp::Bool(ttl)]
}

/// `cross_slot_writes: true`: each write across masters answers as a standalone Redis and
/// leaves the same keys behind (types, contents, TTLs); with the default, CROSSSLOT; a
/// move whose source cannot be removed keeps the value in both places and says so.
#[test]
fn cross_slot_writes_match_a_standalone_server() {
    let cluster = Cluster::start_masters(3);
    let masters = cluster.masters();
    let proxy = Proxy::start(&cluster, "cross_slot_writes: true\n");
    let strict = Proxy::start(&cluster, "");
    let solo = Standalone::start();
    let on = |i: usize, prefix: &str| key_owned_by(&cluster, masters[i], prefix);
    let s: Vec<String> = (0..3).map(|i| on(i, "s:")).collect();
    let z: Vec<String> = (0..3).map(|i| on(i, "z:")).collect();
    let l: Vec<String> = (0..2).map(|i| on(i, "l:")).collect();
    let h: Vec<String> = (0..2).map(|i| on(i, "h:")).collect();
    let b: Vec<String> = (0..3).map(|i| on(i, "b:")).collect();
    let st = on(2, "str:");
    let dst = on(1, "dst:");
    let dst2 = on(2, "dst:");
    let none = on(0, "none:");
    let setup: Vec<Vec<&str>> = vec![
        vec!["FLUSHALL"],
        vec!["SADD", &s[0], "a", "b", "c"],
        vec!["SADD", &s[1], "b", "c", "d"],
        vec!["SADD", &s[2], "c", "x"],
        vec!["ZADD", &z[0], "1", "a", "2.5", "b"],
        vec!["ZADD", &z[1], "0.1", "b", "7", "c"],
        vec!["RPUSH", &l[0], "1", "2", "3", "1"],
        vec!["RPUSH", &l[1], "x"],
        vec!["PFADD", &h[0], "a", "b"],
        vec!["PFADD", &h[1], "b", "c", "d"],
        vec!["SET", &b[0], "\u{1}\u{2}ab"],
        vec!["SET", &b[1], "zz"],
        vec!["SET", &st, "v"],
        vec!["PEXPIRE", &st, "100000"],
        vec!["SET", &dst2, "old"],
    ];
    let cases: Vec<Vec<&str>> = vec![
        vec!["SUNIONSTORE", &dst, &s[0], &s[1], &s[2]],
        vec!["SINTERSTORE", &dst, &s[0], &s[1]],
        vec!["SDIFFSTORE", &dst, &s[0], &s[1], &s[2]],
        vec!["SINTERSTORE", &dst2, &s[0], &none],
        vec!["SUNIONSTORE", &dst, &s[0], &st],
        vec!["ZUNIONSTORE", &dst, "2", &z[0], &z[1], "WEIGHTS", "2", "3"],
        vec![
            "ZINTERSTORE",
            &dst,
            "3",
            &z[0],
            &z[1],
            &s[1],
            "AGGREGATE",
            "MAX",
        ],
        vec!["ZDIFFSTORE", &dst, "2", &z[0], &z[1]],
        vec!["ZUNIONSTORE", &dst, "2", &z[0], &z[1], "WITHSCORES"],
        vec!["RENAME", &st, &dst],
        vec!["RENAME", &none, &dst],
        vec!["RENAMENX", &s[2], &dst2],
        vec!["RENAMENX", &s[2], &dst],
        vec!["COPY", &z[0], &dst],
        vec!["COPY", &z[1], &dst],
        vec!["COPY", &z[1], &dst, "REPLACE"],
        vec!["SMOVE", &s[0], &s[1], "a"],
        vec!["SMOVE", &s[0], &s[1], "nope"],
        vec!["SMOVE", &s[0], &z[1], "b"],
        vec!["SMOVE", &none, &z[1], "b"],
        vec!["LMOVE", &l[0], &l[1], "RIGHT", "LEFT"],
        vec!["LMOVE", &l[0], &l[1], "LEFT", "RIGHT"],
        vec!["RPOPLPUSH", &l[0], &l[1]],
        vec!["LMOVE", &none, &l[1], "LEFT", "LEFT"],
        vec!["LMOVE", &l[0], &s[0], "LEFT", "LEFT"],
        vec!["PFMERGE", &dst, &h[0], &h[1]],
        vec!["PFMERGE", &h[0], &h[1]],
        vec!["PFMERGE", &dst, &s[0]],
        vec!["BITOP", "AND", &dst, &b[0], &b[1]],
        vec!["BITOP", "OR", &dst, &b[0], &b[1], &none],
        vec!["BITOP", "XOR", &dst, &b[0], &b[1]],
        vec!["BITOP", "NOT", &dst, &b[1]],
        vec!["BITOP", "AND", &dst2, &none, &b[2]],
        vec!["BITOP", "OR", &dst, &s[0], &b[1]],
        vec!["ZRANGESTORE", &dst, &z[1], "0", "-1"],
        vec![
            "ZRANGESTORE",
            &dst,
            &z[0],
            "(1",
            "+inf",
            "BYSCORE",
            "LIMIT",
            "0",
            "5",
        ],
        vec!["ZRANGESTORE", &dst, &z[1], "[a", "[z", "BYLEX"],
        vec!["ZRANGESTORE", &dst2, &z[1], "5", "9"],
        vec!["ZRANGESTORE", &dst, &z[1], "0", "-1", "WITHSCORES"],
        vec!["ZRANGESTORE", &dst, &st, "0", "-1"],
        vec!["ZRANGESTORE", &dst, &z[1], "x", "y", "BYSCORE"],
        vec!["MSETNX", &b[0], "1", &b[2], "2"],
        vec!["MSETNX", &b[2], "1", &none, "2"],
    ];
    let mut keys: Vec<String> = [&s[..], &z[..], &l[..], &h[..], &b[..]].concat();
    keys.extend([st.clone(), dst.clone(), dst2.clone(), none.clone()]);
    compare_with_standalone(&proxy, &solo, &setup, &cases, &keys);
    let mut p = proxy.raw_timeout(Duration::from_secs(10));
    let info = parse_info(&p.cmd(&["INFO", "proxy"]).text().unwrap());
    assert!(
        info["cross_slot_writes"].parse::<usize>().unwrap() >= 2 * (cases.len() - 1),
        "{}",
        info["cross_slot_writes"]
    );
    // The default: CROSSSLOT, as from a cluster node; nothing written.
    let mut q = strict.raw_timeout(Duration::from_secs(10));
    let e = q.cmd(&["SUNIONSTORE", &dst, &s[0], &s[1]]);
    assert!(
        e.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{e:?}"
    );
    let e = q.cmd(&["RENAME", &s[0], &dst2]);
    assert!(
        e.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{e:?}"
    );
    // A rename whose source cannot be removed: the value in both places, and said so.
    p.cmd(&["SET", &st, "keep"]);
    let src_port = masters[2];
    let deny: String = cluster.cli(src_port, &["ACL", "SETUSER", "default", "-del"]);
    assert!(deny.contains("OK"), "{deny}");
    let e = p.cmd(&["RENAME", &st, &dst]);
    let text = e.error_text().unwrap_or_default();
    assert!(
        text.contains("wrote") && text.contains("failed removing it from"),
        "{e:?}"
    );
    assert_eq!(p.cmd(&["GET", &dst]), bulk("keep"));
    assert_eq!(p.cmd(&["GET", &st]), bulk("keep"));
    cluster.cli(src_port, &["ACL", "SETUSER", "default", "+del"]);
}

/// A RENAME across masters whose source node dies after the copy was written and before
/// the source was removed: the value survives in the destination (its TTL kept), and the
/// client hears that the removal may or may not have happened.
#[test]
fn a_cross_slot_rename_loses_nothing_when_the_source_dies_half_way() {
    let mut cluster = Cluster::start_masters(3);
    let masters = cluster.masters();
    let proxy = Proxy::start(&cluster, "cross_slot_writes: true\n");
    let src = key_owned_by(&cluster, masters[0], "src:");
    let dst = key_owned_by(&cluster, masters[1], "dst:");
    let mut p = proxy.raw_timeout(Duration::from_secs(20));
    assert_eq!(p.cmd(&["SET", &src, "value"]), ok());
    assert_eq!(p.cmd(&["PEXPIRE", &src, "600000"]), Resp::Int(1));
    // Writes on the source's node wait (its DUMP and PTTL are reads, and go through).
    let paused = cluster.cli(masters[0], &["CLIENT", "PAUSE", "20000", "WRITE"]);
    assert!(paused.contains("OK"), "{paused}");
    let (s, d) = (src.clone(), dst.clone());
    let rename = std::thread::spawn(move || p.cmd(&["RENAME", &s, &d]));
    // The copy is written, and the removal waits on the paused node: kill it then.
    let waiting = poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
        cluster
            .cli(masters[0], &["CLIENT", "LIST"])
            .contains("cmd=del")
            .then_some(())
    });
    assert!(
        waiting.is_some(),
        "the DEL of the source never reached its node"
    );
    cluster.kill(masters[0]);
    let reply = rename.join().expect("the RENAME thread");
    let text = reply.error_text().unwrap_or_default();
    assert!(
        text.contains("may or may not have removed it from"),
        "{reply:?}"
    );
    let got: Option<String> = cluster.query(masters[1], &["GET", &dst]);
    assert_eq!(
        got.as_deref(),
        Some("value"),
        "the value lives on in the destination"
    );
    let ttl: i64 = cluster.query(masters[1], &["PTTL", &dst]);
    assert!(ttl > 0, "the TTL kept: {ttl}");
}
