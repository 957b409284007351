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
    let mut redact = 0;
    for i in 0..args.argc() {
        if redact > 0 {
            // A password, as Redis shows it to a monitor.
            line.push_str(" \"(redacted)\"");
            redact -= 1;
            continue;
        }
        redact = secrets_after(args, i);
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

/// How many arguments after argument `i` are secrets: everything after AUTH, HELLO's
/// `AUTH user pass`, MIGRATE's `AUTH pass` and `AUTH2 user pass`.
fn secrets_after(args: &FrameArgs<'_>, i: usize) -> usize {
    let name = args.arg(0);
    let a = args.arg(i);
    if i == 0 && name.eq_ignore_ascii_case(b"AUTH") {
        return args.argc() - 1;
    }
    if i == 0 {
        return 0;
    }
    if name.eq_ignore_ascii_case(b"HELLO") && a.eq_ignore_ascii_case(b"AUTH") {
        return 2;
    }
    if name.eq_ignore_ascii_case(b"MIGRATE") {
        if a.eq_ignore_ascii_case(b"AUTH") {
            return 1;
        }
        if a.eq_ignore_ascii_case(b"AUTH2") {
            return 2;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[&str]) -> String {
        let frame: Vec<u8> = words.join(" ").into_bytes();
        let mut ranges = Vec::new();
        let mut at = 0;
        for w in words {
            ranges.push(at..at + w.len());
            at += w.len() + 1;
        }
        let args = FrameArgs {
            frame: &frame,
            ranges: &ranges,
        };
        let mut out = BytesMut::new();
        monitor_line(&mut out, "127.0.0.1:1".parse().unwrap(), &args);
        let s = String::from_utf8(out.to_vec()).unwrap();
        s.split_once(']').unwrap().1.trim_end().to_string()
    }

    #[test]
    fn passwords_are_redacted_as_redis_does() {
        assert_eq!(line(&["AUTH", "pw"]), r#" "AUTH" "(redacted)""#);
        assert_eq!(
            line(&["auth", "u", "pw"]),
            r#" "auth" "(redacted)" "(redacted)""#
        );
        assert_eq!(
            line(&["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "n"]),
            r#" "HELLO" "3" "AUTH" "(redacted)" "(redacted)" "SETNAME" "n""#
        );
        assert_eq!(
            line(&["MIGRATE", "h", "1", "", "0", "5", "AUTH2", "u", "pw", "KEYS", "k"]),
            r#" "MIGRATE" "h" "1" "" "0" "5" "AUTH2" "(redacted)" "(redacted)" "KEYS" "k""#
        );
        assert_eq!(line(&["SET", "auth", "x"]), r#" "SET" "auth" "x""#);
    }
}
