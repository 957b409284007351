//! Wire protocol through the proxy, judged with the harness's own RESP reader: malformed
//! input, inline commands, commands the proxy answers itself, RESP3 next to RESP2.

mod common;

use common::*;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn malformed_input_gets_protocol_error_then_eof_while_others_keep_working() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut good = proxy.conn();
    let _: () = redis::cmd("SET")
        .arg("good:key")
        .arg("fine")
        .query(&mut good)
        .or_log(&proxy, "SET");

    let cases: Vec<(&str, &[u8], Option<Resp>)> = vec![
        ("non-numeric multibulk length", b"*abc\r\n", None),
        (
            "negative bulk length inside an array",
            b"*2\r\n$3\r\nGET\r\n$-5\r\n",
            None,
        ),
        ("multibulk length over 2^31", b"*2147483648\r\n", None),
        ("bulk length of 4 GiB", b"*1\r\n$4294967296\r\n", None),
        ("non-numeric bulk length", b"*1\r\n$x\r\n", None),
        (
            "valid command, then garbage",
            b"PING\r\n*abc\r\n",
            Some(Resp::Simple("PONG".into())),
        ),
    ];
    for (what, bytes, first) in cases {
        let mut c = proxy.raw_timeout(Duration::from_secs(5));
        c.label = format!("{what} ({:?})", String::from_utf8_lossy(bytes));
        c.send(bytes);
        if let Some(want) = first {
            assert_eq!(c.reply(), want, "{what}: reply before the garbage");
        }
        let r = c.reply();
        match r.error_text() {
            Some(e) if e.starts_with("ERR Protocol error") => {}
            _ => proxy.fail(&format!("{what}: want -ERR Protocol error..., got {r:?}")),
        }
        if let Err(e) = c.wait_eof() {
            proxy.fail(&format!(
                "{what}: connection not closed after the protocol error: {e}"
            ));
        }
        // An unrelated client is unaffected.
        let v: String = redis::cmd("GET").arg("good:key").query(&mut good).or_log(
            &proxy,
            &format!("GET on the healthy connection after {what}"),
        );
        assert_eq!(v, "fine");
    }
    let mut fresh = proxy.raw();
    assert_eq!(
        fresh.cmd(&["GET", "good:key"]),
        Resp::Bulk(b"fine".to_vec())
    );
}

#[test]
fn inline_commands_and_empty_values() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut c = proxy.raw();

    c.send(b"PING\r\n");
    assert_eq!(c.reply(), Resp::Simple("PONG".into()), "inline PING");
    c.send(b"SET inline:k v\r\n");
    assert_eq!(c.reply(), Resp::Simple("OK".into()), "inline SET");
    c.send(b"GET inline:k\r\n");
    assert_eq!(c.reply(), Resp::Bulk(b"v".to_vec()), "inline GET");
    // Several inline commands in one write, answered in order.
    c.send(b"SET inline:a 1\r\nINCR inline:a\r\nGET inline:a\r\n");
    assert_eq!(c.reply(), Resp::Simple("OK".into()));
    assert_eq!(c.reply(), Resp::Int(2));
    assert_eq!(c.reply(), Resp::Bulk(b"2".to_vec()));

    // Empty bulk string values ($0) are values like any other.
    c.send(b"*3\r\n$3\r\nSET\r\n$11\r\ninline:empt\r\n$0\r\n\r\n");
    assert_eq!(c.reply(), Resp::Simple("OK".into()), "SET with $0 value");
    assert_eq!(
        c.cmd(&["GET", "inline:empt"]),
        Resp::Bulk(Vec::new()),
        "GET of the empty value"
    );
    assert_eq!(c.cmd(&["STRLEN", "inline:empt"]), Resp::Int(0));
    assert_eq!(c.cmd(&["EXISTS", "inline:empt"]), Resp::Int(1));
    let owner = cluster.slot_owner(key_slot(b"inline:empt"));
    let v: Option<String> = cluster.query(owner, &["GET", "inline:empt"]);
    assert_eq!(v.as_deref(), Some(""), "empty value stored on the owner");

    // A command split across several writes is reassembled.
    for part in [&b"*2\r\n$3\r\nG"[..], b"ET\r\n$8\r\ninli", b"ne:k\r\n"] {
        c.send(part);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(
        c.reply(),
        Resp::Bulk(b"v".to_vec()),
        "command split over three writes"
    );
}

