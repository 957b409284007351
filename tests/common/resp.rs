//! A small, independent RESP2/RESP3 reader and a raw TCP client built on it.
//!
//! Deliberately written here rather than borrowed from the proxy crate or from redis-rs: the
//! tests must judge the bytes the proxy actually sends, with a parser that shares no code (and
//! no bugs) with the thing under test.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One reply as it arrived on the wire. RESP2 and RESP3 types are kept distinct so a test can
/// tell a RESP3 map (`%`) from a RESP2 flat array (`*`).
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    /// `+...`
    Simple(String),
    /// `-...` (the text after the dash, e.g. "MOVED 3999 127.0.0.1:7001")
    Error(String),
    /// `:...`
    Int(i64),
    /// `$n` with n >= 0
    Bulk(Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*n` with n >= 0
    Array(Vec<Resp>),
    /// `*-1`
    NullArray,
    /// RESP3 `%`
    Map(Vec<(Resp, Resp)>),
    /// RESP3 `~`
    Set(Vec<Resp>),
    /// RESP3 `>`
    Push(Vec<Resp>),
    /// RESP3 `_`
    Null,
    /// RESP3 `#`
    Bool(bool),
    /// RESP3 `,` (kept as text)
    Double(String),
    /// RESP3 `(` (kept as text)
    BigNumber(String),
    /// RESP3 `=`: format ("txt") and payload
    Verbatim(String, Vec<u8>),
    /// RESP3 `!`
    BlobError(Vec<u8>),
}

impl Resp {
    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_) | Resp::BlobError(_))
    }

    /// The error text (without the leading '-'), if this is an error.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Resp::Error(s) => Some(s.clone()),
            Resp::BlobError(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Text of a simple string, bulk string or verbatim string.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(b) | Resp::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The RESP type byte this reply was introduced with.
    pub fn type_char(&self) -> char {
        match self {
            Resp::Simple(_) => '+',
            Resp::Error(_) => '-',
            Resp::Int(_) => ':',
            Resp::Bulk(_) | Resp::NullBulk => '$',
            Resp::Array(_) | Resp::NullArray => '*',
            Resp::Map(_) => '%',
            Resp::Set(_) => '~',
            Resp::Push(_) => '>',
            Resp::Null => '_',
            Resp::Bool(_) => '#',
            Resp::Double(_) => ',',
            Resp::BigNumber(_) => '(',
            Resp::Verbatim(..) => '=',
            Resp::BlobError(_) => '!',
        }
    }

    /// Looks a key up in a RESP3 map or in a RESP2 flat key/value array.
    pub fn lookup(&self, key: &str) -> Option<&Resp> {
        match self {
            Resp::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.text().as_deref() == Some(key))
                .map(|(_, v)| v),
            Resp::Array(items) => items
                .chunks(2)
                .find(|c| c.len() == 2 && c[0].text().as_deref() == Some(key))
                .map(|c| &c[1]),
            _ => None,
        }
    }
}

/// Why the bytes could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RespError(pub String);

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    if buf.len() < 2 {
        return None;
    }
    (from..buf.len() - 1).find(|&i| buf[i] == b'\r' && buf[i + 1] == b'\n')
}

fn parse_int(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| RespError(format!("bad integer {:?}", String::from_utf8_lossy(line))))
}

/// Parses one complete reply at the start of `buf`.
/// `Ok(None)`: more bytes are needed. `Ok(Some((reply, consumed)))`: one reply.
pub fn parse_resp(buf: &[u8]) -> Result<Option<(Resp, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], start: usize) -> Result<Option<(Resp, usize)>, RespError> {
    if start >= buf.len() {
        return Ok(None);
    }
    let Some(eol) = find_crlf(buf, start + 1) else {
        return Ok(None);
    };
    let line = &buf[start + 1..eol];
    let after = eol + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let r = match buf[start] {
        b'+' => (Resp::Simple(text()), after),
        b'-' => (Resp::Error(text()), after),
        b':' => (Resp::Int(parse_int(line)?), after),
        b',' => (Resp::Double(text()), after),
        b'(' => (Resp::BigNumber(text()), after),
        b'_' => (Resp::Null, after),
        b'#' => match line {
            b"t" => (Resp::Bool(true), after),
            b"f" => (Resp::Bool(false), after),
            _ => return Err(RespError(format!("bad boolean {:?}", text()))),
        },
        t @ (b'$' | b'=' | b'!') => {
            let n = parse_int(line)?;
            if n < 0 {
                if t == b'$' && n == -1 {
                    return Ok(Some((Resp::NullBulk, after)));
                }
                return Err(RespError(format!("bad blob length {n}")));
            }
            let n = n as usize;
            if buf.len() < after + n + 2 {
                return Ok(None);
            }
            if &buf[after + n..after + n + 2] != b"\r\n" {
                return Err(RespError("blob not terminated by CRLF".into()));
            }
            let data = buf[after..after + n].to_vec();
            let v = match t {
                b'$' => Resp::Bulk(data),
                b'!' => Resp::BlobError(data),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(RespError("bad verbatim string".into()));
                    }
                    Resp::Verbatim(
                        String::from_utf8_lossy(&data[..3]).into_owned(),
                        data[4..].to_vec(),
                    )
                }
            };
            (v, after + n + 2)
        }
        t @ (b'*' | b'~' | b'>' | b'%' | b'|') => {
            let n = parse_int(line)?;
            if n < 0 {
                if t == b'*' && n == -1 {
                    return Ok(Some((Resp::NullArray, after)));
                }
                return Err(RespError(format!("bad aggregate length {n}")));
            }
            let count = if t == b'%' || t == b'|' {
                n as usize * 2
            } else {
                n as usize
            };
            let mut items = Vec::with_capacity(count.min(1 << 16));
            let mut pos = after;
            for _ in 0..count {
                match parse_at(buf, pos)? {
                    None => return Ok(None),
                    Some((v, next)) => {
                        items.push(v);
                        pos = next;
                    }
                }
            }
            let pairs = |items: Vec<Resp>| {
                let mut out = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((k, v));
                }
                out
            };
            match t {
                b'*' => (Resp::Array(items), pos),
                b'~' => (Resp::Set(items), pos),
                b'>' => (Resp::Push(items), pos),
                b'%' => (Resp::Map(pairs(items)), pos),
                _ => {
                    // An attribute is metadata about the reply that follows: skip it.
                    return parse_at(buf, pos);
                }
            }
        }
        other => {
            return Err(RespError(format!(
                "unknown RESP type byte {:?} in {:?}",
                other as char,
                String::from_utf8_lossy(&buf[start..buf.len().min(start + 64)])
            )))
        }
    };
    Ok(Some(r))
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_cmd<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What a read on a raw connection ended with, when it did not yield a reply.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed the connection (read returned 0); `pending` holds unparsed bytes.
    Eof {
        pending: Vec<u8>,
    },
    /// Nothing complete arrived within the time allowed.
    Timeout {
        pending: Vec<u8>,
    },
    /// The bytes were not valid RESP.
    Garbage(RespError, Vec<u8>),
    Io(io::Error),
}

