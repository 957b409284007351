//! MULTI/EXEC/WATCH through the proxy: a transaction runs on a connection pinned to the node
//! of its first key, atomically; keys on another node abort it at EXEC (never half applied);
//! WATCH sees other clients' writes.

mod common;

use common::*;

#[test]
fn transactions_are_atomic_on_one_node() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut raw = proxy.raw();

    // One write: MULTI, a keyless command queued before the node is known, commands on one
    // slot, EXEC. Every reply in order; EXEC's array has every queued command's result.
    raw.send(&encode_cmd(&["MULTI"]));
    raw.send(&encode_cmd(&["PING"]));
    raw.send(&encode_cmd(&["SET", "{tx}a", "1"]));
    raw.send(&encode_cmd(&["INCR", "{tx}a"]));
    raw.send(&encode_cmd(&["GET", "{tx}a"]));
    raw.send(&encode_cmd(&["EXEC"]));
    raw.send(&encode_cmd(&["GET", "{tx}a"]));
    assert_eq!(raw.reply(), Resp::Simple("OK".into()));
    for _ in 0..4 {
        assert_eq!(raw.reply(), Resp::Simple("QUEUED".into()));
    }
    match raw.reply() {
        Resp::Array(items) => {
            assert_eq!(items.len(), 4, "{items:?}");
            assert_eq!(items[0], Resp::Simple("PONG".into()));
            assert_eq!(items[2], Resp::Int(2));
            assert_eq!(items[3].text().as_deref(), Some("2"));
        }
        other => panic!("EXEC: {other:?}"),
    }
    assert_eq!(raw.reply().text().as_deref(), Some("2"));

    // Keys on another node: refused when queued, EXEC aborts, nothing written.
    let home = cluster.slot_owner(key_slot(b"{tx}a"));
    let elsewhere = *cluster.masters().iter().find(|&&m| m != home).unwrap();
    let other = key_owned_by(&cluster, elsewhere, "other");
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(
        raw.cmd(&["SET", "{tx}a", "100"]),
        Resp::Simple("QUEUED".into())
    );
    assert!(raw
        .cmd(&["SET", &other, "1"])
        .error_text()
        .is_some_and(|e| e.starts_with("CROSSSLOT")));
    assert!(raw
        .cmd(&["EXEC"])
        .error_text()
        .is_some_and(|e| e.starts_with("EXECABORT")));
    assert_eq!(raw.cmd(&["GET", "{tx}a"]).text().as_deref(), Some("2"));
    assert_eq!(raw.cmd(&["EXISTS", &other]), Resp::Int(0));

    // A command whose own keys span slots (split or computed outside a transaction):
    // CROSSSLOT, as a cluster node answers it in MULTI, and EXEC aborts.
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    for cmd in [
        vec!["MGET", "{tx}a", other.as_str()],
        vec!["SUNION", "{tx}a", other.as_str()],
    ] {
        let r = raw.cmd(&cmd);
        assert!(
            r.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
            "{cmd:?}: {r:?}"
        );
    }
    assert!(raw
        .cmd(&["EXEC"])
        .error_text()
        .is_some_and(|e| e.starts_with("EXECABORT")));

    // DISCARD drops what was queued.
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(
        raw.cmd(&["SET", "{tx}a", "7"]),
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(raw.cmd(&["DISCARD"]), Resp::Simple("OK".into()));
    assert_eq!(raw.cmd(&["GET", "{tx}a"]).text().as_deref(), Some("2"));

    // Errors as Redis words them.
    assert!(raw
        .cmd(&["EXEC"])
        .error_text()
        .is_some_and(|e| e.contains("EXEC without MULTI")));
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert!(raw
        .cmd(&["MULTI"])
        .error_text()
        .is_some_and(|e| e.contains("nested")));
    assert_eq!(raw.cmd(&["DISCARD"]), Resp::Simple("OK".into()));

    // WATCH: another client's write to the watched key makes EXEC return null.
    let mut other = proxy.conn();
    assert_eq!(raw.cmd(&["WATCH", "{tx}a"]), Resp::Simple("OK".into()));
    let _: () = redis::cmd("SET")
        .arg("{tx}a")
        .arg("changed")
        .query(&mut other)
        .unwrap();
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(
        raw.cmd(&["SET", "{tx}a", "mine"]),
        Resp::Simple("QUEUED".into())
    );
    let exec = raw.cmd(&["EXEC"]);
    assert!(
        matches!(exec, Resp::Null | Resp::NullArray | Resp::NullBulk),
        "{exec:?}"
    );
    assert_eq!(
        raw.cmd(&["GET", "{tx}a"]).text().as_deref(),
        Some("changed")
    );
    // Unwatched, the same transaction applies.
    assert_eq!(raw.cmd(&["WATCH", "{tx}a"]), Resp::Simple("OK".into()));
    assert_eq!(raw.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert_eq!(
        raw.cmd(&["SET", "{tx}a", "mine"]),
        Resp::Simple("QUEUED".into())
    );
    assert!(matches!(raw.cmd(&["EXEC"]), Resp::Array(_)));
    assert_eq!(raw.cmd(&["GET", "{tx}a"]).text().as_deref(), Some("mine"));

    // redis-rs's atomic pipeline (MULTI/EXEC) works as against one server.
    let mut con = proxy.conn();
    let (v,): (i64,) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("{p}n")
        .arg(40)
        .ignore()
        .cmd("INCRBY")
        .arg("{p}n")
        .arg(2)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, 42);
}

