//! A master dies under a proxy with `failover_wait: 0`: its slots fail fast with an error
//! naming the node, other slots keep working, and once the cluster promotes the replica the
//! proxy serves the slots again without a restart. (With the default wait, requests wait
//! for the promotion instead: tests/resilience.rs.)

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn killed_master_errors_fast_then_proxy_follows_the_promoted_replica() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        node_timeout_ms: 1000,
        ..Default::default()
    });
    let masters = cluster.masters();
    let victim = masters[1];
    let replica = cluster.replica_of(victim);
    let mut proxy = Proxy::start(&cluster, "failover_wait: 0\n");

    // Keys on the victim, written directly and confirmed replicated before the kill.
    let vslot = cluster.first_slot_of(victim) + 7;
    let vkeys = keys_in_slot(vslot, "fo", 5);
    {
        let mut con = cluster.conn(victim);
        for (i, k) in vkeys.iter().enumerate() {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg(format!("v{i}"))
                .query(&mut con)
                .unwrap();
        }
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
        assert!(acked >= 1, "writes not acknowledged by the replica");
    }
    // Keys on the other masters, written through the proxy.
    let others: Vec<String> = [masters[0], masters[2]]
        .iter()
        .map(|&m| key_owned_by(&cluster, m, &format!("alive{m}:")))
        .collect();
    let mut con = proxy.conn_timeout(Duration::from_secs(5));
    for k in &others {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg("alive")
            .query(&mut con)
            .or_log(&proxy, "SET");
    }
    let v: String = redis::cmd("GET")
        .arg(&vkeys[0])
        .query(&mut con)
        .or_log(&proxy, "GET before the kill");
    assert_eq!(v, "v0");

    cluster.kill(victim);
    let t_kill = Instant::now();

    // The dead master's slot: an error naming the node, within the read timeout, not a hang.
    let mut raw = proxy.raw_timeout(Duration::from_secs(5));
    raw.label = "client of the dead master's slot".into();
    let t0 = Instant::now();
    let r = raw.cmd(&["GET", &vkeys[1]]);
    let took = t0.elapsed();
    eprintln!("GET on the dead master's slot answered {r:?} in {took:?}");
    // Failover cannot have happened yet (node timeout 1 s), so this must be an error.
    match r.error_text() {
        Some(e)
            if e.contains(&format!("127.0.0.1:{victim}")) || e.contains(&victim.to_string()) => {}
        Some(e) => proxy.fail(&format!(
            "error for the dead master's slot must name 127.0.0.1:{victim}: {e}"
        )),
        None => proxy.fail(&format!(
            "expected an error for the dead master's slot, got {r:?}"
        )),
    }
    assert!(took < Duration::from_secs(4), "error took {took:?}");

    // Other slots keep working during the outage.
    for k in &others {
        let v: String = redis::cmd("GET")
            .arg(k)
            .query(&mut con)
            .or_log(&proxy, "GET on a live master during the outage");
        assert_eq!(v, "alive");
    }
    // The client connection that got the error is still usable.
    assert_eq!(raw.cmd(&["GET", &others[0]]), Resp::Bulk(b"alive".to_vec()));

    // The cluster promotes the replica (watched directly).
    let t_promoted = cluster.wait_promoted(replica, Duration::from_secs(30));
    eprintln!(
        "replica {replica} promoted {:?} after the kill",
        t_promoted - t_kill
    );

    // The proxy serves the slot again, without a restart, within a few seconds.
    let mut last = String::new();
    let served = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let mut c = match redis_conn(proxy.port, Duration::from_secs(3)) {
            Ok(c) => c,
            Err(e) => {
                last = format!("connect: {e}");
                return None;
            }
        };
        match redis::cmd("GET")
            .arg(&vkeys[2])
            .query::<Option<String>>(&mut c)
        {
            Ok(Some(v)) if v == "v2" => Some(Instant::now()),
            Ok(v) => {
                last = format!("value {v:?}");
                None
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        }
    });
    let Some(t_served) = served else {
        proxy.fail(&format!(
            "proxy did not serve slot {vslot} within 10 s of {replica}'s promotion; last: {last}"
        ));
    };
    eprintln!(
        "proxy served the failed-over slot {:?} after the promotion ({:?} after the kill)",
        t_served.saturating_duration_since(t_promoted),
        t_served - t_kill
    );
    proxy.assert_running();
    // The log names where the slots went: the old master -> the promoted replica.
    let moved = format!("127.0.0.1:{victim} -> 127.0.0.1:{replica}");
    let named = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        proxy.log_text().contains(&moved).then_some(())
    });
    assert!(
        named.is_some(),
        "no log line names '{moved}':\n{}",
        proxy.log_tail(30)
    );

    // Reads and writes for the slot go to the new master, from fresh and old connections.
    for (i, k) in vkeys.iter().enumerate() {
        let v: String = redis::cmd("GET")
            .arg(k)
            .query(&mut con)
            .or_log(&proxy, "GET after the failover");
        assert_eq!(v, format!("v{i}"));
    }
    let _: () = redis::cmd("SET")
        .arg(&vkeys[0])
        .arg("after")
        .query(&mut con)
        .or_log(&proxy, "SET after the failover");
    let v: String = cluster.query(replica, &["GET", &vkeys[0]]);
    assert_eq!(v, "after", "write reached the promoted replica");
    assert_eq!(raw.cmd(&["GET", &vkeys[3]]), Resp::Bulk(b"v3".to_vec()));
}
