//! LCS across slots: the proxy GETs both keys and answers as Redis 7's `lcsCommand` would.
//!
//! The reply is not just "a" longest common subsequence: which one, and which match ranges
//! IDX lists (and in what order), follow from Redis's exact table and backtracking rules,
//! so those are reproduced step by step.
//!
//! Order of checks in Redis, which a caller reproduces by calling in this order:
//! 1. both keys' types ("-ERR The specified keys must contain string values"; a missing
//!    key counts as "") — the caller's, before anything here;
//! 2. [`parse_options`]: option errors in argument order, then the IDX + LEN conflict;
//! 3. [`lcs_reply`]: the size checks, then the reply.

/// The options after the two keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcsOptions {
    /// LEN: reply with the length only.
    pub len: bool,
    /// IDX: reply with the match ranges and the length.
    pub idx: bool,
    /// MINMATCHLEN (negative values already raised to 0, as Redis does): ranges shorter
    /// than this are left out of IDX's list.
    pub min_match_len: i64,
    /// WITHMATCHLEN: each IDX range also carries its length.
    pub with_match_len: bool,
}

/// Parses the options after the two keys (arguments as given by the client, without the
/// command name and keys) with Redis's own error texts.
///
/// The error is the message as Redis sends it without the leading '-' and the CRLF, e.g.
/// "ERR syntax error"; the frame is `-{message}\r\n`.
///
/// Like Redis, the first bad option wins (a later one is not looked at), and the IDX + LEN
/// conflict is reported only when every option parsed.
pub fn parse_options(args: &[&[u8]]) -> Result<LcsOptions, String> {
    let mut o = LcsOptions::default();
    let mut j = 0;
    while j < args.len() {
        // Redis compares with strcasecmp on the NUL-terminated argument, so anything after
        // an embedded NUL is ignored ("IDX\0junk" is IDX).
        let opt = c_str(args[j]);
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"IDX") {
            o.idx = true;
        } else if opt.eq_ignore_ascii_case(b"LEN") {
            o.len = true;
        } else if opt.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            o.with_match_len = true;
        } else if opt.eq_ignore_ascii_case(b"MINMATCHLEN") && more {
            let v = parse_i64(args[j + 1])
                .ok_or_else(|| "ERR value is not an integer or out of range".to_string())?;
            o.min_match_len = v.max(0);
            j += 1;
        } else {
            return Err("ERR syntax error".to_string());
        }
        j += 1;
    }
    if o.len && o.idx {
        return Err(
            "ERR If you want both the length and indexes, please just use IDX.".to_string(),
        );
    }
    Ok(o)
}

fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// Redis's `string2ll`: optional '-', no '+', no leading zeros (except "0" itself), no
/// spaces, at most 20 characters, within i64.
fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > 1u64 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// The reply frame Redis would send, in RESP2 (`resp3 == false`) or RESP3 (IDX's reply is
/// a map `%2` in RESP3, an array `*4` in RESP2). `max_table_bytes`: if
/// (a.len()+1)*(b.len()+1)*4 exceeds it, return the error frame "-ERR Insufficient memory,
/// transient memory for LCS exceeds proto-max-bulk-len\r\n" instead of allocating.
///
/// Pass the node's proto-max-bulk-len (512 MiB by default) to answer as it would. The
/// table is that many bytes for real here too, and filling it costs one step per cell.
pub fn lcs_reply(a: &[u8], b: &[u8], o: &LcsOptions, resp3: bool, max_table_bytes: u64) -> Vec<u8> {
    if o.len && o.idx {
        // parse_options never returns this; kept so a hand-built value cannot do both.
        return b"-ERR If you want both the length and indexes, please just use IDX.\r\n".to_vec();
    }
    // Redis keeps lengths and table entries in 32 bits.
    let (Ok(alen), Ok(blen)) = (u32::try_from(a.len()), u32::try_from(b.len())) else {
        return b"-ERR String too long for LCS\r\n".to_vec();
    };
    if alen >= u32::MAX - 1 || blen >= u32::MAX - 1 {
        return b"-ERR String too long for LCS\r\n".to_vec();
    }
    const ALLOC_FAILED: &[u8] =
        b"-ERR Insufficient memory, failed allocating transient memory for LCS\r\n";
    // Both factors are below 2^32, so only the byte count can overflow.
    let cells = (u64::from(alen) + 1) * (u64::from(blen) + 1);
    let Some(bytes) = cells.checked_mul(4) else {
        return ALLOC_FAILED.to_vec();
    };
    if bytes > max_table_bytes {
        return b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
            .to_vec();
    }
    let Ok(cells) = usize::try_from(cells) else {
        return ALLOC_FAILED.to_vec();
    };
    let mut lcs: Vec<u32> = Vec::new();
    if lcs.try_reserve_exact(cells).is_err() {
        return ALLOC_FAILED.to_vec();
    }
    lcs.resize(cells, 0);

    let (alen, blen) = (alen as usize, blen as usize);
    let w = blen + 1;
    // LCS(i, j) = length of the LCS of a[..i] and b[..j], at lcs[i * w + j]; row 0 and
    // column 0 stay 0.
    for i in 1..=alen {
        for j in 1..=blen {
            lcs[i * w + j] = if a[i - 1] == b[j - 1] {
                lcs[(i - 1) * w + (j - 1)] + 1
            } else {
                lcs[(i - 1) * w + j].max(lcs[i * w + (j - 1)])
            };
        }
    }
    let total = lcs[alen * w + blen];

    if o.len {
        let mut out = Vec::with_capacity(16);
        push_int(&mut out, i64::from(total));
        return out;
    }

    // Walk back from the end, as Redis does: on a match take the character, else step
    // towards the larger neighbour (up, i.e. dropping a's char, only when strictly larger).
    // Ranges are tracked while the matches are contiguous on both sides and emitted when
    // the run breaks or reaches the start of either string; so IDX lists them last first.
    let mut result = vec![0u8; if o.idx { 0 } else { total as usize }];
    let mut ranges = Vec::new();
    let mut nranges: u64 = 0;
    let alen32 = alen as u32;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen32, 0u32, 0u32, 0u32);
    let mut idx = total as usize;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            if let Some(slot) = idx.checked_sub(1).and_then(|k| result.get_mut(k)) {
                *slot = a[i - 1];
            }
            let (ci, cj) = ((i - 1) as u32, (j - 1) as u32);
            if a_start == alen32 {
                a_start = ci;
                a_end = ci;
                b_start = cj;
                b_end = cj;
            } else if a_start == ci + 1 && b_start == cj + 1 {
                a_start -= 1;
                b_start -= 1;
            } else {
                // Not reachable with this walk (a match always follows a match at
                // (i+1, j+1) or a step that closed the range), but Redis has it: the
                // open range is emitted and this match starts none.
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx = idx.saturating_sub(1);
            i -= 1;
            j -= 1;
        } else {
            if lcs[(i - 1) * w + j] > lcs[i * w + (j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen32 {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end.wrapping_sub(a_start).wrapping_add(1);
            if o.idx && (o.min_match_len == 0 || i64::from(match_len) >= o.min_match_len) {
                ranges.extend_from_slice(if o.with_match_len {
                    b"*3\r\n"
                } else {
                    b"*2\r\n"
                });
                ranges.extend_from_slice(b"*2\r\n");
                push_int(&mut ranges, i64::from(a_start));
                push_int(&mut ranges, i64::from(a_end));
                ranges.extend_from_slice(b"*2\r\n");
                push_int(&mut ranges, i64::from(b_start));
                push_int(&mut ranges, i64::from(b_end));
                if o.with_match_len {
                    push_int(&mut ranges, i64::from(match_len));
                }
                nranges += 1;
            }
            a_start = alen32;
        }
    }

    let mut out = Vec::with_capacity(ranges.len() + result.len() + 48);
    if o.idx {
        out.extend_from_slice(if resp3 { b"%2\r\n" } else { b"*4\r\n" });
        out.extend_from_slice(b"$7\r\nmatches\r\n");
        out.push(b'*');
        crate::resp::encode::decimal(&mut out, nranges);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&ranges);
        out.extend_from_slice(b"$3\r\nlen\r\n");
        push_int(&mut out, i64::from(total));
    } else {
        out.push(b'$');
        crate::resp::encode::decimal(&mut out, result.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&result);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `:<v>\r\n`
fn push_int(out: &mut Vec<u8>, v: i64) {
    out.push(b':');
    if v < 0 {
        out.push(b'-');
    }
    crate::resp::encode::decimal(out, v.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 512 * 1024 * 1024;

    fn opts(args: &[&str]) -> Result<LcsOptions, String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_options(&args)
    }

    fn reply(a: &str, b: &str, args: &[&str], resp3: bool) -> String {
        let o = opts(args).unwrap();
        String::from_utf8(lcs_reply(a.as_bytes(), b.as_bytes(), &o, resp3, MAX)).unwrap()
    }

    /// The IDX reply's tail after the header, which RESP2 and RESP3 share.
    fn both(a: &str, b: &str, args: &[&str], tail: &str) {
        assert_eq!(
            reply(a, b, args, false),
            format!("*4\r\n{tail}"),
            "{a} {b} {args:?}"
        );
        assert_eq!(
            reply(a, b, args, true),
            format!("%2\r\n{tail}"),
            "{a} {b} {args:?}"
        );
    }

    // Expected bytes below are redis-server 7.0.15's replies to LCS ka kb <options>, over
    // RESP2 and after HELLO 3.

    #[test]
    fn docs_example() {
        let (a, b) = ("ohmytext", "mynewtext");
        for resp3 in [false, true] {
            assert_eq!(reply(a, b, &[], resp3), "$6\r\nmytext\r\n");
            assert_eq!(reply(a, b, &["LEN"], resp3), ":6\r\n");
        }
        both(
            a,
            b,
            &["IDX"],
            "$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
             *2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n",
        );
        both(
            a,
            b,
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
             *3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n",
        );
        both(
            a,
            b,
            &["IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
             $3\r\nlen\r\n:6\r\n",
        );
        // A negative MINMATCHLEN is 0: everything is listed.
        both(
            a,
            b,
            &["MINMATCHLEN", "-5", "IDX"],
            "$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
             *2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n",
        );
        // The last MINMATCHLEN wins; WITHMATCHLEN and MINMATCHLEN alone change nothing.
        both(
            a,
            b,
            &[
                "MINMATCHLEN",
                "1",
                "MINMATCHLEN",
                "5",
                "IDX",
                "WITHMATCHLEN",
            ],
            "$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:6\r\n",
        );
        assert_eq!(reply(a, b, &["WITHMATCHLEN"], false), "$6\r\nmytext\r\n");
        assert_eq!(
            reply(a, b, &["MINMATCHLEN", "4"], false),
            "$6\r\nmytext\r\n"
        );
        assert_eq!(reply(a, b, &["LEN", "LEN"], false), ":6\r\n");
    }

    #[test]
    fn empty_and_disjoint() {
        for (a, b) in [("", ""), ("abc", ""), ("", "abc"), ("abc", "xyz")] {
            for resp3 in [false, true] {
                assert_eq!(reply(a, b, &[], resp3), "$0\r\n\r\n");
                assert_eq!(reply(a, b, &["LEN"], resp3), ":0\r\n");
            }
            for args in [
                &["IDX"][..],
                &["IDX", "WITHMATCHLEN"],
                &["IDX", "MINMATCHLEN", "2"],
            ] {
                both(a, b, args, "$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n");
            }
        }
    }

    #[test]
    fn identical_and_others() {
        assert_eq!(reply("abc", "abc", &[], false), "$3\r\nabc\r\n");
        both(
            "abc",
            "abc",
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:0\r\n:2\r\n*2\r\n:0\r\n:2\r\n:3\r\n\
             $3\r\nlen\r\n:3\r\n",
        );
        both(
            "abc",
            "abc",
            &["IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:3\r\n",
        );
        both(
            "a",
            "a",
            &["IDX"],
            "$7\r\nmatches\r\n*1\r\n*2\r\n*2\r\n:0\r\n:0\r\n*2\r\n:0\r\n:0\r\n$3\r\nlen\r\n:1\r\n",
        );
        // Which "aa" of "aaaa": the last two.
        assert_eq!(reply("aaaa", "aa", &[], false), "$2\r\naa\r\n");
        both(
            "aaaa",
            "aa",
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n\
             $3\r\nlen\r\n:2\r\n",
        );
        // The textbook pair: Redis picks "BDAB".
        assert_eq!(reply("ABCBDAB", "BDCABA", &[], false), "$4\r\nBDAB\r\n");
        both(
            "ABCBDAB",
            "BDCABA",
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:5\r\n:6\r\n*2\r\n:3\r\n:4\r\n:2\r\n\
             *3\r\n*2\r\n:3\r\n:4\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:4\r\n",
        );
        assert_eq!(reply("abcdef", "zabcyzdef", &[], false), "$6\r\nabcdef\r\n");
        both(
            "abcdef",
            "zabcyzdef",
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:3\r\n:5\r\n*2\r\n:6\r\n:8\r\n:3\r\n\
             *3\r\n*2\r\n:0\r\n:2\r\n*2\r\n:1\r\n:3\r\n:3\r\n$3\r\nlen\r\n:6\r\n",
        );
        both(
            "12345678",
            "2468",
            &["IDX"],
            "$7\r\nmatches\r\n*4\r\n*2\r\n*2\r\n:7\r\n:7\r\n*2\r\n:3\r\n:3\r\n\
             *2\r\n*2\r\n:5\r\n:5\r\n*2\r\n:2\r\n:2\r\n*2\r\n*2\r\n:3\r\n:3\r\n*2\r\n:1\r\n:1\r\n\
             *2\r\n*2\r\n:1\r\n:1\r\n*2\r\n:0\r\n:0\r\n$3\r\nlen\r\n:4\r\n",
        );
        both(
            "12345678",
            "2468",
            &["IDX", "MINMATCHLEN", "2"],
            "$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:4\r\n",
        );
        both(
            "xaxbxcx",
            "abc",
            &["IDX", "WITHMATCHLEN"],
            "$7\r\nmatches\r\n*3\r\n*3\r\n*2\r\n:5\r\n:5\r\n*2\r\n:2\r\n:2\r\n:1\r\n\
             *3\r\n*2\r\n:3\r\n:3\r\n*2\r\n:1\r\n:1\r\n:1\r\n\
             *3\r\n*2\r\n:1\r\n:1\r\n*2\r\n:0\r\n:0\r\n:1\r\n$3\r\nlen\r\n:3\r\n",
        );
    }

    #[test]
    fn option_errors_like_redis() {
        let syntax = Err("ERR syntax error".to_string());
        let not_int = Err("ERR value is not an integer or out of range".to_string());
        let both_err =
            Err("ERR If you want both the length and indexes, please just use IDX.".to_string());
        assert_eq!(opts(&["MINMATCHLEN"]), syntax);
        assert_eq!(opts(&["LEN", "IDX", "foo"]), syntax);
        assert_eq!(opts(&["foo", "IDX", "LEN"]), syntax);
        assert_eq!(opts(&["MINMATCHLEN", "abc"]), not_int);
        assert_eq!(opts(&["IDX", "LEN", "MINMATCHLEN", "x"]), not_int);
        for bad in [
            "+4",
            "04",
            " 4",
            "4.0",
            "",
            "-0",
            "9223372036854775808",
            "-",
        ] {
            assert_eq!(opts(&["MINMATCHLEN", bad, "IDX"]), not_int, "{bad:?}");
        }
        assert_eq!(opts(&["IDX", "LEN"]), both_err);
        assert_eq!(
            opts(&["MINMATCHLEN", "-9223372036854775808", "idx"]),
            Ok(LcsOptions {
                idx: true,
                ..Default::default()
            })
        );
        assert_eq!(
            opts(&["idx", "withmatchlen", "minmatchlen", "9223372036854775807"]),
            Ok(LcsOptions {
                idx: true,
                with_match_len: true,
                min_match_len: i64::MAX,
                ..Default::default()
            })
        );
        // strcasecmp stops at a NUL.
        assert_eq!(
            parse_options(&[b"IDX\0zz"]),
            Ok(LcsOptions {
                idx: true,
                ..Default::default()
            })
        );
        assert_eq!(opts(&[]), Ok(LcsOptions::default()));
    }

    #[test]
    fn table_size_limit() {
        // proto-max-bulk-len 1048576 on redis-server 7.0.15: 601 x 437 x 4 = 1050548 is
        // refused, 601 x 436 x 4 = 1048144 is computed.
        let a = vec![b'a'; 600];
        let o = opts(&["LEN"]).unwrap();
        assert_eq!(
            lcs_reply(&a, &vec![b'b'; 436], &o, false, 1_048_576),
            b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
        assert_eq!(
            lcs_reply(&a, &vec![b'b'; 435], &o, false, 1_048_576),
            b":0\r\n"
        );
        // Exactly at the limit is allowed (Redis refuses only "greater than").
        assert_eq!(lcs_reply(b"ab", b"b", &o, false, 3 * 2 * 4), b":1\r\n");
        assert_eq!(
            lcs_reply(b"ab", b"b", &o, false, 3 * 2 * 4 - 1),
            b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
        // Even an empty pair needs its 1x1 table.
        assert_eq!(
            lcs_reply(b"", b"", &o, false, 0),
            b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
    }

    #[test]
    fn matches_brute_force_length() {
        // The reply's length is the true LCS length, and the string is a common
        // subsequence of it; checked on small random pairs over a tiny alphabet.
        let mut s: u64 = 12345;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..300 {
            let la = (next() % 9) as usize;
            let lb = (next() % 9) as usize;
            let a: Vec<u8> = (0..la).map(|_| b'a' + (next() % 3) as u8).collect();
            let b: Vec<u8> = (0..lb).map(|_| b'a' + (next() % 3) as u8).collect();
            let text = lcs_reply(&a, &b, &LcsOptions::default(), false, MAX);
            let body_start = text.iter().position(|&c| c == b'\n').unwrap() + 1;
            let sub = &text[body_start..text.len() - 2];
            let is_subseq = |s: &[u8], t: &[u8]| {
                let mut it = t.iter();
                s.iter().all(|c| it.any(|d| d == c))
            };
            assert!(is_subseq(sub, &a) && is_subseq(sub, &b));
            let len = lcs_reply(&a, &b, &opts(&["LEN"]).unwrap(), false, MAX);
            assert_eq!(len, format!(":{}\r\n", sub.len()).into_bytes());
        }
    }
}
