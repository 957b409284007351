//! The client request parser: multibulk (`*N\r\n$len\r\narg\r\n...`) as every client library
//! sends, and inline commands (`SET k v\r\n`) as telnet and redis-cli's pipe mode send.
//!
//! ```text
//!   Idle --'*'--> Multibulk { remaining } --all args--> frame (original bytes)
//!     |
//!     +--other--> Inline: one line, split like sdssplitargs --> frame (re-encoded)
//! ```

use std::ops::Range;

use super::{find_crlf, parse_int, ParseError, MAX_BULK_LEN, MAX_INLINE_LEN, MAX_MULTIBULK_LEN};

/// What one complete request at the front of the buffer is.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A multibulk request of `len` bytes; its arguments are `args()`, offsets into those bytes.
    Multibulk { len: usize },
    /// An inline request of `consumed` bytes, re-encoded as multibulk in `encoded` (which the
    /// arguments from `args()` index) so nodes and the rest of the proxy see one form.
    Inline { consumed: usize, encoded: Vec<u8> },
    /// Bytes that carry no command (an empty line, `*0`, `*-1`): consume and ignore, as Redis.
    Empty { consumed: usize },
}

#[derive(Debug, Default)]
pub struct RequestParser {
    /// Progress inside the multibulk frame at the front of the buffer.
    state: State,
    args: Vec<Range<usize>>,
    /// Where the search for the current line's end resumes: bytes before it were already
    /// seen without one, so a header trickling in byte by byte is not rescanned each time.
    scanned: usize,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Idle,
    /// Header read; `pos` is where the next argument's `$` line starts.
    Multibulk { remaining: u64, pos: usize },
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The arguments of the frame returned by the last successful `parse`.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// Looks for one complete request at the front of `buf`. After `Ok(Some(_))` the caller
    /// must remove the frame's bytes from the front of its buffer before calling again; after
    /// `Ok(None)` it calls again with the same bytes plus more.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Frame>, ParseError> {
        if let State::Idle = self.state {
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            self.args.clear();
            if first != b'*' {
                return self.parse_inline(buf);
            }
            let Some(cr) = find_crlf(buf, self.scanned.max(1)) else {
                if buf.len() > MAX_INLINE_LEN {
                    return Err(ParseError::TooBigMbulkCount);
                }
                self.scanned = buf.len().saturating_sub(1);
                return Ok(None);
            };
            self.scanned = 0;
            if cr >= MAX_INLINE_LEN {
                return Err(ParseError::TooBigMbulkCount);
            }
            let n = parse_int(&buf[1..cr]).ok_or(ParseError::InvalidMultibulkLength)?;
            if n > MAX_MULTIBULK_LEN {
                return Err(ParseError::InvalidMultibulkLength);
            }
            if n <= 0 {
                return Ok(Some(Frame::Empty { consumed: cr + 2 }));
            }
            self.state = State::Multibulk {
                remaining: n as u64,
                pos: cr + 2,
            };
        }
        let State::Multibulk {
            mut remaining,
            mut pos,
        } = self.state
        else {
            return Ok(None);
        };
        while remaining > 0 {
            let Some(&tag) = buf.get(pos) else {
                break;
            };
            if tag != b'$' {
                self.state = State::Idle;
                return Err(ParseError::ExpectedDollar(tag));
            }
            let Some(cr) = find_crlf(buf, self.scanned.max(pos + 1)) else {
                if buf.len() - pos > MAX_INLINE_LEN {
                    self.state = State::Idle;
                    self.scanned = 0;
                    return Err(ParseError::TooBigBulkCount);
                }
                self.scanned = buf.len().saturating_sub(1);
                break;
            };
            self.scanned = 0;
            if cr - pos >= MAX_INLINE_LEN {
                self.state = State::Idle;
                return Err(ParseError::TooBigBulkCount);
            }
            let len = match parse_int(&buf[pos + 1..cr]) {
                Some(l) if (0..=MAX_BULK_LEN).contains(&l) => l as usize,
                _ => {
                    self.state = State::Idle;
                    return Err(ParseError::InvalidBulkLength);
                }
            };
            let start = cr + 2;
            // Redis skips the two bytes after the payload without looking at them; so do we,
            // so the node parses the forwarded bytes exactly as we did.
            let end = start + len;
            if buf.len() < end + 2 {
                break;
            }
            self.args.push(start..end);
            pos = end + 2;
            remaining -= 1;
        }
        if remaining > 0 {
            self.state = State::Multibulk { remaining, pos };
            return Ok(None);
        }
        self.state = State::Idle;
        Ok(Some(Frame::Multibulk { len: pos }))
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Frame>, ParseError> {
        let from = self.scanned.min(buf.len());
        let window = &buf[from..buf.len().min(MAX_INLINE_LEN + 1)];
        let Some(nl) = window.iter().position(|&b| b == b'\n').map(|i| i + from) else {
            if buf.len() > MAX_INLINE_LEN {
                self.scanned = 0;
                return Err(ParseError::TooBigInline);
            }
            self.scanned = buf.len();
            return Ok(None);
        };
        self.scanned = 0;
        let consumed = nl + 1;
        let line = match buf[..nl].last() {
            Some(b'\r') => &buf[..nl - 1],
            _ => &buf[..nl],
        };
        let words = split_args(line)?;
        if words.is_empty() {
            return Ok(Some(Frame::Empty { consumed }));
        }
        let mut encoded = Vec::with_capacity(line.len() + 16 * words.len());
        super::encode::array_header(&mut encoded, words.len());
        for w in &words {
            encoded.push(b'$');
            encoded.extend_from_slice(w.len().to_string().as_bytes());
            encoded.extend_from_slice(b"\r\n");
            let start = encoded.len();
            encoded.extend_from_slice(w);
            self.args.push(start..encoded.len());
            encoded.extend_from_slice(b"\r\n");
        }
        Ok(Some(Frame::Inline { consumed, encoded }))
    }
}