/// A plain TCP client speaking RESP by hand: write arbitrary bytes, read replies one by one.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Proxy log to quote when a read fails (set by `Proxy::raw`).
    pub log: Option<PathBuf>,
    pub label: String,
}

impl RawClient {
    pub fn connect(port: u16, timeout: Duration) -> io::Result<RawClient> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            buf: Vec::new(),
            log: None,
            label: format!("127.0.0.1:{port}"),
        })
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
        self.stream.set_write_timeout(Some(t)).unwrap();
    }

    /// Writes raw bytes (one write_all).
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            self.fail(&format!("write of {} bytes failed: {e}", bytes.len()));
        }
    }

    /// Sends one command encoded as a RESP array of bulk strings.
    #[track_caller]
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let b = encode_cmd(args);
        self.send(&b);
    }

    /// Sends one command and reads its reply (panics, quoting the proxy log, on failure).
    #[track_caller]
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.send_cmd(args);
        self.reply()
    }

    /// Reads one reply or reports how the read ended.
    pub fn read_reply(&mut self) -> Result<Resp, ReadEnd> {
        loop {
            match parse_resp(&self.buf) {
                Ok(Some((v, used))) => {
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadEnd::Garbage(e, self.buf.clone())),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ReadEnd::Eof {
                        pending: self.buf.clone(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(ReadEnd::Timeout {
                        pending: self.buf.clone(),
                    })
                }
                Err(e) => return Err(ReadEnd::Io(e)),
            }
        }
    }

    /// Reads one reply; panics with context (and the proxy log tail) when none arrives.
    #[track_caller]
    pub fn reply(&mut self) -> Resp {
        match self.read_reply() {
            Ok(v) => v,
            Err(e) => self.fail(&format!("no reply: {}", describe_end(&e))),
        }
    }

    /// Waits (bounded by the socket timeout) for the peer to close the connection.
    /// Ok(()) on EOF (or a reset, which is how a close with unread input can look);
    /// Err(description) when more data or nothing arrived.
    pub fn wait_eof(&mut self) -> Result<(), String> {
        match self.read_reply() {
            Ok(v) => Err(format!("expected EOF, got another reply {v:?}")),
            Err(ReadEnd::Eof { pending }) if pending.is_empty() => Ok(()),
            Err(ReadEnd::Io(e))
                if e.kind() == io::ErrorKind::ConnectionReset && self.buf.is_empty() =>
            {
                Ok(())
            }
            Err(e) => Err(format!("expected EOF: {}", describe_end(&e))),
        }
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let tail = self
            .log
            .as_ref()
            .map(|p| log_tail(p, 40))
            .unwrap_or_default();
        panic!(
            "raw client {}: {what}\n--- proxy log tail ---\n{tail}",
            self.label
        )
    }
}

pub fn describe_end(e: &ReadEnd) -> String {
    match e {
        ReadEnd::Eof { pending } => {
            format!(
                "EOF (unparsed: {:?})",
                String::from_utf8_lossy(&pending[..pending.len().min(200)])
            )
        }
        ReadEnd::Timeout { pending } => format!(
            "timed out (unparsed: {:?})",
            String::from_utf8_lossy(&pending[..pending.len().min(200)])
        ),
        ReadEnd::Garbage(err, b) => format!(
            "unparsable reply ({}) in {:?}",
            err.0,
            String::from_utf8_lossy(&b[..b.len().min(200)])
        ),
        ReadEnd::Io(e) => format!("I/O error {e}"),
    }
}

/// The last `n` lines of a text file (lossy), or a note that it could not be read.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Polls `f` until it returns Some or the deadline passes; None on timeout.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
