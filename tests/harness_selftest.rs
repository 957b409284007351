//! Checks the test harness itself, without the proxy: the RESP reader, slot computation, and
//! that `Cluster` starts a healthy 3+3 cluster and cleans up after itself.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn resp_reader_parses_resp2_and_resp3() {
    let cases: Vec<(&[u8], Resp)> = vec![
        (b"+OK\r\n", Resp::Simple("OK".into())),
        (b"-ERR x y\r\n", Resp::Error("ERR x y".into())),
        (b":-42\r\n", Resp::Int(-42)),
        (b"$0\r\n\r\n", Resp::Bulk(vec![])),
        (b"$-1\r\n", Resp::NullBulk),
        (b"*-1\r\n", Resp::NullArray),
        (b"$5\r\na\r\nbc\r\n", Resp::Bulk(b"a\r\nbc".to_vec())),
        (
            b"*2\r\n$1\r\na\r\n:1\r\n",
            Resp::Array(vec![Resp::Bulk(b"a".to_vec()), Resp::Int(1)]),
        ),
        (
            b"%1\r\n+k\r\n$1\r\nv\r\n",
            Resp::Map(vec![(Resp::Simple("k".into()), Resp::Bulk(b"v".to_vec()))]),
        ),
        (b"~1\r\n#t\r\n", Resp::Set(vec![Resp::Bool(true)])),
        (b">1\r\n_\r\n", Resp::Push(vec![Resp::Null])),
        (b",1.5\r\n", Resp::Double("1.5".into())),
        (b"(123\r\n", Resp::BigNumber("123".into())),
        (
            b"=7\r\ntxt:abc\r\n",
            Resp::Verbatim("txt".into(), b"abc".to_vec()),
        ),
        (b"!3\r\nbad\r\n", Resp::BlobError(b"bad".to_vec())),
        (b"|1\r\n+a\r\n+b\r\n:7\r\n", Resp::Int(7)),
    ];
    for (bytes, want) in cases {
        let (got, used) = parse_resp(bytes)
            .unwrap()
            .unwrap_or_else(|| panic!("incomplete: {bytes:?}"));
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(bytes));
        assert_eq!(used, bytes.len());
        // Every strict prefix is incomplete, never an error or a different value.
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_resp(&bytes[..cut]).unwrap(),
                None,
                "prefix {cut} of {bytes:?}"
            );
        }
    }
    assert!(parse_resp(b"?x\r\n").is_err());
    assert!(parse_resp(b"$3\r\nabcd\r\n").is_err());
    // Two replies back to back: the first is returned with its length.
    let (v, used) = parse_resp(b"+a\r\n+b\r\n").unwrap().unwrap();
    assert_eq!((v, used), (Resp::Simple("a".into()), 4));
    assert_eq!(
        encode_cmd(&["GET", "k"]),
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
    );
}

#[test]
fn key_slot_matches_redis_spec_examples() {
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(
        key_slot(b"{user1000}.following"),
        key_slot(b"{user1000}.followers")
    );
    assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}")); // empty tag: whole key
    assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    let t = tag_for_slot(1234);
    assert_eq!(key_slot(format!("{{{t}}}:x").as_bytes()), 1234);
}

fn set_contains_bus_clash(set: &std::collections::HashSet<&u16>, p: u16) -> bool {
    set.contains(&(p + 10000))
}

#[test]
fn free_ports_are_distinct_and_have_free_bus_ports() {
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let set: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(set.len(), ports.len(), "duplicate ports {ports:?}");
    // free_port() checked each bus port (port + 10000) was free when it picked it; checking
    // again here raced with other tests' connections, whose ephemeral ports can land there.
    for &p in &ports {
        let (low, span) = port_range();
        assert!(
            (low..low + span).contains(&(p as u32)),
            "{p} outside {low}..{}",
            low + span
        );
        assert!(
            !set_contains_bus_clash(&set, p),
            "port {p}'s bus port is another pick"
        );
    }
}

#[test]
fn cluster_starts_healthy_serves_directly_and_cleans_up() {
    let cluster = Cluster::start();
    let dir = cluster.dir().to_path_buf();
    let pids = cluster.pids();
    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    assert!(dir.is_dir());
    assert_eq!(cluster.health_problem(), None);

    // 3 masters, each with exactly one replica; every slot has an owner among them.
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "masters {masters:?}");
    let mut replicas = Vec::new();
    for &m in &masters {
        let r = cluster.replicas_of(m);
        assert_eq!(r.len(), 1, "replicas of {m}: {r:?}");
        replicas.push(r[0]);
    }
    for slot in [0u16, 5460, 5461, 10922, 10923, 16383] {
        let owner = cluster.slot_owner(slot);
        assert!(masters.contains(&owner), "slot {slot} owned by {owner}");
    }
    assert_eq!(cluster.slot_owner(0), masters[0]);
    assert_eq!(cluster.first_slot_of(masters[0]), 0);

    // Our slot computation agrees with the server's.
    for key in [
        "foo",
        "bar",
        "{user1}:name",
        "{user1}:email",
        "a{b}c",
        "x{}y",
        "",
    ] {
        let s: u16 = cluster.query(masters[0], &["CLUSTER", "KEYSLOT", key]);
        assert_eq!(s, key_slot(key.as_bytes()), "slot of {key:?}");
    }

    // Direct SET on the owner works, a non-owner answers MOVED, and the replica gets the data.
    let key = "harness:key";
    let owner = cluster.slot_owner(key_slot(key.as_bytes()));
    let _: () = cluster.query(owner, &["SET", key, "v1"]);
    let other = *masters.iter().find(|&&m| m != owner).unwrap();
    let err = cluster
        .try_query::<Option<String>>(other, &["GET", key])
        .unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    let replica = cluster.replica_of(owner);
    let got = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let mut con = cluster.conn(replica);
        let v: Option<String> = redis::pipe()
            .cmd("READONLY")
            .ignore()
            .cmd("GET")
            .arg(key)
            .query::<(Option<String>,)>(&mut con)
            .ok()?
            .0;
        (v.as_deref() == Some("v1")).then_some(())
    });
    assert!(got.is_some(), "value not replicated to {replica}");

    // redis-cli helper.
    assert!(cluster
        .cli(owner, &["CLUSTER", "INFO"])
        .contains("cluster_state:ok"));
    let (calls, _, _) = cluster.cmdstat(owner, "set");
    assert!(calls >= 1);

    drop(cluster);

    // Everything is gone: processes reaped, ports closed, temp dir removed.
    assert!(!dir.exists(), "{} still exists", dir.display());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "redis-server pid {pid} still exists"
        );
    }
    for p in ports {
        assert!(port_closed(p), "port {p} still accepts connections");
    }
}

#[test]
fn killing_a_master_leads_to_replica_promotion() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        node_timeout_ms: 1000,
        ..Default::default()
    });
    let masters = cluster.masters();
    let victim = masters[1];
    let replica = cluster.replica_of(victim);
    cluster.kill(victim);
    assert!(!cluster.is_alive(victim));
    assert!(port_closed(victim));
    cluster.wait_promoted(replica, Duration::from_secs(30));
    let slot = cluster.first_slot_of(replica);
    let from = masters[0];
    let owner = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (cluster.slot_owner_per(from, slot) == Some(replica)).then_some(())
    });
    assert!(
        owner.is_some(),
        "{from} does not see {replica} owning slot {slot}"
    );
}