#[test]
fn commands_answered_by_the_proxy() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut c = proxy.raw();

    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(c.cmd(&["PING", "hi"]), Resp::Bulk(b"hi".to_vec()));
    assert_eq!(
        c.cmd(&["ECHO", "hello world"]),
        Resp::Bulk(b"hello world".to_vec())
    );
    assert_eq!(c.cmd(&["SELECT", "0"]), Resp::Simple("OK".into()));
    assert!(c
        .cmd(&["SELECT", "1"])
        .error_text()
        .map(|e| e.starts_with("ERR"))
        .unwrap_or(false));
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME", "tester"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "GETNAME"]),
        Resp::Bulk(b"tester".to_vec())
    );
    assert!(matches!(c.cmd(&["CLIENT", "ID"]), Resp::Int(_)));
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "rcp-tests"]),
        Resp::Simple("OK".into())
    );

    // HELLO 3 switches this connection to RESP3 (a map), HELLO 2 back (a flat array).
    let h3 = c.cmd(&["HELLO", "3"]);
    assert_eq!(h3.type_char(), '%', "HELLO 3 reply: {h3:?}");
    assert_eq!(h3.lookup("proto"), Some(&Resp::Int(3)), "{h3:?}");
    assert_eq!(
        c.cmd(&["GET", "proto:missing"]),
        Resp::Null,
        "RESP3 null for a missing key"
    );
    let h2 = c.cmd(&["HELLO", "2"]);
    assert_eq!(h2.type_char(), '*', "HELLO 2 reply: {h2:?}");
    assert_eq!(h2.lookup("proto"), Some(&Resp::Int(2)), "{h2:?}");
    assert_eq!(
        c.cmd(&["GET", "proto:missing"]),
        Resp::NullBulk,
        "RESP2 null bulk"
    );
    assert!(c.cmd(&["HELLO", "4"]).is_error(), "HELLO 4 must be refused");

    // QUIT: +OK, then the proxy closes the connection.
    assert_eq!(c.cmd(&["QUIT"]), Resp::Simple("OK".into()));
    c.wait_eof()
        .unwrap_or_else(|e| proxy.fail(&format!("after QUIT: {e}")));
}

fn hash_pipeline(resp3: bool, rounds: usize) -> (Vec<u8>, usize) {
    let mut b = Vec::new();
    let mut n = 0;
    for i in 0..rounds {
        let k = format!("h:{}", i % 10);
        b.extend(encode_cmd(&["HSET", &k, "f1", "v1", "f2", "v2"]));
        b.extend(encode_cmd(&["HGETALL", &k]));
        b.extend(encode_cmd(&[
            "GET",
            &format!("nokey:{}:{i}", if resp3 { 3 } else { 2 }),
        ]));
        n += 3;
    }
    (b, n)
}

fn sorted_pairs(r: &Resp) -> Option<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = match r {
        Resp::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Some((k.text()?, v.text()?)))
            .collect::<Option<_>>()?,
        Resp::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|c| Some((c[0].text()?, c[1].text()?)))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    v.sort();
    Some(v)
}

