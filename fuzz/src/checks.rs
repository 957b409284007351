//! Invariants of the proxy's parsers, shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`)
//! and the stable replay test `tests/fuzz_corpus.rs`, which includes this file with
//! `#[path = "../fuzz/src/checks.rs"] mod checks;`. It may use only std and the proxy crate.
//!
//! Every check panics, with a message naming the broken invariant, when the proxy's code
//! breaks it; a check never panics for malformed input the proxy handles correctly.
//!
//! Chunking: each stream check feeds the input once in one piece (the reference) and then
//! cut into chunks by several plans: byte by byte (small inputs), at every CR and LF (the
//! header/terminator boundaries where an incremental RESP parser goes wrong), and at cuts
//! drawn from a generator seeded by a hash of the input (so every mutation cuts elsewhere).
//! Between chunks the driver behaves like the proxy's reactor: after a frame it removes the
//! frame's bytes from the front and asks again; after "incomplete" it appends the next chunk.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use redis_cluster_proxy::command::{self, Command};
use redis_cluster_proxy::config::{self, Config};
use redis_cluster_proxy::error::ProxyError;
use redis_cluster_proxy::resp::reply::{classify_error, ErrorKind, Redirect, ReplyParser};
use redis_cluster_proxy::resp::request::{Frame, RequestParser};
use redis_cluster_proxy::resp::{encode, value, ParseError, MAX_BULK_LEN, MAX_INLINE_LEN};
use redis_cluster_proxy::route::{self, Route};
use redis_cluster_proxy::slot::{key_slot, Slot, SLOTS};
use redis_cluster_proxy::topology::{self, AddressMap, SlotRange, Topology};

/// Inputs up to this size are also fed one byte at a time.
pub const BYTEWISE_MAX: usize = 2048;
/// Most cuts a random plan makes.
const RANDOM_CUTS_MAX: u64 = 64;
/// The address every redirection is rewritten to in the address-map checks.
const PUBLIC_ADDR: &str = "10.9.8.7:6000";

// ---------------------------------------------------------------------------------------
// Chunk plans
// ---------------------------------------------------------------------------------------

/// Where to cut an input: each cut ends one chunk (cuts ascend, all in `1..len`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: &'static str,
    pub cuts: Vec<usize>,
}

/// FNV-1a: the seed of the random plan, so the plan is a function of the input.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The chunked feeds every stream check compares with the one-piece feed.
pub fn plans(data: &[u8]) -> Vec<Plan> {
    let n = data.len();
    let mut out = Vec::new();
    if n < 2 {
        return out;
    }
    if n <= BYTEWISE_MAX {
        out.push(Plan {
            name: "byte by byte",
            cuts: (1..n).collect(),
        });
    }
    // Just before and just after every CR, just after every LF.
    let mut lines = Vec::new();
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && i > 0 {
            lines.push(i);
        }
        if (b == b'\r' || b == b'\n') && i + 1 < n {
            lines.push(i + 1);
        }
    }
    lines.dedup();
    if !lines.is_empty() {
        out.push(Plan {
            name: "around every CR and LF",
            cuts: lines,
        });
    }
    let mut rng = XorShift(fnv1a(data) | 1);
    let k = 1 + rng.next() % RANDOM_CUTS_MAX.min(n as u64 - 1);
    let mut cuts: Vec<usize> = (0..k)
        .map(|_| {
            // Half the cuts in the first 16 bytes (the first header lines), half anywhere.
            if rng.next() % 2 == 0 {
                1 + (rng.next() % (n as u64 - 1).min(16)) as usize
            } else {
                1 + (rng.next() % (n as u64 - 1)) as usize
            }
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    out.push(Plan {
        name: "random cuts",
        cuts,
    });
    out
}

/// Calls `feed` with the growing input after each chunk of the plan (`cuts` empty: once,
/// with the whole input). `feed` returns false to stop early (after an error).
fn drive(data: &[u8], cuts: &[usize], mut feed: impl FnMut(usize) -> bool) {
    for end in cuts.iter().copied().chain(std::iter::once(data.len())) {
        if !feed(end) {
            return;
        }
    }
}

/// Short printable form of some bytes for panic messages.
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(64) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    if b.len() > 64 {
        let _ = write!(s, "...({} bytes)", b.len());
    }
    format!("\"{s}\"")
}

fn show_cuts(cuts: &[usize]) -> String {
    if cuts.len() <= 16 {
        format!("{cuts:?}")
    } else {
        format!("{:?}... ({} cuts)", &cuts[..16], cuts.len())
    }
}

// ---------------------------------------------------------------------------------------
// Request parser
// ---------------------------------------------------------------------------------------

/// What the request parser reported, in order, for one feed of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReqEvent {
    Multibulk {
        len: usize,
        args: Vec<Vec<u8>>,
    },
    Inline {
        consumed: usize,
        encoded: Vec<u8>,
        args: Vec<Vec<u8>>,
    },
    Empty {
        consumed: usize,
    },
    Error(ParseError),
    /// Bytes left at the end of the input, waiting for more.
    Pending(usize),
}

impl ReqEvent {
    fn summary(&self) -> String {
        let args = |a: &[Vec<u8>]| a.iter().map(|x| show(x)).collect::<Vec<_>>().join(" ");
        match self {
            ReqEvent::Multibulk { len, args: a } => format!("Multibulk(len {len}: {})", args(a)),
            ReqEvent::Inline {
                consumed, args: a, ..
            } => format!("Inline(consumed {consumed}: {})", args(a)),
            ReqEvent::Empty { consumed } => format!("Empty(consumed {consumed})"),
            ReqEvent::Error(e) => format!("Error({e:?})"),
            ReqEvent::Pending(n) => format!("Pending({n} bytes)"),
        }
    }
}

