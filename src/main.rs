//! Command line, configuration, logging, then the reactor.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use log::{error, info};

use redis_cluster_proxy::auth::NodeCredentials;
use redis_cluster_proxy::config::Config;
use redis_cluster_proxy::crew::{Crew, Wakers};
use redis_cluster_proxy::reactor::Reactor;
use redis_cluster_proxy::topology::discover::discover;
use redis_cluster_proxy::topology::Topology;
use redis_cluster_proxy::totals::Totals;
use redis_cluster_proxy::VERSION;

#[cfg(feature = "count-allocs")]
#[global_allocator]
static GLOBAL: redis_cluster_proxy::alloc::Counting = redis_cluster_proxy::alloc::Counting;

const USAGE: &str = "\
redis-cluster-proxy: one endpoint in front of a Redis Cluster

Usage: redis-cluster-proxy [OPTIONS]

Options:
  -c, --config PATH          YAML configuration file (see config.yaml)
  -p, --port PORT            port to listen on (proxy_port)
      --bind ADDR            address to listen on (bind)
  -n, --nodes HOST:PORT,...  seed nodes of the cluster (redis_nodes)
      --auto-redirect BOOL   follow MOVED/ASK in the proxy (auto_redirect)
      --refresh-interval D   topology refresh period, e.g. 30s (refresh_interval)
      --log-level LEVEL      error, warn, info, debug or trace (log_level)
      --busy-poll D          spin this long before sleeping, e.g. 50us (busy_poll)
  -w, --workers N            reactor threads sharing the port (workers)
      --check                validate the configuration and exit
      --connect              --check, then also ask every seed for the cluster (with
                             backend_auth and backend_tls) and report what each says
      --ping HOST:PORT       send PING to a proxy (or any Redis) there and exit 0 when it
                             answers (PONG, or NOAUTH: it is up): a container's health check
  -V, --version              print the version and exit
  -h, --help                 print this help and exit

Flags win over the file. RUST_LOG, when set, wins over log_level.
";

struct Cli {
    config: Option<PathBuf>,
    check: bool,
    connect: bool,
    overrides: Vec<(String, String)>,
}

fn parse_args(args: &[String]) -> Result<Option<Cli>, String> {
    let mut cli = Cli {
        config: None,
        check: false,
        connect: false,
        overrides: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("redis-cluster-proxy {VERSION}");
                return Ok(None);
            }
            "--check" => cli.check = true,
            "--ping" => {
                let addr = value("--ping")?;
                ping(&addr).map_err(|e| format!("{addr}: {e}"))?;
                return Ok(None);
            }
            "--connect" => {
                cli.check = true;
                cli.connect = true;
            }
            "-c" | "--config" => cli.config = Some(PathBuf::from(value("--config")?)),
            "-p" | "--port" => cli.overrides.push(("port".into(), value("--port")?)),
            "--bind" => cli.overrides.push(("bind".into(), value("--bind")?)),
            "-n" | "--nodes" => cli.overrides.push(("nodes".into(), value("--nodes")?)),
            "--auto-redirect" => cli
                .overrides
                .push(("auto_redirect".into(), value("--auto-redirect")?)),
            "--refresh-interval" => cli
                .overrides
                .push(("refresh_interval".into(), value("--refresh-interval")?)),
            "--log-level" => cli
                .overrides
                .push(("log_level".into(), value("--log-level")?)),
            "-w" | "--workers" => cli.overrides.push(("workers".into(), value("--workers")?)),
            "--busy-poll" => cli
                .overrides
                .push(("busy_poll".into(), value("--busy-poll")?)),
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
        i += 1;
    }
    Ok(Some(cli))
}

/// Raises the soft open-files limit to the hard one, as Redis does for maxclients; returns
/// the limit in force.
fn raise_open_files_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    // rlim_t is not u64 on every platform.
    #[allow(clippy::unnecessary_cast)]
    Some(r.rlim_cur as u64)
}

