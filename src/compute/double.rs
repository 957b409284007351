//! Scores as text, the way the node that would have answered writes them.
//!
//! When the proxy answers a command itself (a ZUNION across slots, say), the scores it
//! prints must be byte-identical to what the cluster's nodes print, and that depends on
//! their version: Redis before 7.2 prints `"%.17g"`, Redis 7.2 and later (and Valkey) print
//! the shortest digits found by Grisu2 (`fpconv_dtoa`), with their own choice of when to use
//! an exponent. Parsing follows `strtod` as Redis checks it (`string2d`), so the proxy
//! rejects exactly the scores and weights the nodes would.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoubleStyle {
    /// `"%.17g"` (Redis < 7.2), "inf"/"-inf", and "nan".
    G17,
    /// `d2string` of Redis >= 7.2 and Valkey: integers as integers, else `fpconv_dtoa`.
    Shortest,
}

impl DoubleStyle {
    /// From a node's `redis_version` (e.g. "7.0.15" -> G17, "7.2.4" -> Shortest;
    /// unparsable -> Shortest).
    ///
    /// 7.1.x counts as new: those numbers were only ever the 7.2 release candidates
    /// (7.2-rc1 is "7.1.240"), which already had fpconv. Unparsable goes to Shortest because
    /// every current server prints that way (unstable builds report "255.255.255").
    pub fn for_version(v: &str) -> DoubleStyle {
        let mut parts = v.trim().split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
        match (major, minor) {
            (Some(major), Some(minor)) if (major, minor) < (7, 1) => DoubleStyle::G17,
            _ => DoubleStyle::Shortest,
        }
    }
}

/// Appends the text Redis would write for `d` (no framing).
pub fn write_double(out: &mut Vec<u8>, d: f64, style: DoubleStyle) {
    // Both styles spell the special values alike: Redis 7.0 special-cases infinities, and
    // NaN never reaches a reply there (scores reject it), so "nan" is the 7.2 spelling.
    if d.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    match style {
        DoubleStyle::G17 => write_g17(out, d),
        DoubleStyle::Shortest => write_shortest(out, d),
    }
}

