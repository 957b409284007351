//! Reload without a restart: SIGHUP (and PROXY RELOAD) loads the configuration file again
//! while clients stay connected; what can change live changes, a key that needs a restart
//! is named and keeps its value, a file that does not load keeps the whole previous
//! configuration, and SIGHUP never ends the process.

mod common;

use common::*;
use std::time::Duration;

fn config_get(c: &mut RawClient, key: &str) -> String {
    match c.cmd(&["PROXY", "CONFIG", "GET", key]) {
        Resp::Array(items) => items.get(1).and_then(Resp::text).unwrap_or_default(),
        other => panic!("PROXY CONFIG GET {key}: {other:?}"),
    }
}

#[test]
fn sighup_reloads_while_clients_stay_connected() {
    let cluster = Cluster::start_masters(3);
    let mut proxy = Proxy::start(&cluster, "log_level: info\nmax_redirects: 5\n");
    let mut clients: Vec<RawClient> = (0..20).map(|_| proxy.raw()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.cmd(&["SET", &format!("reload:{i}"), "v"])
                .text()
                .as_deref(),
            Some("OK")
        );
    }
    let mut admin = proxy.raw();
    assert_eq!(config_get(&mut admin, "max_redirects"), "5");

    // A live change (max_redirects, address_map, log_level) and a restart-only one
    // (proxy_port).
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    let changed = original
        .replace("max_redirects: 5", "max_redirects: 9")
        .replace("log_level: info", "log_level: debug")
        .replace(
            &format!("proxy_port: {}", proxy.port),
            &format!("proxy_port: {}", proxy.port + 1),
        )
        + "address_map:\n  \"10.1.1.1:7000\": \"203.0.113.1:7000\"\n";
    std::fs::write(&proxy.config_path, &changed).unwrap();
    proxy.signal(libc::SIGHUP);
    let reloaded = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (config_get(&mut admin, "max_redirects") == "9").then_some(())
    });
    assert!(reloaded.is_some(), "not reloaded:\n{}", proxy.log_tail(20));
    assert_eq!(
        config_get(&mut admin, "address_map"),
        "10.1.1.1:7000=203.0.113.1:7000"
    );
    assert_eq!(config_get(&mut admin, "log_level"), "debug");
    assert_eq!(
        config_get(&mut admin, "proxy_port"),
        proxy.port.to_string(),
        "a restart-only key keeps its running value"
    );
    let log = proxy.log_text();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("reload: proxy_port changed in the file, but a restart is needed for that"),
        "{log}"
    );
    // Every client is still there and served.
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.cmd(&["GET", &format!("reload:{i}")]).text().as_deref(),
            Some("v")
        );
    }

    // A file that does not load: the whole previous configuration stays.
    std::fs::write(&proxy.config_path, "max_redirects: [not a number\n").unwrap();
    proxy.signal(libc::SIGHUP);
    let warned = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        proxy
            .log_text()
            .contains("keeping the previous configuration")
            .then_some(())
    });
    assert!(warned.is_some(), "{}", proxy.log_tail(20));
    assert_eq!(config_get(&mut admin, "max_redirects"), "9");
    proxy.assert_running();
    for c in clients.iter_mut() {
        assert_eq!(c.cmd(&["PING"]).text().as_deref(), Some("PONG"));
    }

    // PROXY RELOAD: refused without allow_admin_commands, as PROXY SHUTDOWN.
    let e = admin
        .cmd(&["PROXY", "RELOAD"])
        .error_text()
        .unwrap_or_default();
    assert!(e.contains("allow_admin_commands"), "{e}");
    std::fs::write(
        &proxy.config_path,
        original.replace("max_redirects: 5", "max_redirects: 7") + "allow_admin_commands: true\n",
    )
    .unwrap();
    proxy.signal(libc::SIGHUP);
    let again = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (config_get(&mut admin, "max_redirects") == "7").then_some(())
    });
    assert!(again.is_some());
    std::fs::write(
        &proxy.config_path,
        original.replace("max_redirects: 5", "max_redirects: 3") + "allow_admin_commands: true\n",
    )
    .unwrap();
    assert_eq!(
        admin.cmd(&["PROXY", "RELOAD"]).text().as_deref(),
        Some("OK")
    );
    let by_command = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (config_get(&mut admin, "max_redirects") == "3").then_some(())
    });
    assert!(by_command.is_some(), "PROXY RELOAD did not reload");
    proxy.assert_running();
}

#[test]
fn every_worker_takes_the_reload() {
    let cluster = Cluster::start_masters(3);
    let mut proxy = Proxy::start(&cluster, "workers: 2\nmax_redirects: 5\n");
    // Connections spread over both workers (SO_REUSEPORT); each answers from its own.
    let mut clients: Vec<RawClient> = (0..12).map(|_| proxy.raw()).collect();
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::write(
        &proxy.config_path,
        original.replace("max_redirects: 5", "max_redirects: 8"),
    )
    .unwrap();
    proxy.signal(libc::SIGHUP);
    for c in clients.iter_mut() {
        let seen = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
            (config_get(c, "max_redirects") == "8").then_some(())
        });
        assert!(
            seen.is_some(),
            "a worker did not reload:\n{}",
            proxy.log_tail(20)
        );
    }
    proxy.assert_running();
}