fn first_difference<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Feeds `data` to a fresh `RequestParser` chunk by chunk and checks every frame. `deep`
/// adds the costlier per-frame checks (done on the one-piece feed only).
pub fn run_requests(data: &[u8], cuts: &[usize], deep: bool) -> Vec<ReqEvent> {
    let mut p = RequestParser::new();
    let mut events = Vec::new();
    let mut start = 0; // the caller's buffer is data[start..end]
    let mut stopped = false;
    let mut last_end = 0;
    drive(data, cuts, |end| {
        last_end = end;
        loop {
            let buf = &data[start..end];
            match p.parse(buf) {
                Ok(None) => return true,
                Ok(Some(frame)) => {
                    let (ev, used) = check_request_frame(buf, &frame, p.args(), deep);
                    events.push(ev);
                    start += used;
                }
                Err(e) => {
                    if deep {
                        check_request_error(buf, &e);
                    }
                    events.push(ReqEvent::Error(e));
                    stopped = true;
                    return false;
                }
            }
        }
    });
    if !stopped && start < last_end {
        events.push(ReqEvent::Pending(last_end - start));
    }
    events
}

/// Per-frame invariants; returns the event and how many bytes the caller removes.
fn check_request_frame(
    buf: &[u8],
    frame: &Frame,
    args: &[Range<usize>],
    deep: bool,
) -> (ReqEvent, usize) {
    match frame {
        Frame::Multibulk { len } => {
            let len = *len;
            assert!(
                len > 0 && len <= buf.len(),
                "request: Multibulk len {len} outside the {}-byte buffer {}",
                buf.len(),
                show(buf)
            );
            assert_eq!(
                buf[0], b'*',
                "request: Multibulk frame not starting with '*'"
            );
            let frame_bytes = &buf[..len];
            assert!(
                !args.is_empty(),
                "request: Multibulk frame without arguments {}",
                show(frame_bytes)
            );
            check_ranges(args, len, "Multibulk frame", frame_bytes);
            let argv: Vec<Vec<u8>> = args.iter().map(|r| buf[r.clone()].to_vec()).collect();
            if deep {
                // The frame alone, exactly as forwarded, parses to the same arguments.
                let mut alone = RequestParser::new();
                match alone.parse(frame_bytes) {
                    Ok(Some(Frame::Multibulk { len: l })) if l == len => {
                        let again: Vec<Vec<u8>> =
                            alone.args().iter().map(|r| frame_bytes[r.clone()].to_vec()).collect();
                        assert_eq!(
                            again,
                            argv,
                            "request: Multibulk frame re-parsed alone gives other args: {}",
                            show(frame_bytes)
                        );
                    }
                    other => panic!(
                        "request: Multibulk frame {} re-parsed alone gives {other:?}, not the frame",
                        show(frame_bytes)
                    ),
                }
                // The proxy forwards these bytes verbatim: the node must read the same command.
                match redis_multibulk(frame_bytes) {
                    RedisVerdict::Command { len: l, args: a } if l == len => {
                        let redis_argv: Vec<Vec<u8>> =
                            a.iter().map(|r| frame_bytes[r.clone()].to_vec()).collect();
                        assert_eq!(
                            redis_argv,
                            argv,
                            "request: Redis would read other arguments from the forwarded frame {}",
                            show(frame_bytes)
                        );
                    }
                    other => panic!(
                        "request: the proxy accepted and would forward {} as {} args, but Redis's \
                         multibulk parser reads it as {other:?}",
                        show(frame_bytes),
                        argv.len()
                    ),
                }
            }
            (ReqEvent::Multibulk { len, args: argv }, len)
        }
        Frame::Inline { consumed, encoded } => {
            let consumed = *consumed;
            assert!(
                consumed > 0 && consumed <= buf.len(),
                "request: Inline consumed {consumed} outside the {}-byte buffer",
                buf.len()
            );
            assert!(
                consumed <= MAX_INLINE_LEN + 1,
                "request: Inline line of {consumed} bytes, longer than the inline limit"
            );
            let line = &buf[..consumed];
            assert_eq!(
                line.iter().position(|&b| b == b'\n'),
                Some(consumed - 1),
                "request: an Inline frame must end at the first LF: {}",
                show(line)
            );
            assert_ne!(buf[0], b'*', "request: Inline frame starting with '*'");
            assert!(!args.is_empty(), "request: Inline frame without arguments");
            check_ranges(args, encoded.len(), "Inline encoding", encoded);
            let argv: Vec<Vec<u8>> = args.iter().map(|r| encoded[r.clone()].to_vec()).collect();
            if deep {
                let mut again = RequestParser::new();
                match again.parse(encoded) {
                    Ok(Some(Frame::Multibulk { len })) if len == encoded.len() => {
                        let a: Vec<Vec<u8>> =
                            again.args().iter().map(|r| encoded[r.clone()].to_vec()).collect();
                        assert_eq!(a, argv, "request: Inline encoding parses to other args");
                    }
                    other => panic!(
                        "request: Inline encoding {} of {} does not parse back as one frame: {other:?}",
                        show(encoded),
                        show(line)
                    ),
                }
                match redis_multibulk(encoded) {
                    RedisVerdict::Command { len, args: a } if len == encoded.len() => {
                        let a: Vec<Vec<u8>> =
                            a.iter().map(|r| encoded[r.clone()].to_vec()).collect();
                        assert_eq!(
                            a, argv,
                            "request: Redis reads other args from the Inline encoding"
                        );
                    }
                    other => panic!("request: Redis rejects the Inline encoding: {other:?}"),
                }
                check_inline_like_redis(line, Ok(&argv));
            }
            (
                ReqEvent::Inline {
                    consumed,
                    encoded: encoded.clone(),
                    args: argv,
                },
                consumed,
            )
        }
        Frame::Empty { consumed } => {
            let consumed = *consumed;
            assert!(
                consumed > 0 && consumed <= buf.len(),
                "request: Empty consumed {consumed} outside the {}-byte buffer",
                buf.len()
            );
            let bytes = &buf[..consumed];
            if buf[0] == b'*' {
                assert!(
                    bytes.ends_with(b"\r\n"),
                    "request: Empty '*' frame not ending with CRLF: {}",
                    show(bytes)
                );
                if deep {
                    let header = &bytes[1..consumed - 2];
                    // Redis ignores `*0`, `*-1`... only when its string2ll reads the count.
                    match redis_string2ll(header) {
                        Some(n) if n <= 0 => {}
                        other => panic!(
                            "request: the proxy ignores {} as an empty request, Redis reads the \
                             count as {other:?} (and rejects the connection)",
                            show(bytes)
                        ),
                    }
                }
            } else {
                assert_eq!(
                    bytes.iter().position(|&b| b == b'\n'),
                    Some(consumed - 1),
                    "request: an empty inline line must end at the first LF: {}",
                    show(bytes)
                );
                if deep {
                    check_inline_like_redis(bytes, Ok(&[]));
                }
            }
            (ReqEvent::Empty { consumed }, consumed)
        }
    }
}

