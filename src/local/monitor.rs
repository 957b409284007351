//! MONITOR: each dispatched request's line, fed once per turn to this worker's monitors and
//! to the workers that have some.

use crate::command::Args;
use crate::input::FrameArgs;
use crate::reactor::{Kill, Reactor};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;

impl Reactor {
    /// Appends this turn's MONITOR lines to every monitor's output, here and, when another
    /// worker has monitors, there.
    pub(crate) fn feed_monitors(&mut self) {
        if self.core.monitor_feed.is_empty() {
            return;
        }
        let feed = self.core.monitor_feed.split().freeze();
        if self.core.monitor_elsewhere {
            if let Some(crew) = &self.crew {
                crew.broadcast_monitor(&feed, |w| self.core.totals.has_monitors(w));
            }
        }
        self.feed_local_monitors(&feed);
    }

    pub(crate) fn feed_local_monitors(&mut self, feed: &Bytes) {
        if self.core.monitors.is_empty() {
            return;
        }
        let mut monitors = std::mem::take(&mut self.core.monitors);
        monitors.retain(|m| {
            let Some(c) = self.clients.get_mut(m.idx).filter(|c| c.gen == m.gen) else {
                // close_client takes monitors out; should one be missed, the count follows.
                self.core.totals.monitor_ended(self.core.worker);
                return false;
            };
            c.reply_now(feed);
            if c.output_len() > self.core.wake.limits.hard_output {
                self.core.wake.kill.push((*m, Kill::OutputLimit));
            }
            true
        });
        for m in &monitors {
            self.core.mark_client(&mut self.clients, m.idx);
        }
        self.core.monitors = monitors;
    }
}

/// A MONITOR line: `+<secs>.<micros> [0 <addr>] "arg" ...`, arguments quoted as Redis does.
pub(crate) fn monitor_line(out: &mut BytesMut, addr: SocketAddr, args: &FrameArgs<'_>) {
    use std::fmt::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!("+{}.{:06} [0 {addr}]", now.as_secs(), now.subsec_micros());
    for i in 0..args.argc() {
        line.push_str(" \"");
        for &b in args.arg(i) {
            match b {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                7 => line.push_str("\\a"),
                8 => line.push_str("\\b"),
                b if b.is_ascii_graphic() || b == b' ' => line.push(b as char),
                b => {
                    let _ = write!(line, "\\x{b:02x}");
                }
            }
        }
        line.push('"');
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}