/// One client on RESP3 and one on RESP2 pipeline hash commands against the same keys at the
/// same time; each must get replies in its own protocol.
#[test]
fn resp3_and_resp2_clients_pipelining_at_the_same_time() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let port = proxy.port;
    let log = proxy.log.clone();
    let barrier = Arc::new(Barrier::new(2));
    let run = move |resp3: bool, barrier: Arc<Barrier>| -> Result<usize, String> {
        let name = if resp3 {
            "RESP3 client"
        } else {
            "RESP2 client"
        };
        let mut c = RawClient::connect(port, Duration::from_secs(20))
            .map_err(|e| format!("{name}: {e}"))?;
        c.log = Some(log.clone());
        c.label = name.into();
        if resp3 {
            let h = c.cmd(&["HELLO", "3"]);
            if h.type_char() != '%' || h.lookup("proto") != Some(&Resp::Int(3)) {
                return Err(format!("{name}: HELLO 3 answered {h:?}"));
            }
        }
        barrier.wait();
        let want_pairs = vec![
            ("f1".to_string(), "v1".to_string()),
            ("f2".to_string(), "v2".to_string()),
        ];
        let mut checked = 0;
        for round in 0..5 {
            let (bytes, n) = hash_pipeline(resp3, 200);
            c.send(&bytes);
            for i in 0..n {
                let r = c.reply();
                let ok = match i % 3 {
                    0 => matches!(r, Resp::Int(0..=2)),
                    1 => {
                        let shape = if resp3 {
                            r.type_char() == '%'
                        } else {
                            r.type_char() == '*'
                        };
                        shape && sorted_pairs(&r).as_ref() == Some(&want_pairs)
                    }
                    _ => r == if resp3 { Resp::Null } else { Resp::NullBulk },
                };
                if !ok {
                    return Err(format!(
                        "{name}: round {round} reply #{i} unexpected: {r:?}"
                    ));
                }
                checked += 1;
            }
        }
        Ok(checked)
    };
    let (r3, b3) = (run.clone(), barrier.clone());
    let t3 = std::thread::spawn(move || r3(true, b3));
    let t2 = std::thread::spawn(move || run(false, barrier));
    let res3 = t3
        .join()
        .unwrap_or_else(|_| Err("RESP3 thread panicked".into()));
    let res2 = t2
        .join()
        .unwrap_or_else(|_| Err("RESP2 thread panicked".into()));
    match (&res3, &res2) {
        (Ok(a), Ok(b)) => {
            assert_eq!(*a, 3000);
            assert_eq!(*b, 3000);
        }
        _ => proxy.fail(&format!("RESP3: {res3:?}\nRESP2: {res2:?}")),
    }

    // redis-rs (RESP2 by default) sees a flat array too.
    let mut con = proxy.conn();
    let v: redis::Value = redis::cmd("HGETALL").arg("h:1").query(&mut con).unwrap();
    assert!(
        matches!(&v, redis::Value::Array(a) if a.len() == 4),
        "{v:?}"
    );
}

/// Values around and far above the size the proxy forwards without copying, pipelined in
/// one write next to small ones, over every master: replies come back whole and in order.
#[test]
fn large_and_small_values_pipelined_across_nodes_keep_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut c = proxy.raw_timeout(Duration::from_secs(30));
    let sizes = [
        0usize,
        5,
        8 * 1024 - 1,
        8 * 1024,
        8 * 1024 + 1,
        100_000,
        1 << 20,
    ];
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut sets = Vec::new();
    for i in 0..28 {
        let key = format!("big:{i}");
        let size = sizes[i % sizes.len()];
        let value: Vec<u8> = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        sets.extend_from_slice(&encode_cmd(&[b"SET".as_slice(), key.as_bytes(), &value]));
        keys.push(key);
        values.push(value);
    }
    let owners: std::collections::BTreeSet<u16> = keys
        .iter()
        .map(|k| cluster.slot_owner(key_slot(k.as_bytes())))
        .collect();
    assert_eq!(
        owners.len(),
        cluster.masters().len(),
        "keys on every master"
    );
    c.send(&sets);
    for k in &keys {
        assert_eq!(c.reply(), Resp::Simple("OK".into()), "SET {k}");
    }
    // GETs and a cross-slot MGET, interleaved with small commands, in one write.
    let mut gets = Vec::new();
    for k in &keys {
        gets.extend_from_slice(&encode_cmd(&["GET", k.as_str()]));
        gets.extend_from_slice(&encode_cmd(&["PING"]));
    }
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    gets.extend_from_slice(&encode_cmd(&mget));
    c.send(&gets);
    for (k, v) in keys.iter().zip(&values) {
        let r = c.reply();
        assert!(
            r == Resp::Bulk(v.clone()),
            "GET {k}: wrong value ({} bytes wanted)",
            v.len()
        );
        assert_eq!(c.reply(), Resp::Simple("PONG".into()), "PING after GET {k}");
    }
    let want = Resp::Array(values.iter().map(|v| Resp::Bulk(v.clone())).collect());
    assert!(
        c.reply() == want,
        "MGET of every key: values or order differ"
    );
}
