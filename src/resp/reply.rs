//! The node reply parser: finds where one complete reply ends, for every RESP2 and RESP3
//! type, nested to any depth without recursion, and recognises the cluster redirections.
//!
//! ```text
//!   element: type byte + line --simple/null--> done
//!                             --bulk $n------> skip n+2 bytes --> done
//!                             --aggregate n--> push n on the stack
//!   done: pop finished aggregates; empty stack --> reply complete
//! ```

use super::{find_crlf, parse_int, ParseError, MAX_BULK_LEN};

/// Longest header line (lengths, numbers) accepted in a reply.
const MAX_HEADER_LINE: usize = 64 * 1024;
/// Longest simple-type line (status, error, number): a script can return one of any size
/// (`redis.status_reply(string.rep('a', 2000000))`), so as long as a bulk string.
const MAX_STATUS_LINE: usize = super::MAX_BULK_LEN as usize;

#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Offset of the next element to read in the reply at the front of the buffer.
    pos: usize,
    /// Elements still expected by each open aggregate, innermost last.
    stack: Vec<u64>,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the length of the complete reply at the front of `buf`, or None while more
    /// bytes are needed. After `Some(n)` the caller removes `n` bytes before calling again.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        loop {
            let Some(&tag) = buf.get(self.pos) else {
                return Ok(None);
            };
            // Simple types (a status, an error, a big number) may be as long as a script
            // makes them; lengths and counts never need more than a few digits.
            let limit = match tag {
                b'+' | b'-' | b':' | b'_' | b',' | b'(' | b'#' => MAX_STATUS_LINE,
                _ => MAX_HEADER_LINE,
            };
            // The same limit whether the line is complete or not, so the verdict does not
            // depend on how the bytes were cut into reads.
            let Some(cr) = find_crlf(buf, self.pos + 1) else {
                if buf.len() - self.pos > limit {
                    return Err(ParseError::BadReply("line too long"));
                }
                return Ok(None);
            };
            if cr - self.pos > limit {
                return Err(ParseError::BadReply("line too long"));
            }
            let line = &buf[self.pos + 1..cr];
            let after = cr + 2;
            match tag {
                b'+' | b'-' | b':' | b'_' | b',' | b'(' | b'#' => self.pos = after,
                b'$' | b'!' | b'=' => {
                    let n = parse_int(line).ok_or(ParseError::BadReply("bad bulk length"))?;
                    if n < 0 {
                        if tag != b'$' || n != -1 {
                            return Err(ParseError::BadReply("bad bulk length"));
                        }
                        self.pos = after;
                    } else {
                        if n > MAX_BULK_LEN * 2 {
                            return Err(ParseError::BadReply("bulk too long"));
                        }
                        let end = after + n as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(ParseError::BadReply("bulk not ended by CRLF"));
                        }
                        self.pos = end;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_int(line).ok_or(ParseError::BadReply("bad aggregate length"))?;
                    self.pos = after;
                    if n < 0 {
                        if tag != b'*' || n != -1 {
                            return Err(ParseError::BadReply("bad aggregate length"));
                        }
                    } else if n > 0 || tag == b'|' {
                        let n = n as u64;
                        // A map holds pairs; an attribute is a map followed by the value
                        // it describes, which belongs to the same reply.
                        let count = match tag {
                            b'%' => n * 2,
                            b'|' => n * 2 + 1,
                            _ => n,
                        };
                        self.stack.push(count);
                        continue;
                    }
                }
                _ => return Err(ParseError::BadReply("unknown type byte")),
            }
            // One element finished: close every aggregate it completes.
            loop {
                match self.stack.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(Some(len));
                    }
                    Some(top) => {
                        *top -= 1;
                        if *top > 0 {
                            break;
                        }
                        self.stack.pop();
                    }
                }
            }
        }
    }

    /// Forgets the progress, for a connection that starts over.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.stack.clear();
    }
}

/// A cluster redirection carried by an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect<'a> {
    Moved { slot: u16, addr: &'a str },
    Ask { slot: u16, addr: &'a str },
}

/// Classifies an error reply (the whole frame, `-...\r\n`) that the proxy acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    Redirect(Redirect<'a>),
    TryAgain,
    ClusterDown,
    /// EVALSHA of a script the node does not have.
    NoScript,
    Other,
}

pub fn classify_error(frame: &[u8]) -> ErrorKind<'_> {
    let line = frame
        .strip_prefix(b"-")
        .and_then(|f| f.strip_suffix(b"\r\n"))
        .unwrap_or(frame);
    if line.starts_with(b"TRYAGAIN") {
        return ErrorKind::TryAgain;
    }
    if line.starts_with(b"CLUSTERDOWN") {
        return ErrorKind::ClusterDown;
    }
    if line.starts_with(b"NOSCRIPT") {
        return ErrorKind::NoScript;
    }
    let moved = line.starts_with(b"MOVED ");
    if moved || line.starts_with(b"ASK ") {
        if let Some(r) = parse_redirect(line, moved) {
            return ErrorKind::Redirect(r);
        }
    }
    ErrorKind::Other
}

