//! Slot moves under the proxy's feet: MOVED after a completed resharding, ASK during one,
//! and MOVED passed on (with address_map applied) when auto_redirect is off.
//! Each test changes the topology, so each gets its own cluster.

mod common;

use common::*;
use std::time::Duration;

/// calls + rejected_calls of a command on a node (a GET refused with MOVED counts as rejected).
fn get_attempts(cluster: &Cluster, port: u16) -> u64 {
    let (calls, rejected, _) = cluster.cmdstat(port, "get");
    calls + rejected
}

#[test]
fn moved_is_followed_inside_the_proxy_and_the_slot_map_is_updated() {
    moved_is_followed(Server::Redis);
}

#[test]
fn moved_is_followed_on_valkey() {
    moved_is_followed(Server::Valkey);
}

fn moved_is_followed(server: Server) {
    let cluster = Cluster::start_on(server);
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let slot = cluster.first_slot_of(from) + 100;
    assert_eq!(cluster.slot_owner(slot), from);
    // A long refresh interval: only the MOVED reply can teach the proxy about the move.
    let proxy = Proxy::start(&cluster, "refresh_interval: \"600s\"\n");
    let mut con = proxy.conn();

    let keys = keys_in_slot(slot, "moved", 20);
    for (i, k) in keys.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(format!("v{i}"))
            .query(&mut con)
            .or_log(&proxy, "SET before the move");
    }
    // Warm the proxy's map for this slot.
    let v: String = redis::cmd("GET")
        .arg(&keys[0])
        .query(&mut con)
        .or_log(&proxy, "GET before the move");
    assert_eq!(v, "v0");
    assert_eq!(cluster.count_keys_in_slot(from, slot), 20);

    cluster.move_slot(slot, from, to);
    assert_eq!(
        cluster.count_keys_in_slot(to, slot),
        20,
        "keys migrated to the new owner"
    );
    let direct = cluster
        .try_query::<Option<String>>(from, &["GET", &keys[0]])
        .unwrap_err();
    assert_eq!(
        direct.code(),
        Some("MOVED"),
        "the old owner now redirects: {direct}"
    );

    // First command after the move: the proxy meets MOVED and follows it; the client doesn't.
    let old_before = get_attempts(&cluster, from);
    let v: String = redis::cmd("GET").arg(&keys[0]).query(&mut con).or_log(
        &proxy,
        "first GET after the move (must be redirected inside the proxy)",
    );
    assert_eq!(v, "v0");
    let old_after_first = get_attempts(&cluster, from);
    assert!(
        old_after_first - old_before <= 1,
        "first GET hit the old owner {} times",
        old_after_first - old_before
    );

    // Later commands go straight to the new owner.
    let new_before = cluster.cmdstat(to, "get").0;
    for round in 0..3 {
        for (i, k) in keys.iter().enumerate() {
            let r: redis::RedisResult<String> = redis::cmd("GET").arg(k).query(&mut con);
            match r {
                Ok(v) => assert_eq!(v, format!("v{i}"), "{k}"),
                Err(e) => proxy.fail(&format!("round {round}: GET {k} after the move: {e}")),
            }
        }
    }
    let new_after = cluster.cmdstat(to, "get").0;
    assert!(
        new_after - new_before >= 60,
        "new owner served {} GETs, want >= 60",
        new_after - new_before
    );
    assert_eq!(
        get_attempts(&cluster, from),
        old_after_first,
        "GETs still reach the old owner after the first redirect: the proxy did not update its slot map"
    );

    // Writes land on the new owner.
    let nk = format!("{}-new", keys[0]);
    let _: () = redis::cmd("SET")
        .arg(&nk)
        .arg("fresh")
        .query(&mut con)
        .or_log(&proxy, "SET after the move");
    let v: String = cluster.query(to, &["GET", &nk]);
    assert_eq!(v, "fresh");

    // Other slots are unaffected.
    let other = key_owned_by(&cluster, masters[2], "other:");
    let _: () = redis::cmd("SET")
        .arg(&other)
        .arg("x")
        .query(&mut con)
        .or_log(&proxy, "SET other slot");
    let v: String = cluster.query(masters[2], &["GET", &other]);
    assert_eq!(v, "x");
}

/// GET on `port` after ASKING (reads a key of a slot being imported).
fn asking_get(cluster: &Cluster, port: u16, key: &str) -> Option<String> {
    let mut con = cluster.conn(port);
    let (v,): (Option<String>,) = redis::pipe()
        .cmd("ASKING")
        .ignore()
        .cmd("GET")
        .arg(key)
        .query(&mut con)
        .unwrap();
    v
}

#[test]
fn ask_during_a_migration_is_followed_for_reads_and_new_keys() {
    ask_is_followed(Server::Redis);
}

#[test]
fn ask_is_followed_on_valkey() {
    ask_is_followed(Server::Valkey);
}

