//! The I/O floor of any proxy: a server that reads each client's requests and answers every
//! one with `+OK`, without parsing more than the frame lengths and without talking to any
//! node, over the same edge-triggered mio loop, reads and writes as the proxy.
//!
//! What it costs per request is the least that a process serving redis-benchmark's clients
//! can spend on this machine, whatever it does behind them. Run beside the proxy, as the
//! peer of `scripts/bench.sh`, its CPU per request is the floor under the proxy's:
//!
//!     cargo build --release --example floor
//!     target/release/examples/floor 127.0.0.1:7700 &
//!     scripts/bench.sh --rounds 3 --peer 127.0.0.1:7700
use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// Length of the first complete multibulk frame in `buf`, if it is all there. Only frames
/// that redis-benchmark sends are understood: anything else ends the connection.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    fn line(buf: &[u8], at: usize, marker: u8) -> Result<Option<(usize, usize)>, ()> {
        let Some(rest) = buf.get(at..) else {
            return Ok(None);
        };
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > 32 { Err(()) } else { Ok(None) };
        };
        if rest[0] != marker || end < 2 || rest[end - 1] != b'\r' {
            return Err(());
        }
        let digits = std::str::from_utf8(&rest[1..end - 1]).map_err(|_| ())?;
        let n: usize = digits.parse().map_err(|_| ())?;
        Ok(Some((n, at + end + 1)))
    }
    let Some((args, mut at)) = line(buf, 0, b'*')? else {
        return Ok(None);
    };
    for _ in 0..args {
        let Some((len, start)) = line(buf, at, b'$')? else {
            return Ok(None);
        };
        at = start + len + 2;
        if at > buf.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

/// Reads what the client sent and queues one `+OK` per complete request; `false` when the
/// connection is over.
fn serve(c: &mut Conn, scratch: &mut [u8]) -> bool {
    loop {
        match c.sock.read(scratch) {
            Ok(0) => return false,
            Ok(n) => {
                c.input.extend_from_slice(&scratch[..n]);
                let mut used = 0;
                loop {
                    match frame_len(&c.input[used..]) {
                        Ok(Some(len)) => {
                            // PONG to PING, so that bench.sh takes it for a server.
                            let frame = &c.input[used..used + len];
                            let reply: &[u8] =
                                if frame.eq_ignore_ascii_case(b"*1\r\n$4\r\nPING\r\n") {
                                    b"+PONG\r\n"
                                } else {
                                    b"+OK\r\n"
                                };
                            c.output.extend_from_slice(reply);
                            used += len;
                        }
                        Ok(None) => break,
                        Err(()) => return false,
                    }
                }
                c.input.drain(..used);
                // As the proxy does: a short read emptied the socket, and edge-triggered
                // polling reports whatever arrives after it.
                if n < scratch.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// One write per connection per turn; what the socket does not take waits for writable.
fn flush(c: &mut Conn) -> bool {
    while !c.output.is_empty() {
        match c.sock.write(&c.output) {
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7700".into());
    let mut listener = TcpListener::bind(addr.parse().expect("HOST:PORT"))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut dirty = Vec::new();
    eprintln!("floor: answering +OK (PONG to PING) on {addr}");
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    sock.set_nodelay(true)?;
                    let entry = conns.vacant_entry();
                    let token = Token(entry.key());
                    poll.registry().register(
                        &mut sock,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        sock,
                        input: Vec::new(),
                        output: Vec::new(),
                    });
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let alive = if ev.is_readable() || ev.is_read_closed() {
                serve(c, &mut scratch)
            } else {
                true
            };
            if !alive {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.sock);
                continue;
            }
            dirty.push(key);
        }
        for key in dirty.drain(..) {
            if let Some(c) = conns.get_mut(key) {
                if !flush(c) {
                    let mut c = conns.remove(key);
                    let _ = poll.registry().deregister(&mut c.sock);
                }
            }
        }
    }
}