/// The discovery's replies (COMMAND's is a few hundred KB, decoded) are freed by now; glibc
/// keeps freed heap until told, and an idle proxy should not hold it.
fn give_back_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory at the heap's top to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--ping`: one PING, answered within 2 s by PONG (or NOAUTH, which is a live server too).
fn ping(addr: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = Duration::from_secs(2);
    let to = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("address does not resolve")?;
    let mut s = std::net::TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).map_err(|e| e.to_string())?;
    let reply = &buf[..n];
    if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}",
            String::from_utf8_lossy(reply).trim_end()
        ))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse_args(&args) {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = match load_config(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            if cli.config.is_none() {
                eprintln!(
                    "hint: give the configuration with --config FILE (see config.yaml), or the seeds with --nodes host:port; --help lists the flags"
                );
            }
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("configuration ok");
        if cli.connect {
            return check_seeds(&cfg);
        }
        return ExitCode::SUCCESS;
    }
    init_logging(&cfg.log_level);
    log_open_files_limit(&cfg);
    let (topo, version) = match first_topology(&cfg) {
        Ok(found) => found,
        Err(e) => {
            // Once: stderr is where the log goes too.
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let workers = cfg.workers;
    if workers > 1 {
        // Every worker listens on the same port; the kernel spreads connections over them.
        cfg.socket.reuse_port = true;
    }
    let metrics = match cfg
        .metrics_address
        .as_deref()
        .map(std::net::TcpListener::bind)
    {
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            let addr = cfg.metrics_address.as_deref().unwrap_or_default();
            eprintln!("error: cannot listen on metrics_address {addr}: {e}");
            return ExitCode::from(1);
        }
        None => None,
    };
    let (mut reactors, wakers) = match start_reactors(&cfg, &topo, &version) {
        Ok(started) => started,
        Err(e) => {
            // Once: stderr is where the log goes too.
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for r in reactors.iter_mut() {
        r.set_source(cli.config.clone(), cli.overrides.clone());
    }
    if let Some(listener) = metrics {
        if let Err(e) = start_metrics(listener, reactors[0].totals()) {
            eprintln!("error: cannot start the metrics thread: {e}");
            return ExitCode::from(1);
        }
    }
    match reactors[0].local_addr() {
        Ok(a) => info!(
            "redis-cluster-proxy {VERSION} listening on {a} ({workers} worker{}){}",
            if workers == 1 { "" } else { "s" },
            listeners_note(&cfg)
        ),
        Err(e) => error!("listener has no address: {e}"),
    }
    if let Err(e) = redis_cluster_proxy::signals::install() {
        error!(
            "cannot install the SIGTERM/SIGINT handlers (they will stop the proxy at once): {e}"
        );
    }
    if let Err(e) = run_workers(reactors, wakers) {
        error!("event loop failed: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A plain level is applied as the global maximum over a trace filter, so a reload can raise
/// it as well as lower it; module directives (or RUST_LOG) are taken as they are.
fn init_logging(log_level: &str) {
    let plain = redis_cluster_proxy::reload::plain_level(log_level);
    let filter = match plain {
        Some(_) => "trace",
        None => log_level,
    };
    env_logger::Builder::new()
        .parse_filters(filter)
        .parse_env("RUST_LOG")
        .format_timestamp_millis()
        .init();
    if let (Some(level), None) = (plain, std::env::var_os("RUST_LOG")) {
        log::set_max_level(level);
    }
}

/// What else the proxy serves and how, for the start-up line.
fn listeners_note(cfg: &Config) -> String {
    let mut parts = Vec::new();
    if cfg.tls_port != 0 {
        let mtls = cfg.tls.as_ref().is_some_and(|t| t.ca_file.is_some());
        let port = cfg.tls_port;
        parts.push(format!(
            "TLS on {}:{port}{}",
            cfg.bind,
            if mtls { " (mutual)" } else { "" }
        ));
    }
    if cfg.backend_tls.is_some() {
        parts.push("TLS to the nodes".to_string());
    }
    if cfg.backend_auth.is_some() {
        parts.push("a password to the nodes".to_string());
    }
    if cfg.auth.is_some() {
        parts.push("clients authenticate".to_string());
    }
    if let Some(m) = &cfg.metrics_address {
        parts.push(format!("metrics on http://{m}/metrics"));
    }
    match parts.is_empty() {
        true => String::new(),
        false => format!("; {}", parts.join(", ")),
    }
}

/// The metrics endpoint's thread.
fn start_metrics(
    listener: std::net::TcpListener,
    totals: Arc<redis_cluster_proxy::totals::Totals>,
) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || redis_cluster_proxy::metrics::serve(listener, totals, started))
        .map(|_| ())
}

/// The configuration file (or the defaults), the command line's overrides, validated.
fn load_config(cli: &Cli) -> Result<Config, String> {
    redis_cluster_proxy::reload::load(cli.config.as_deref(), &cli.overrides)
}

fn log_open_files_limit(cfg: &Config) {
    match raise_open_files_limit() {
        Some(n) => {
            // The listener, the poll instance, the log, and two connections per node.
            let reserve = 16 + 4 * cfg.redis_nodes.len().max(6) as u64;
            let fit = n.saturating_sub(reserve);
            info!("open files limit {n}: about {fit} clients fit");
            if (cfg.max_clients as u64) > fit {
                log::warn!(
                    "max_clients ({}) is above what the open files limit allows (about {fit}); raise it with ulimit -n",
                    cfg.max_clients
                );
            }
        }
        None => log::warn!("the open files limit could not be read"),
    }
}

/// The cluster's slot map and Redis version from the seeds, and the commands it knows
/// beyond the built-in table.
/// How the proxy reaches the nodes: `backend_auth`'s credentials, `backend_tls`'s
/// configuration and the name it verifies.
type NodeAccess = (Option<NodeCredentials>, Option<Arc<rustls::ClientConfig>>);

fn node_access(cfg: &Config) -> Result<NodeAccess, String> {
    let creds = cfg
        .backend_auth
        .as_ref()
        .and_then(|a| NodeCredentials::new(a.user.as_deref(), a.resolved.as_ref()?));
    let tls = match &cfg.backend_tls {
        Some(t) => Some(redis_cluster_proxy::conn::tls::client_config(t)?),
        None => None,
    };
    Ok((creds, tls))
}

/// `--check --connect`: every seed asked for the cluster as the proxy would at start
/// (authenticated, over TLS where configured); what each says, and whether any answered.
fn check_seeds(cfg: &Config) -> ExitCode {
    let (creds, tls) = match node_access(cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let name = cfg
        .backend_tls
        .as_ref()
        .and_then(|t| t.server_name.as_deref());
    let mut answered = 0;
    for seed in &cfg.redis_nodes {
        let one = std::slice::from_ref(seed);
        match discover(
            one,
            cfg.connect_timeout,
            creds.as_ref(),
            tls.as_ref().map(|c| (c, name)),
        ) {
            Ok(found) => {
                answered += 1;
                let mut topo = Topology::new();
                topo.apply(&found.ranges);
                let covered: usize = found
                    .ranges
                    .iter()
                    .map(|r| usize::from(r.end) - usize::from(r.start) + 1)
                    .sum();
                println!(
                    "seed {seed}: ok, Redis {}, {} masters, {} nodes, {covered} of 16384 slots served",
                    found.version,
                    topo.masters().count(),
                    topo.nodes().len()
                );
            }
            Err(e) => println!(
                "seed {seed}: {}",
                e.trim_start_matches("no Redis Cluster node answered; tried ")
            ),
        }
    }
    if answered == 0 {
        eprintln!("error: no seed answered");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn first_topology(cfg: &Config) -> Result<(Topology, String), String> {
    let (creds, tls) = node_access(cfg)?;
    let name = cfg
        .backend_tls
        .as_ref()
        .and_then(|t| t.server_name.as_deref());
    let found = discover(
        &cfg.redis_nodes,
        cfg.connect_timeout,
        creds.as_ref(),
        tls.as_ref().map(|c| (c, name)),
    )?;
    let learned = redis_cluster_proxy::command::learn(&found.commands);
    match &found.commands {
        redis_cluster_proxy::resp::value::Value::Array(all) => info!(
            "the cluster knows {} commands; {learned} of them learned (not in the built-in table of Redis {})",
            all.len(),
            redis_cluster_proxy::command::GENERATED_FROM
        ),
        _ => log::warn!("the cluster's COMMAND reply could not be read; using the built-in table"),
    }
    let mut topo = Topology::new();
    topo.apply(&found.ranges);
    info!(
        "cluster discovered from {}: {} masters, {} nodes, Redis {}",
        found.from,
        topo.masters().count(),
        topo.nodes().len(),
        found.version
    );
    let version = found.version.clone();
    drop(found);
    give_back_startup_memory();
    Ok((topo, version))
}

/// One reactor per worker, each listening on the port, joined into a crew when there are
/// several.
fn start_reactors(
    cfg: &Config,
    topo: &Topology,
    version: &str,
) -> Result<(Vec<Reactor>, Option<Wakers>), String> {
    let workers = cfg.workers;
    let totals = Arc::new(Totals::new(workers));
    let mut reactors = Vec::with_capacity(workers);
    for w in 0..workers {
        let r = Reactor::new(
            cfg.clone(),
            topo.clone(),
            version.to_string(),
            w,
            Arc::clone(&totals),
        )
        .map_err(|e| e.to_string())?;
        reactors.push(r);
    }
    if workers == 1 {
        return Ok((reactors, None));
    }
    let registries: Vec<&mio::Registry> = reactors.iter().map(Reactor::registry).collect();
    let (crews, wakers) = Crew::build(&registries)
        .map_err(|e| format!("cannot connect the workers to one another: {e}"))?;
    for (r, crew) in reactors.iter_mut().zip(crews) {
        r.join(crew);
    }
    Ok((reactors, Some(wakers)))
}

/// Runs the workers until the first stops. Workers share nothing; the first one to stop (a
/// stop signal, PROXY SHUTDOWN, or a failed event loop) ends the process.
fn run_workers(mut reactors: Vec<Reactor>, wakers: Option<Wakers>) -> std::io::Result<()> {
    let workers = reactors.len();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let mut first = reactors.remove(0);
    for (i, mut r) in reactors.into_iter().enumerate() {
        let tx = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("worker-{}", i + 1))
            .spawn(move || {
                let _ = tx.send(r.run());
            })
            .map_err(|e| std::io::Error::other(format!("cannot start worker {}: {e}", i + 1)))?;
    }
    if workers == 1 {
        return first.run();
    }
    std::thread::spawn(move || {
        let _ = done_tx.send(first.run());
    });
    // The main thread may be the one a stop signal interrupts: it checks every 50 ms and
    // wakes the workers, which would otherwise see it on their next idle wakeup (1 s).
    let mut passed_on = false;
    let mut reloads = redis_cluster_proxy::signals::reload_generation();
    let first = loop {
        match done_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => break r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // A reload (SIGHUP) taken by this thread: the workers are woken for it.
                let now = redis_cluster_proxy::signals::reload_generation();
                if now != reloads {
                    reloads = now;
                    if let Some(w) = &wakers {
                        w.wake_all();
                    }
                }
                if !passed_on && redis_cluster_proxy::signals::requested().is_some() {
                    if let Some(w) = &wakers {
                        w.wake_all();
                    }
                    passed_on = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(std::io::Error::other("all workers ended"))
            }
        }
    };
    // A stop signal: every worker drains (each sees it within a second, then waits up
    // to two for its replies), so the others get that long to finish theirs.
    if first.is_ok() && redis_cluster_proxy::signals::requested().is_some() {
        for _ in 1..workers {
            if done_rx.recv_timeout(Duration::from_secs(5)).is_err() {
                break;
            }
        }
    }
    first
}
