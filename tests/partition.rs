//! A master cut off from the rest of its cluster, but not from the proxy: the majority
//! promotes its replica, and the proxy follows the majority; the cut node's view never
//! replaces the majority's, writes land on the promoted replica, and clients see no error.
//!
//! The test runs in a network namespace of its own (its thread's: `unshare(CLONE_NEWNET)`;
//! the cluster and the proxy, started from this thread, live in it too). Each node's
//! outgoing connections leave from an address of its own (`ClusterOptions::source_addrs`),
//! so tc on the namespace's loopback can drop exactly the cut node's cluster-bus traffic
//! both ways while its client port stays reachable. This machine's kernel has no tc drop
//! action: the packets are classified into an HTB class whose queue holds nothing.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command (ip, tc) from this thread, so in its namespace; panics with its output.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (Debian's iproute2 has ip and tc)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves this thread (and what it starts from now on) into a new network namespace with
/// its loopback up. Needs root (CAP_SYS_ADMIN), as `ip netns` does.
fn private_network() {
    // SAFETY: unshare only changes this thread's namespaces; no memory is involved.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) failed ({}): the partition test needs root, as ip netns does",
        std::io::Error::last_os_error()
    );
    run(&["ip", "link", "set", "lo", "up"]);
}

/// Drops, on this namespace's loopback, what `src` sends and what goes to `bus_port`.
fn cut_off(src: &str, bus_port: u16) {
    let bus = bus_port.to_string();
    let src = format!("{src}/32");
    for cmd in [
        &[
            "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
        ][..],
        &[
            "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
            "10gbit",
        ],
        &[
            "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate",
            "8bit",
        ],
        &[
            "tc", "qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit",
            "0",
        ],
        &[
            "tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "src", &src, "flowid", "1:20",
        ],
        &[
            "tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "2",
            "u32", "match", "ip", "dport", &bus, "0xffff", "flowid", "1:20",
        ],
    ] {
        run(cmd);
    }
}

#[test]
fn a_master_cut_off_from_its_cluster_never_wins_over_the_majority() {
    private_network();
    let cluster = Cluster::start_with(ClusterOptions {
        node_timeout_ms: 1000,
        source_addrs: true,
        ..Default::default()
    });
    let masters = cluster.masters();
    let cut = masters[1];
    let replica = cluster.replica_of(cut);
    // Every node is a seed, the cut one included: the proxy may ask it for the topology.
    let mut proxy = Proxy::start_with(
        &cluster,
        ProxyOptions {
            seeds: cluster.ports(),
            ..Default::default()
        },
    );
    let keys = keys_in_slot(cluster.first_slot_of(cut) + 3, "part", 20);
    let mut raw = proxy.raw_timeout(Duration::from_secs(10));
    assert_eq!(
        raw.cmd(&["SET", &keys[0], "before"]),
        Resp::Simple("OK".into())
    );

    cut_off(&cluster.source_addr(cut), cut + 10000);
    let t_cut = Instant::now();
    // Still reachable by clients: it answers on its client port.
    assert!(
        ping_port(cut, Duration::from_secs(2)),
        "the cut node must stay reachable"
    );
    let promoted = cluster.wait_promoted(replica, Duration::from_secs(30));
    eprintln!(
        "replica {replica} promoted {:?} after the cut",
        promoted - t_cut
    );

    // Writes for the cut master's slot, through the proxy, for a while after the promotion:
    // each answered OK (held while needed), each on the promoted replica.
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let k = &keys[1 + n % 19];
        let v = format!("after{n}");
        let r = raw.cmd(&["SET", k, &v]);
        assert_eq!(r, Resp::Simple("OK".into()), "{}", proxy.log_tail(20));
        let on_replica: Option<String> = cluster.query(replica, &["GET", k]);
        assert_eq!(
            on_replica.as_deref(),
            Some(v.as_str()),
            "SET {k} not on {replica}"
        );
        n += 1;
    }
    eprintln!("{n} writes after the promotion, all on {replica}");
    // The cut node still believes it owns the slot (its own view), yet the proxy never
    // moved the slot back to it.
    let own: String = cluster.query(cut, &["CLUSTER", "NODES"]);
    let myself = own
        .lines()
        .find(|l| l.contains("myself"))
        .unwrap_or_default();
    eprintln!("the cut node's own line: {myself}");
    let back = format!("-> 127.0.0.1:{cut}");
    let log = proxy.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("topology from") && l.contains(&back)),
        "the proxy moved slots back to the cut node:\n{}",
        proxy.log_tail(30)
    );
    assert!(
        log.contains(&format!("-> 127.0.0.1:{replica}")),
        "{}",
        proxy.log_tail(30)
    );
    proxy.assert_running();
}
