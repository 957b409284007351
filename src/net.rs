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

/// Reads until the socket would block, the peer closes, or `budget` bytes were read this
/// turn (fairness: one busy peer cannot starve the others). Reads go through a shared
/// scratch buffer and only what arrived is copied: no buffer is zero-filled ahead of a read,
/// and an idle connection holds no read buffer at all.
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
    loop {
        if total >= budget {
            return ReadOutcome::Drained { more: true };
        }
        match stream.read(scratch) {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => {
                // A few KB at least, so a client's buffer is allocated once and then reused
                // (reclaimed in place once the frames split off it are gone).
                buf.reserve(n.max(4096));
                buf.extend_from_slice(&scratch[..n]);
                total += n;
                if stop_short && n < scratch.len() {
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

#[derive(Debug)]
pub enum WriteOutcome {
    /// Everything was written.
    Done,
    /// The socket buffer is full; the rest waits for a writable event.
    Blocked,
    Failed(io::Error),
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