fn ask_is_followed(server: Server) {
    let cluster = Cluster::start_on(server);
    let masters = cluster.masters();
    let (from, to) = (masters[1], masters[2]);
    let slot = cluster.first_slot_of(from) + 33;
    let proxy = Proxy::start(&cluster, "refresh_interval: \"600s\"\n");
    let mut con = proxy.conn();

    let keys = keys_in_slot(slot, "ask", 20);
    for (i, k) in keys.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(format!("v{i}"))
            .query(&mut con)
            .or_log(&proxy, "SET before the migration");
    }
    cluster.begin_migration(slot, from, to);
    cluster.migrate_keys(from, to, &keys[..10]);
    assert_eq!(cluster.count_keys_in_slot(from, slot), 10);
    assert_eq!(cluster.count_keys_in_slot(to, slot), 10);

    // Moved keys (ASK to the target) and unmoved keys (still on the source) all read right.
    for round in 0..2 {
        for (i, k) in keys.iter().enumerate() {
            let r: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(k).query(&mut con);
            match r {
                Ok(v) => assert_eq!(v, Some(format!("v{i}")), "round {round}: {k}"),
                Err(e) => proxy.fail(&format!("round {round}: GET {k} during the migration: {e}")),
            }
        }
    }

    // New keys in a migrating slot are created on the target (the source answers ASK).
    let new_keys = keys_in_slot(slot, "asknew", 10);
    for (i, k) in new_keys.iter().enumerate() {
        let r: redis::RedisResult<String> = redis::cmd("SET")
            .arg(k)
            .arg(format!("n{i}"))
            .query(&mut con);
        match r {
            Ok(v) => assert_eq!(v, "OK"),
            Err(e) => proxy.fail(&format!("SET {k} during the migration: {e}")),
        }
    }
    // Updating an already moved key goes to the target too.
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg("updated")
        .query(&mut con)
        .or_log(&proxy, "SET of a moved key");
    // And a missing key reads as nil (source: not here -> ASK; target: nil).
    let missing: Option<String> = redis::cmd("GET")
        .arg(format!("{}-none", keys[0]))
        .query(&mut con)
        .or_log(&proxy, "GET of a missing key during the migration");
    assert_eq!(missing, None);

    assert_eq!(
        cluster.count_keys_in_slot(from, slot),
        10,
        "source keeps exactly the unmoved keys"
    );
    assert_eq!(
        cluster.count_keys_in_slot(to, slot),
        20,
        "target has the moved and the new keys"
    );
    for (i, k) in new_keys.iter().enumerate() {
        assert_eq!(
            asking_get(&cluster, to, k),
            Some(format!("n{i}")),
            "{k} on the target"
        );
    }
    assert_eq!(
        asking_get(&cluster, to, &keys[0]).as_deref(),
        Some("updated")
    );
    // The source still owns the slot and still has the unmoved keys unchanged.
    for (i, k) in keys.iter().enumerate().skip(10) {
        let v: Option<String> = cluster.query(from, &["GET", k]);
        assert_eq!(v, Some(format!("v{i}")));
    }

    // Finish the migration; everything still reads right through the proxy.
    let rest = cluster.keys_in_slot(from, slot);
    cluster.migrate_keys(from, to, &rest);
    cluster.finish_migration(slot, from, to);
    for (i, k) in keys.iter().enumerate().skip(1) {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query(&mut con)
            .or_log(&proxy, "GET after the migration");
        assert_eq!(v, Some(format!("v{i}")), "{k}");
    }
    for (i, k) in new_keys.iter().enumerate() {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query(&mut con)
            .or_log(&proxy, "GET after the migration");
        assert_eq!(v, Some(format!("n{i}")), "{k}");
    }
}

#[test]
fn without_auto_redirect_the_client_sees_moved_with_the_mapped_address() {
    let cluster = Cluster::start();
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[2]);
    let slot = cluster.first_slot_of(from) + 7;
    let extra = format!(
        "auto_redirect: false\nrefresh_interval: \"600s\"\naddress_map:\n  \"127.0.0.1:{to}\": \"10.1.2.3:6000\"\n  \"127.0.0.1:{from}\": \"10.1.2.3:6001\"\n"
    );
    let proxy = Proxy::start(&cluster, &extra);
    let mut raw = proxy.raw_timeout(Duration::from_secs(5));
    let key = keys_in_slot(slot, "nr", 1).remove(0);

    assert_eq!(raw.cmd(&["SET", &key, "before"]), Resp::Simple("OK".into()));
    assert_eq!(
        raw.cmd(&["GET", &key]),
        Resp::Bulk(b"before".to_vec()),
        "warm-up GET"
    );

    cluster.move_slot(slot, from, to);

    // The proxy still believes `from` owns the slot; `from` answers MOVED, which the client
    // sees with the new owner's internal address replaced by its public one.
    let first = raw.cmd(&["GET", &key]);
    assert_eq!(
        first,
        Resp::Error(format!("MOVED {slot} 10.1.2.3:6000")),
        "first GET after the move (internal address was 127.0.0.1:{to})"
    );
    // Later replies are either the value (the proxy learned the owner) or the same MOVED;
    // never the internal address.
    for i in 0..5 {
        let r = raw.cmd(&["GET", &key]);
        let ok = r == Resp::Bulk(b"before".to_vec()) || r == first;
        assert!(ok, "GET #{i} after the move: {r:?}");
    }

    // Slots that did not move work as usual.
    let other = key_owned_by(&cluster, masters[1], "stay:");
    assert_eq!(raw.cmd(&["SET", &other, "x"]), Resp::Simple("OK".into()));
    assert_eq!(raw.cmd(&["GET", &other]), Resp::Bulk(b"x".to_vec()));

    // redis-rs classifies the passed-on redirect as MOVED.
    let key2 = keys_in_slot(slot, "nr2", 1).remove(0);
    let mut con = proxy.conn();
    match redis::cmd("GET")
        .arg(&key2)
        .query::<Option<String>>(&mut con)
    {
        Ok(v) => assert_eq!(
            v, None,
            "if the proxy already routes to the new owner, the key is absent"
        ),
        Err(e) => {
            assert_eq!(e.code(), Some("MOVED"), "{e}");
            assert!(e.to_string().contains("10.1.2.3:6000"), "{e}");
        }
    }
}