fn check_ranges(args: &[Range<usize>], len: usize, what: &str, bytes: &[u8]) {
    let mut prev_end = 0;
    for r in args {
        assert!(
            r.start <= r.end && r.end <= len && r.start >= prev_end,
            "request: argument range {r:?} not inside the {len}-byte {what} (or overlapping the \
             previous one) {}",
            show(bytes)
        );
        prev_end = r.end;
    }
}

/// An error of the one-piece feed: an inline error must be one Redis reports too.
fn check_request_error(buf: &[u8], e: &ParseError) {
    if *e == ParseError::UnbalancedQuotes {
        let nl = buf
            .iter()
            .position(|&b| b == b'\n')
            .expect("request: UnbalancedQuotes without a complete line");
        check_inline_like_redis(&buf[..=nl], Err(()));
    }
}

/// Compares the proxy's split of an inline line (with its LF) with Redis's `sdssplitargs`.
/// Lines with NUL bytes are skipped: Redis's `strchr` never finds the LF after a NUL and
/// waits for more input, which the proxy cannot sensibly mirror; for them the checks are
/// "no panic, no hang" only.
fn check_inline_like_redis(line_with_lf: &[u8], proxy: Result<&[Vec<u8>], ()>) {
    let mut line = &line_with_lf[..line_with_lf.len() - 1];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    if line.contains(&0) {
        return;
    }
    let redis = redis_splitargs(line);
    let same = match (&redis, proxy) {
        (Some(r), Ok(p)) => r.as_slice() == p,
        (None, Err(())) => true,
        _ => false,
    };
    assert!(
        same,
        "request: inline line {} splits as {} in the proxy but as {} in Redis (sdssplitargs)",
        show(line_with_lf),
        match proxy {
            Ok(p) => format!(
                "[{}]",
                p.iter().map(|a| show(a)).collect::<Vec<_>>().join(", ")
            ),
            Err(()) => "an unbalanced-quotes error".into(),
        },
        match &redis {
            Some(r) => format!(
                "[{}]",
                r.iter().map(|a| show(a)).collect::<Vec<_>>().join(", ")
            ),
            None => "an unbalanced-quotes error".into(),
        }
    );
}

