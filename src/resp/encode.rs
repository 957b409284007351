//! Encoders for the replies and requests the proxy writes itself. The protocol of the client
//! decides the shape of maps, nulls and the like.

use bytes::BufMut;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Resp2,
    Resp3,
}

/// The decimal digits of `v`, without allocating.
pub fn decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn int_line<B: BufMut>(out: &mut B, tag: u8, n: i64) {
    out.put_u8(tag);
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    out.put_slice(&buf[i..]);
    out.put_slice(b"\r\n");
}

pub fn array_header<B: BufMut>(out: &mut B, n: usize) {
    int_line(out, b'*', n as i64);
}

/// A map header: `%n` in RESP3, a flat array of 2n elements in RESP2.
pub fn map_header<B: BufMut>(out: &mut B, n: usize, proto: Proto) {
    match proto {
        Proto::Resp3 => int_line(out, b'%', n as i64),
        Proto::Resp2 => int_line(out, b'*', 2 * n as i64),
    }
}

pub fn bulk<B: BufMut>(out: &mut B, data: &[u8]) {
    int_line(out, b'$', data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

pub fn null<B: BufMut>(out: &mut B, proto: Proto) {
    match proto {
        Proto::Resp3 => out.put_slice(b"_\r\n"),
        Proto::Resp2 => out.put_slice(b"$-1\r\n"),
    }
}

pub fn integer<B: BufMut>(out: &mut B, n: i64) {
    int_line(out, b':', n);
}

pub fn simple<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'+');
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// An error line; `msg` starts with its code (`ERR ...`, `CROSSSLOT ...`). Line breaks in the
/// message would end the frame early, so they become spaces.
pub fn error<B: BufMut>(out: &mut B, msg: &str) {
    out.put_u8(b'-');
    for &b in msg.as_bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// A request in multibulk form.
pub fn command<B: BufMut>(out: &mut B, args: &[&[u8]]) {
    array_header(out, args.len());
    for a in args {
        bulk(out, a);
    }
}

/// A text reply: a bulk string in RESP2, a verbatim string in RESP3, as Redis sends
/// CLUSTER NODES and CLUSTER INFO.
pub fn text(out: &mut Vec<u8>, s: &str, proto: Proto) {
    match proto {
        Proto::Resp2 => bulk(out, s.as_bytes()),
        Proto::Resp3 => {
            out.put_slice(format!("={}\r\ntxt:", s.len() + 4).as_bytes());
            out.put_slice(s.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut v = Vec::new();
        integer(&mut v, -42);
        integer(&mut v, 0);
        bulk(&mut v, b"ab");
        map_header(&mut v, 2, Proto::Resp2);
        map_header(&mut v, 2, Proto::Resp3);
        null(&mut v, Proto::Resp2);
        null(&mut v, Proto::Resp3);
        error(&mut v, "ERR a\r\nb");
        assert_eq!(
            v,
            b":-42\r\n:0\r\n$2\r\nab\r\n*4\r\n%2\r\n$-1\r\n_\r\n-ERR a  b\r\n".to_vec()
        );
        let mut c = Vec::new();
        command(&mut c, &[b"GET", b"k"]);
        assert_eq!(c, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec());
        let mut m = Vec::new();
        integer(&mut m, i64::MIN);
        assert_eq!(m, b":-9223372036854775808\r\n".to_vec());
    }
}
