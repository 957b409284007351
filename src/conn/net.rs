//! The one boundary for socket results (reads and writes collapse into a small verdict), and
//! the socket options from the configuration, applied with socket2.

use std::io::{self, Read};
use std::net::SocketAddr;

use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

use crate::config::SocketOptions;

#[derive(Debug)]
pub enum ReadOutcome {
    /// The socket has nothing more for now (or the budget is spent: `more` says which).
    Drained {
        more: bool,
    },
    /// The peer closed its side; what was read before stays in the buffer.
    Closed,
    Failed(io::Error),
}

/// Free room in a connection's buffer worth reading into directly rather than through the
/// scratch buffer.
const DIRECT_MIN: usize = 16 * 1024;
/// A buffer that receives through the scratch buffer reserves at least this much, so the
/// next read can go straight into it.
const FIRST_RESERVE: usize = 8 * 1024;

/// Reads until the socket would block, the peer closes, or `budget` bytes were read this
/// turn (fairness: one busy peer cannot starve the others).
///
/// A connection without a buffer (an idle one holds none) reads through the shared scratch
/// buffer and keeps a copy of what arrived; one with room in its buffer reads straight into
/// it. A buffer filled while more may come doubles, so a large frame is copied about once
/// in all (by reallocation) instead of once per read, and no buffer is ever zero-filled.
///
/// `stop_short`: a read that returned less than asked means the socket was empty then, and
/// on Linux any byte arriving later raises a new edge: the read that would only say
/// `WouldBlock` is skipped (one syscall less per request). Not when the peer may have closed
/// (its FIN would then go unnoticed), nor elsewhere than Linux.
pub fn read_via(
    stream: &mut TcpStream,
    scratch: &mut [u8],
    buf: &mut BytesMut,
    budget: usize,
    stop_short: bool,
) -> ReadOutcome {
    let stop_short = stop_short && cfg!(target_os = "linux");
    let mut total = 0;
    // The last read took all it was offered: more is likely waiting.
    let mut filled = false;
    loop {
        if total >= budget {
            return ReadOutcome::Drained { more: true };
        }
        let mut room = buf.capacity() - buf.len();
        if filled && room < DIRECT_MIN {
            // Mid-way through more than one read holds: grow the buffer and read on into it.
            buf.reserve(buf.capacity().max(FIRST_RESERVE));
            room = buf.capacity() - buf.len();
        }
        let direct = room >= DIRECT_MIN;
        let asked = if direct {
            room.min(budget - total)
        } else {
            scratch.len()
        };
        let res = if direct {
            recv_into_spare(stream, buf, asked)
        } else {
            stream.read(scratch)
        };
        match res {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => {
                if !direct {
                    buf.reserve(n.max(FIRST_RESERVE));
                    buf.extend_from_slice(&scratch[..n]);
                }
                total += n;
                filled = n == asked;
                if stop_short && !filled {
                    return ReadOutcome::Drained { more: false };
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => return ReadOutcome::Drained { more: false },
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                    return ReadOutcome::Closed
                }
                _ => return ReadOutcome::Failed(e),
            },
        }
    }
}

/// One `recv` into the buffer's free room (at most `max` bytes), which then holds them.
fn recv_into_spare(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len());
    let n = SockRef::from(stream).recv(&mut spare[..max])?;
    // SAFETY: `recv` initialized the first `n` bytes of the spare room it was given, and
    // `n <= max <= spare.len()`, so the new length is within the capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[derive(Debug)]
pub enum WriteOutcome {
    /// Everything was written.
    Done,
    /// The socket buffer is full; the rest waits for a writable event.
    Blocked,
    Failed(io::Error),
}

/// An error that names the address it could not listen on.
pub fn listen_error(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// The listening socket, with backlog, SO_REUSEADDR, optional SO_REUSEPORT and buffer sizes.
pub fn listen(addr: SocketAddr, opts: &SocketOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    apply_buffers(&SockRef::from(&socket), opts)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Options for an accepted client socket or a backend socket.
pub fn apply_stream_options(stream: &TcpStream, opts: &SocketOptions) -> io::Result<()> {
    let s = SockRef::from(stream);
    s.set_nodelay(opts.tcp_nodelay)?;
    if !opts.tcp_keepalive.is_zero() {
        s.set_tcp_keepalive(&TcpKeepalive::new().with_time(opts.tcp_keepalive))?;
    }
    apply_buffers(&s, opts)
}

fn apply_buffers(s: &SockRef<'_>, opts: &SocketOptions) -> io::Result<()> {
    if let Some(n) = opts.send_buffer {
        s.set_send_buffer_size(n)?;
    }
    if let Some(n) = opts.recv_buffer {
        s.set_recv_buffer_size(n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Whatever mix of scratch reads, direct reads and growth a stream takes, the buffer
    /// ends up with exactly the bytes sent, in order.
    #[test]
    fn read_via_keeps_every_byte_through_scratch_and_direct_reads() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (rx, _) = l.accept().unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut rx = TcpStream::from_std(rx);
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                for part in sent.chunks(7_000) {
                    tx.write_all(part).unwrap();
                }
            })
        };
        let mut scratch = vec![0u8; 64 * 1024];
        let mut buf = BytesMut::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "stream not read in time"
            );
            match read_via(&mut rx, &mut scratch, &mut buf, 100_000, true) {
                ReadOutcome::Closed => break,
                ReadOutcome::Failed(e) => panic!("read failed: {e}"),
                ReadOutcome::Drained { .. } => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
            }
        }
        writer.join().unwrap();
        assert_eq!(buf.len(), sent.len());
        assert!(buf[..] == sent[..], "bytes differ");
    }
}
