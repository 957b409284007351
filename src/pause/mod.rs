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

use std::time::{Duration, Instant};

use slab::Slab;

use crate::command::Args;
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::ClientRef;
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::route::Routed;
use crate::timer::TimerKind;

pub(crate) mod word;

use word::{affects, Mode};

/// How often a worker holding clients looks whether the pause ended (an UNPAUSE on
/// another worker is seen within this).
const RECHECK: Duration = Duration::from_millis(10);

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
