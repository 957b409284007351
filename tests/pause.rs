//! CLIENT PAUSE / UNPAUSE done by the proxy (issue 18): the masters are not paused; reads
//! go on during a WRITE pause while writes wait and then run in their clients' order; ALL
//! holds everything; UNPAUSE releases at once, on every worker; errors in Redis's words.

mod common;

use common::*;
use std::time::Duration;

/// Nothing arrives on `c` within a moment (its command is held).
fn quiet(c: &mut RawClient) -> bool {
    c.set_timeout(Duration::from_millis(300));
    let r = c.read_reply();
    c.set_timeout(Duration::from_secs(10));
    r.is_err()
}

fn check(workers: usize) {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, &format!("workers: {workers}\n"));
    let ok = Resp::Simple("OK".into());
    let mut admin = proxy.raw();
    let mut reader = proxy.raw();
    let mut writer = proxy.raw();
    assert_eq!(writer.cmd(&["SET", "p:k", "before"]), ok);

    // WRITE: a write waits, with what its client sent behind it; reads of other clients go
    // on; the masters themselves are not paused.
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]), ok);
    let mut pipeline = encode_cmd(&["SET", "p:k", "during"]);
    pipeline.extend_from_slice(&encode_cmd(&["GET", "p:k"]));
    writer.send(&pipeline);
    assert_eq!(
        reader.cmd(&["GET", "p:k"]).text().as_deref(),
        Some("before"),
        "a read during a WRITE pause"
    );
    assert!(quiet(&mut writer), "the write was not held");
    for m in cluster.masters() {
        let k = key_owned_by(&cluster, m, "p:direct");
        let r: String = cluster.query(m, &["SET", &k, "x"]);
        assert_eq!(r, "OK", "master {m} was paused");
    }
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), ok);
    assert_eq!(writer.reply(), ok, "the held write after UNPAUSE");
    assert_eq!(writer.reply().text().as_deref(), Some("during"));

    // ALL: reads wait too; the pause's end releases them without an UNPAUSE.
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "700", "ALL"]), ok);
    reader.send_cmd(&["GET", "p:k"]);
    assert!(quiet(&mut reader), "a read was not held by ALL");
    assert_eq!(reader.reply().text().as_deref(), Some("during"));

    // Several clients held: each runs once the pause ends (UNPAUSE from another client).
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]), ok);
    let mut held: Vec<RawClient> = (0..6).map(|_| proxy.raw()).collect();
    for (i, c) in held.iter_mut().enumerate() {
        c.send_cmd(&["INCR", &format!("p:n{i}")]);
    }
    assert!(quiet(&mut held[0]));
    let mut other = proxy.raw();
    assert_eq!(other.cmd(&["CLIENT", "UNPAUSE"]), ok);
    for c in held.iter_mut() {
        assert_eq!(c.reply(), Resp::Int(1));
    }

    // Errors, as Redis words them.
    for (args, want) in [
        (
            vec!["CLIENT", "PAUSE", "abc"],
            "ERR timeout is not an integer or out of range",
        ),
        (vec!["CLIENT", "PAUSE", "-1"], "ERR timeout is negative"),
        (
            vec!["CLIENT", "PAUSE", "10", "foo"],
            "ERR CLIENT PAUSE mode must be WRITE or ALL",
        ),
        (
            vec!["client", "pause", "10", "write", "extra"],
            "ERR unknown subcommand or wrong number of arguments for 'pause'. Try CLIENT HELP.",
        ),
    ] {
        let r = admin.cmd(&args);
        assert_eq!(r.error_text().as_deref(), Some(want), "{args:?}");
    }
    // None of those paused anything.
    assert_eq!(writer.cmd(&["SET", "p:k", "after"]), ok);
}

#[test]
fn client_pause_holds_the_proxys_clients_not_the_masters() {
    check(1);
}

/// A pause asked on one worker holds the clients of the other, and an UNPAUSE on either
/// releases both.
#[test]
fn client_pause_holds_every_workers_clients() {
    check(2);
}