/// The request-parser invariants on one input: never panics, every chunked feed reports
/// exactly what the one-piece feed reports, and the per-frame checks.
pub fn check_request_stream(data: &[u8]) {
    let reference = run_requests(data, &[], true);
    for plan in plans(data) {
        let got = run_requests(data, &plan.cuts, false);
        if got != reference {
            let i = first_difference(&got, &reference);
            panic!(
                "request: fed {} ({} cuts {}) the parser reports {} as event #{i}, fed in one \
                 piece it reports {} (input {})",
                plan.name,
                plan.cuts.len(),
                show_cuts(&plan.cuts),
                got.get(i).map_or("nothing".into(), ReqEvent::summary),
                reference.get(i).map_or("nothing".into(), ReqEvent::summary),
                show(data)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Redis's own request parsing (networking.c, util.c, sds.c of Redis 7.0), as models
// ---------------------------------------------------------------------------------------

/// Redis's `string2ll`, which the server applies to the `*` and `$` lines of a request.
pub fn redis_string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, d) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if d.is_empty() || !(b'1'..=b'9').contains(&d[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// How Redis's `processMultibulkBuffer` reads a buffer that starts with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisVerdict {
    Command { len: usize, args: Vec<Range<usize>> },
    Empty { consumed: usize },
    Incomplete,
    Error(&'static str),
}

pub fn redis_multibulk(buf: &[u8]) -> RedisVerdict {
    const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
    // strchr(p, '\r') over a NUL-terminated sds.
    let line_end = |from: usize| -> Option<usize> {
        for (i, &b) in buf.iter().enumerate().skip(from) {
            match b {
                0 => return None,
                b'\r' => return Some(i),
                _ => {}
            }
        }
        None
    };
    let Some(nl) = line_end(0) else {
        return if buf.len() > PROTO_INLINE_MAX_SIZE {
            RedisVerdict::Error("too big mbulk count string")
        } else {
            RedisVerdict::Incomplete
        };
    };
    if nl + 2 > buf.len() {
        return RedisVerdict::Incomplete;
    }
    let count = match redis_string2ll(&buf[1..nl]) {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return RedisVerdict::Error("invalid multibulk length"),
    };
    let mut pos = nl + 2;
    if count <= 0 {
        return RedisVerdict::Empty { consumed: pos };
    }
    let mut args = Vec::new();
    for _ in 0..count {
        let Some(nl) = line_end(pos) else {
            return if buf.len() - pos > PROTO_INLINE_MAX_SIZE {
                RedisVerdict::Error("too big bulk count string")
            } else {
                RedisVerdict::Incomplete
            };
        };
        if nl + 2 > buf.len() {
            return RedisVerdict::Incomplete;
        }
        if buf[pos] != b'$' {
            return RedisVerdict::Error("expected '$'");
        }
        let n = match redis_string2ll(&buf[pos + 1..nl]) {
            Some(n) if (0..=MAX_BULK_LEN).contains(&n) => n as usize,
            _ => return RedisVerdict::Error("invalid bulk length"),
        };
        pos = nl + 2;
        if buf.len() - pos < n + 2 {
            return RedisVerdict::Incomplete;
        }
        args.push(pos..pos + n);
        pos += n + 2;
    }
    RedisVerdict::Command { len: pos, args }
}

/// C's `isspace` in the C locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Redis's `sdssplitargs` over a line (no NUL bytes; the end of the slice is the NUL).
/// None where Redis reports unbalanced quotes.
pub fn redis_splitargs(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && c_isspace(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(out);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut cur = Vec::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    let h = |b: u8| (b as char).to_digit(16).unwrap() as u8;
                    cur.push(h(at(p + 2)) * 16 + h(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !c_isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !c_isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    o => cur.push(o),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        out.push(cur);
    }
}

// ---------------------------------------------------------------------------------------
// Reply parser
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEvent {
    Reply(usize),
    Error(ParseError),
    Pending(usize),
}

/// Feeds `data` to a fresh `ReplyParser` chunk by chunk; `deep` adds per-reply checks.
pub fn run_replies(data: &[u8], cuts: &[usize], deep: bool) -> Vec<ReplyEvent> {
    let mut p = ReplyParser::new();
    let mut events = Vec::new();
    let mut start = 0;
    let mut stopped = false;
    let mut last_end = 0;
    drive(data, cuts, |end| {
        last_end = end;
        loop {
            let buf = &data[start..end];
            match p.parse(buf) {
                Ok(None) => {
                    if deep {
                        check_reply_verdict(buf, &Ok(None));
                    }
                    return true;
                }
                Ok(Some(n)) => {
                    assert!(
                        n >= 3 && n <= buf.len(),
                        "reply: length {n} outside the {}-byte buffer {}",
                        buf.len(),
                        show(buf)
                    );
                    if deep {
                        check_reply_frame(buf, n);
                    }
                    events.push(ReplyEvent::Reply(n));
                    start += n;
                }
                Err(e) => {
                    if deep {
                        check_reply_verdict(buf, &Err(e.clone()));
                    }
                    events.push(ReplyEvent::Error(e));
                    stopped = true;
                    return false;
                }
            }
        }
    });
    if !stopped && start < last_end {
        events.push(ReplyEvent::Pending(last_end - start));
    }
    events
}

fn check_reply_frame(buf: &[u8], n: usize) {
    let frame = &buf[..n];
    assert!(
        frame.ends_with(b"\r\n"),
        "reply: complete reply not ending with CRLF: {}",
        show(frame)
    );
    assert_eq!(
        ReplyParser::new().parse(frame),
        Ok(Some(n)),
        "reply: a complete reply re-parsed alone is not complete: {}",
        show(frame)
    );
    check_reply_verdict(buf, &Ok(Some(n)));
    // Decoding a complete reply never panics (it may refuse it).
    let _ = value::decode(frame);
    if frame[0] == b'-' {
        check_error_frame(frame);
    }
}

/// Compares a one-piece verdict of the reply parser with the reference reader below.
fn check_reply_verdict(buf: &[u8], got: &Result<Option<usize>, ParseError>) {
    let Some(want) = resp_reference(buf) else {
        return; // nested deeper than the reference reader goes
    };
    let same = matches!(
        (got, &want),
        (Ok(Some(a)), RespVerdict::Complete(b)) if a == b
    ) || matches!(
        (got, &want),
        (Ok(None), RespVerdict::Incomplete) | (Err(_), RespVerdict::Invalid(_))
    ) || matches!(
        // How long an unfinished line may grow is the parser's policy (a limit of at least
        // 64 KiB); that it applies it the same way whatever the chunking is checked apart.
        (got, &want),
        (Ok(None), RespVerdict::IncompleteLine(_))
    ) || matches!(
        (got, &want),
        (Err(_), RespVerdict::IncompleteLine(n)) if *n > 64 * 1024
    );
    assert!(
        same,
        "reply: the parser says {got:?}, a straightforward RESP reader says {want:?} for {}",
        show(buf)
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespVerdict {
    Complete(usize),
    Incomplete,
    /// Incomplete inside a line (no CRLF yet) already this long.
    IncompleteLine(usize),
    Invalid(&'static str),
}

const REFERENCE_DEPTH: usize = 200;

/// A plain recursive RESP2/RESP3 reader with the proxy's documented limits (bulks of at
/// most 1 GiB, `$-1`/`*-1` the only negative lengths). None when nested deeper than
/// `REFERENCE_DEPTH`.
pub fn resp_reference(buf: &[u8]) -> Option<RespVerdict> {
    enum Stop {
        Incomplete,
        IncompleteLine(usize),
        Invalid(&'static str),
        TooDeep,
    }
    fn int(s: &[u8]) -> Option<i64> {
        let (neg, d) = match s.first()? {
            b'-' => (true, &s[1..]),
            _ => (false, s),
        };
        if d.is_empty() || d.len() > 19 || (d.len() > 1 && d[0] == b'0') {
            return None;
        }
        // As Redis's string2ll: "-0" is not a number.
        if neg && d == b"0" {
            return None;
        }
        let mut v: i64 = 0;
        for &c in d {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
        }
        Some(if neg { -v } else { v })
    }
    fn element(buf: &[u8], pos: usize, depth: usize) -> Result<usize, Stop> {
        if depth > REFERENCE_DEPTH {
            return Err(Stop::TooDeep);
        }
        let tag = *buf.get(pos).ok_or(Stop::Incomplete)?;
        let cr = buf[pos + 1..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| pos + 1 + i);
        let Some(cr) = cr else {
            return Err(if buf.len() - pos > 64 * 1024 {
                Stop::IncompleteLine(buf.len() - pos)
            } else {
                Stop::Incomplete
            });
        };
        let line = &buf[pos + 1..cr];
        let after = cr + 2;
        match tag {
            b'+' | b'-' | b':' | b'_' | b',' | b'(' | b'#' => Ok(after),
            b'$' | b'!' | b'=' => {
                let n = int(line).ok_or(Stop::Invalid("bad bulk length"))?;
                if n == -1 && tag == b'$' {
                    return Ok(after);
                }
                if n < 0 {
                    return Err(Stop::Invalid("bad bulk length"));
                }
                if n > 2 * MAX_BULK_LEN {
                    return Err(Stop::Invalid("bulk too long"));
                }
                let end = after + n as usize + 2;
                if buf.len() < end {
                    return Err(Stop::Incomplete);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(Stop::Invalid("bulk not ended by CRLF"));
                }
                Ok(end)
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = int(line).ok_or(Stop::Invalid("bad aggregate length"))?;
                if n == -1 && tag == b'*' {
                    return Ok(after);
                }
                if n < 0 {
                    return Err(Stop::Invalid("bad aggregate length"));
                }
                let n = n as u64;
                let count = match tag {
                    b'%' => n * 2,
                    b'|' => n * 2 + 1,
                    _ => n,
                };
                let mut p = after;
                for _ in 0..count {
                    p = element(buf, p, depth + 1)?;
                }
                Ok(p)
            }
            _ => Err(Stop::Invalid("unknown type byte")),
        }
    }
    match element(buf, 0, 0) {
        Ok(n) => Some(RespVerdict::Complete(n)),
        Err(Stop::Incomplete) => Some(RespVerdict::Incomplete),
        Err(Stop::IncompleteLine(n)) => Some(RespVerdict::IncompleteLine(n)),
        Err(Stop::Invalid(why)) => Some(RespVerdict::Invalid(why)),
        Err(Stop::TooDeep) => None,
    }
}

/// `classify_error` on a complete error frame: what it reports is what the frame says.
pub fn check_error_frame(frame: &[u8]) {
    match classify_error(frame) {
        ErrorKind::TryAgain => assert!(frame.starts_with(b"-TRYAGAIN")),
        ErrorKind::ClusterDown => assert!(frame.starts_with(b"-CLUSTERDOWN")),
        ErrorKind::Redirect(r) => {
            let (kind, slot, addr) = match r {
                Redirect::Moved { slot, addr } => ("MOVED", slot, addr),
                Redirect::Ask { slot, addr } => ("ASK", slot, addr),
            };
            assert!(
                (slot as usize) < SLOTS,
                "reply: redirect to slot {slot} out of range from {}",
                show(frame)
            );
            assert!(
                frame.starts_with(format!("-{kind} ").as_bytes())
                    && frame.ends_with(format!(" {addr}\r\n").as_bytes())
                    && addr.contains(':')
                    && !addr.contains(' '),
                "reply: {kind} {slot} {addr:?} is not what {} says",
                show(frame)
            );
            // The address map rewrites exactly that address and nothing else.
            let mut m = std::collections::BTreeMap::new();
            m.insert(addr.to_string(), PUBLIC_ADDR.to_string());
            let map = AddressMap::new(m);
            let out = map
                .rewrite_redirect(frame)
                .unwrap_or_else(|| panic!("reply: address_map misses {addr:?} in {}", show(frame)));
            match classify_error(&out) {
                ErrorKind::Redirect(
                    Redirect::Moved { slot: s, addr: a } | Redirect::Ask { slot: s, addr: a },
                ) if s == slot
                    && a == PUBLIC_ADDR
                    && out.starts_with(format!("-{kind} ").as_bytes()) => {}
                other => panic!(
                    "reply: rewriting {} with address_map gives {} ({other:?})",
                    show(frame),
                    show(&out)
                ),
            }
            assert!(
                AddressMap::default().rewrite_redirect(frame).is_none(),
                "reply: an empty address_map rewrites {}",
                show(frame)
            );
        }
        _ => {}
    }
}

/// The reply-parser invariants on one input.
pub fn check_reply_stream(data: &[u8]) {
    let reference = run_replies(data, &[], true);
    for plan in plans(data) {
        let got = run_replies(data, &plan.cuts, false);
        if got != reference {
            let i = first_difference(&got, &reference);
            panic!(
                "reply: fed {} ({} cuts {}) the parser reports {:?} as event #{i}, fed in one \
                 piece it reports {:?} (input {})",
                plan.name,
                plan.cuts.len(),
                show_cuts(&plan.cuts),
                got.get(i),
                reference.get(i),
                show(data)
            );
        }
    }
    // Neither of these may panic on arbitrary bytes.
    let _ = value::decode(data);
    let _ = classify_error(data);
}

// ---------------------------------------------------------------------------------------
// Encode -> parse round trips
// ---------------------------------------------------------------------------------------

/// One request of a generated pipeline.
#[derive(Debug, Clone)]
pub enum RoundtripItem {
    /// Arguments encoded by `resp::encode::command`.
    Multibulk(Vec<Vec<u8>>),
    /// An inline line: each word with a quoting selector (bare, "double", 'single'), and a
    /// style byte choosing separators, leading blanks and the line end.
    Inline {
        words: Vec<(Vec<u8>, u8)>,
        style: u8,
    },
}

/// Bytes a bare inline word may hold.
fn bare_ok(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'"' && b != b'\''
}

/// One word as it appears on an inline line, quoted as asked when that can represent it.
pub fn inline_word(word: &[u8], quoting: u8) -> Vec<u8> {
    let mut out = Vec::new();
    match quoting % 3 {
        0 if !word.is_empty() && word.iter().all(|&b| bare_ok(b)) => out.extend_from_slice(word),
        2 if !word.iter().any(|&b| b == b'\\' || b == b'\n' || b == 0) => {
            out.push(b'\'');
            for &b in word {
                if b == b'\'' {
                    out.extend_from_slice(b"\\'");
                } else {
                    out.push(b);
                }
            }
            out.push(b'\'');
        }
        _ => {
            out.push(b'"');
            for &b in word {
                if b.is_ascii_alphanumeric() || b == b' ' {
                    out.push(b);
                } else {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
            }
            out.push(b'"');
        }
    }
    out
}

/// An inline line for `words`, in the given style; the expected consumed length is its length.
pub fn inline_line(words: &[(Vec<u8>, u8)], style: u8) -> Vec<u8> {
    let mut line = Vec::new();
    if style & 1 != 0
        || words
            .first()
            .is_some_and(|(w, q)| inline_word(w, *q)[0] == b'*')
    {
        line.push(b' ');
    }
    for (i, (w, q)) in words.iter().enumerate() {
        if i > 0 {
            line.extend_from_slice(match (style >> 1) & 3 {
                0 => b" ".as_slice(),
                1 => b"\t",
                2 => b"  ",
                _ => b" \t ",
            });
        }
        line.extend_from_slice(&inline_word(w, *q));
    }
    if style & 8 != 0 {
        line.push(b' ');
    }
    line.extend_from_slice(if style & 16 != 0 { b"\n" } else { b"\r\n" });
    line
}

/// Encodes the items into one pipeline and checks the parser gives them back, in one piece
/// and in chunks, and that every multibulk encoding is what Redis reads too.
pub fn check_roundtrip(items: &[RoundtripItem]) {
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for item in items {
        match item {
            RoundtripItem::Multibulk(args) => {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let mut enc = Vec::new();
                encode::command(&mut enc, &refs);
                if args.is_empty() {
                    want.push(ReqEvent::Empty {
                        consumed: enc.len(),
                    });
                } else {
                    match redis_multibulk(&enc) {
                        RedisVerdict::Command { len, args: a } if len == enc.len() => {
                            let a: Vec<Vec<u8>> =
                                a.iter().map(|r| enc[r.clone()].to_vec()).collect();
                            assert_eq!(
                                &a, args,
                                "roundtrip: Redis reads other args from encode::command"
                            );
                        }
                        other => panic!(
                            "roundtrip: Redis rejects encode::command's {}: {other:?}",
                            show(&enc)
                        ),
                    }
                    want.push(ReqEvent::Multibulk {
                        len: enc.len(),
                        args: args.clone(),
                    });
                }
                stream.extend_from_slice(&enc);
            }
            RoundtripItem::Inline { words, style } => {
                let line = inline_line(words, *style);
                if line.len() > MAX_INLINE_LEN {
                    continue;
                }
                if words.is_empty() {
                    want.push(ReqEvent::Empty {
                        consumed: line.len(),
                    });
                } else {
                    let args: Vec<Vec<u8>> = words.iter().map(|(w, _)| w.clone()).collect();
                    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    let mut encoded = Vec::new();
                    encode::command(&mut encoded, &refs);
                    want.push(ReqEvent::Inline {
                        consumed: line.len(),
                        encoded,
                        args,
                    });
                }
                stream.extend_from_slice(&line);
            }
        }
    }
    let got = run_requests(&stream, &[], true);
    if got != want {
        let i = first_difference(&got, &want);
        panic!(
            "roundtrip: event #{i} parsed as {}, encoded as {} (stream {})",
            got.get(i).map_or("nothing".into(), ReqEvent::summary),
            want.get(i).map_or("nothing".into(), ReqEvent::summary),
            show(&stream)
        );
    }
    check_request_stream(&stream);
}

/// A deterministic byte -> items decoder, for the stable replay test (the fuzz target uses
/// `arbitrary` instead; both feed `check_roundtrip`).
pub fn roundtrip_items_from_bytes(data: &[u8]) -> Vec<RoundtripItem> {
    let mut it = data.iter().copied();
    let mut items = Vec::new();
    while let Some(kind) = it.next() {
        let n = it.next().unwrap_or(0) % 6;
        let mut words = Vec::new();
        for _ in 0..n {
            let len = (it.next().unwrap_or(0) % 24) as usize;
            let w: Vec<u8> = it.by_ref().take(len).collect();
            let q = it.next().unwrap_or(0);
            words.push((w, q));
        }
        items.push(if kind % 2 == 0 {
            RoundtripItem::Multibulk(words.into_iter().map(|(w, _)| w).collect())
        } else {
            RoundtripItem::Inline {
                words,
                style: kind >> 1,
            }
        });
    }
    items
}

// ---------------------------------------------------------------------------------------
// CLUSTER SLOTS / CLUSTER NODES, topology, address map
// ---------------------------------------------------------------------------------------

/// Addresses asked for CLUSTER SLOTS in the checks (the empty-host case takes the host).
const ASKED: [&str; 3] = ["127.0.0.1:7000", "[::1]:7001", "node-a:7002"];

pub fn check_cluster_slots(data: &[u8]) {
    let mut p = ReplyParser::new();
    if let Ok(Some(n)) = p.parse(data) {
        if let Ok(v) = value::decode(&data[..n]) {
            for asked in ASKED {
                if let Ok(ranges) = topology::parse_cluster_slots(&v, asked) {
                    check_slot_ranges(&ranges, asked);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    for asked in ASKED {
        if let Ok(ranges) = topology::parse_cluster_nodes(&text, asked) {
            check_slot_ranges(&ranges, asked);
        }
    }
    check_nodes_text(&text);
    check_redirect_rewrite(data);
}

/// Every address the topology parsers produce is `host:port` with a port a node can have
/// (1..=65535), as parse_cluster_slots demands of CLUSTER SLOTS.
fn check_addr(addr: &str, what: &str, asked: &str) {
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|&p| p > 0);
    assert!(
        port.is_some(),
        "cluster_slots: {what} address {addr:?} has no valid port (asked {asked})"
    );
}

/// Numeric addresses only: `Topology::intern` resolves names through DNS.
fn numeric(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok()
        || config::split_host_port(addr).is_some_and(|(h, _)| h.parse::<IpAddr>().is_ok())
}

fn check_slot_ranges(ranges: &[SlotRange], asked: &str) {
    for r in ranges {
        assert!(
            r.start <= r.end && (r.end as usize) < SLOTS,
            "cluster_slots: bad range {}-{} accepted (asked {asked})",
            r.start,
            r.end
        );
        check_addr(&r.master, "master", asked);
        for rep in &r.replicas {
            check_addr(rep, "replica", asked);
        }
    }
    let all_numeric = ranges
        .iter()
        .all(|r| numeric(&r.master) && r.replicas.iter().all(|a| numeric(a)));
    if !all_numeric || ranges.len() > 64 {
        return;
    }
    let mut t = Topology::new();
    let change = t.apply(ranges);
    // Later ranges win, as the loop in apply() writes them in order.
    let mut want: Vec<Option<&str>> = vec![None; SLOTS];
    for r in ranges {
        for s in r.start..=r.end {
            want[s as usize] = Some(&r.master);
        }
    }
    let covered = want.iter().filter(|w| w.is_some()).count();
    assert_eq!(t.uncovered(), SLOTS - covered, "topology: uncovered count");
    assert_eq!(
        change.slots_moved, covered,
        "topology: slots_moved from an empty map"
    );
    for (s, w) in want.iter().enumerate() {
        let got = t.owner(Slot(s as u16)).map(|id| t.node(id));
        match (w, got) {
            (None, None) => {}
            (Some(m), Some(node)) => {
                assert_eq!(&node.addr, m, "topology: owner of slot {s}");
                assert_eq!(
                    node.role,
                    topology::Role::Master,
                    "topology: slot {s} owned by {} which is not a master",
                    node.addr
                );
            }
            _ => panic!(
                "topology: slot {s} should be owned by {w:?}, is {:?}",
                got.map(|n| &n.addr)
            ),
        }
    }
    let again = t.apply(ranges);
    assert!(
        again.is_empty(),
        "topology: applying the same CLUSTER SLOTS twice reports a change {again:?}"
    );
}

fn check_nodes_text(text: &str) {
    assert_eq!(
        AddressMap::default().rewrite_nodes_text(text),
        text,
        "address_map: an empty map changes a CLUSTER NODES text"
    );
    // Every `ip:port` field mapped to itself: nothing changes either. Mapped elsewhere (only
    // keys config validation lets through, `host:port`): only that field changes.
    let mut identity = std::collections::BTreeMap::new();
    let mut public = std::collections::BTreeMap::new();
    for line in text.split_inclusive('\n') {
        if let Some(addr) = line.split(' ').nth(1) {
            let hostport = addr.split('@').next().unwrap_or(addr);
            identity.insert(hostport.to_string(), hostport.to_string());
            if config::split_host_port(hostport).is_some() {
                public.insert(hostport.to_string(), PUBLIC_ADDR.to_string());
            }
        }
    }
    assert_eq!(
        AddressMap::new(identity).rewrite_nodes_text(text),
        text,
        "address_map: an identity map changes a CLUSTER NODES text"
    );
    let map = AddressMap::new(public);
    let out = map.rewrite_nodes_text(text);
    let (a, b): (Vec<&str>, Vec<&str>) = (
        text.split_inclusive('\n').collect(),
        out.split_inclusive('\n').collect(),
    );
    assert_eq!(
        a.len(),
        b.len(),
        "address_map: rewriting changes the number of lines"
    );
    for (x, y) in a.iter().zip(&b) {
        let fx: Vec<&str> = x.splitn(3, ' ').collect();
        let fy: Vec<&str> = y.splitn(3, ' ').collect();
        assert_eq!(fx.len(), fy.len(), "address_map: {x:?} rewritten as {y:?}");
        if fx.len() >= 2 {
            assert_eq!(
                fx[0], fy[0],
                "address_map: node id changed in {x:?} -> {y:?}"
            );
            let (hostport, suffix) = fx[1].split_at(fx[1].find('@').unwrap_or(fx[1].len()));
            let want = format!("{}{suffix}", map.public(hostport));
            assert_eq!(fy[1], want, "address_map: {x:?} -> {y:?}");
            if fx.len() == 3 {
                assert_eq!(
                    fx[2], fy[2],
                    "address_map: the rest of {x:?} changed: {y:?}"
                );
            }
        } else {
            assert_eq!(x, y);
        }
    }
}

fn check_redirect_rewrite(data: &[u8]) {
    assert!(AddressMap::default().rewrite_redirect(data).is_none());
    let Some(line) = data.strip_suffix(b"\r\n") else {
        return;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let Some((head, addr)) = line.rsplit_once(' ') else {
        return;
    };
    let mut m = std::collections::BTreeMap::new();
    m.insert(addr.to_string(), PUBLIC_ADDR.to_string());
    let out = AddressMap::new(m).rewrite_redirect(data);
    assert_eq!(
        out,
        Some(format!("{head} {PUBLIC_ADDR}\r\n").into_bytes()),
        "address_map: rewrite_redirect of {}",
        show(data)
    );
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

pub fn check_config(text: &str) {
    let first = Config::from_yaml(text);
    assert_eq!(
        first,
        Config::from_yaml(text),
        "config: from_yaml is not deterministic"
    );
    match &first {
        Ok(c) => {
            if c.validate().is_ok() {
                assert!(
                    !c.redis_nodes.is_empty(),
                    "config: valid without redis_nodes"
                );
                for n in &c.redis_nodes {
                    assert!(
                        config::split_host_port(n).is_some(),
                        "config: valid with node {n:?}"
                    );
                }
                assert!(
                    c.bind.parse::<IpAddr>().is_ok(),
                    "config: valid with bind {:?}",
                    c.bind
                );
                assert!((1..=64).contains(&c.backend_connections));
                assert!(c.max_redirects <= 100);
                assert!(c.refresh_interval >= std::time::Duration::from_millis(100));
                assert!(!c.connect_timeout.is_zero());
                assert!(c.socket.backlog > 0);
                for (k, v) in &c.address_map {
                    assert!(
                        config::split_host_port(k).is_some()
                            && config::split_host_port(v).is_some()
                    );
                }
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "config: an empty error message"),
    }
    // The helpers the schema uses, on the raw text and on each line.
    for s in std::iter::once(text).chain(text.lines()) {
        if let Some(d) = config::parse_duration(s) {
            assert!(
                d.as_secs() <= 365 * 86400,
                "config: duration {d:?} from {s:?}"
            );
        }
        if let Some((h, p)) = config::split_host_port(s) {
            assert!(
                !h.is_empty() && p != 0,
                "config: split_host_port({s:?}) = ({h:?}, {p})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------

/// Argument lists from bytes: one command per line, arguments split on single spaces; and,
/// when the input holds a NUL, the whole input as one command split on NUL (so arguments
/// can hold spaces and line breaks).
pub fn route_inputs(data: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut out: Vec<Vec<&[u8]>> = data
        .split(|&b| b == b'\n')
        .take(64)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| l.split(|&b| b == b' ').collect())
        .collect();
    if data.contains(&0) {
        out.push(data.split(|&b| b == 0).collect());
    }
    out
}

fn keys_of(cmd: &Command, args: &[&[u8]]) -> Vec<usize> {
    let mut keys = Vec::new();
    command::for_each_key(cmd, args, |i| {
        keys.push(i);
        keys.len() < 100_000
    });
    keys
}

fn show_args(args: &[&[u8]]) -> String {
    args.iter()
        .take(12)
        .map(|a| show(a))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn check_route(args: &[&[u8]]) {
    let r = route::route(args);
    assert_eq!(
        route::route(args),
        r,
        "route: not deterministic for {}",
        show_args(args)
    );
    for a in args {
        assert!((key_slot(a).0 as usize) < SLOTS);
    }
    let Some(cmd) = command::lookup(args) else {
        return;
    };
    let keys = keys_of(cmd, args);
    for &i in &keys {
        assert!(
            i >= 1 && i < args.len(),
            "route: for_each_key gave index {i} of {} args for {}",
            args.len(),
            show_args(args)
        );
    }
    // Stopping early is honoured.
    let mut calls = 0;
    command::for_each_key(cmd, args, |_| {
        calls += 1;
        false
    });
    assert!(
        calls <= 1,
        "route: for_each_key went on after f returned false"
    );
    let slots: Vec<Slot> = keys.iter().map(|&i| key_slot(args[i])).collect();
    let one_slot = slots.windows(2).all(|w| w[0] == w[1]);
    match &r {
        Route::Slot(s) | Route::ReadSlot(s) => {
            for (&i, &ks) in keys.iter().zip(&slots) {
                assert_eq!(
                    ks,
                    *s,
                    "route: routed to slot {} but key #{i} {} hashes to slot {}: {}",
                    s.0,
                    show(args[i]),
                    ks.0,
                    show_args(args)
                );
            }
        }
        Route::Split { per_key, .. } => {
            assert!(
                *per_key >= 1 && (args.len() - 1) % per_key == 0,
                "route: {r:?}"
            );
            assert!(
                !one_slot,
                "route: Split for keys of one slot: {}",
                show_args(args)
            );
        }
        Route::Refuse(ProxyError::CrossSlot) => {
            assert!(
                !one_slot,
                "route: CROSSSLOT for keys of one slot: {}",
                show_args(args)
            )
        }
        _ => {}
    }
    // Command (and subcommand) names are case-insensitive.
    let upper: Vec<Vec<u8>> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 || (i == 1 && cmd.name.contains('|')) {
                a.to_ascii_uppercase()
            } else {
                a.to_vec()
            }
        })
        .collect();
    let upper: Vec<&[u8]> = upper.iter().map(Vec::as_slice).collect();
    assert_eq!(
        route::route(upper.as_slice()),
        r,
        "route: the name's case changes the route of {}",
        show_args(args)
    );
}

pub fn check_route_bytes(data: &[u8]) {
    for args in route_inputs(data) {
        check_route(&args);
    }
}
