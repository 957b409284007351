//! Clients authenticate to the proxy as to Redis: `auth.password` (the default user) and
//! `auth.users` with ACL rules. NOAUTH before AUTH, WRONGPASS, NOPERM for commands, keys
//! (split MGET parts included) and channels; ACL WHOAMI/USERS/LIST/CAT; CLIENT LIST user=;
//! redis-cli -a / --user --pass and redis-py with username/password in RESP2 and RESP3;
//! no password in the log or INFO; protected mode.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// The `app` user's password, given to the proxy as its SHA-256 (`sha256:` form).
const APP_PW: &str = "apppw";

fn sha256_hex(s: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sha256sum (coreutils)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn auth_yaml() -> String {
    format!(
        "auth:\n  password: defaultpw\n  users:\n    - name: reader\n      passwords: [readpw]\n      rules: \"+@read +@connection ~* &*\"\n    - name: app\n      passwords: [\"sha256:{}\"]\n      rules: \"+@all -@dangerous ~app:* &news.*\"\n    - name: off\n      passwords: [offpw]\n      enabled: false\n      rules: \"+@all ~*\"\n",
        sha256_hex(APP_PW)
    )
}

fn texts(r: &Resp) -> Vec<String> {
    match r {
        Resp::Array(items) => items.iter().filter_map(Resp::text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn clients_authenticate_and_users_keep_to_their_rules() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster, &auth_yaml());

    // Before AUTH: NOAUTH for everything but AUTH, HELLO ... AUTH and QUIT.
    let mut c = proxy.raw();
    assert_eq!(
        c.cmd(&["GET", "k"]).error_text().as_deref(),
        Some("NOAUTH Authentication required.")
    );
    let hello = c.cmd(&["HELLO", "3"]).error_text().unwrap_or_default();
    assert!(hello.starts_with("NOAUTH HELLO must be called"), "{hello}");
    // Unknown commands are still named as such (Redis checks them first).
    assert!(c
        .cmd(&["NOSUCHCMD"])
        .error_text()
        .unwrap_or_default()
        .starts_with("ERR unknown command"));
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]).error_text().as_deref(),
        Some("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.cmd(&["AUTH", "defaultpw"]).text().as_deref(), Some("OK"));
    assert_eq!(
        c.cmd(&["SET", "app:1", "one"]).text().as_deref(),
        Some("OK")
    );
    assert_eq!(c.cmd(&["ACL", "WHOAMI"]).text().as_deref(), Some("default"));

    // A disabled user cannot log in, even with its password.
    let mut off = proxy.raw();
    assert!(off
        .cmd(&["AUTH", "off", "offpw"])
        .error_text()
        .unwrap_or_default()
        .starts_with("WRONGPASS"));

    // The read-only user.
    let mut r = proxy.raw();
    assert_eq!(
        r.cmd(&["AUTH", "reader", "readpw"]).text().as_deref(),
        Some("OK")
    );
    assert_eq!(r.cmd(&["GET", "app:1"]).text().as_deref(), Some("one"));
    assert_eq!(
        r.cmd(&["SET", "app:1", "x"]).error_text().as_deref(),
        Some("NOPERM this user has no permissions to run the 'set' command")
    );
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "maxmemory"])
            .error_text()
            .as_deref(),
        Some("NOPERM this user has no permissions to run the 'config|get' command")
    );

    // The key-pattern user, through HELLO 3 AUTH (RESP3), with its password given as a hash.
    let mut a = proxy.raw();
    let h = a.cmd(&["HELLO", "3", "AUTH", "app", APP_PW]);
    assert!(matches!(h, Resp::Map(_)), "HELLO 3 AUTH: {h:?}");
    assert_eq!(
        a.cmd(&["SET", "app:2", "two"]).text().as_deref(),
        Some("OK")
    );
    let no_key = "NOPERM this user has no permissions to access one of the keys used as arguments";
    assert_eq!(
        a.cmd(&["SET", "other", "x"]).error_text().as_deref(),
        Some(no_key)
    );
    // An MGET over slots on several masters: every key is checked, not only one part's.
    let keys: Vec<String> = (0..20).map(|i| format!("app:{i}")).collect();
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    assert!(matches!(a.cmd(&mget), Resp::Array(_)));
    mget.push("other".into());
    assert_eq!(a.cmd(&mget).error_text().as_deref(), Some(no_key));
    assert_eq!(
        a.cmd(&["FLUSHALL"]).error_text().as_deref(),
        Some("NOPERM this user has no permissions to run the 'flushall' command")
    );
    let no_chan =
        "NOPERM this user has no permissions to access one of the channels used as arguments";
    assert_eq!(
        a.cmd(&["PUBLISH", "gossip", "x"]).error_text().as_deref(),
        Some(no_chan)
    );
    assert!(matches!(
        a.cmd(&["PUBLISH", "news.sport", "x"]),
        Resp::Int(_)
    ));

    // ACL reads come from the proxy's users; changes are refused with the reason.
    assert_eq!(
        texts(&c.cmd(&["ACL", "USERS"])),
        ["default", "reader", "app", "off"]
    );
    let list = texts(&c.cmd(&["ACL", "LIST"]));
    assert_eq!(list[2], "user app on +@all -@dangerous ~app:* &news.*");
    assert!(texts(&c.cmd(&["ACL", "CAT"])).contains(&"dangerous".to_string()));
    assert!(texts(&c.cmd(&["ACL", "CAT", "dangerous"])).contains(&"flushall".to_string()));
    let setuser = c
        .cmd(&["ACL", "SETUSER", "x", "on"])
        .error_text()
        .unwrap_or_default();
    assert!(setuser.contains("auth.users"), "{setuser}");

    // CLIENT LIST shows each client's user.
    let list = c.cmd(&["CLIENT", "LIST"]).text().unwrap_or_default();
    assert!(
        list.contains(" user=reader ") && list.contains(" user=app "),
        "{list}"
    );

    // redis-cli with -a, and with --user --pass.
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port.to_string(),
            "--no-auth-warning",
        ]);
        cmd.args(args);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["-a", "defaultpw", "GET", "app:1"]), "one");
    assert_eq!(
        cli(&["--user", "reader", "--pass", "readpw", "GET", "app:1"]),
        "one"
    );
    assert!(
        cli(&["--user", "reader", "--pass", "readpw", "SET", "app:1", "x"]).starts_with("NOPERM")
    );

    // redis-py, RESP2 and RESP3.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/auth_clients.py");
    let mut py = Command::new("python3");
    py.arg(script).arg(proxy.port.to_string());
    let out = run_with_timeout(&mut py, Duration::from_secs(60));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("AUTH CLIENTS OK"),
        "tests/py/auth_clients.py (needs redis-py: scripts/install-deps.sh):\n{text}"
    );

    // Refusals are counted and logged without the password; INFO shows no password.
    let info = c.cmd(&["INFO", "proxy"]).text().unwrap_or_default();
    let fields = parse_info(&info);
    let failures: u64 = fields["auth_failures"].parse().unwrap();
    assert!(failures >= 3, "{info}");
    assert!(fields["acl_denied"].parse::<u64>().unwrap() >= 5, "{info}");
    let log = proxy.log_text();
    assert!(log.contains("authentication refused for user"), "{log}");
    for secret in ["defaultpw", "readpw", APP_PW, "offpw", "nope", "wrong"] {
        assert!(!log.contains(secret), "{secret} reached the log");
        assert!(!info.contains(secret), "{secret} in INFO");
    }
}

