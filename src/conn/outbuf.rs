//! A connection's unsent output. Small frames are copied together into one buffer, so many
//! replies leave in one write; frames of `ZERO_COPY_MIN` bytes or more are queued as the
//! `Bytes` they arrived in and written with `writev` beside it, so a 100 KB value crosses
//! the proxy without being copied in user space.
//!
//! A queued frame keeps alive the whole buffer it was split from (a node connection's read
//! buffer, up to a few hundred KB), which the output limits do not see. So when the socket
//! stops taking bytes, the frames queued behind the one being written are copied once into
//! buffers of their own, and that one too if the socket blocks on it again: a peer that
//! reads promptly costs no copy, a slow one holds little more than it is counted for.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes, BytesMut};

use crate::conn::net::WriteOutcome;

/// Below this a copy costs less than an extra `iovec` and keeps the write buffer reusable.
pub const ZERO_COPY_MIN: usize = 8 * 1024;
/// Slices per `writev`: enough for a burst of large frames, well under `IOV_MAX`.
const MAX_SLICES: usize = 32;

#[derive(Debug, Default)]
pub struct OutBuf {
    /// Written first, in order; `tail` follows them.
    /// Each with whether it is a copy of its own (see the module comment).
    chunks: VecDeque<(Bytes, bool)>,
    tail: BytesMut,
    len: usize,
    /// The first chunk was there, partly or not at all written, when the socket blocked.
    head_waited: bool,
}

impl OutBuf {
    pub fn new() -> OutBuf {
        OutBuf::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the copy buffer (what `shrink` gives back).
    pub fn capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Appends a copy of `b`.
    pub fn push_slice(&mut self, b: &[u8]) {
        self.tail.extend_from_slice(b);
        self.len += b.len();
    }

    /// Appends `b`, by reference when it is large.
    pub fn push(&mut self, b: &Bytes) {
        if b.len() < ZERO_COPY_MIN {
            return self.push_slice(b);
        }
        if !self.tail.is_empty() {
            // What was copied so far leaves before the large frame.
            self.chunks.push_back((self.tail.split().freeze(), true));
        }
        self.len += b.len();
        self.chunks.push_back((b.clone(), false));
    }

    /// Gives back a copy buffer larger than `keep` once everything was written (any buffer
    /// when `keep` is 0: a fully written one reports no capacity but still holds memory).
    pub fn shrink(&mut self, keep: usize) {
        if self.is_empty() && (keep == 0 || self.tail.capacity() > keep) {
            self.tail = BytesMut::new();
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 0 {
            self.chunks = VecDeque::new();
        }
    }

    /// Writes as much as the socket takes, consuming what was written.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> WriteOutcome {
        while !self.is_empty() {
            let res = if self.chunks.is_empty() {
                w.write(&self.tail)
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (c, _) in self.chunks.iter().take(MAX_SLICES - 1) {
                    slices[n] = IoSlice::new(c);
                    n += 1;
                }
                // The tail goes last, so only when every chunk is in this write.
                if self.chunks.len() < MAX_SLICES && !self.tail.is_empty() {
                    slices[n] = IoSlice::new(&self.tail);
                    n += 1;
                }
                w.write_vectored(&slices[..n])
            };
            match res {
                Ok(0) => return WriteOutcome::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.own_chunks();
                        return WriteOutcome::Blocked;
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => return WriteOutcome::Failed(e),
                },
            }
        }
        WriteOutcome::Done
    }

