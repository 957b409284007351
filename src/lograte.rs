//! Repeated warnings about one node, rate-limited: a flapping node (connections refused,
//! reset, timing out, again and again) would otherwise fill the log with the same line.
//! Each node and kind of line gets `BURST` lines per `WINDOW`; past that the lines are
//! counted, and the next line logged says how many were left out. Errors only: nothing
//! here runs on the request path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Lines of one kind for one node logged per window before the rest are counted.
pub const BURST: u32 = 3;
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ConnectFailed,
    ConnectionLost,
    RefreshFailed,
    Reachable,
}

#[derive(Debug)]
struct Slot {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

#[derive(Debug, Default)]
pub struct Gate {
    slots: HashMap<(u16, Kind), Slot>,
}

impl Gate {
    /// Whether a line of `kind` about `node` is logged now; Some(n): yes, after `n` lines
    /// like it were left out (to be said in this one).
    pub fn admit(&mut self, node: u16, kind: Kind, now: Instant) -> Option<u64> {
        let slot = self.slots.entry((node, kind)).or_insert(Slot {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(slot.start) >= WINDOW {
            let left_out = slot.suppressed;
            *slot = Slot {
                start: now,
                logged: 1,
                suppressed: 0,
            };
            return Some(left_out);
        }
        if slot.logged < BURST {
            slot.logged += 1;
            return Some(0);
        }
        slot.suppressed += 1;
        None
    }
}

/// The tail of a line logged after others like it were left out.
pub fn left_out(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(
            " ({n} more like this for this node in the last {} s, not logged)",
            WINDOW.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_counted_then_said() {
        let mut g = Gate::default();
        let t = Instant::now();
        for _ in 0..BURST {
            assert_eq!(g.admit(1, Kind::ConnectionLost, t), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(g.admit(1, Kind::ConnectionLost, t), None);
        }
        // Another node, another kind: their own allowance.
        assert_eq!(g.admit(2, Kind::ConnectionLost, t), Some(0));
        assert_eq!(g.admit(1, Kind::ConnectFailed, t), Some(0));
        assert_eq!(g.admit(1, Kind::ConnectionLost, t + WINDOW), Some(5));
        assert_eq!(g.admit(1, Kind::ConnectionLost, t + WINDOW), Some(0));
        assert!(left_out(5).contains("5 more like this"));
        assert_eq!(left_out(0), "");
    }
}