/// Splits an inline command line into arguments like Redis's sdssplitargs: blanks separate,
/// "double quotes" take \n \r \t \b \a \\ \" \xHH escapes, 'single quotes' take \'.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        // Blanks as C's isspace (vertical tab and form feed included).
        while i < n && is_blank(line[i]) {
            i += 1;
        }
        // Redis parses the line as a C string: a NUL ends it. Without this, a NUL outside
        // quotes ended a word without being consumed and the loop never moved on.
        if i >= n || line[i] == 0 {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(ParseError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a blank or the end.
                    if i + 1 < n && !is_blank(line[i + 1]) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if in_sq {
                if i >= n {
                    return Err(ParseError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_blank(line[i + 1]) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(cur);
    }
}

/// C's isspace: vertical tab and form feed included, as Redis's splitter sees blanks.
fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` in one piece: the frame kind and the arguments as strings.
    type Parsed = Option<(Frame, Vec<Vec<u8>>)>;

    fn parse_all(input: &[u8]) -> Result<Parsed, ParseError> {
        let mut p = RequestParser::new();
        Ok(p.parse(input)?.map(|f| {
            let base: &[u8] = match &f {
                Frame::Inline { encoded, .. } => encoded,
                _ => input,
            };
            let args = p.args().iter().map(|r| base[r.clone()].to_vec()).collect();
            (f, args)
        }))
    }

    macro_rules! ok {
        ($input:expr, $len:expr, [$($arg:expr),*]) => {{
            let (f, args) = parse_all($input).unwrap().expect("complete");
            assert_eq!(f, Frame::Multibulk { len: $len });
            let want: Vec<Vec<u8>> = vec![$($arg.to_vec()),*];
            assert_eq!(args, want);
        }};
    }
    macro_rules! incomplete {
        ($input:expr) => {
            assert_eq!(parse_all($input).unwrap(), None);
        };
    }
    macro_rules! bad {
        ($input:expr, $err:expr) => {
            assert_eq!(parse_all($input).unwrap_err(), $err);
        };
    }

    #[test]
    fn multibulk() {
        ok!(b"*1\r\n$4\r\nPING\r\n", 14, [b"PING"]);
        ok!(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1", 20, [b"GET", b"k"]);
        ok!(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 19, [b"GET", b""]);
        ok!(b"*1\r\n$3\r\na\r\n\r\n", 13, [b"a\r\n"]);
        incomplete!(b"");
        incomplete!(b"*");
        incomplete!(b"*2\r\n$3\r\nGET\r\n");
        incomplete!(b"*1\r\n$4\r\nPIN");
        incomplete!(b"*1\r\n$4\r\nPING\r");
        incomplete!(b"*1\r\n$536870912\r\n");
    }

    #[test]
    fn malformed() {
        bad!(b"*abc\r\n", ParseError::InvalidMultibulkLength);
        bad!(b"*2147483648\r\n", ParseError::InvalidMultibulkLength);
        bad!(b"*1\r\n+PING\r\n", ParseError::ExpectedDollar(b'+'));
        bad!(b"*1\r\n$-1\r\n", ParseError::InvalidBulkLength);
        bad!(b"*1\r\n$4294967296\r\n", ParseError::InvalidBulkLength);
        bad!(b"*1\r\n$536870913\r\n", ParseError::InvalidBulkLength);
        bad!(b"*1\r\n$x\r\n", ParseError::InvalidBulkLength);
        bad!(&[b'*'; 70000], ParseError::TooBigMbulkCount);
        bad!(&[b'a'; 70000], ParseError::TooBigInline);
        bad!(b"set \"a\n", ParseError::UnbalancedQuotes);
        bad!(b"set \"a\"b\n", ParseError::UnbalancedQuotes);
    }

    #[test]
    fn empty_frames() {
        assert_eq!(
            parse_all(b"*0\r\n").unwrap().unwrap().0,
            Frame::Empty { consumed: 4 }
        );
        assert_eq!(
            parse_all(b"*-1\r\n").unwrap().unwrap().0,
            Frame::Empty { consumed: 5 }
        );
        assert_eq!(
            parse_all(b"\r\n").unwrap().unwrap().0,
            Frame::Empty { consumed: 2 }
        );
    }

    #[test]
    fn inline() {
        let (f, args) = parse_all(b"SET k \"a b\\x41\\n\" 'c\\'d'\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(
            args,
            vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"a bA\n".to_vec(),
                b"c'd".to_vec()
            ]
        );
        match f {
            Frame::Inline { consumed, encoded } => {
                assert_eq!(consumed, 26);
                let mut p = RequestParser::new();
                assert_eq!(
                    p.parse(&encoded).unwrap(),
                    Some(Frame::Multibulk { len: encoded.len() })
                );
            }
            other => panic!("{other:?}"),
        }
        let (_, args) = parse_all(b"PING\n").unwrap().unwrap();
        assert_eq!(args, vec![b"PING".to_vec()]);
        // NUL ends the line, as in Redis (it used to loop forever).
        let (_, args) = parse_all(b"PING\0\r\n").unwrap().unwrap();
        assert_eq!(args, vec![b"PING".to_vec()]);
        let (_, args) = parse_all(b"PI\0NG x\r\n").unwrap().unwrap();
        assert_eq!(args, vec![b"PI".to_vec()]);
        assert_eq!(
            parse_all(b"\0\r\n").unwrap().unwrap().0,
            Frame::Empty { consumed: 3 }
        );
        let (_, args) = parse_all(b"\x0bPING\r\n").unwrap().unwrap();
        assert_eq!(args, vec![b"PING".to_vec()]);
        incomplete!(b"PING");
    }

    #[test]
    fn resumes_across_chunks() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        for cut in 0..input.len() {
            let mut p = RequestParser::new();
            let mut buf = input[..cut].to_vec();
            assert_eq!(p.parse(&buf).unwrap(), None, "cut {cut}");
            buf.extend_from_slice(&input[cut..]);
            assert_eq!(
                p.parse(&buf).unwrap(),
                Some(Frame::Multibulk { len: input.len() })
            );
            assert_eq!(&buf[p.args()[2].clone()], b"value");
        }
    }
}