/// A stack buffer for `core::fmt`, so formatting a score does not allocate.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `printf("%.17g", d)` for finite `d`, as glibc writes it.
fn write_g17(out: &mut Vec<u8>, d: f64) {
    if d.is_sign_negative() {
        out.push(b'-');
    }
    let a = d.abs();
    if a == 0.0 {
        out.push(b'0');
        return;
    }
    // Rust's exact-precision formatting rounds the true binary value correctly, ties to
    // even, as glibc does, so its 17 digits and exponent are the ones %.17g chooses from.
    let mut s = StackBuf {
        buf: [0; 64],
        len: 0,
    };
    if write!(s, "{a:.16e}").is_err() {
        return;
    }
    let text = &s.buf[..s.len];
    let Some(e_pos) = text.iter().position(|&c| c == b'e') else {
        return;
    };
    let mut digits = [0u8; 17];
    let mut n = 0;
    for &c in &text[..e_pos] {
        if c.is_ascii_digit() && n < digits.len() {
            digits[n] = c;
            n += 1;
        }
    }
    let exp: i32 = std::str::from_utf8(&text[e_pos + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    // %g drops trailing zeros of the fraction (and the point with them).
    let mut sig = n;
    while sig > 1 && digits[sig - 1] == b'0' {
        sig -= 1;
    }
    let digits = &digits[..sig];
    if (-4..17).contains(&exp) {
        if exp >= 0 {
            // exp < 17 = the digit count, so the integer part is all there.
            let int_len = exp as usize + 1;
            for i in 0..int_len {
                out.push(digits.get(i).copied().unwrap_or(b'0'));
            }
            if digits.len() > int_len {
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        // C writes at least two exponent digits.
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        crate::resp::encode::decimal(out, u64::from(e));
    }
}

/// Redis 7.2's `d2string` for finite `d`.
fn write_shortest(out: &mut Vec<u8>, d: f64) {
    if d == 0.0 {
        out.extend_from_slice(if d.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // double2ll: integral values within +-(LLONG_MAX/2), that bound rounded to a double
    // (2^62), print as integers, never with an exponent.
    const BOUND: f64 = 4_611_686_018_427_387_904.0;
    if (-BOUND..=BOUND).contains(&d) {
        let ll = d as i64;
        if ll as f64 == d {
            if ll < 0 {
                out.push(b'-');
            }
            crate::resp::encode::decimal(out, ll.unsigned_abs());
            return;
        }
    }
    fpconv_dtoa(out, d);
}

// ---- Grisu2, as deps/fpconv/fpconv_dtoa.c does it ----
//
// Grisu2 does not always find the shortest digits, nor the closest ones, so only the very
// same steps (same cached powers, same rounding of the 64x64 product, same digit
// generation and rounding loop) give the same text as Redis.

const FRACMASK: u64 = 0x000F_FFFF_FFFF_FFFF;
const EXPMASK: u64 = 0x7FF0_0000_0000_0000;
const HIDDENBIT: u64 = 0x0010_0000_0000_0000;
const EXPBIAS: i32 = 1023 + 52;

const TENS: [u64; 20] = [
    10_000_000_000_000_000_000,
    1_000_000_000_000_000_000,
    100_000_000_000_000_000,
    10_000_000_000_000_000,
    1_000_000_000_000_000,
    100_000_000_000_000,
    10_000_000_000_000,
    1_000_000_000_000,
    100_000_000_000,
    10_000_000_000,
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// Normalized approximations of 10^(-348 + 8i), as (significand, binary exponent).
const POWERS_TEN: [(u64, i32); 87] = [
    (18054884314459144840, -1220),
    (13451937075301367670, -1193),
    (10022474136428063862, -1166),
    (14934650266808366570, -1140),
    (11127181549972568877, -1113),
    (16580792590934885855, -1087),
    (12353653155963782858, -1060),
    (18408377700990114895, -1034),
    (13715310171984221708, -1007),
    (10218702384817765436, -980),
    (15227053142812498563, -954),
    (11345038669416679861, -927),
    (16905424996341287883, -901),
    (12595523146049147757, -874),
    (9384396036005875287, -847),
    (13983839803942852151, -821),
    (10418772551374772303, -794),
    (15525180923007089351, -768),
    (11567161174868858868, -741),
    (17236413322193710309, -715),
    (12842128665889583758, -688),
    (9568131466127621947, -661),
    (14257626930069360058, -635),
    (10622759856335341974, -608),
    (15829145694278690180, -582),
    (11793632577567316726, -555),
    (17573882009934360870, -529),
    (13093562431584567480, -502),
    (9755464219737475723, -475),
    (14536774485912137811, -449),
    (10830740992659433045, -422),
    (16139061738043178685, -396),
    (12024538023802026127, -369),
    (17917957937422433684, -343),
    (13349918974505688015, -316),
    (9946464728195732843, -289),
    (14821387422376473014, -263),
    (11042794154864902060, -236),
    (16455045573212060422, -210),
    (12259964326927110867, -183),
    (18268770466636286478, -157),
    (13611294676837538539, -130),
    (10141204801825835212, -103),
    (15111572745182864684, -77),
    (11258999068426240000, -50),
    (16777216000000000000, -24),
    (12500000000000000000, 3),
    (9313225746154785156, 30),
    (13877787807814456755, 56),
    (10339757656912845936, 83),
    (15407439555097886824, 109),
    (11479437019748901445, 136),
    (17105694144590052135, 162),
    (12744735289059618216, 189),
    (9495567745759798747, 216),
    (14149498560666738074, 242),
    (10542197943230523224, 269),
    (15709099088952724970, 295),
    (11704190886730495818, 322),
    (17440603504673385349, 348),
    (12994262207056124023, 375),
    (9681479787123295682, 402),
    (14426529090290212157, 428),
    (10748601772107342003, 455),
    (16016664761464807395, 481),
    (11933345169920330789, 508),
    (17782069995880619868, 534),
    (13248674568444952270, 561),
    (9871031767461413346, 588),
    (14708983551653345445, 614),
    (10959046745042015199, 641),
    (16330252207878254650, 667),
    (12166986024289022870, 694),
    (18130221999122236476, 720),
    (13508068024458167312, 747),
    (10064294952495520794, 774),
    (14996968138956309548, 800),
    (11173611982879273257, 827),
    (16649979327439178909, 853),
    (12405201291620119593, 880),
    (9242595204427927429, 907),
    (13772540099066387757, 933),
    (10261342003245940623, 960),
    (15290591125556738113, 986),
    (11392378155556871081, 1013),
    (16975966327722178521, 1039),
    (12648080533535911531, 1066),
];

#[derive(Clone, Copy)]
struct Fp {
    frac: u64,
    exp: i32,
}

fn build_fp(d: f64) -> Fp {
    let bits = d.to_bits();
    let frac = bits & FRACMASK;
    let exp = ((bits & EXPMASK) >> 52) as i32;
    if exp != 0 {
        Fp {
            frac: frac + HIDDENBIT,
            exp: exp - EXPBIAS,
        }
    } else {
        Fp {
            frac,
            exp: -EXPBIAS + 1,
        }
    }
}

fn normalize(fp: &mut Fp) {
    // frac == 0 would loop forever; zero never gets here, but the guard costs nothing.
    if fp.frac == 0 {
        return;
    }
    while fp.frac & HIDDENBIT == 0 {
        fp.frac <<= 1;
        fp.exp -= 1;
    }
    fp.frac <<= 11;
    fp.exp -= 11;
}

/// (lower, upper): the boundaries of the rounding interval of `fp`, on a common exponent.
fn normalized_boundaries(fp: &Fp) -> (Fp, Fp) {
    let mut upper = Fp {
        frac: (fp.frac << 1) + 1,
        exp: fp.exp - 1,
    };
    while upper.frac & (HIDDENBIT << 1) == 0 {
        upper.frac <<= 1;
        upper.exp -= 1;
    }
    upper.frac <<= 10;
    upper.exp -= 10;

    let l_shift = if fp.frac == HIDDENBIT { 2 } else { 1 };
    let mut lower = Fp {
        frac: (fp.frac << l_shift) - 1,
        exp: fp.exp - l_shift,
    };
    let shift = (lower.exp - upper.exp).clamp(0, 63) as u32;
    lower.frac <<= shift;
    lower.exp = upper.exp;
    (lower, upper)
}

fn multiply(a: &Fp, b: &Fp) -> Fp {
    const LOMASK: u64 = 0x0000_0000_FFFF_FFFF;
    let ah_bl = (a.frac >> 32) * (b.frac & LOMASK);
    let al_bh = (a.frac & LOMASK) * (b.frac >> 32);
    let al_bl = (a.frac & LOMASK) * (b.frac & LOMASK);
    let ah_bh = (a.frac >> 32) * (b.frac >> 32);
    // Round the dropped low half up, as the C does.
    let tmp = (ah_bl & LOMASK) + (al_bh & LOMASK) + (al_bl >> 32) + (1u64 << 31);
    Fp {
        frac: ah_bh
            .wrapping_add(ah_bl >> 32)
            .wrapping_add(al_bh >> 32)
            .wrapping_add(tmp >> 32),
        exp: a.exp + b.exp + 64,
    }
}

/// The cached power of ten that brings `exp` into [-60, -32], and its decimal exponent.
fn cached_pow10(exp: i32) -> Option<(Fp, i32)> {
    const ONE_LOG_TEN: f64 = 0.301_029_995_663_981_14;
    let approx = (f64::from(-(exp + 87)) * ONE_LOG_TEN) as i32;
    let mut idx = (approx + 348) / 8;
    // The estimate is off by at most one step; the bound keeps a bug from spinning.
    for _ in 0..POWERS_TEN.len() {
        let &(frac, pexp) = POWERS_TEN.get(usize::try_from(idx).ok()?)?;
        let current = exp + pexp + 64;
        if current < -60 {
            idx += 1;
        } else if current > -32 {
            idx -= 1;
        } else {
            return Some((Fp { frac, exp: pexp }, -348 + idx * 8));
        }
    }
    None
}

fn round_digit(digits: &mut [u8], delta: u64, mut rem: u64, kappa: u64, frac: u64) {
    let Some(last) = digits.last_mut() else {
        return;
    };
    while rem < frac
        && delta.wrapping_sub(rem) >= kappa
        && (rem.wrapping_add(kappa) < frac
            || frac - rem > rem.wrapping_add(kappa).wrapping_sub(frac))
    {
        *last = last.wrapping_sub(1);
        rem = rem.wrapping_add(kappa);
    }
}

/// Writes the digits into `digits`, returns how many, and adds their decimal exponent to `k`.
fn generate_digits(fp: &Fp, upper: &Fp, lower: &Fp, digits: &mut [u8; 24], k: &mut i32) -> usize {
    let wfrac = upper.frac.wrapping_sub(fp.frac);
    let mut delta = upper.frac.wrapping_sub(lower.frac);

    // upper.exp is in [-60, -32] thanks to the cached power.
    let shift = (-upper.exp).clamp(0, 63) as u32;
    let one_frac = 1u64 << shift;
    let mut part1 = upper.frac >> shift;
    let mut part2 = upper.frac & (one_frac - 1);

    let mut idx = 0usize;
    let mut kappa = 10i32;
    for &div in &TENS[10..] {
        let digit = part1 / div;
        if (digit != 0 || idx != 0) && idx < digits.len() {
            digits[idx] = (digit as u8).wrapping_add(b'0');
            idx += 1;
        }
        part1 -= digit * div;
        kappa -= 1;
        let tmp = (part1 << shift).wrapping_add(part2);
        if tmp <= delta {
            *k += kappa;
            round_digit(&mut digits[..idx], delta, tmp, div << shift, wfrac);
            return idx;
        }
    }

    let mut unit = 18usize;
    loop {
        part2 = part2.wrapping_mul(10);
        delta = delta.wrapping_mul(10);
        kappa -= 1;
        let digit = part2 >> shift;
        if (digit != 0 || idx != 0) && idx < digits.len() {
            digits[idx] = (digit as u8).wrapping_add(b'0');
            idx += 1;
        }
        part2 &= one_frac - 1;
        if part2 < delta || unit == 0 || idx >= digits.len() {
            *k += kappa;
            round_digit(
                &mut digits[..idx],
                delta,
                part2,
                one_frac,
                wfrac.wrapping_mul(TENS[unit]),
            );
            return idx;
        }
        unit -= 1;
    }
}

fn grisu2(d: f64, digits: &mut [u8; 24], k: &mut i32) -> usize {
    let mut w = build_fp(d);
    let (lower, upper) = normalized_boundaries(&w);
    normalize(&mut w);
    let Some((cp, cached_k)) = cached_pow10(upper.exp) else {
        return 0;
    };
    let w = multiply(&w, &cp);
    let mut upper = multiply(&upper, &cp);
    let mut lower = multiply(&lower, &cp);
    // Narrow the interval by one unit each side to allow for the products' error.
    lower.frac = lower.frac.wrapping_add(1);
    upper.frac = upper.frac.wrapping_sub(1);
    *k = -cached_k;
    generate_digits(&w, &upper, &lower, digits, k)
}

/// fpconv's layout of `digits` x 10^k: plain integers up to 7 trailing zeros past the
/// digits, plain decimals while the point is within reach, an exponent otherwise
/// ("1e+21", "1e-7", and, for long digit strings, even "1.2345678901234567e+6").
fn emit_digits(out: &mut Vec<u8>, digits: &[u8], k: i32, neg: bool) {
    let mut ndigits = digits.len() as i32;
    let mut exp = (k + ndigits - 1).abs();

    if k >= 0 && exp < ndigits + 7 {
        out.extend_from_slice(digits);
        for _ in 0..k {
            out.push(b'0');
        }
        return;
    }

    if k < 0 && (k > -7 || exp < 4) {
        let offset = ndigits - k.abs();
        if offset <= 0 {
            out.extend_from_slice(b"0.");
            for _ in 0..-offset {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
        } else {
            let offset = offset as usize;
            out.extend_from_slice(&digits[..offset]);
            out.push(b'.');
            out.extend_from_slice(&digits[offset..]);
        }
        return;
    }

    // The C caps the digits here (a buffer-size guard); the sign of the exponent uses the
    // capped count but its magnitude the uncapped one, which we keep.
    ndigits = ndigits.min(18 - i32::from(neg));
    let nd = ndigits.max(0) as usize;
    let Some(&first) = digits.first() else {
        return;
    };
    out.push(first);
    if nd > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..nd]);
    }
    out.push(b'e');
    out.push(if k + ndigits - 1 < 0 { b'-' } else { b'+' });
    let mut cent = 0;
    if exp > 99 {
        cent = exp / 100;
        out.push(b'0' + cent as u8);
        exp -= cent * 100;
    }
    if exp > 9 {
        let dec = exp / 10;
        out.push(b'0' + dec as u8);
        exp -= dec * 10;
    } else if cent != 0 {
        out.push(b'0');
    }
    out.push(b'0' + (exp % 10) as u8);
}

/// `fpconv_dtoa` for finite, nonzero `d`.
fn fpconv_dtoa(out: &mut Vec<u8>, d: f64) {
    let neg = d.is_sign_negative();
    if neg {
        out.push(b'-');
    }
    let mut digits = [0u8; 24];
    let mut k = 0;
    let n = grisu2(d, &mut digits, &mut k);
    emit_digits(out, &digits[..n], k, neg);
}

/// Parses a score as Redis accepts it in a reply or argument ("1.5", "-inf", "+inf", "inf",
/// "1e3", ...). None if not a valid double (Redis rejects "nan" as a weight/score input).
///
/// Redis runs `strtod` over the whole argument and refuses: an empty string, leading
/// whitespace, anything left over, NaN, and a result out of range (ERANGE with an infinite
/// or zero result: "1e400", "1e-400"; a subnormal result is accepted). `strtod` also takes
/// hexadecimal ("0x1.8p1") and "infinity", so this does too.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if body.len() >= 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    Some(if neg { -v } else { v })
}

/// Unsigned decimal or inf/infinity, per strtod's grammar.
fn parse_decimal(b: &[u8]) -> Option<f64> {
    if b.eq_ignore_ascii_case(b"inf") || b.eq_ignore_ascii_case(b"infinity") {
        return Some(f64::INFINITY);
    }
    // Check the grammar ourselves: Rust's parser also takes "nan", which must fail here,
    // and we need to know whether the mantissa had a nonzero digit (for underflow).
    let mut i = 0;
    let mut mantissa_digits = 0;
    let mut nonzero = false;
    while i < b.len() && b[i].is_ascii_digit() {
        nonzero |= b[i] != b'0';
        mantissa_digits += 1;
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            nonzero |= b[i] != b'0';
            mantissa_digits += 1;
            i += 1;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] | 0x20) == b'e' {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    // All ASCII, checked above.
    let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    if v.is_infinite() || (v == 0.0 && nonzero) {
        return None;
    }
    Some(v)
}

/// Unsigned hexadecimal after "0x": hex digits with an optional point, an optional binary
/// exponent "p[+-]digits"; rounded to nearest, ties to even, as glibc does.
fn parse_hex(b: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut m: u64 = 0;
    // Binary exponent of m's last bit.
    let mut e2: i64 = 0;
    let mut sticky = false;
    let mut ndigits = 0;
    let mut seen_point = false;
    while i < b.len() {
        let c = b[i];
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'.' if !seen_point => {
                seen_point = true;
                i += 1;
                continue;
            }
            _ => break,
        };
        ndigits += 1;
        if m >> 60 == 0 {
            // Room for four more bits: keep the digit exactly.
            m = (m << 4) | u64::from(v);
            if seen_point {
                e2 -= 4;
            }
        } else {
            // Beyond 64 bits only whether anything was nonzero matters for rounding.
            sticky |= v != 0;
            if !seen_point {
                e2 += 4;
            }
        }
        i += 1;
    }
    if ndigits == 0 {
        return None;
    }
    if i < b.len() && (b[i] | 0x20) == b'p' {
        i += 1;
        let mut neg = false;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            neg = b[i] == b'-';
            i += 1;
        }
        let start = i;
        let mut exp: i64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: far past the double range, the result is decided anyway.
            exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        e2 += if neg { -exp } else { exp };
    }
    if i != b.len() {
        return None;
    }
    if m == 0 {
        // A zero mantissa is an exact zero, whatever the exponent: no ERANGE.
        return Some(0.0);
    }
    let lz = m.leading_zeros();
    m <<= lz;
    e2 -= i64::from(lz);
    // Now the value is m * 2^e2 with m's top bit set: its unbiased exponent is e2 + 63.
    let e = e2 + 63;
    if e > 1023 {
        return None;
    }
    // Bits of m to drop to keep 53 (fewer for subnormals).
    let shift: u64 = if e >= -1022 {
        11
    } else {
        (11 + (-1022 - e)).min(65) as u64
    };
    let (mut mant, rem, half) = if shift >= 65 {
        (0u64, m, u64::MAX)
    } else if shift == 64 {
        (0u64, m, 1u64 << 63)
    } else {
        (m >> shift, m & ((1u64 << shift) - 1), 1u64 << (shift - 1))
    };
    // With shift >= 65 the value is below half the smallest subnormal: rem < half always.
    let round_up = rem > half || (rem == half && (sticky || mant & 1 == 1));
    if shift >= 65 {
        mant = 0;
    } else if round_up {
        mant += 1;
    }
    if e >= -1022 {
        let mut e = e;
        if mant == 1u64 << 53 {
            mant >>= 1;
            e += 1;
            if e > 1023 {
                return None;
            }
        }
        let bits = (((e + 1023) as u64) << 52) | (mant & FRACMASK);
        Some(f64::from_bits(bits))
    } else {
        // Subnormal: a mantissa carried up to 2^52 is exactly the smallest normal's bits.
        if mant == 0 {
            return None; // underflow to zero: ERANGE
        }
        Some(f64::from_bits(mant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g17(d: f64) -> String {
        let mut v = Vec::new();
        write_double(&mut v, d, DoubleStyle::G17);
        String::from_utf8(v).unwrap()
    }

    fn short(d: f64) -> String {
        let mut v = Vec::new();
        write_double(&mut v, d, DoubleStyle::Shortest);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn version_style() {
        assert_eq!(DoubleStyle::for_version("7.0.15"), DoubleStyle::G17);
        assert_eq!(DoubleStyle::for_version("6.2.14"), DoubleStyle::G17);
        assert_eq!(DoubleStyle::for_version("5.0.0"), DoubleStyle::G17);
        assert_eq!(DoubleStyle::for_version("7.1.240"), DoubleStyle::Shortest);
        assert_eq!(DoubleStyle::for_version("7.2.4"), DoubleStyle::Shortest);
        assert_eq!(DoubleStyle::for_version("8.0.0"), DoubleStyle::Shortest);
        assert_eq!(
            DoubleStyle::for_version("255.255.255"),
            DoubleStyle::Shortest
        );
        assert_eq!(DoubleStyle::for_version(""), DoubleStyle::Shortest);
        assert_eq!(DoubleStyle::for_version("x.y"), DoubleStyle::Shortest);
        assert_eq!(DoubleStyle::for_version("7"), DoubleStyle::Shortest);
    }

    /// ZADD z <input> m; ZSCORE z m on redis-server 7.0.15 (the bulk payload; RESP3 `,`
    /// replies carried the same text).
    #[test]
    fn g17_matches_redis_7_0() {
        let cases: &[(&str, &str)] = &[
            ("0", "0"),
            ("-0", "-0"), // skiplist encoding keeps the sign (listpack reads back "0")
            ("1", "1"),
            ("0.1", "0.10000000000000001"),
            ("0.3333333333333333", "0.33333333333333331"),
            ("1e21", "1e+21"),
            ("1e-5", "1.0000000000000001e-05"),
            ("123456789012345678", "1.2345678901234568e+17"),
            ("2.5e-300", "2.5e-300"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("inf", "inf"),
            ("-inf", "-inf"),
            ("3e-324", "4.9406564584124654e-324"),
            ("0x10", "16"),
            ("0x1.8p1", "3"),
            ("+1.5", "1.5"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1e-310", "9.9999999999999694e-311"),
            ("1234567.8901234567", "1234567.8901234567"),
            ("1e-7", "9.9999999999999995e-08"),
            ("1e15", "1000000000000000"),
            ("1e16", "10000000000000000"),
            ("1e17", "1e+17"),
            ("5e18", "5e+18"),
            ("4611686018427387904", "4.6116860184273879e+18"),
            ("-4611686018427387904", "-4.6116860184273879e+18"),
            ("0.000123", "0.00012300000000000001"),
            ("123456.789", "123456.789"),
            ("1234567890123456.5", "1234567890123456.5"),
            ("1234567890123456.25", "1234567890123456.2"),
            ("1234567890123456.75", "1234567890123456.8"),
            ("0.0001", "0.0001"),
            ("0.00001234", "1.234e-05"),
            ("-2.5", "-2.5"),
        ];
        for (input, want) in cases {
            let d = parse_double(input.as_bytes()).unwrap();
            assert_eq!(g17(d), *want, "input {input}");
        }
        assert_eq!(g17(1.0 / 3.0), "0.33333333333333331");
        assert_eq!(g17(f64::NAN), "nan");
    }

    /// Expected texts worked out by hand from fpconv_dtoa.c / d2string (Redis 7.2).
    #[test]
    fn shortest_fpconv_rules() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-7.0, "-7"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (100.5, "100.5"),
            (123456.789, "123456.789"),
            // integers in +-2^62 go through ll2string
            (1e15, "1000000000000000"),
            (1e18, "1000000000000000000"),
            (4611686018427387904.0, "4611686018427387904"),
            (-4611686018427387904.0, "-4611686018427387904"),
            (123456789012345678.0, "123456789012345680"),
            // beyond: digits "1", K = 19, exponent 19 >= 1 + 7 -> scientific
            (1e19, "1e+19"),
            (1e21, "1e+21"),
            // digits "9223372036854776", K = 3: exponent 18 < 16 + 7 -> plain
            (9223372036854775808.0, "9223372036854776000"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (2.5e-300, "2.5e-300"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (1.5e-105, "1.5e-105"),
            (5e-324, "5e-324"),
            // K = -5 > -7: plain, with leading zeros
            (1e-5, "0.00001"),
            (0.000123, "0.000123"),
            (1.2e-5, "0.000012"),
            // K = -7: scientific, exponent without padding
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-1e-7, "-1e-7"),
            // digits "15", K = -7: scientific too
            (1.5e-6, "1.5e-6"),
            // 17 digits with K = -10: K <= -7 and exponent 6 >= 4 -> scientific
            (1234567.8901234567, "1.2345678901234567e+6"),
            (12345.678901234567, "1.2345678901234567e+4"),
            // exponent 2 < 4 -> plain
            (123.45678901234568, "123.45678901234568"),
            (1234567.5, "1234567.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (d, want) in cases {
            assert_eq!(short(*d), *want, "value {d:e}");
        }
    }

    #[test]
    fn shortest_round_trips() {
        // Grisu2 digits always read back as the same double.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = f64::from_bits(x);
            if !d.is_finite() {
                continue;
            }
            let s = short(d);
            let back = parse_double(s.as_bytes()).unwrap();
            assert_eq!(back.to_bits(), d.to_bits(), "{s}");
            let s = g17(d);
            let back = parse_double(s.as_bytes()).unwrap();
            assert_eq!(back.to_bits(), d.to_bits(), "{s}");
        }
    }

    /// Accepted or refused as redis-server 7.0.15 did for ZADD z <input> m.
    #[test]
    fn parse_like_redis() {
        let ok: &[(&str, f64)] = &[
            ("1.5", 1.5),
            ("-inf", f64::NEG_INFINITY),
            ("+inf", f64::INFINITY),
            ("inf", f64::INFINITY),
            ("INF", f64::INFINITY),
            ("Infinity", f64::INFINITY),
            ("1e3", 1000.0),
            ("1E+03", 1000.0),
            ("0e-400", 0.0),
            ("3e-324", 5e-324),
            ("0x10", 16.0),
            ("0X1P+2", 4.0),
            ("0x.8", 0.5),
            ("0x1.", 1.0),
            ("-0x1P-3", -0.125),
            ("0x1.fffffffffffff7ffp1023", f64::MAX),
            ("0x1p-1074", 5e-324),
            ("0x0p-99999", 0.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1.e5", 100000.0),
            ("-0", -0.0),
            ("1e-310", 1e-310),
        ];
        for (s, want) in ok {
            let got = parse_double(s.as_bytes());
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{s}");
        }
        let bad: &[&str] = &[
            "",
            "nan",
            "-nan",
            "NaN",
            "nan(123)",
            "1e400",
            "1e-400",
            "2e-324",
            "1.7976931348623159e308",
            "-0x1.fffffffffffff8p1023",
            "0x1p-1080",
            " 1",
            "\t1",
            "1 ",
            "1\0",
            "1e",
            "1e+",
            "e5",
            ".",
            "-",
            "+",
            "0x",
            "0xp1",
            "0x1p",
            "0x1.8p1.5",
            "infinit",
            "infinityy",
            "1..2",
            "--1",
            "1_000",
            "\u{ff}",
        ];
        for s in bad {
            assert_eq!(parse_double(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn hex_rounding() {
        // Ties to even at 53 bits, and a set bit past the kept digits breaks a tie upward.
        assert_eq!(parse_double(b"0x1.00000000000008p0"), Some(1.0));
        assert_eq!(
            parse_double(b"0x1.00000000000018p0"),
            Some(f64::from_bits(1.0f64.to_bits() + 2))
        );
        assert_eq!(
            parse_double(b"0x1.000000000000080000000000001p0"),
            Some(f64::from_bits(1.0f64.to_bits() + 1))
        );
        // Long integer part: the dropped digits still count in the exponent.
        assert_eq!(parse_double(b"0x10000000000000000000"), Some(2f64.powi(76)));
        // Subnormal rounding up into the smallest normal.
        assert_eq!(
            parse_double(b"0x1.ffffffffffffffp-1023"),
            Some(f64::from_bits(1u64 << 52))
        );
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        let mut x: u64 = 1;
        let alphabet = b"0123456789abcdefxXpPeE.+-inftyINFTYn ";
        for _ in 0..20000 {
            let mut s = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut y = x;
            for _ in 0..len {
                s.push(alphabet[(y % alphabet.len() as u64) as usize]);
                y /= alphabet.len() as u64;
            }
            if let Some(v) = parse_double(&s) {
                assert!(!v.is_nan());
            }
        }
    }
}
