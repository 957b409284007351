//! Pub/sub through the proxy: a subscriber gets a connection of its own; messages published
//! by any client (through the proxy or straight to any node) reach it, for RESP2 and RESP3;
//! unsubscribing everything returns the connection to normal commands; a subscriber's
//! replies keep their order when the proxy answers some itself.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn next_message(raw: &mut RawClient, deadline: Duration) -> Resp {
    raw.set_timeout(deadline);
    raw.reply()
}

fn items(r: &Resp) -> Vec<Resp> {
    match r {
        Resp::Array(v) | Resp::Push(v) => v.clone(),
        other => panic!("not a pub/sub frame: {other:?}"),
    }
}

#[test]
fn subscribers_get_messages_from_anywhere_in_the_cluster() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let mut pubc = proxy.conn();

    for resp3 in [false, true] {
        let mut sub = proxy.raw();
        if resp3 {
            assert!(matches!(sub.cmd(&["HELLO", "3"]), Resp::Map(_)));
        }
        sub.send_cmd(&["SUBSCRIBE", "news", "sport"]);
        for ch in ["news", "sport"] {
            let r = items(&next_message(&mut sub, Duration::from_secs(5)));
            assert_eq!(r[0].text().as_deref(), Some("subscribe"));
            assert_eq!(r[1].text().as_deref(), Some(ch));
        }
        sub.send_cmd(&["PSUBSCRIBE", "n*"]);
        let r = items(&next_message(&mut sub, Duration::from_secs(5)));
        assert_eq!(r[0].text().as_deref(), Some("psubscribe"));

        // Published through the proxy: the count includes this subscriber (both of its
        // subscriptions match).
        let n: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("hello")
            .query(&mut pubc)
            .unwrap();
        assert_eq!(
            n, 2,
            "PUBLISH through the proxy counts the proxy's subscribers"
        );
        let mut got = Vec::new();
        for _ in 0..2 {
            let r = items(&next_message(&mut sub, Duration::from_secs(5)));
            got.push(r[0].text().unwrap());
            assert_eq!(r.last().unwrap().text().as_deref(), Some("hello"));
        }
        got.sort();
        assert_eq!(got, vec!["message", "pmessage"]);

        // Published straight to every master: the cluster forwards each to the subscriber.
        for (i, &m) in cluster.masters().iter().enumerate() {
            let _: i64 = cluster.query(m, &["PUBLISH", "sport", &format!("direct{i}")]);
            let r = items(&next_message(&mut sub, Duration::from_secs(5)));
            assert_eq!(r[0].text().as_deref(), Some("message"));
            assert_eq!(r[2].text().unwrap(), format!("direct{i}"));
        }

        // Leaving every subscription returns the connection to normal commands.
        sub.send_cmd(&["UNSUBSCRIBE"]);
        for _ in 0..2 {
            let r = items(&next_message(&mut sub, Duration::from_secs(5)));
            assert_eq!(r[0].text().as_deref(), Some("unsubscribe"));
        }
        sub.send_cmd(&["PUNSUBSCRIBE"]);
        let r = items(&next_message(&mut sub, Duration::from_secs(5)));
        assert_eq!(r[0].text().as_deref(), Some("punsubscribe"));
        assert_eq!(r[2], Resp::Int(0));
        let t = Instant::now();
        loop {
            let r = sub.cmd(&["SET", "ps:after", "ok"]);
            if r == Resp::Simple("OK".into()) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "still subscribed: {r:?}"
            );
        }
        assert_eq!(sub.cmd(&["GET", "ps:after"]).text().as_deref(), Some("ok"));
    }

    // Shard channels go to their slot's master; messages arrive.
    let mut sub = proxy.raw();
    sub.send_cmd(&["SSUBSCRIBE", "{shard}ch"]);
    let r = items(&next_message(&mut sub, Duration::from_secs(5)));
    assert_eq!(r[0].text().as_deref(), Some("ssubscribe"));
    let _: i64 = redis::cmd("SPUBLISH")
        .arg("{shard}ch")
        .arg("s1")
        .query(&mut pubc)
        .unwrap();
    let r = items(&next_message(&mut sub, Duration::from_secs(5)));
    assert_eq!(r[0].text().as_deref(), Some("smessage"));
    assert_eq!(r[2].text().as_deref(), Some("s1"));
    assert_pong(&mut pubc);
}