/// A client's requests run in the order it sent them, whichever node connection carries
/// them: a WATCH pipelined after thousands of writes on the shared connection does not run
/// before them (which would make EXEC fail, since the key changed after WATCH), a GET after
/// EXEC sees the transaction's write, and a blocking pop after a push finds the element.
#[test]
fn requests_keep_their_order_across_shared_pinned_and_dedicated_connections() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut raw = proxy.raw_timeout(std::time::Duration::from_secs(30));
    for round in 0..10 {
        let key = format!("{{order}}k{round}");
        let list = format!("{{order}}l{round}");
        let mut batch = Vec::new();
        // Enough writes that the node is still busy with them when the WATCH would arrive.
        for i in 0..3000 {
            batch.extend_from_slice(&encode_cmd(&["SET", key.as_str(), &format!("v{i}")]));
        }
        for args in [
            vec!["WATCH", key.as_str()],
            vec!["MULTI"],
            vec!["SET", key.as_str(), "from-tx"],
            vec!["EXEC"],
            vec!["GET", key.as_str()],
            vec!["RPUSH", list.as_str(), "x"],
            vec!["BLPOP", list.as_str(), "1"],
            vec!["RPUSH", list.as_str(), "y"],
            vec!["LRANGE", list.as_str(), "0", "-1"],
        ] {
            batch.extend_from_slice(&encode_cmd(&args));
        }
        raw.send(&batch);
        for i in 0..3000 {
            assert_eq!(
                raw.reply(),
                Resp::Simple("OK".into()),
                "round {round}: SET {i}"
            );
        }
        expect_replies(
            &mut raw,
            round,
            &[("WATCH", "OK"), ("MULTI", "OK"), ("SET in MULTI", "QUEUED")],
        );
        let exec = raw.reply();
        assert_eq!(
            exec,
            Resp::Array(vec![Resp::Simple("OK".into())]),
            "round {round}: EXEC aborted or failed: the WATCH ran before earlier SETs"
        );
        assert_eq!(
            raw.reply(),
            Resp::Bulk(b"from-tx".to_vec()),
            "round {round}: GET after EXEC did not see the transaction's write"
        );
        assert_eq!(raw.reply(), Resp::Int(1), "round {round}: RPUSH x");
        assert_eq!(
            raw.reply(),
            Resp::Array(vec![
                Resp::Bulk(list.clone().into_bytes()),
                Resp::Bulk(b"x".to_vec())
            ]),
            "round {round}: BLPOP after RPUSH"
        );
        assert_eq!(
            raw.reply(),
            Resp::Int(1),
            "round {round}: RPUSH y after BLPOP"
        );
        assert_eq!(
            raw.reply(),
            Resp::Array(vec![Resp::Bulk(b"y".to_vec())]),
            "round {round}: LRANGE after the pop and the second push"
        );
    }
}

