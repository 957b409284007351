//! `read_from`: where read-only commands go. `master` (the default) keeps everything on the
//! masters; `replica` sends reads to a replica of the slot's master (READONLY on those
//! connections) and writes to the master; `prefer_replica` reads from a replica and falls back
//! to the master when none is up. Who served what is read from each node's INFO commandstats.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Successful calls of `command` per node.
fn calls(cluster: &Cluster, ports: &[u16], command: &str) -> BTreeMap<u16, u64> {
    ports
        .iter()
        .map(|&p| (p, cluster.cmdstat(p, command).0))
        .collect()
}

fn delta(after: &BTreeMap<u16, u64>, before: &BTreeMap<u16, u64>) -> BTreeMap<u16, u64> {
    after
        .iter()
        .map(|(p, a)| (*p, a - before.get(p).copied().unwrap_or(0)))
        .collect()
}

/// Waits until every master's CLUSTER SLOTS lists its replica (Redis 7.0 leaves out replicas
/// whose replication offset is still 0) and every replica holds `keys` keys in total.
fn wait_replicas_listed_and_synced(cluster: &Cluster, keys: u64) {
    let masters = cluster.masters();
    let replicas: Vec<u16> = masters.iter().map(|&m| cluster.replica_of(m)).collect();
    let ok = poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let listed = masters.iter().all(|&m| {
            let v: redis::Value = cluster.query(m, &["CLUSTER", "SLOTS"]);
            let redis::Value::Array(ranges) = v else {
                return false;
            };
            ranges
                .iter()
                .all(|r| matches!(r, redis::Value::Array(items) if items.len() >= 4))
        });
        let synced: u64 = replicas
            .iter()
            .map(|&r| cluster.query::<u64>(r, &["DBSIZE"]))
            .sum();
        (listed && synced == keys).then_some(())
    });
    assert!(
        ok.is_some(),
        "replicas not listed in CLUSTER SLOTS or not synced ({keys} keys) within 30 s"
    );
}

fn write_keys(proxy: &Proxy, n: usize, prefix: &str) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}:{i}")).collect();
    let mut con = proxy.conn();
    let mut pipe = redis::pipe();
    for (i, k) in keys.iter().enumerate() {
        pipe.cmd("SET").arg(k).arg(format!("v{i}")).ignore();
    }
    pipe.query::<()>(&mut con)
        .or_log(proxy, "SETs through the proxy");
    keys
}

/// GETs every key through the proxy once and checks the values.
fn read_all(proxy: &Proxy, keys: &[String]) {
    let mut p = proxy.raw();
    for (i, k) in keys.iter().enumerate() {
        let r = p.cmd(&["GET", k]);
        if r != Resp::Bulk(format!("v{i}").into_bytes()) {
            proxy.fail(&format!("GET {k}: {r:?}"));
        }
    }
}

/// Until every master's keys are read from its replica through `proxy` (the proxy may need
/// a topology refresh to learn the replicas), or 20 s.
fn wait_replica_reads(cluster: &Cluster, proxy: &Proxy, by_master: &BTreeMap<u16, Vec<String>>) {
    let t0 = Instant::now();
    let mut last = String::new();
    let ok = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let mut p = proxy.raw();
        for (&m, keys) in by_master {
            let r = cluster.replica_of(m);
            let before = cluster.cmdstat(r, "get").0;
            let got = p.cmd(&["GET", &keys[0]]);
            if got.is_error() {
                last = format!("GET {} (master {m}): {got:?}", keys[0]);
                return None;
            }
            if cluster.cmdstat(r, "get").0 == before {
                last = format!("GET {} not served by replica {r}", keys[0]);
                return None;
            }
        }
        Some(())
    });
    if ok.is_none() {
        proxy.fail(&format!(
            "reads never reached the replicas within 20 s: {last}"
        ));
    }
    eprintln!(
        "reads reached every replica after {:?}{}",
        t0.elapsed(),
        if last.is_empty() {
            String::new()
        } else {
            format!(" (before that: {last})")
        }
    );
}

