//! CLIENT PAUSE's process-wide word and what a pause holds (`pause/mod.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::command::{flag, Command};
use crate::inflight::ClientRef;

/// What a pause holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Write = 1,
    All = 2,
}

/// The process's pause: the deadline (milliseconds since `origin`) and the mode, in one
/// word (mode in the low two bits), so a worker reads both at once.
pub struct Pause {
    origin: Instant,
    word: AtomicU64,
}

impl Default for Pause {
    fn default() -> Self {
        Pause {
            origin: Instant::now(),
            word: AtomicU64::new(0),
        }
    }
}

impl Pause {
    /// CLIENT PAUSE: until `now + ms`, keeping a later deadline or a stricter mode already
    /// in force.
    pub fn set(&self, now: Instant, ms: u64, mode: Mode) {
        let until = self.millis(now).saturating_add(ms).min(u64::MAX >> 2);
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (old_until, old_mode) = (w >> 2, w & 3);
                let live = old_mode != 0 && old_until > self.millis(now);
                let (u, m) = if live {
                    (old_until.max(until), old_mode.max(mode as u64))
                } else {
                    (until, mode as u64)
                };
                Some((u << 2) | m)
            });
    }

    /// CLIENT UNPAUSE.
    pub fn clear(&self) {
        self.word.store(0, Ordering::Release);
    }

    /// The pause in force at `now`, with its end.
    pub fn current(&self, now: Instant) -> Option<(Mode, Instant)> {
        let w = self.word.load(Ordering::Relaxed);
        if w == 0 {
            return None;
        }
        let until = w >> 2;
        if until <= self.millis(now) {
            return None;
        }
        let mode = if w & 3 == Mode::All as u64 {
            Mode::All
        } else {
            Mode::Write
        };
        Some((mode, self.origin + Duration::from_millis(until)))
    }

    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }
}

/// Held by a WRITE pause though not writes: Redis's `may_replicate` commands (which
/// COMMAND INFO does not show, so the table lacks the flag), WAIT/WAITAOF as Redis's
/// documentation lists them, and EXEC (see the module comment).
const MAY_REPLICATE: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "FCALL",
    "PUBLISH",
    "SPUBLISH",
    "PFCOUNT",
    "WAIT",
    "WAITAOF",
    "SCRIPT|LOAD",
    "SCRIPT|FLUSH",
    "EXEC",
];

/// Whether a pause in `mode` holds this command back (`None`: not in the table).
pub fn affects(mode: Mode, cmd: Option<&Command>) -> bool {
    let Some(cmd) = cmd else {
        return mode == Mode::All;
    };
    if cmd.name == "CLIENT|PAUSE" || cmd.name == "CLIENT|UNPAUSE" {
        return false;
    }
    match mode {
        Mode::All => true,
        Mode::Write => {
            cmd.flags & (flag::WRITE | flag::MAY_REPLICATE) != 0
                || MAY_REPLICATE.contains(&cmd.name)
        }
    }
}

/// A worker's clients held by a pause.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) clients: Vec<ClientRef>,
    pub(crate) armed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_keeps_the_longer_and_stricter_of_two() {
        let p = Pause::default();
        let t = Instant::now();
        assert_eq!(p.current(t), None);
        p.set(t, 1000, Mode::Write);
        let (m, until) = p.current(t).unwrap();
        assert_eq!(m, Mode::Write);
        assert!(until >= t + Duration::from_millis(999));
        // Shorter but stricter: ALL, with the first end.
        p.set(t, 10, Mode::All);
        let (m, until2) = p.current(t).unwrap();
        assert_eq!(m, Mode::All);
        assert_eq!(until2, until);
        assert_eq!(p.current(t + Duration::from_millis(1001)), None);
        // An expired pause does not lend its mode to the next.
        p.set(t + Duration::from_millis(2000), 100, Mode::Write);
        assert_eq!(
            p.current(t + Duration::from_millis(2000)).map(|x| x.0),
            Some(Mode::Write)
        );
        p.clear();
        assert_eq!(p.current(t + Duration::from_millis(2000)), None);
    }

    #[test]
    fn what_each_mode_holds() {
        let c = |n: &str| crate::command::lookup(&[n.as_bytes()][..]);
        for (name, write, all) in [
            ("GET", false, true),
            ("SET", true, true),
            ("PFCOUNT", true, true),
            ("PUBLISH", true, true),
            ("EVAL", true, true),
            ("EXEC", true, true),
            ("PING", false, true),
        ] {
            assert_eq!(affects(Mode::Write, c(name)), write, "{name} WRITE");
            assert_eq!(affects(Mode::All, c(name)), all, "{name} ALL");
        }
        let unpause = crate::command::lookup(&[&b"CLIENT"[..], b"UNPAUSE"][..]);
        assert!(!affects(Mode::All, unpause));
    }
}