/// Two transactions pipelined back to back on the same node: the second (which may get
/// another pinned connection than the first) runs after the first's EXEC, so it sees its
/// writes, and a WATCH between them is not broken by the first EXEC.
#[test]
fn back_to_back_transactions_run_in_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut raw = proxy.raw_timeout(std::time::Duration::from_secs(30));
    for round in 0..5 {
        let key = format!("{{tx2}}k{round}");
        let mut batch = encode_cmd(&["MULTI"]);
        for _ in 0..3000 {
            batch.extend_from_slice(&encode_cmd(&["INCR", key.as_str()]));
        }
        for args in [
            vec!["EXEC"],
            vec!["WATCH", key.as_str()],
            vec!["MULTI"],
            vec!["GET", key.as_str()],
            vec!["EXEC"],
        ] {
            batch.extend_from_slice(&encode_cmd(&args));
        }
        raw.send(&batch);
        assert_eq!(
            raw.reply(),
            Resp::Simple("OK".into()),
            "round {round}: MULTI"
        );
        for i in 0..3000 {
            assert_eq!(
                raw.reply(),
                Resp::Simple("QUEUED".into()),
                "round {round}: INCR {i}"
            );
        }
        match raw.reply() {
            Resp::Array(items) => assert_eq!(items.len(), 3000, "round {round}: first EXEC"),
            other => panic!("round {round}: first EXEC: {other:?}"),
        }
        expect_replies(
            &mut raw,
            round,
            &[("WATCH", "OK"), ("MULTI", "OK"), ("GET in MULTI", "QUEUED")],
        );
        assert_eq!(
            raw.reply(),
            Resp::Array(vec![Resp::Bulk(b"3000".to_vec())]),
            "round {round}: second EXEC aborted, or its GET ran before the first EXEC"
        );
    }
}

/// The next replies are these simple strings, in order.
fn expect_replies(raw: &mut RawClient, round: usize, want: &[(&str, &str)]) {
    for (what, reply) in want {
        assert_eq!(
            raw.reply(),
            Resp::Simple(reply.to_string()),
            "round {round}: {what}"
        );
    }
}

/// RESET inside a transaction ends it, as on Redis: what was queued never runs, the WATCH
/// is gone, and the connection serves ordinary commands again.
#[test]
fn reset_ends_a_transaction() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut raw = proxy.raw();
    raw.set_timeout(std::time::Duration::from_secs(5));
    assert_eq!(raw.cmd(&["SET", "{rs}k", "v1"]), Resp::Simple("OK".into()));
    let mut batch = Vec::new();
    for args in [
        vec!["WATCH", "{rs}k"],
        vec!["MULTI"],
        vec!["SET", "{rs}k", "v2"],
        vec!["RESET"],
        vec!["GET", "{rs}k"],
        vec!["EXEC"],
    ] {
        batch.extend_from_slice(&encode_cmd(&args));
    }
    raw.send(&batch);
    expect_replies(
        &mut raw,
        0,
        &[
            ("WATCH", "OK"),
            ("MULTI", "OK"),
            ("SET in MULTI", "QUEUED"),
            ("RESET", "RESET"),
        ],
    );
    assert_eq!(
        raw.reply().text().as_deref(),
        Some("v1"),
        "the queued SET ran"
    );
    assert!(
        raw.reply()
            .error_text()
            .is_some_and(|e| e.contains("EXEC without MULTI")),
        "EXEC after RESET"
    );
    // A new transaction on the same connection works, and no WATCH is left over.
    let mut batch = Vec::new();
    for args in [vec!["MULTI"], vec!["SET", "{rs}k", "v3"], vec!["EXEC"]] {
        batch.extend_from_slice(&encode_cmd(&args));
    }
    raw.send(&batch);
    expect_replies(&mut raw, 1, &[("MULTI", "OK"), ("SET in MULTI", "QUEUED")]);
    assert_eq!(
        raw.reply(),
        Resp::Array(vec![Resp::Simple("OK".into())]),
        "EXEC after RESET"
    );
}

