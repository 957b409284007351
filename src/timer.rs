//! Deadlines: a heap of (when, what) with lazy cancellation. An entry whose owner moved on
//! (a closed connection, a newer refresh) is checked and ignored when it fires, so nothing
//! is ever removed from the middle of the heap. The poll timeout is the time to the nearest.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// Time for a topology refresh (periodic, or soon after a MOVED or a failure).
    Refresh,
    /// Check a backend's connect timeout or oldest request's reply timeout.
    Backend { idx: usize, gen: u64 },
    /// Re-send the requests parked after TRYAGAIN/CLUSTERDOWN whose time has come.
    Parked,
    /// Look through the hold queue (`hold.rs`).
    Hold,
    /// Look for clients idle past `client_timeout`.
    ClientSweep,
    /// Accept again: the listener's backlog may still hold connections (the last accept
    /// stopped at its budget or failed), and an edge-triggered poll will not say so again.
    Accept,
    /// A CLIENT LIST or KILL has waited long enough for the other workers.
    Gather { ticket: u64 },
    /// The fan-in connections' once-a-second check (`fanin/`).
    FanIn,
    /// Clients held by CLIENT PAUSE: is it over (`pause/`)?
    Pause,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    seq: u64,
}

impl Timers {
    pub fn add(&mut self, at: Instant, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, kind)));
    }

    /// Time until the nearest deadline, for the poll timeout.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// Pops one deadline that has passed.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKind> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, k))| k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.add(now + Duration::from_millis(50), TimerKind::Refresh);
        t.add(now + Duration::from_millis(10), TimerKind::Parked);
        assert!(t.timeout(now).unwrap() <= Duration::from_millis(10));
        assert_eq!(t.pop_due(now), None);
        let later = now + Duration::from_millis(60);
        assert_eq!(t.pop_due(later), Some(TimerKind::Parked));
        assert_eq!(t.pop_due(later), Some(TimerKind::Refresh));
        assert_eq!(t.pop_due(later), None);
    }
}
