//! Blocking commands on connections of their own: they wait as on one Redis, never hold a
//! shared connection (other clients are not slowed), and a client that leaves while blocked
//! does not leave a blocked connection behind on the node.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn blocking_commands_wait_without_holding_shared_connections() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");

    // BLPOP wakes when another client pushes, after about the time it waited.
    let waiter = {
        let port = proxy.port;
        std::thread::spawn(move || {
            let mut con = redis_conn(port, Duration::from_secs(10)).unwrap();
            let t = Instant::now();
            let got: Option<(String, String)> = redis::cmd("BLPOP")
                .arg("bl:list")
                .arg(5)
                .query(&mut con)
                .unwrap();
            (got, t.elapsed())
        })
    };
    // Until the BLPOP is blocked on its master; the proxy has sent it by then.
    cluster.wait_blocked_on_masters(1, Duration::from_secs(10), "BLPOP bl:list");
    let blocked_at = Instant::now();
    // INFO clients through the proxy counts it, as one Redis would.
    let mut con = proxy.conn();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
    assert_eq!(
        parse_info(&info).get("blocked_clients").map(String::as_str),
        Some("1"),
        "{info}"
    );
    // While it waits, shared traffic to every master is not held up behind it.
    let t = Instant::now();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("bl:k{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shared traffic slowed by a blocked client: {:?}",
        t.elapsed()
    );
    // The one wait left here is for a negative, which cannot be polled: the BLPOP does not
    // answer before the push. The push comes at least 500 ms after the BLPOP was seen
    // blocked, so that `waited` below (>= 400 ms) shows it waited for the push.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(blocked_at.elapsed()));
    let _: i64 = redis::cmd("RPUSH")
        .arg("bl:list")
        .arg("hello")
        .query(&mut con)
        .unwrap();
    let (got, waited) = waiter.join().unwrap();
    assert_eq!(got, Some(("bl:list".to_string(), "hello".to_string())));
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(4),
        "BLPOP waited {waited:?}"
    );

    // A timeout expires as on Redis: a null after about that long.
    let t = Instant::now();
    let none: Option<(String, String)> = redis::cmd("BLPOP")
        .arg("bl:empty")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(none, None);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    // XREAD BLOCK is carried the same way.
    let _: String = redis::cmd("XADD")
        .arg("bl:stream")
        .arg("*")
        .arg("f")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let mut raw = proxy.raw();
    let r = raw.cmd(&["XREAD", "BLOCK", "100", "STREAMS", "bl:stream", "0"]);
    let stream_name = match &r {
        Resp::Array(streams) => streams.first().and_then(|s| match s {
            Resp::Array(pair) => pair.first().and_then(Resp::text),
            _ => None,
        }),
        _ => None,
    };
    assert_eq!(stream_name.as_deref(), Some("bl:stream"), "{r:?}");

    // Keys of a blocking command in several slots: CROSSSLOT, as from a cluster node.
    let r = raw.cmd(&["BLPOP", "bl:a", "bl:b", "bl:c", "1"]);
    assert!(
        r.error_text().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{r:?}"
    );

    // Many blocked clients at once, all on their own connections; all wake.
    let port = proxy.port;
    let waiters: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut con = redis_conn(port, Duration::from_secs(10)).unwrap();
                let got: Option<(String, String)> = redis::cmd("BRPOP")
                    .arg(format!("bl:many{i}"))
                    .arg(5)
                    .query(&mut con)
                    .unwrap();
                got
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.blocked_on_masters() < 20 {
        assert!(
            Instant::now() < deadline,
            "20 clients never blocked on the masters"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..20 {
        let _: i64 = redis::cmd("LPUSH")
            .arg(format!("bl:many{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    for (i, w) in waiters.into_iter().enumerate() {
        assert_eq!(
            w.join().unwrap(),
            Some((format!("bl:many{i}"), i.to_string()))
        );
    }

    // A client that hangs up while blocked leaves no blocked connection on the node; also
    // with requests pipelined behind the BLPOP (they wait for its reply, as on one Redis),
    // even more of them than the proxy reads ahead for a blocked client (256 KB), while
    // the socket buffers hold the rest (past them the hang-up is not seen until the
    // blocking command ends).
    let blpop = b"*3\r\n$5\r\nBLPOP\r\n$10\r\nbl:forever\r\n$1\r\n0\r\n".to_vec();
    let behind = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$4\r\nbl:x\r\n";
    let far_behind = b"*1\r\n$4\r\nPING\r\n".repeat(300 * 1024 / 14);
    for (what, bytes) in [
        ("BLPOP 0", blpop.clone()),
        (
            "BLPOP 0 with a PING and a GET behind it",
            [&blpop[..], behind].concat(),
        ),
        (
            "BLPOP 0 with 300 KB of PINGs behind it",
            [&blpop[..], &far_behind].concat(),
        ),
    ] {
        {
            let mut raw = proxy.raw();
            raw.send(&bytes);
            let deadline = Instant::now() + Duration::from_secs(5);
            while cluster.blocked_on_masters() < 1 {
                assert!(Instant::now() < deadline, "{what}: never reached a master");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while cluster.blocked_on_masters() > 0 {
            assert!(
                Instant::now() < deadline,
                "a departed client's {what} still blocks a master"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_pong(&mut con);
}

/// CLIENT UNBLOCK through the proxy names the proxy's client id (CLIENT ID through the
/// proxy); the proxy unblocks that client's command on its node. The unblocker gets 1, the
/// blocked client what Redis gives (a nil for TIMEOUT, -UNBLOCKED for ERROR), a client that
/// is not blocked 0, bad arguments Redis's errors: each reply compared with a standalone
/// redis-server's for the same steps.
#[test]
fn client_unblock_reaches_the_blocked_command_on_its_node() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let solo = Standalone::start();
    let blocking: Vec<Vec<&str>> = vec![
        vec!["BLPOP", "ub:list", "0"],
        vec!["BRPOP", "ub:list", "0"],
        vec!["BLMOVE", "{ub}a", "{ub}b", "LEFT", "RIGHT", "0"],
        vec!["BZPOPMIN", "ub:zset", "0"],
        vec!["XREAD", "BLOCK", "0", "STREAMS", "ub:stream", "$"],
    ];
    // The same steps on the proxy and on the standalone server; `blocked` waits until the
    // command blocks there.
    let steps = |blocked_client: &mut RawClient,
                 unblocker: &mut RawClient,
                 blocked: &dyn Fn()|
     -> Vec<Resp> {
        let id = match blocked_client.cmd(&["CLIENT", "ID"]) {
            Resp::Int(id) => id.to_string(),
            other => panic!("CLIENT ID: {other:?}"),
        };
        let mut got = Vec::new();
        for cmd in &blocking {
            for reason in ["TIMEOUT", "ERROR"] {
                blocked_client.send_cmd(cmd);
                blocked();
                got.push(unblocker.cmd(&["CLIENT", "UNBLOCK", &id, reason]));
                got.push(blocked_client.reply());
                // Not blocked any more: 0.
                got.push(unblocker.cmd(&["CLIENT", "UNBLOCK", &id, reason]));
            }
        }
        // No reason: TIMEOUT.
        blocked_client.send_cmd(&blocking[0]);
        blocked();
        got.push(unblocker.cmd(&["CLIENT", "UNBLOCK", &id]));
        got.push(blocked_client.reply());
        // Not blocked, unknown ids, bad arguments.
        for args in [
            vec!["CLIENT", "UNBLOCK", id.as_str()],
            vec!["CLIENT", "UNBLOCK", "987654321"],
            vec!["CLIENT", "UNBLOCK", "-1", "error"],
            vec!["CLIENT", "UNBLOCK", "0"],
            vec!["CLIENT", "UNBLOCK", "abc"],
            vec!["CLIENT", "UNBLOCK", "99999999999999999999"],
            vec!["CLIENT", "UNBLOCK", "abc", "soon"],
            vec!["client", "unblock", id.as_str(), "Timeout"],
            vec!["CLIENT", "UNBLOCK", id.as_str(), "nicely"],
            vec!["CLIENT", "UNBLOCK", id.as_str(), "TIMEOUT", "x"],
            vec!["CLIENT", "UNBLOCK"],
        ] {
            got.push(unblocker.cmd(&args));
        }
        // The blocked client's connection serves it normally afterwards.
        got.push(blocked_client.cmd(&["RPUSH", "ub:list", "v"]));
        got.push(blocked_client.cmd(&["BLPOP", "ub:list", "0"]));
        got
    };
    let (mut pa, mut pb) = (proxy.raw(), proxy.raw());
    let through_proxy = steps(&mut pa, &mut pb, &|| {
        cluster.wait_blocked_on_masters(1, Duration::from_secs(10), "a blocking command")
    });
    let (mut sa, mut sb) = (solo.raw(), solo.raw());
    let solo_port = solo.port;
    let on_standalone = steps(&mut sa, &mut sb, &|| {
        let mut c = RawClient::connect(solo_port, Duration::from_secs(5)).unwrap();
        let blocked = poll_until(Duration::from_secs(10), Duration::from_millis(5), || {
            let info = c.cmd(&["INFO", "clients"]).text().unwrap_or_default();
            info.contains("blocked_clients:1").then_some(())
        });
        assert!(blocked.is_some(), "standalone: the command did not block");
    });
    assert_eq!(through_proxy.len(), on_standalone.len());
    for (i, (p, s)) in through_proxy.iter().zip(&on_standalone).enumerate() {
        assert_eq!(p, s, "step {i}: proxy, standalone");
    }
    // Landmarks, so that the comparison cannot pass on two wrong answers.
    assert_eq!(through_proxy[0], Resp::Int(1), "UNBLOCK of a blocked BLPOP");
    assert!(
        matches!(through_proxy[1], Resp::NullArray | Resp::Null),
        "{:?}",
        through_proxy[1]
    );
    assert_eq!(
        through_proxy[2],
        Resp::Int(0),
        "UNBLOCK of a client not blocked"
    );
    assert_eq!(
        through_proxy[4].error_text().as_deref(),
        Some("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
}

/// CLIENT UNBLOCK right behind the blocking commands, on new node connections whose node
/// ids are still being asked: each answer agrees with what the blocked client sees (1: it
/// got its nil; 0: it is still blocked, and a later UNBLOCK gets it out).
#[test]
fn client_unblock_right_after_the_blocking_command_is_consistent() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut unblocker = proxy.raw();
    let mut clients: Vec<(RawClient, String)> = (0..12)
        .map(|_| {
            let mut c = proxy.raw();
            let id = match c.cmd(&["CLIENT", "ID"]) {
                Resp::Int(id) => id.to_string(),
                other => panic!("CLIENT ID: {other:?}"),
            };
            (c, id)
        })
        .collect();
    for (i, (c, _)) in clients.iter_mut().enumerate() {
        c.send_cmd(&["BLPOP", &format!("ubr:{i}"), "0"]);
    }
    let mut batch = Vec::new();
    for (_, id) in &clients {
        batch.extend_from_slice(&encode_cmd(&["CLIENT", "UNBLOCK", id.as_str()]));
    }
    unblocker.send(&batch);
    let mut still = Vec::new();
    for (i, (c, _)) in clients.iter_mut().enumerate() {
        match unblocker.reply() {
            Resp::Int(1) => assert_eq!(c.reply(), Resp::NullArray, "client {i}"),
            Resp::Int(0) => still.push(i),
            other => panic!("CLIENT UNBLOCK: {other:?}"),
        }
    }
    cluster.wait_blocked_on_masters(
        still.len() as u64,
        Duration::from_secs(10),
        "the BLPOPs not unblocked",
    );
    for i in still {
        let (c, id) = &mut clients[i];
        assert_eq!(
            unblocker.cmd(&["CLIENT", "UNBLOCK", id.as_str()]),
            Resp::Int(1),
            "client {i}"
        );
        assert_eq!(c.reply(), Resp::NullArray, "client {i}");
    }
}
