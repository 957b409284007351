//! `workers: 2`: two reactors share the port (SO_REUSEPORT) and each serves its own clients,
//! but the process answers as one server: `max_clients` and INFO's clients and proxy
//! figures count every worker's clients, CONFIG RESETSTAT clears every worker's counters,
//! and a stop signal drains both.

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
fn worker_of(c: &mut RawClient) -> usize {
    match c.cmd(&["CLIENT", "ID"]) {
        Resp::Int(id) => ((id - 1) % 2) as usize,
        other => panic!("CLIENT ID answered {other:?}"),
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
    let workers: Vec<usize> = clients.iter_mut().map(worker_of).collect();
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