#[test]
fn read_from_replica_sends_reads_to_replicas_and_writes_to_masters() {
    let cluster = Cluster::start();
    let masters = cluster.masters();
    let replicas: Vec<u16> = masters.iter().map(|&m| cluster.replica_of(m)).collect();
    let rep_of: BTreeMap<u16, u16> = masters.iter().copied().zip(replicas.clone()).collect();
    let default_proxy = Proxy::start(&cluster, "refresh_interval: \"1s\"\n");
    let proxy = Proxy::start(&cluster, "read_from: replica\nrefresh_interval: \"1s\"\n");

    // Writes through the replica-reading proxy all land on the masters.
    const N: usize = 300;
    let set_before_m = calls(&cluster, &masters, "set");
    let keys = write_keys(&proxy, N, "rr");
    let owners = cluster.slot_owners();
    let mut by_master: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for k in &keys {
        by_master
            .entry(owners[key_slot(k.as_bytes()) as usize])
            .or_default()
            .push(k.clone());
    }
    let set_m = delta(&calls(&cluster, &masters, "set"), &set_before_m);
    for &m in &masters {
        assert_eq!(
            set_m[&m],
            by_master[&m].len() as u64,
            "SETs executed by master {m}"
        );
    }
    for &r in &replicas {
        let (_, rejected, failed) = cluster.cmdstat(r, "set");
        assert_eq!((rejected, failed), (0, 0), "SETs sent to replica {r}");
    }
    wait_replicas_listed_and_synced(&cluster, N as u64);

    // read_from: master (the default) keeps reads on the masters.
    let get_m0 = calls(&cluster, &masters, "get");
    let get_r0 = calls(&cluster, &replicas, "get");
    read_all(&default_proxy, &keys);
    let dm = delta(&calls(&cluster, &masters, "get"), &get_m0);
    let dr = delta(&calls(&cluster, &replicas, "get"), &get_r0);
    assert_eq!(
        dm.values().sum::<u64>(),
        N as u64,
        "default: GETs on masters {dm:?}"
    );
    assert_eq!(
        dr.values().sum::<u64>(),
        0,
        "default: GETs on replicas {dr:?}"
    );

    // read_from: replica.
    wait_replica_reads(&cluster, &proxy, &by_master);
    let get_m0 = calls(&cluster, &masters, "get");
    let get_r0 = calls(&cluster, &replicas, "get");
    let mget_m0 = calls(&cluster, &masters, "mget");
    let mget_r0 = calls(&cluster, &replicas, "mget");
    read_all(&proxy, &keys);
    // A cross-slot MGET is split and its parts read from the replicas too.
    let mut p = proxy.raw();
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().take(60).cloned());
    let r = p.cmd(mget.as_slice());
    let want: Vec<Resp> = (0..60)
        .map(|i| Resp::Bulk(format!("v{i}").into_bytes()))
        .collect();
    assert_eq!(r, Resp::Array(want), "split MGET with read_from: replica");
    let dm = delta(&calls(&cluster, &masters, "get"), &get_m0);
    let dr = delta(&calls(&cluster, &replicas, "get"), &get_r0);
    eprintln!("read_from replica: GETs per master {dm:?}, per replica {dr:?}");
    assert_eq!(
        dm.values().sum::<u64>(),
        0,
        "GETs served by masters: {dm:?}"
    );
    for &m in &masters {
        assert_eq!(
            dr[&rep_of[&m]],
            by_master[&m].len() as u64,
            "GETs served by replica {} of master {m}",
            rep_of[&m]
        );
    }
    let dmm = delta(&calls(&cluster, &masters, "mget"), &mget_m0);
    let dmr = delta(&calls(&cluster, &replicas, "mget"), &mget_r0);
    assert_eq!(
        dmm.values().sum::<u64>(),
        0,
        "MGET parts on masters: {dmm:?}"
    );
    assert!(
        dmr.values().all(|&n| n > 0),
        "MGET parts on every replica: {dmr:?}"
    );

    // The replicas' connections from the proxy are READONLY.
    for &r in &replicas {
        assert!(
            cluster.cmdstat(r, "readonly").0 > 0,
            "no READONLY reached replica {r}"
        );
        let list: String = cluster.query(r, &["CLIENT", "LIST"]);
        assert!(
            list.lines().any(|l| l
                .split_whitespace()
                .any(|f| f.starts_with("flags=") && f.contains('r'))),
            "no READONLY client on replica {r}:\n{list}"
        );
    }

    // Writes keep going to the masters, including read-looking commands that write.
    let set_m0 = calls(&cluster, &masters, "set");
    let more = write_keys(&proxy, 30, "rr-more");
    let dm = delta(&calls(&cluster, &masters, "set"), &set_m0);
    assert_eq!(
        dm.values().sum::<u64>(),
        30,
        "later SETs on masters: {dm:?}"
    );
    let tag = tag_for_slot(key_slot(more[0].as_bytes()));
    let (list, dst) = (format!("{{{tag}}}:list"), format!("{{{tag}}}:sorted"));
    assert_eq!(p.cmd(&["RPUSH", &list, "3", "1", "2"]), Resp::Int(3));
    assert_eq!(
        p.cmd(&["SORT", &list, "STORE", &dst]),
        Resp::Int(3),
        "SORT ... STORE with read_from: replica"
    );
    let owner = owners[key_slot(dst.as_bytes()) as usize];
    let v: Vec<String> = cluster.query(owner, &["LRANGE", &dst, "0", "-1"]);
    assert_eq!(v, vec!["1", "2", "3"]);
    assert_eq!(
        p.cmd(&["INCR", &format!("{{{tag}}}:n")]),
        Resp::Int(1),
        "INCR with read_from: replica"
    );
    for &r in &replicas {
        for c in ["set", "sort", "rpush", "incr"] {
            let (_, rejected, failed) = cluster.cmdstat(r, c);
            assert_eq!(
                (rejected, failed),
                (0, 0),
                "{c} sent to replica {r} (rejected, failed)"
            );
        }
    }
}