#[test]
fn an_empty_auth_is_a_configuration_error() {
    let dir = unique_temp_dir("rcp-auth-empty");
    let cfg = write_file(
        &dir,
        "config.yaml",
        b"redis_nodes: [\"127.0.0.1:1\"]\nauth: {}\n",
    );
    let mut cmd = Command::new(proxy_bin());
    cmd.arg("--config").arg(&cfg).arg("--check");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("auth: give a password"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Protected mode's refusal of a non-loopback client is table-tested in `src/auth.rs`
/// (`protected_mode_decision`): a remote client cannot be made here without sending traffic
/// to an address off the loopback. What is checked end to end: a proxy bound to every
/// address with no `auth` says it is in protected mode and still serves loopback clients.
#[test]
fn protected_mode_is_on_by_default_for_a_reachable_proxy_without_auth() {
    let cluster = Cluster::start_masters(3);
    let proxy = Proxy::start(&cluster, "bind: 0.0.0.0\n");
    let mut c = proxy.raw();
    assert_eq!(c.cmd(&["PING"]).text().as_deref(), Some("PONG"));
    let log = proxy.log_text();
    assert!(
        log.contains("protected mode: bound to 0.0.0.0 with no auth configured"),
        "{log}"
    );
    drop(proxy);
    let open = Proxy::start(&cluster, "bind: 0.0.0.0\nprotected_mode: false\n");
    assert!(!open.log_text().contains("protected mode:"));
}
