//! CLIENT PAUSE / UNPAUSE, done by the proxy: the masters are never paused (that would
//! stall the shared node connections behind the first write, for every client, reads
//! included). Instead every worker stops taking the affected commands of its clients until
//! the pause ends, and takes them again in order; replies already due still flow.
//!
//! ```text
//!   none --CLIENT PAUSE ms [WRITE|ALL]--> paused until now+ms (a longer or stricter pause
//!       already in force is kept, as Redis does)
//!   paused --deadline / CLIENT UNPAUSE--> none
//!   a client's next command, while paused and affected --> held (its input waits; what
//!       follows it waits behind it) --pause over--> taken again (checked every 10 ms)
//! ```
//!
//! WRITE affects what may change data or replicate, as Redis's WRITE pause does: writes,
//! and the `may_replicate` commands (EVAL, FCALL, PUBLISH, PFCOUNT, SCRIPT LOAD, WAIT, ...);
//! EXEC too (the proxy does not look into what a transaction queued). ALL affects every
//! command but CLIENT PAUSE/UNPAUSE themselves, so a paused proxy can always be resumed.
//! The pause is process-wide: one word shared by the workers, read once per command while
//! nothing is paused (a relaxed atomic load).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::command::{flag, Args, Command};
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::route::Routed;
use crate::timer::TimerKind;

/// How often a worker holding clients looks whether the pause ended (an UNPAUSE on
/// another worker is seen within this).
const RECHECK: Duration = Duration::from_millis(10);

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
    clients: Vec<ClientRef>,
    armed: bool,
}

impl Core {
    /// CLIENT PAUSE timeout [WRITE|ALL] / CLIENT UNPAUSE, with Redis's errors.
    pub(crate) fn client_pause(&mut self, c: &mut Client, args: &FrameArgs<'_>) {
        if args.arg(1).eq_ignore_ascii_case(b"UNPAUSE") {
            self.totals.pause.clear();
            self.arm_pause_check(self.now);
            return c.reply_now(b"+OK\r\n");
        }
        let refuse = |c: &mut Client, e: String| c.reply_now(&ProxyError::Redis(e).to_frame());
        if !(3..=4).contains(&args.argc()) {
            let sub = String::from_utf8_lossy(args.arg(1)).into_owned();
            return refuse(
                c,
                format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP."),
            );
        }
        let mode = match args.argc() {
            4 if args.arg(3).eq_ignore_ascii_case(b"WRITE") => Mode::Write,
            4 if !args.arg(3).eq_ignore_ascii_case(b"ALL") => {
                return refuse(c, "ERR CLIENT PAUSE mode must be WRITE or ALL".into())
            }
            _ => Mode::All,
        };
        let ms = match std::str::from_utf8(args.arg(2))
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            Some(ms) if ms < 0 => return refuse(c, "ERR timeout is negative".into()),
            Some(ms) => ms as u64,
            None => return refuse(c, "ERR timeout is not an integer or out of range".into()),
        };
        self.totals.pause.set(self.now, ms, mode);
        c.reply_now(b"+OK\r\n");
    }

    /// Whether the client's next command (`routed`) must wait for the pause to end: then
    /// it is held, its frame left unparsed in its buffer, and its input stops.
    pub(crate) fn pause_holds(&mut self, c: &mut Client, cref: ClientRef, routed: &Routed) -> bool {
        let Some((mode, _)) = self.totals.pause.current(self.now) else {
            return false;
        };
        if !affects(mode, routed.cmd) {
            return false;
        }
        // Inside MULTI a command is only queued; EXEC is what runs it.
        let queued = c.tx.as_ref().is_some_and(|t| t.multi);
        if queued && routed.cmd.is_none_or(|cmd| cmd.name != "EXEC") {
            return false;
        }
        c.pause_held = true;
        c.paused = true;
        self.pause_held.clients.push(cref);
        self.arm_pause_check(self.now + RECHECK);
        true
    }

    fn arm_pause_check(&mut self, at: Instant) {
        if !self.pause_held.armed && !self.pause_held.clients.is_empty() {
            self.pause_held.armed = true;
            self.timers.add(at, TimerKind::Pause);
        }
    }

    /// The pause check: while it lasts, again in a moment; once it is over, every held
    /// client takes input again, in the order they were held.
    pub(crate) fn pause_check(&mut self, clients: &mut Slab<Client>) {
        self.pause_held.armed = false;
        if self.totals.pause.current(self.now).is_some() {
            return self.arm_pause_check(self.now + RECHECK);
        }
        for cref in std::mem::take(&mut self.pause_held.clients) {
            let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
                continue;
            };
            c.pause_held = false;
            if c.paused && c.wants_input(&self.wake.limits) {
                c.paused = false;
                self.wake.resume_clients.push(cref.idx);
            }
        }
    }
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
