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