fn parse_redirect(line: &[u8], moved: bool) -> Option<Redirect<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    parts.next()?;
    let slot: u16 = parts.next()?.parse().ok()?;
    if slot as usize >= crate::slot::SLOTS {
        return None;
    }
    let addr = parts.next()?;
    if parts.next().is_some() || !addr.contains(':') {
        return None;
    }
    Some(if moved {
        Redirect::Moved { slot, addr }
    } else {
        Redirect::Ask { slot, addr }
    })
}

/// A bulk string reply's bytes: Some(None) for a null.
pub fn bulk(f: &[u8]) -> Option<Option<&[u8]>> {
    if f.starts_with(b"$-1\r\n") || f.starts_with(b"_\r\n") {
        return Some(None);
    }
    let rest = f.strip_prefix(b"$")?;
    let cr = rest.iter().position(|&b| b == b'\r')?;
    let n: usize = std::str::from_utf8(&rest[..cr]).ok()?.parse().ok()?;
    rest.get(cr + 2..cr + 2 + n).map(Some)
}

/// Elements of an aggregate reply as ranges of the frame (a map's keys and values
/// alternating), or None when the frame is not an aggregate.
pub fn elements(frame: &[u8]) -> Option<(u8, Vec<std::ops::Range<usize>>)> {
    let tag = *frame.first()?;
    if !matches!(tag, b'*' | b'~' | b'>' | b'%') {
        return None;
    }
    let cr = find_crlf(frame, 1)?;
    let n = parse_int(&frame[1..cr])?;
    let n = if tag == b'%' { n.checked_mul(2)? } else { n };
    let mut pos = cr + 2;
    let mut out = Vec::new();
    if n < 0 {
        return Some((tag, out));
    }
    for _ in 0..n {
        let len = ReplyParser::new().parse(&frame[pos..]).ok()??;
        out.push(pos..pos + len);
        pos += len;
    }
    Some((tag, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<Option<usize>, ParseError> {
        ReplyParser::new().parse(input)
    }

    #[test]
    fn complete_replies() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$3\r\nabc\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
            b"*2\r\n*1\r\n+a\r\n*0\r\n",
            b"%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n",
            b"~1\r\n_\r\n",
            b",1.5\r\n",
            b"#t\r\n",
            b"(123\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"!3\r\nerr\r\n",
            b">2\r\n+a\r\n+b\r\n",
            b"|1\r\n+k\r\n+v\r\n+real\r\n",
        ];
        for c in cases {
            assert_eq!(
                whole(c),
                Ok(Some(c.len())),
                "{}",
                String::from_utf8_lossy(c)
            );
            // Every strict prefix is incomplete, never an error.
            for cut in 0..c.len() {
                assert_eq!(whole(&c[..cut]), Ok(None), "{:?}", &c[..cut]);
            }
        }
    }

    #[test]
    fn only_first_reply_counts() {
        assert_eq!(whole(b"+OK\r\n+NEXT\r\n"), Ok(Some(5)));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut v = Vec::new();
        for _ in 0..100_000 {
            v.extend_from_slice(b"*1\r\n");
        }
        v.extend_from_slice(b":1\r\n");
        assert_eq!(whole(&v), Ok(Some(v.len())));
    }

    #[test]
    fn malformed() {
        assert!(whole(b"?x\r\n").is_err());
        assert!(whole(b"$abc\r\n").is_err());
        assert!(whole(b"$1\r\nab\r\n").is_err());
        assert!(whole(b"*-2\r\n").is_err());
    }

    #[test]
    fn redirects() {
        assert_eq!(
            classify_error(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            ErrorKind::Redirect(Redirect::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381"
            })
        );
        assert_eq!(
            classify_error(b"-ASK 1 :7000\r\n"),
            ErrorKind::Redirect(Redirect::Ask {
                slot: 1,
                addr: ":7000"
            })
        );
        assert_eq!(classify_error(b"-MOVED 99999 a:1\r\n"), ErrorKind::Other);
        assert_eq!(classify_error(b"-TRYAGAIN x\r\n"), ErrorKind::TryAgain);
        assert_eq!(
            classify_error(b"-CLUSTERDOWN The cluster is down\r\n"),
            ErrorKind::ClusterDown
        );
        assert_eq!(classify_error(b"-ERR x\r\n"), ErrorKind::Other);
    }
}
