//! RESP: incremental parsers for client requests and node replies, and the encoders for the
//! replies the proxy writes itself. Pure functions over bytes, no I/O: the fuzz surface.
//!
//! Both parsers are all-or-nothing per frame: they report a frame's length once it is
//! complete (the caller splits exactly that off its buffer) or `None` while more bytes are
//! needed. They keep their progress between calls, so a large frame arriving in many reads
//! is scanned once, and they never allocate by a length the peer declared.

pub mod encode;
pub mod reply;
pub mod request;
pub mod value;

use std::fmt;

/// Redis's `proto-max-bulk-len` default.
pub const MAX_BULK_LEN: i64 = 512 * 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: longest inline command and longest `*`/`$` header line.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Redis accepts multibulk lengths up to INT_MAX; arguments are never preallocated, so
/// memory follows the bytes that really arrived, not this bound.
pub const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;

/// A malformed frame. The text is what Redis says after `-ERR Protocol error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    ExpectedDollar(u8),
    TooBigInline,
    TooBigMbulkCount,
    TooBigBulkCount,
    UnbalancedQuotes,
    /// A node's reply that is not RESP.
    BadReply(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ParseError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ParseError::ExpectedDollar(b) => {
                write!(f, "expected '$', got '{}'", printable(*b))
            }
            ParseError::TooBigInline => f.write_str("too big inline request"),
            ParseError::TooBigMbulkCount => f.write_str("too big mbulk count string"),
            ParseError::TooBigBulkCount => f.write_str("too big bulk count string"),
            ParseError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ParseError::BadReply(what) => write!(f, "bad reply from node: {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        b as char
    } else {
        '?'
    }
}

/// Finds the `\r\n` that ends the line starting at `from`; returns the index of `\r`.
#[inline]
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i + 1..].iter().position(|&b| b == b'\n') {
            Some(off) => {
                let nl = i + 1 + off;
                if buf[nl - 1] == b'\r' {
                    return Some(nl - 1);
                }
                i = nl;
            }
            None => return None,
        }
    }
    None
}

/// Parses a RESP integer the way Redis's string2ll does: optional '-', digits, no
/// leading '+' or spaces, no leading zeros, within i64.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    // Redis's string2ll refuses "-0": a frame with it must not reach a node (it would close
    // a shared connection with a protocol error).
    if neg && digits == b"0" {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"123"), Some(123));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"01"), None);
        assert_eq!(parse_int(b"-0"), None);
        assert_eq!(parse_int(b"+1"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1a"), None);
    }

    #[test]
    fn crlf() {
        assert_eq!(find_crlf(b"abc\r\n", 0), Some(3));
        assert_eq!(find_crlf(b"a\nb\r\n", 0), Some(3));
        assert_eq!(find_crlf(b"abc\r", 0), None);
        assert_eq!(find_crlf(b"\r\n", 0), Some(0));
        assert_eq!(find_crlf(b"x\r\ny\r\n", 3), Some(4));
    }
}
