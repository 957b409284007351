//! Replays every committed fuzz input, `fuzz/corpus/<target>/*` and
//! `fuzz/regressions/<target>/*`, through the same invariant checks the cargo-fuzz targets
//! run (`fuzz/src/checks.rs`), on stable Rust: `cargo test --test fuzz_corpus`.
//!
//! Each target's inputs run in a child process (this test binary again, selecting the
//! `child_replays_one_target` test) under a memory cap and a time limit, so an input that
//! makes a parser loop or allocate without bound fails the test, naming the input, instead
//! of eating the machine. The test fails when a corpus or regressions directory is missing
//! or empty, and when the child did not replay every input, so it cannot pass vacuously.
//!
//! The roundtrip target's inputs are decoded by `checks::roundtrip_items_from_bytes` here
//! (the fuzz target decodes them with `arbitrary`): the same check, other generated items.
//!
//! A failing input found by fuzzing goes to `fuzz/regressions/<target>/`; see fuzz/README.md.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGETS: [&str; 6] = [
    "request_parser",
    "reply_parser",
    "roundtrip",
    "cluster_slots",
    "config",
    "route",
];
/// Set in the child's environment to the target whose inputs it replays...
const CHILD_ENV: &str = "RCP_FUZZ_CORPUS_TARGET";
/// ...and to the index of the first input to replay.
const CHILD_FROM_ENV: &str = "RCP_FUZZ_CORPUS_FROM";
/// Address-space cap of a child: far above what the checks need (tens of MB).
const CHILD_MEMORY: u64 = 1 << 30;
/// Wall-clock limit of a child (debug build, shared machine): normally a few seconds.
const CHILD_TIME: Duration = Duration::from_secs(60);
const DONE_MARK: &str = "fuzz-corpus-replayed";
const STDERR_MARK: &str = "fuzz-corpus-input";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The inputs of a target, corpus first; panics when a directory is missing or empty.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!("{}: {e} (the fuzz inputs must be committed)", dir.display())
        });
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.is_file())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            !files.is_empty(),
            "{} holds no input: the replay would pass vacuously",
            dir.display()
        );
        files.sort();
        all.extend(files);
    }
    all
}

fn check(target: &str, data: &[u8]) {
    match target {
        "request_parser" => checks::check_request_stream(data),
        "reply_parser" => checks::check_reply_stream(data),
        "roundtrip" => checks::check_roundtrip(&checks::roundtrip_items_from_bytes(data)),
        "cluster_slots" => checks::check_cluster_slots(data),
        "config" => checks::check_config(&String::from_utf8_lossy(data)),
        "route" => checks::check_route_bytes(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// How one child run ended.
struct ChildRun {
    stdout: String,
    stderr: String,
    /// Exited by itself (with success or a test failure), not killed by a signal or the clock.
    finished: bool,
    timed_out: bool,
    status: String,
}

/// Replays the target's inputs from index `from` in a child process.
fn run_child(target: &str, from: usize) -> ChildRun {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args([
        "child_replays_one_target",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, target)
    .env(CHILD_FROM_ENV, from.to_string())
    .env("RUST_BACKTRACE", "0")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: CHILD_MEMORY as libc::rlim_t,
                    rlim_max: CHILD_MEMORY as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn the replay child");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().expect("wait for the replay child") {
            break (st, false);
        }
        if start.elapsed() > CHILD_TIME {
            let _ = child.kill();
            break (child.wait().expect("reap the replay child"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ChildRun {
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        finished: !timed_out && status.code().is_some(),
        timed_out,
        status: status.to_string(),
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs the target's inputs in child processes and fails with the list of failing inputs.
/// A child that dies (abort on the memory cap, a signal) or hangs is reported against the
/// input it was on, and a new child goes on with the next input.
fn replay(target: &str) {
    let files = inputs(target);
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut from = 0;
    loop {
        let run = run_child(target, from);
        for line in run.stdout.lines() {
            if let Some(f) = line.strip_prefix("FAILED ") {
                failures.push(f.to_string());
            }
        }
        if run.finished {
            let done = format!("{DONE_MARK} {target} {}", files.len());
            assert!(
                run.stdout.lines().any(|l| l == done),
                "{target}: the child did not report replaying all {} inputs ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                files.len(),
                run.status,
                tail(&run.stdout, 40),
                tail(&run.stderr, 40)
            );
            break;
        }
        // Killed: by the clock, or a signal (an abort when the memory cap was hit).
        let last = run
            .stdout
            .lines()
            .rev()
            // The first line also carries libtest's "test ... " prefix.
            .find_map(|l| l.find("replaying ").map(|i| &l[i + "replaying ".len()..]))
            .and_then(|l| l.split_once(' '))
            .map(|(i, p)| (i.parse::<usize>().expect("input index"), p.to_string()));
        let Some((index, path)) = last else {
            panic!(
                "{target}: the replay child died before its first input ({})\n{}",
                run.status,
                tail(&run.stderr, 40)
            );
        };
        let why = if run.timed_out {
            format!("did not finish in {CHILD_TIME:?} (a parser loops on it?)")
        } else {
            // What the child wrote to stderr while on that input.
            let marker = format!("{STDERR_MARK} {index}");
            let said: Vec<&str> = run
                .stderr
                .lines()
                .skip_while(|l| *l != marker)
                .skip(1)
                .filter(|l| !l.starts_with("note:") && *l != "stack backtrace:")
                .take(4)
                .collect();
            format!("killed the process ({}): {}", run.status, said.join(" | "))
        };
        failures.push(format!("{path}: {why}"));
        from = index + 1;
        if from >= files.len() {
            break;
        }
    }
    println!(
        "{target}: {} inputs replayed in {:?}",
        files.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs break an invariant:\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
}

/// The child side: replays one target's inputs (named by the environment) from the given
/// index, each under catch_unwind so every failing input is reported. Does nothing in a
/// normal run.
#[test]
fn child_replays_one_target() {
    let Ok(target) = std::env::var(CHILD_ENV) else {
        return;
    };
    let from: usize = std::env::var(CHILD_FROM_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let files = inputs(&target);
    for (i, f) in files.iter().enumerate().skip(from) {
        println!("replaying {i} {}", f.display());
        eprintln!("{STDERR_MARK} {i}");
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Err(e) = std::panic::catch_unwind(|| check(&target, &data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let msg: String = msg.chars().take(2000).collect();
            println!("FAILED {}: {}", f.display(), msg.replace('\n', " "));
        }
    }
    println!("{DONE_MARK} {target} {}", files.len());
}

#[test]
fn every_target_has_inputs_and_a_fuzz_target() {
    for t in TARGETS {
        assert!(!inputs(t).is_empty());
        let src = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
        assert!(src.is_file(), "{} missing", src.display());
    }
}

#[test]
fn request_parser() {
    replay("request_parser");
}

#[test]
fn reply_parser() {
    replay("reply_parser");
}

#[test]
fn roundtrip() {
    replay("roundtrip");
}

#[test]
fn cluster_slots() {
    replay("cluster_slots");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn route() {
    replay("route");
}
