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