/// A subscriber's replies stay in the order of its commands when the proxy answers some
/// itself (a command not allowed while subscribed, shard channel subscriptions) while others
/// are on their way from the node; shard channels of every shard live on one connection,
/// with Redis's counts, and their messages arrive.
#[test]
fn subscriber_replies_keep_their_order_and_shard_channels_span_shards() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let masters = cluster.masters();
    let here = key_owned_by(&cluster, masters[0], "sh:a");
    let here2 = format!("{{{here}}}:2");
    let there = key_owned_by(&cluster, masters[1], "sh:b");
    let third = key_owned_by(&cluster, masters[2], "sh:c");
    let text = |r: &Resp| format!("{r:?}");

    let mut sub = proxy.raw();
    sub.set_timeout(Duration::from_secs(5));
    let mut pipeline = Vec::new();
    for c in [
        vec!["SSUBSCRIBE", here.as_str()],
        vec!["SSUBSCRIBE", there.as_str(), third.as_str()],
        vec!["GET", "k"],
        vec!["SSUBSCRIBE", here2.as_str()],
        vec!["SUNSUBSCRIBE", there.as_str()],
        vec!["PING"],
    ] {
        pipeline.extend_from_slice(&encode_cmd(&c));
    }
    sub.send(&pipeline);
    let mut expect_sub = |kind: &str, ch: &str, n: i64| {
        let r = items(&sub.reply());
        assert_eq!(r[0].text().as_deref(), Some(kind), "{r:?}");
        assert_eq!(r[1].text().as_deref(), Some(ch), "{r:?}");
        assert_eq!(r[2], Resp::Int(n), "{r:?}");
    };
    expect_sub("ssubscribe", &here, 1);
    expect_sub("ssubscribe", &there, 2);
    expect_sub("ssubscribe", &third, 3);
    let r = sub.reply();
    assert!(
        r.error_text()
            .is_some_and(|e| e.contains("Can't execute 'get'")),
        "GET while subscribed: {}",
        text(&r)
    );
    let mut expect_sub = |kind: &str, ch: &str, n: i64| {
        let r = items(&sub.reply());
        assert_eq!(r[0].text().as_deref(), Some(kind), "{r:?}");
        assert_eq!(r[1].text().as_deref(), Some(ch), "{r:?}");
        assert_eq!(r[2], Resp::Int(n), "{r:?}");
    };
    expect_sub("ssubscribe", &here2, 4);
    expect_sub("sunsubscribe", &there, 3);
    let r = items(&sub.reply());
    assert_eq!(r[0].text().as_deref(), Some("pong"), "{r:?}");

    // Messages of every shard the client is subscribed to reach it, each once; the channel
    // it left is quiet.
    let mut pubc = proxy.raw();
    for ch in [&here, &third, &there, &here2] {
        let published = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || match pubc.cmd(&["SPUBLISH", ch, &format!("to {ch}")]) {
                Resp::Int(n) if n >= 1 => Some(()),
                _ if ch == &there => Some(()),
                _ => None,
            },
        );
        assert!(published.is_some(), "no subscriber counted on {ch}");
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let r = items(&sub.reply());
        assert_eq!(r[0].text().as_deref(), Some("smessage"), "{r:?}");
        got.push(r[1].text().unwrap());
    }
    let mut want = vec![here.clone(), third.clone(), here2.clone()];
    want.sort();
    got.sort();
    assert_eq!(got, want);

    // Unsubscribing from everything ends subscribed mode; nothing of the proxy's own leaks.
    sub.send_cmd(&["SUNSUBSCRIBE"]);
    let counts: Vec<Resp> = (0..3).map(|_| items(&sub.reply())[2].clone()).collect();
    assert_eq!(counts, [Resp::Int(2), Resp::Int(1), Resp::Int(0)]);
    assert_eq!(sub.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(sub.cmd(&["ECHO", "after"]).text().as_deref(), Some("after"));

    // A refusal still waiting for its turn when the last unsubscription ends subscribed
    // mode comes right after that unsubscription, and the proxy's marker never leaks. A
    // command pipelined right behind that unsubscription runs as on Redis: subscribed mode
    // is over by then.
    assert_eq!(sub.cmd(&["SET", "ord:k", "v1"]), Resp::Simple("OK".into()));
    let mut pipeline = Vec::new();
    for c in [
        vec!["SUBSCRIBE", "ord:ch"],
        vec!["GET", "ord:k"],
        vec!["UNSUBSCRIBE"],
        vec!["GET", "ord:k"],
        vec!["SUBSCRIBE", "ord:a", "ord:b"],
        vec!["UNSUBSCRIBE", "ord:a"],
        vec!["GET", "ord:k"],
        vec!["UNSUBSCRIBE", "ord:b"],
        vec!["GET", "ord:k"],
    ] {
        pipeline.extend_from_slice(&encode_cmd(&c));
    }
    sub.send(&pipeline);
    assert_eq!(items(&sub.reply())[0].text().as_deref(), Some("subscribe"));
    let refused = |r: Resp| {
        assert!(
            r.error_text()
                .is_some_and(|e| e.contains("Can't execute 'get'")),
            "GET while subscribed: {}",
            text(&r)
        )
    };
    refused(sub.reply());
    let r = items(&sub.reply());
    assert_eq!(
        (r[0].text().as_deref(), &r[2]),
        (Some("unsubscribe"), &Resp::Int(0))
    );
    assert_eq!(
        sub.reply().text().as_deref(),
        Some("v1"),
        "GET right after the last UNSUBSCRIBE"
    );
    let counts: Vec<Resp> = (0..3).map(|_| items(&sub.reply())[2].clone()).collect();
    assert_eq!(counts, [Resp::Int(1), Resp::Int(2), Resp::Int(1)]);
    // Still subscribed to ord:b: refused.
    refused(sub.reply());
    let r = items(&sub.reply());
    assert_eq!(
        (r[1].text().as_deref(), &r[2]),
        (Some("ord:b"), &Resp::Int(0))
    );
    assert_eq!(sub.reply().text().as_deref(), Some("v1"));
    assert_eq!(sub.cmd(&["ECHO", "clean"]).text().as_deref(), Some("clean"));

    // QUIT while a refusal waits: the refusal, then QUIT's OK.
    sub.send_cmd(&["SUBSCRIBE", "ord:ch"]);
    let _ = sub.reply();
    let mut pipeline = encode_cmd(&["GET", "k"]);
    pipeline.extend_from_slice(&encode_cmd(&["QUIT"]));
    sub.send(&pipeline);
    let r = sub.reply();
    assert!(
        r.error_text().is_some_and(|e| e.contains("Can't execute")),
        "{}",
        text(&r)
    );
    assert_eq!(sub.reply(), Resp::Simple("OK".into()));
}