    /// Copies the queued frames that still share a larger buffer (see the module comment).
    /// The one being written is spared the first time: a large reply often fills the socket
    /// once on its way even to a client that reads promptly.
    fn own_chunks(&mut self) {
        let spare_head = !self.head_waited;
        self.head_waited = true;
        for (i, (c, owned)) in self.chunks.iter_mut().enumerate() {
            if !(*owned || (i == 0 && spare_head)) {
                *c = Bytes::copy_from_slice(c);
                *owned = true;
            }
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some((c, _)) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                    self.head_waited = false;
                }
                Some((c, _)) => {
                    c.advance(n);
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Everything unsent, in order (tests and diagnostics).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (c, _) in &self.chunks {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(&self.tail);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `max` bytes per call, and only from the first slice, like a socket
    /// with a nearly full buffer.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.max);
            self.out.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn order_is_kept_across_copies_and_chunks_and_partial_writes() {
        let big = |c: u8| Bytes::from(vec![c; ZERO_COPY_MIN + 7]);
        let mut o = OutBuf::new();
        let mut want = Vec::new();
        for (i, f) in [
            Bytes::from_static(b"+a\r\n"),
            big(b'x'),
            big(b'y'),
            Bytes::from_static(b"+b\r\n"),
            Bytes::from_static(b"+c\r\n"),
            big(b'z'),
        ]
        .iter()
        .enumerate()
        {
            if i == 4 {
                o.push_slice(f);
            } else {
                o.push(f);
            }
            want.extend_from_slice(f);
        }
        assert_eq!(o.len(), want.len());
        assert_eq!(o.to_vec(), want);
        let mut w = Trickle {
            out: Vec::new(),
            max: 5000,
            calls: 0,
        };
        for _ in 0..1000 {
            if let WriteOutcome::Done = o.write_to(&mut w) {
                break;
            }
        }
        assert!(o.is_empty());
        assert_eq!(w.out, want);
    }

    /// Takes everything offered in every slice, then blocks every few calls.
    struct Greedy {
        out: Vec<u8>,
        calls: usize,
    }

    impl Write for Greedy {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(b)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 4 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                self.out.extend_from_slice(b);
                n += b.len();
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// More large frames than one `writev` takes, with small ones between and after them:
    /// the small ones never jump ahead of large ones not yet written.
    #[test]
    fn more_chunks_than_one_writev_takes_keep_their_order() {
        let mut o = OutBuf::new();
        let mut want = Vec::new();
        for i in 0..(3 * MAX_SLICES as u8) {
            let big = Bytes::from(vec![i; ZERO_COPY_MIN + i as usize]);
            o.push(&big);
            want.extend_from_slice(&big);
            let small = format!("+{i}\r\n");
            o.push_slice(small.as_bytes());
            want.extend_from_slice(small.as_bytes());
        }
        o.push_slice(b"+end\r\n");
        want.extend_from_slice(b"+end\r\n");
        let mut w = Greedy {
            out: Vec::new(),
            calls: 0,
        };
        for _ in 0..100 {
            if let WriteOutcome::Done = o.write_to(&mut w) {
                break;
            }
        }
        assert!(o.is_empty());
        assert!(w.out == want, "bytes out of order");
    }

    /// Never takes a byte.
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Once the socket blocks, queued frames stop sharing the buffer they came from; the one
    /// being written only when the socket blocks on it a second time.
    #[test]
    fn queued_frames_are_copied_when_the_socket_blocks() {
        let shared = Bytes::from(vec![7u8; 4 * ZERO_COPY_MIN]);
        let base = shared.as_ptr() as usize..shared.as_ptr() as usize + shared.len();
        let mut o = OutBuf::new();
        o.push(&shared.slice(..ZERO_COPY_MIN));
        o.push(&shared.slice(ZERO_COPY_MIN..2 * ZERO_COPY_MIN));
        let shares = |o: &OutBuf| -> Vec<bool> {
            o.chunks
                .iter()
                .map(|(c, _)| base.contains(&(c.as_ptr() as usize)))
                .collect()
        };
        assert_eq!(shares(&o), [true, true]);
        assert!(matches!(o.write_to(&mut Stuck), WriteOutcome::Blocked));
        assert_eq!(shares(&o), [true, false]);
        assert!(matches!(o.write_to(&mut Stuck), WriteOutcome::Blocked));
        assert_eq!(shares(&o), [false, false]);
        assert_eq!(o.to_vec(), vec![7u8; 2 * ZERO_COPY_MIN]);
    }

    #[test]
    fn small_frames_are_copied_and_large_ones_shared() {
        let mut o = OutBuf::new();
        let big = Bytes::from(vec![1u8; ZERO_COPY_MIN]);
        o.push(&Bytes::from_static(b"+OK\r\n"));
        o.push(&big);
        assert_eq!(o.chunks.len(), 2);
        assert_eq!(o.chunks[1].0.as_ptr(), big.as_ptr());
        o.push(&Bytes::from_static(b"+OK\r\n"));
        assert_eq!(o.tail.len(), 5);
        o.shrink(0);
        assert_eq!(o.len(), ZERO_COPY_MIN + 10);
    }
}