#[test]
fn prefer_replica_falls_back_to_the_master_and_replica_only_errors() {
    let mut cluster = Cluster::start();
    let masters = cluster.masters();
    let prefer = Proxy::start(
        &cluster,
        "read_from: prefer_replica\nrefresh_interval: \"1s\"\n",
    );
    let only = Proxy::start(&cluster, "read_from: replica\nrefresh_interval: \"1s\"\n");
    for (proxy, want) in [(&prefer, "prefer_replica"), (&only, "replica")] {
        assert_eq!(
            proxy.raw().cmd(&["PROXY", "CONFIG", "GET", "read_from"]),
            Resp::Array(vec![
                Resp::Bulk(b"read_from".to_vec()),
                Resp::Bulk(want.as_bytes().to_vec())
            ]),
            "PROXY CONFIG GET read_from spells it as config.yaml does"
        );
    }
    const N: usize = 120;
    let keys = write_keys(&prefer, N, "pr");
    let owners = cluster.slot_owners();
    let mut by_master: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        index.insert(k.clone(), i);
        by_master
            .entry(owners[key_slot(k.as_bytes()) as usize])
            .or_default()
            .push(k.clone());
    }
    wait_replicas_listed_and_synced(&cluster, N as u64);
    wait_replica_reads(&cluster, &prefer, &by_master);
    wait_replica_reads(&cluster, &only, &by_master);

    // With the replicas up, prefer_replica reads from them.
    let gm = calls(&cluster, &masters, "get");
    read_all(&prefer, &keys);
    let dm = delta(&calls(&cluster, &masters, "get"), &gm);
    assert_eq!(
        dm.values().sum::<u64>(),
        0,
        "prefer_replica with replicas up: {dm:?}"
    );

    // Kill the replica of the first master.
    let m0 = masters[0];
    let r0 = cluster.replica_of(m0);
    cluster.kill(r0);
    let t_kill = Instant::now();

    // prefer_replica: that master's keys are read from the master (a few errors allowed
    // while the proxy notices), then steadily.
    let mut p = prefer.raw();
    let mut errors = Vec::new();
    let k0 = &by_master[&m0];
    let ok = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let r = p.cmd(&["GET", &k0[0]]);
        if r.is_error() {
            errors.push(format!("{:?}: {r:?}", t_kill.elapsed()));
            return None;
        }
        assert_eq!(r, Resp::Bulk(format!("v{}", index[&k0[0]]).into_bytes()));
        Some(())
    });
    if ok.is_none() {
        prefer.fail(&format!(
            "prefer_replica: no successful GET of master {m0}'s key within 20 s of killing its replica {r0}: {:?}",
            &errors[errors.len().saturating_sub(3)..]
        ));
    }
    eprintln!(
        "prefer_replica: reads of master {m0}'s keys served again {:?} after the replica died ({} errors meanwhile)",
        t_kill.elapsed(),
        errors.len()
    );
    let before = cluster.cmdstat(m0, "get").0;
    for k in k0 {
        let r = p.cmd(&["GET", k]);
        if r != Resp::Bulk(format!("v{}", index[k]).into_bytes()) {
            prefer.fail(&format!(
                "prefer_replica after the replica died: GET {k}: {r:?}"
            ));
        }
    }
    assert_eq!(
        cluster.cmdstat(m0, "get").0 - before,
        k0.len() as u64,
        "master {m0} serves its keys once its replica is gone"
    );
    // Other masters' keys are still read from their replicas.
    let m1 = masters[1];
    let r1 = cluster.replica_of(m1);
    let before = cluster.cmdstat(r1, "get").0;
    for k in &by_master[&m1] {
        assert_eq!(
            p.cmd(&["GET", k]),
            Resp::Bulk(format!("v{}", index[k]).into_bytes())
        );
    }
    assert_eq!(
        cluster.cmdstat(r1, "get").0 - before,
        by_master[&m1].len() as u64,
        "replica {r1} still serves master {m1}'s keys"
    );

    // read_from: replica: never a wrong value; once the proxy knows the replica is gone,
    // that master's keys give an error.
    let mut q = only.raw();
    let got_error = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let r = q.cmd(&["GET", &k0[0]]);
        match &r {
            Resp::Error(e) => Some(e.clone()),
            other => {
                assert_eq!(
                    *other,
                    Resp::Bulk(format!("v{}", index[&k0[0]]).into_bytes()),
                    "read_from: replica after the replica died"
                );
                None
            }
        }
    });
    match got_error {
        Some(e) => eprintln!("read_from: replica with no replica up: {e}"),
        None => only.fail(&format!(
            "read_from: replica still answers GETs of master {m0}'s keys 20 s after its only replica {r0} died (served by whom?)"
        )),
    }
    assert_eq!(
        q.cmd(&["GET", &by_master[&m1][0]]),
        Resp::Bulk(format!("v{}", index[&by_master[&m1][0]]).into_bytes()),
        "read_from: replica, other masters unaffected"
    );
}