/// QUIT and RESET pipelined behind a subscription wait for its replies (a real server
/// answers in order: the subscription first), and a RESP3 subscriber's other commands
/// answer after what it sent on the stream before them.
#[test]
fn leaving_subscribed_mode_and_resp3_commands_keep_the_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, "");
    let pipeline = |cmds: &[&[&str]]| {
        let mut out = Vec::new();
        for c in cmds {
            out.extend_from_slice(&encode_cmd(c));
        }
        out
    };
    let mut raw = proxy.raw();
    raw.set_timeout(Duration::from_secs(5));
    assert_eq!(raw.cmd(&["SET", "lv:k", "v1"]), Resp::Simple("OK".into()));

    // RESET: the subscription and the PING are answered, then RESET, then the GET runs as
    // on a fresh connection.
    raw.send(&pipeline(&[
        &["SUBSCRIBE", "lv:ch"],
        &["PING"],
        &["RESET"],
        &["GET", "lv:k"],
    ]));
    let r = items(&raw.reply());
    assert_eq!(
        (r[0].text().as_deref(), &r[2]),
        (Some("subscribe"), &Resp::Int(1))
    );
    assert_eq!(items(&raw.reply())[0].text().as_deref(), Some("pong"));
    assert_eq!(raw.reply(), Resp::Simple("RESET".into()));
    assert_eq!(raw.reply().text().as_deref(), Some("v1"));

    // QUIT: the subscription's reply, then +OK, then the connection closes.
    for resp3 in [false, true] {
        let mut raw = proxy.raw();
        raw.set_timeout(Duration::from_secs(5));
        if resp3 {
            assert!(matches!(raw.cmd(&["HELLO", "3"]), Resp::Map(_)));
        }
        raw.send(&pipeline(&[&["SUBSCRIBE", "lv:ch"], &["QUIT"]]));
        let r = items(&raw.reply());
        assert_eq!(r[0].text().as_deref(), Some("subscribe"), "resp3: {resp3}");
        assert_eq!(raw.reply(), Resp::Simple("OK".into()), "resp3: {resp3}");
        raw.wait_eof().unwrap();
    }

    // RESP3: commands of any kind while subscribed, answered in the order they were sent.
    let mut raw = proxy.raw();
    raw.set_timeout(Duration::from_secs(5));
    assert!(matches!(raw.cmd(&["HELLO", "3"]), Resp::Map(_)));
    raw.send(&pipeline(&[
        &["SUBSCRIBE", "lv:ch"],
        &["ECHO", "e"],
        &["GET", "lv:k"],
        &["UNSUBSCRIBE"],
        &["GET", "lv:k"],
    ]));
    let r = raw.reply();
    assert!(matches!(r, Resp::Push(_)), "the subscription first: {r:?}");
    assert_eq!(raw.reply().text().as_deref(), Some("e"));
    assert_eq!(raw.reply().text().as_deref(), Some("v1"));
    let r = items(&raw.reply());
    assert_eq!(
        (r[0].text().as_deref(), &r[2]),
        (Some("unsubscribe"), &Resp::Int(0))
    );
    assert_eq!(raw.reply().text().as_deref(), Some("v1"));

    // Switching to RESP2 while subscribed is refused clearly (the node would go on pushing
    // RESP3 messages); once unsubscribed it works.
    raw.send(&pipeline(&[&["SUBSCRIBE", "lv:ch"], &["HELLO", "2"]]));
    assert!(matches!(raw.reply(), Resp::Push(_)));
    let r = raw.reply();
    assert!(
        r.error_text()
            .is_some_and(|e| e.contains("while subscribed")),
        "{r:?}"
    );
    raw.send(&pipeline(&[&["UNSUBSCRIBE"], &["HELLO", "2"]]));
    assert!(matches!(raw.reply(), Resp::Push(_)));
    assert!(
        matches!(raw.reply(), Resp::Array(_)),
        "HELLO 2 after unsubscribing"
    );
}