/// Between WATCH and MULTI nothing is queued, so every command runs as it would outside a
/// transaction (fanned out, split, answered by the proxy), and a write that touches a
/// watched key, on whichever connection of the proxy it runs, makes EXEC abort: the same
/// replies, one by one, as a standalone redis-server given the same commands. Each script
/// runs twice: one command at a time, then pipelined in one write (a fan-out right behind
/// the WATCH must not overtake it).
#[test]
fn watch_then_unqueued_commands_match_a_standalone_server() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let solo = Standalone::start();
    let home = cluster.slot_owner(key_slot(b"{w}x"));
    let elsewhere = *cluster.masters().iter().find(|&&m| m != home).unwrap();
    let other = key_owned_by(&cluster, elsewhere, "w-other");
    let o = other.as_str();
    let x = "{w}x";
    let scripts: Vec<(&str, Vec<Vec<&str>>)> = vec![
        (
            "FLUSHALL touches the watched key: EXEC aborts",
            vec![
                vec!["WATCH", x],
                vec!["FLUSHALL"],
                vec!["MULTI"],
                vec!["PING"],
                vec!["EXEC"],
            ],
        ),
        (
            "DBSIZE touches nothing: EXEC runs",
            vec![
                vec!["WATCH", x],
                vec!["DBSIZE"],
                vec!["MULTI"],
                vec!["SET", x, "1"],
                vec!["EXEC"],
                vec!["GET", x],
            ],
        ),
        (
            "fan-out reads, then UNWATCH",
            vec![
                vec!["WATCH", x],
                vec!["KEYS", "*"],
                vec!["DBSIZE"],
                vec!["MGET", x, o],
                vec!["EXISTS", x, o],
                vec!["UNWATCH"],
                vec!["GET", x],
            ],
        ),
        (
            "a split write over the watched key: EXEC aborts",
            vec![
                vec!["WATCH", x],
                vec!["MSET", x, "2", o, "3"],
                vec!["MULTI"],
                vec!["INCR", x],
                vec!["EXEC"],
                vec!["MGET", x, o],
            ],
        ),
        (
            "a write to another node's key and the proxy's own answers: EXEC runs",
            vec![
                vec!["WATCH", x],
                vec!["SET", o, "7"],
                vec!["DEL", o, "{w}nothing"],
                vec!["CLIENT", "SETNAME", "watcher"],
                vec!["CLIENT", "GETNAME"],
                vec!["ECHO", "hi"],
                vec!["PING"],
                vec!["GET", x],
                vec!["MULTI"],
                vec!["INCR", x],
                vec!["EXEC"],
            ],
        ),
        (
            "the client's own write to the watched key: EXEC aborts",
            vec![
                vec!["WATCH", x],
                vec!["SET", x, "9"],
                vec!["MULTI"],
                vec!["GET", x],
                vec!["EXEC"],
            ],
        ),
    ];
    let mut p = proxy.raw_timeout(std::time::Duration::from_secs(10));
    let mut s = solo.raw();
    for pipelined in [false, true] {
        for (what, script) in &scripts {
            let setup = [vec!["FLUSHALL"], vec!["SET", x, "1"], vec!["SET", o, "5"]];
            for c in &setup {
                assert_eq!(p.cmd(c), s.cmd(c), "{what}: setup {c:?}");
            }
            let (got, want): (Vec<Resp>, Vec<Resp>) = if pipelined {
                let batch: Vec<u8> = script.iter().flat_map(|c| encode_cmd(c)).collect();
                p.send(&batch);
                s.send(&batch);
                script
                    .iter()
                    .map(|c| (normalized(c, p.reply()), normalized(c, s.reply())))
                    .unzip()
            } else {
                script
                    .iter()
                    .map(|c| (normalized(c, p.cmd(c)), normalized(c, s.cmd(c))))
                    .unzip()
            };
            for (i, c) in script.iter().enumerate() {
                assert_eq!(
                    got[i], want[i],
                    "{what} (pipelined: {pipelined}): {c:?}: proxy, standalone"
                );
            }
        }
    }
    // The scripts' landmarks, so that the comparison cannot pass on two wrong answers.
    let last = |c: &mut RawClient, script: &[Vec<&str>]| {
        let mut r = Resp::Null;
        for cmd in script {
            r = c.cmd(cmd);
        }
        r
    };
    p.cmd(&["SET", x, "1"]);
    let aborted = last(&mut p, &scripts[0].1);
    assert!(
        matches!(aborted, Resp::Null | Resp::NullArray | Resp::NullBulk),
        "WATCH / FLUSHALL / MULTI / PING / EXEC: {aborted:?}"
    );
    let ran = last(&mut p, &scripts[1].1[..5]);
    assert_eq!(ran, Resp::Array(vec![Resp::Simple("OK".into())]));

    // Inside MULTI what one node cannot run keeps being refused, and EXEC aborts.
    assert_eq!(p.cmd(&["WATCH", x]), Resp::Simple("OK".into()));
    assert_eq!(p.cmd(&["MULTI"]), Resp::Simple("OK".into()));
    assert!(p.cmd(&["FLUSHALL"]).is_error());
    assert!(p
        .cmd(&["MGET", x, o])
        .error_text()
        .is_some_and(|e| e.starts_with("CROSSSLOT")));
    assert!(p
        .cmd(&["EXEC"])
        .error_text()
        .is_some_and(|e| e.starts_with("EXECABORT")));
}

/// KEYS's order is the server's: compared sorted.
fn normalized(cmd: &[&str], r: Resp) -> Resp {
    match r {
        Resp::Array(mut items) if cmd[0].eq_ignore_ascii_case("KEYS") => {
            items.sort_by_key(|i| i.text());
            Resp::Array(items)
        }
        r => r,
    }
}
