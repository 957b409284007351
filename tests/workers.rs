//! `workers: 2`: two reactors share the port (SO_REUSEPORT) and each serves its own clients,
//! but the process answers as one server: `max_clients` and INFO's clients and proxy
//! figures count every worker's clients, CONFIG RESETSTAT clears every worker's counters,
//! CLIENT LIST and CLIENT KILL reach the other worker's clients, a MONITOR sees the other
//! worker's commands, and a stop signal drains both.

mod common;

use common::*;
use std::time::Duration;

const MAX: usize = 12;

fn info_field(c: &mut RawClient, section: &str, field: &str) -> u64 {
    let text = c
        .cmd(&["INFO", section])
        .text()
        .unwrap_or_else(|| panic!("INFO {section} gave no text"));
    parse_info(&text)
        .get(field)
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{text}"))
        .parse()
        .unwrap()
}

/// Worker w numbers its clients w+1, w+1+workers, ...: an id's parity names its worker.
fn worker(id: u64) -> usize {
    ((id - 1) % 2) as usize
}

fn client_id(c: &mut RawClient) -> u64 {
    match c.cmd(&["CLIENT", "ID"]) {
        Resp::Int(id) => id as u64,
        other => panic!("CLIENT ID answered {other:?}"),
    }
}

/// A new connection that landed on worker `w`: the kernel picks by address hash, so a few
/// tries find one. One refused at max_clients, while a closed client's place is being
/// given back, is tried again.
fn client_on(proxy: &Proxy, w: usize) -> RawClient {
    for _ in 0..200 {
        let mut c = proxy.raw_timeout(Duration::from_secs(5));
        match c.cmd(&["CLIENT", "ID"]) {
            Resp::Int(id) if worker(id as u64) == w => return c,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("no connection landed on worker {w} in 200 tries");
}

/// The ids of a CLIENT LIST, in its order.
fn listed_ids(c: &mut RawClient, args: &[&str]) -> Vec<u64> {
    let text = c
        .cmd(args)
        .text()
        .unwrap_or_else(|| panic!("{args:?} gave no text"));
    text.lines()
        .map(|l| {
            l.strip_prefix("id=")
                .and_then(|r| r.split(' ').next())
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a CLIENT LIST line without an id: {l}"))
        })
        .collect()
}

fn expect_closed(proxy: &Proxy, c: &mut RawClient, what: &str) {
    if let Err(e) = c.wait_eof() {
        proxy.fail(&format!("{what}: {e}"));
    }
}

#[test]
fn two_workers_answer_as_one_server() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(
        &cluster,
        &format!("workers: 2\nmax_clients: {MAX}\nlog_level: info\n"),
    );
    let mut first = proxy.raw_timeout(Duration::from_secs(10));
    // The harness's PING connections are gone once only this one is counted.
    let settled = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (info_field(&mut first, "clients", "connected_clients") == 1).then_some(())
    });
    assert!(settled.is_some(), "connected_clients never came down to 1");

    let mut clients = vec![first];
    while clients.len() < MAX {
        clients.push(proxy.raw_timeout(Duration::from_secs(10)));
    }
    let ids: Vec<u64> = clients.iter_mut().map(client_id).collect();
    let workers: Vec<usize> = ids.iter().map(|&id| worker(id)).collect();
    assert!(
        workers.contains(&0) && workers.contains(&1),
        "{MAX} connections all went to one worker ({workers:?}): the kernel spreads them by \
         address hash, so this should almost never happen"
    );

    // Full for the process, whichever worker takes the next connection.
    for i in 0..6 {
        let mut extra = proxy.raw_timeout(Duration::from_secs(5));
        match extra.reply() {
            Resp::Error(e) => assert_eq!(e, "ERR max number of clients reached", "extra {i}"),
            other => panic!(
                "connection {} past max_clients {MAX} got {other:?}",
                MAX + 1 + i
            ),
        }
        if let Err(e) = extra.wait_eof() {
            proxy.fail(&format!("a refused connection stayed open: {e}"));
        }
    }
    let w0 = workers.iter().position(|&w| w == 0).unwrap();
    let w1 = workers.iter().position(|&w| w == 1).unwrap();
    for i in [w0, w1] {
        assert_eq!(
            info_field(&mut clients[i], "clients", "connected_clients"),
            MAX as u64,
            "INFO clients on worker {}",
            workers[i]
        );
    }

    // Commands on both workers, counted after a reset asked on one of them.
    assert_eq!(
        clients[w0].cmd(&["CONFIG", "RESETSTAT"]),
        Resp::Simple("OK".into())
    );
    for (n, c) in clients.iter_mut().enumerate() {
        for j in 0..10 {
            let key = format!("workers:{n}:{j}");
            assert_eq!(c.cmd(&["SET", &key, "v"]), Resp::Simple("OK".into()));
            assert_eq!(c.cmd(&["GET", &key]), Resp::Bulk(b"v".to_vec()));
        }
    }
    let done = (MAX * 20) as u64;
    // Each worker publishes at the end of a poll turn, and every command above was
    // answered, so its turn has ended; the asking worker counts itself live. A command is
    // counted when it is routed, so each INFO counts itself.
    for (k, i) in [w0, w1].into_iter().enumerate() {
        let total = info_field(&mut clients[i], "proxy", "total_commands_processed");
        assert_eq!(
            total,
            done + 1 + k as u64,
            "INFO proxy on worker {}",
            workers[i]
        );
    }

    // A client blocked on one worker is seen from the other.
    clients[w0].send_cmd(&["BLPOP", "workers:list", "10"]);
    let seen = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (info_field(&mut clients[w1], "clients", "blocked_clients") == 1).then_some(())
    });
    assert!(
        seen.is_some(),
        "worker 1 never saw worker 0's blocked client"
    );
    assert_eq!(
        clients[w1].cmd(&["RPUSH", "workers:list", "x"]),
        Resp::Int(1)
    );
    assert!(matches!(clients[w0].reply(), Resp::Array(_)));
    let gone = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (info_field(&mut clients[w1], "clients", "blocked_clients") == 0).then_some(())
    });
    assert!(
        gone.is_some(),
        "blocked_clients stayed above 0 after the BLPOP was answered"
    );

    // CLIENT LIST from either worker lists every client of the process, oldest first.
    let mut all = ids.clone();
    all.sort_unstable();
    for i in [w0, w1] {
        assert_eq!(
            listed_ids(&mut clients[i], &["CLIENT", "LIST"]),
            all,
            "CLIENT LIST on worker {}",
            workers[i]
        );
    }
    let id1 = ids[w1].to_string();
    assert_eq!(
        listed_ids(&mut clients[w0], &["CLIENT", "LIST", "ID", &id1]),
        vec![ids[w1]]
    );
    assert_eq!(
        listed_ids(&mut clients[w0], &["CLIENT", "LIST", "TYPE", "pubsub"]),
        Vec::<u64>::new()
    );
    assert_eq!(
        clients[w0].cmd(&["CLIENT", "LIST", "TYPE", "nosuch"]),
        Resp::Error("ERR Unknown client type 'nosuch'".into())
    );

    // CLIENT KILL reaches the other worker's clients, in both forms.
    assert_eq!(
        clients[w0].cmd(&["CLIENT", "KILL", "ID", &id1]),
        Resp::Int(1)
    );
    expect_closed(
        &proxy,
        &mut clients[w1],
        "killed by id from the other worker",
    );
    let mut victim = client_on(&proxy, 1);
    let addr = victim.stream.local_addr().unwrap().to_string();
    assert_eq!(
        clients[w0].cmd(&["CLIENT", "KILL", &addr]),
        Resp::Simple("OK".into())
    );
    expect_closed(
        &proxy,
        &mut victim,
        "killed by address from the other worker",
    );
    assert_eq!(
        clients[w0].cmd(&["CLIENT", "KILL", "ID", "999999"]),
        Resp::Int(0)
    );
    assert_eq!(
        clients[w0].cmd(&["CLIENT", "KILL", "127.0.0.1:1"]),
        Resp::Error("ERR No such client".into())
    );
    let settled = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (info_field(&mut clients[w0], "clients", "connected_clients") == MAX as u64 - 1)
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "connected_clients did not come down after the kills"
    );

    // A MONITOR on worker 0 sees the commands run on worker 1.
    assert_eq!(clients[w0].cmd(&["MONITOR"]), Resp::Simple("OK".into()));
    let mut other = client_on(&proxy, 1);
    let other_addr = other.stream.local_addr().unwrap().to_string();
    assert_eq!(
        other.cmd(&["SET", "workers:monitored", "1"]),
        Resp::Simple("OK".into())
    );
    let wanted = format!("[0 {other_addr}] \"SET\" \"workers:monitored\" \"1\"");
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.ends_with(&wanted)) {
        assert!(seen.len() < 500, "no {wanted} among {seen:?}");
        match clients[w0].reply() {
            Resp::Simple(line) => seen.push(line),
            other => panic!("the monitor got {other:?}"),
        }
    }

    // The other worker lists the monitor with Redis's O flag.
    let id0 = ids[w0].to_string();
    let line = other
        .cmd(&["CLIENT", "LIST", "ID", &id0])
        .text()
        .unwrap_or_default();
    assert!(line.contains(" flags=O "), "{line}");

    // A stop signal: both workers drain and the process exits cleanly.
    proxy.signal(libc::SIGTERM);
    let Some(status) = proxy.wait_exit(Duration::from_secs(10)) else {
        proxy.fail("still running 10 s after SIGTERM");
    };
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        proxy.log_count("shutting down (SIGTERM)"),
        2,
        "{}",
        proxy.log_tail(10)
    );
}
