//! A small decoded form of a complete reply, for the few replies the proxy reads itself
//! (CLUSTER SLOTS, HELLO, INFO). The hot path never decodes: it forwards bytes.

use super::{find_crlf, parse_int, ParseError};

/// Deep enough for every reply the proxy decodes; deeper input is refused, not recursed into.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    /// Simple strings, bulk strings, verbatim strings, doubles and big numbers as text.
    Str(Vec<u8>),
    Error(Vec<u8>),
    /// Arrays, sets, pushes, and maps (flattened key, value, key, value).
    Array(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Decodes one complete reply (as found by `ReplyParser`).
pub fn decode(frame: &[u8]) -> Result<Value, ParseError> {
    let mut pos = 0;
    let v = decode_at(frame, &mut pos, 0)?;
    Ok(v)
}

fn decode_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError::BadReply("nested too deep"));
    }
    let tag = *buf.get(*pos).ok_or(ParseError::BadReply("truncated"))?;
    let cr = find_crlf(buf, *pos + 1).ok_or(ParseError::BadReply("truncated"))?;
    let line = &buf[*pos + 1..cr];
    *pos = cr + 2;
    let count = |line: &[u8]| parse_int(line).ok_or(ParseError::BadReply("bad length"));
    Ok(match tag {
        b'+' | b',' | b'(' => Value::Str(line.to_vec()),
        b'-' => Value::Error(line.to_vec()),
        b':' => Value::Int(count(line)?),
        b'#' => Value::Int((line == b"t") as i64),
        b'_' => Value::Nil,
        b'$' | b'=' | b'!' => {
            let n = count(line)?;
            if n < 0 {
                return Ok(Value::Nil);
            }
            let end = pos
                .checked_add(n as usize)
                .filter(|&e| e + 2 <= buf.len())
                .ok_or(ParseError::BadReply("truncated"))?;
            let data = buf[*pos..end].to_vec();
            *pos = end + 2;
            if tag == b'!' {
                Value::Error(data)
            } else {
                Value::Str(data)
            }
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = count(line)?;
            if n < 0 {
                return Ok(Value::Nil);
            }
            let n = if tag == b'%' { n.saturating_mul(2) } else { n };
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => return Err(ParseError::BadReply("unknown type byte")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(
            decode(b"*3\r\n:1\r\n$2\r\nab\r\n*1\r\n_\r\n").unwrap(),
            Value::Array(vec![
                Value::Int(1),
                Value::Str(b"ab".to_vec()),
                Value::Array(vec![Value::Nil])
            ])
        );
        assert!(decode(b"*5\r\n:1\r\n").is_err());
        let mut deep = b"*1\r\n".repeat(100);
        deep.extend_from_slice(b":1\r\n");
        assert!(decode(&deep).is_err());
    }
}
