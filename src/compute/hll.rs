//! PFCOUNT and PFMERGE over keys in different slots, from the keys' raw values.
//!
//! A HyperLogLog is a plain string to Redis, so the proxy can GET each key from its node and
//! do here what `pfcountCommand` does for several keys: take the register-wise maximum in a
//! temporary set of 16384 plain bytes, then run `hllCount`'s estimator (Otmar Ertl's, Redis
//! 5+) over it. Every step follows hyperloglog.c so the number is the one a single node
//! holding all the keys would answer.
//!
//! Layout of a value: a 16-byte header ("HYLL", encoding byte, 3 unused bytes, 8-byte cached
//! cardinality, little endian, top bit set when stale), then either 12288 bytes of 6-bit
//! registers (dense, LSB first) or run-length opcodes (sparse): ZERO `00xxxxxx` (x+1 zero
//! registers), XZERO `01xxxxxx yyyyyyyy` (14-bit length + 1), VAL `1vvvvvxx` (x+1
//! registers of value v+1).

/// Number of registers (2^14).
pub const REGISTERS: usize = 16384;
const HDR_SIZE: usize = 16;
const DENSE_SIZE: usize = HDR_SIZE + REGISTERS * 6 / 8;
const ENCODING_DENSE: u8 = 0;
const ENCODING_SPARSE: u8 = 1;
/// Registers count runs of at most 50 zeros plus one (64-bit hash minus 14 index bits).
const Q: usize = 50;
/// 0.5 / ln(2), the estimator's bias constant for m -> infinity.
/// (Redis writes 0.721347520444481703680; this is the same double.)
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Why Redis refused a value. The two come from different checks and Redis words them
/// differently, so both are kept: the header check (`isHLLObjectOrReply`) runs first for a
/// key, then the sparse decoding (`hllMerge`), key after key.
#[derive(Debug, PartialEq, Eq)]
pub enum InvalidHll {
    /// Too short, wrong magic, unknown encoding, or a dense value of the wrong size.
    /// Redis answers "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n".
    NotHll,
    /// A sparse value whose opcodes do not cover exactly 16384 registers.
    /// Redis answers "-INVALIDOBJ Corrupted HLL object detected\r\n".
    Corrupt,
}

impl InvalidHll {
    /// The error frame Redis sends for this (PFCOUNT and PFMERGE alike).
    pub fn error_frame(&self) -> &'static [u8] {
        match self {
            InvalidHll::NotHll => b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n",
            InvalidHll::Corrupt => b"-INVALIDOBJ Corrupted HLL object detected\r\n",
        }
    }
}

/// Registers (16384 of them, max over all inputs). Missing keys are simply not passed.
///
/// Values are checked and merged in order, so the first bad one decides the error, as in
/// Redis. A value that is not a string at all is the caller's business (GET already
/// answers WRONGTYPE for it).
pub fn merge_registers(values: &[&[u8]]) -> Result<Box<[u8; REGISTERS]>, InvalidHll> {
    // Built on the heap directly: the array is 16 KiB.
    let mut max: Box<[u8; REGISTERS]> = vec![0u8; REGISTERS]
        .into_boxed_slice()
        .try_into()
        .map_err(|_| InvalidHll::Corrupt)?;
    for value in values {
        match check_header(value)? {
            ENCODING_DENSE => merge_dense(&mut max, &value[HDR_SIZE..]),
            _ => merge_sparse(&mut max, &value[HDR_SIZE..])?,
        }
    }
    Ok(max)
}

/// `isHLLObjectOrReply`: returns the encoding. The three unused bytes and the cached
/// cardinality are not looked at.
fn check_header(value: &[u8]) -> Result<u8, InvalidHll> {
    if value.len() < HDR_SIZE || &value[..4] != b"HYLL" {
        return Err(InvalidHll::NotHll);
    }
    match value[4] {
        ENCODING_DENSE if value.len() == DENSE_SIZE => Ok(ENCODING_DENSE),
        ENCODING_SPARSE => Ok(ENCODING_SPARSE),
        _ => Err(InvalidHll::NotHll),
    }
}

/// Dense: four 6-bit registers in every three bytes, least significant bits first.
fn merge_dense(max: &mut [u8; REGISTERS], regs: &[u8]) {
    for (b, m) in regs.chunks_exact(3).zip(max.chunks_exact_mut(4)) {
        let vals = [
            b[0] & 63,
            (b[0] >> 6 | b[1] << 2) & 63,
            (b[1] >> 4 | b[2] << 4) & 63,
            b[2] >> 2,
        ];
        for (slot, v) in m.iter_mut().zip(vals) {
            if v > *slot {
                *slot = v;
            }
        }
    }
}

/// Sparse, as `hllMerge` walks it since the CVE-2025-32023 fix (Redis 6.2.19, 7.2.10,
/// 7.4.5, 8.0.3, Valkey, and distribution backports such as Debian's 7.0.15): any run that
/// would go past register 16383 makes the value invalid. Before the fix an overflowing VAL
/// only stopped the walk, so opcodes past a complete value were ignored.
fn merge_sparse(max: &mut [u8; REGISTERS], ops: &[u8]) -> Result<(), InvalidHll> {
    let mut i = 0usize;
    let mut p = 0usize;
    while let Some(&op) = ops.get(p) {
        let runlen = match op & 0xc0 {
            0x00 => {
                p += 1;
                usize::from(op & 0x3f) + 1
            }
            0x40 => {
                // A cut XZERO reads the string's NUL terminator as its second byte in
                // Redis, and the value can still come out valid; mirror that.
                let low = ops.get(p + 1).copied().unwrap_or(0);
                p += 2;
                (usize::from(op & 0x3f) << 8 | usize::from(low)) + 1
            }
            _ => {
                p += 1;
                usize::from(op & 0x3) + 1
            }
        };
        if i + runlen > REGISTERS {
            return Err(InvalidHll::Corrupt);
        }
        if op & 0x80 != 0 {
            let val = ((op >> 2) & 0x1f) + 1;
            for slot in &mut max[i..i + runlen] {
                if val > *slot {
                    *slot = val;
                }
            }
        }
        i += runlen;
    }
    if i == REGISTERS {
        Ok(())
    } else {
        Err(InvalidHll::Corrupt)
    }
}

/// The cardinality Redis's hllCount computes from these registers.
///
/// Redis replies with this as a signed 64-bit integer; print it `as i64`. That matters only
/// where the estimate overflows (registers almost all at 50 or more, never from real
/// data): Redis's `llroundl` then gives LLONG_MIN and it answers
/// ":-9223372036854775808", which is what 2^63 returned here prints as.
pub fn count(registers: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in registers.iter() {
        // Registers are 6-bit; anything larger cannot come out of merge_registers.
        histo[usize::from(r.min(63))] += 1;
    }
    let m = REGISTERS as f64;
    // Registers above Q + 1 are left out of the sums, as in Redis (its histogram has room
    // for them, the estimator reads only 0..=Q+1).
    let mut z = m * tau((m - f64::from(histo[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    let e = (ALPHA_INF * m * m / z).round();
    if e.is_finite() && e < 9_223_372_036_854_775_808.0 {
        e as u64
    } else {
        1u64 << 63
    }
}

/// sigma(x) from Ertl, "New cardinality estimation algorithms for HyperLogLog sketches".
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    // Converges in a few dozen steps for x in [0, 1); the cap only guards the impossible.
    for _ in 0..10_000 {
        x *= x;
        let z_prev = z;
        z += x * y;
        y += y;
        if z_prev == z {
            break;
        }
    }
    z
}

/// tau(x) from the same paper.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    for _ in 0..10_000 {
        x = x.sqrt();
        let z_prev = z;
        y *= 0.5;
        // Redis writes pow(1 - x, 2), which the compiler turns into this product.
        let t = 1.0 - x;
        z -= t * t * y;
        if z_prev == z {
            break;
        }
    }
    z / 3.0
}

/// A dense HLL value (as Redis stores a dense HLL: header "HYLL", encoding 0 = dense, 3
/// unused bytes, 8-byte cached cardinality with the "invalid" bit set so PFCOUNT
/// recomputes it, then the 12288 bytes of 6-bit registers), for PFMERGE into a destination.
///
/// This is byte for byte what Redis 7 stores for PFMERGE when one of the inputs is dense.
/// (With only sparse inputs Redis keeps the destination sparse; the count is the same.)
pub fn dense_value(registers: &[u8; REGISTERS]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DENSE_SIZE);
    out.extend_from_slice(b"HYLL");
    out.extend_from_slice(&[ENCODING_DENSE, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]);
    for r in registers.chunks_exact(4) {
        // Masked: a register is 6 bits, a stray higher bit must not spill into the next.
        let (r0, r1, r2, r3) = (r[0] & 63, r[1] & 63, r[2] & 63, r[3] & 63);
        out.push(r0 | r1 << 6);
        out.push(r1 >> 2 | r2 << 4);
        out.push(r2 >> 4 | r3 << 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    /// FNV-1a, to pin bytes Redis produced without embedding 12 KiB of them.
    fn fnv1a(b: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in b {
            h ^= u64::from(c);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Registers as `n` distinct elements would leave them (the same index/run split as
    /// hllPatLen, over a different 64-bit hash).
    fn synthetic(n: u64, seed: u64) -> Box<[u8; REGISTERS]> {
        let mut regs = Box::new([0u8; REGISTERS]);
        let mut s = seed;
        for _ in 0..n {
            let h = splitmix(&mut s);
            let idx = (h & (REGISTERS as u64 - 1)) as usize;
            let run = ((h >> 14) | (1 << 50)).trailing_zeros() as u8 + 1;
            if run > regs[idx] {
                regs[idx] = run;
            }
        }
        regs
    }

    // Sparse values GET from redis-server 7.0.15 after PFADD of disjoint element sets
    // (a0..a2, b0..b9, c0..c49, d0..d299).
    const SPARSE_3: &str = "48594c4c0100000000000000000000805d148045f18059538443a1";
    const SPARSE_10: &str = concat!(
        "48594c4c01000000000000000000008042a0804c9b80408b8c560b8840e680440f8048bd88439f8042a78042",
        "c884435a",
    );
    const SPARSE_50: &str = concat!(
        "48594c4c01000000000000000000008041f68440908040e68842738040b580408480409980420080425d8040",
        "638041328c412480411f88412780437380406b8840bb8040ee80404a8044f78440bb8041298444288007803f",
        "8041548042e98042698040ac88406a80427580418380408680424780405980410a8441e9841880441b8c407b",
        "9407804096882084404880410394178822801888404880445980",
    );
    const SPARSE_300: &str = concat!(
        "48594c4c0100000000000000000000801f8000900a802b8440828c1e8015800c8439841184408b8033800184",
        "407e88407a802080404888178400804042803c801c800b8490404284028c0384008001844059802184404184",
        "0c8400844062803a8c12883980406584405e8016880280278c0b882b8028802d853f8405880c801b8c407388",
        "40f68440d5844045801c842d8406944087800c802080138c0c840b800d80198837843881338c407884228034",
        "844065804071880e80409280398840708423883090078040b4842b843780404e880d8400802d8440bf804071",
        "8c1b80168440788405804063843280268834802a88288c2d840a803c843b843984038040a0801e8005883e88",
        "17801a8440568007800b84406380404f840b8010800880138440ab8c4071a407842d80407c8432882580405b",
        "84078040908040a080406088407d80128040a6803e8040568840798440e29040418422940b80405484406d9c",
        "2b94248c0d80409384128c0b801380378405802480058040d9800180405484048834804043801f802c804075",
        "804053882c808402842184188c40558004880c8040b88c4055840b8040b08440658039842e804051841d8808",
        "8016801c801b80048407801b8418800d804077841680229040c580406a80407980405c88248440678c2d8838",
        "801a801088298c40898411880f803d9008841280404c80405b8c08843480108106884090842488088040af80",
        "405f84404a9040ab8422802f881f801b84404584405e8c2c842f802d8c4064842e81158c800880405b881684",
        "038440498015840580008c2c80405e881780168c40678016804093800d80408684258040ac801e843f800684",
        "048440518000802c880e80405d8084405ba402804048882e8401800b8011802f8004841b8416843980079002",
        "8000842988405580348c10800f9423884048844044804047900e8002801e804040801a8c4041",
    );

    fn sparse_fixtures() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("s3", unhex(SPARSE_3)),
            ("s10", unhex(SPARSE_10)),
            ("s50", unhex(SPARSE_50)),
            ("s300", unhex(SPARSE_300)),
        ]
    }

    #[test]
    fn counts_sparse_like_redis() {
        let f = sparse_fixtures();
        let get = |name: &str| f.iter().find(|(n, _)| *n == name).unwrap().1.as_slice();
        // PFCOUNT of these keys on redis-server 7.0.15 (a single key with a missing one,
        // so that Redis computes rather than answering the cached value).
        let cases: &[(&[&str], u64)] = &[
            (&["s3"], 3),
            (&["s10"], 10),
            (&["s50"], 50),
            (&["s300"], 303),
            (&["s3", "s3"], 3),
            (&["s3", "s10"], 13),
            (&["s3", "s50"], 53),
            (&["s3", "s300"], 306),
            (&["s10", "s50"], 60),
            (&["s10", "s300"], 313),
            (&["s50", "s300"], 353),
            (&["s3", "s10", "s50"], 63),
            (&["s3", "s10", "s300"], 316),
            (&["s3", "s50", "s300"], 356),
            (&["s10", "s50", "s300"], 363),
            (&["s3", "s10", "s50", "s300"], 366),
        ];
        for (keys, want) in cases {
            let values: Vec<&[u8]> = keys.iter().map(|k| get(k)).collect();
            let regs = merge_registers(&values).unwrap();
            assert_eq!(count(&regs), *want, "{keys:?}");
        }
    }

    #[test]
    fn counts_dense_like_redis() {
        // (elements, seed, PFCOUNT, FNV-1a of the bytes PFMERGE stored) from redis-server
        // 7.0.15, for the value SET from `dense_value(&synthetic(elements, seed))`.
        let cases: &[(u64, u64, u64, u64)] = &[
            (0, 1, 0, 0xed2b_8f67_626c_c41a),
            (1, 1, 1, 0xca0b_8f11_3dc5_345a),
            (100, 2, 100, 0x73b9_d836_d46b_ba08),
            (1000, 3, 1005, 0xf4f7_cc49_95f0_53e9),
            (5000, 4, 4996, 0xecba_33d6_006c_9530),
            (20000, 7, 20143, 0x18b2_f169_f96a_bee2),
            (100000, 5, 100394, 0x9eb9_bd3c_cf04_a897),
            (1000000, 6, 997843, 0xc477_3e50_99e1_a3aa),
            (2000000, 8, 1999792, 0x4155_e706_e056_b249),
        ];
        for &(n, seed, want, digest) in cases {
            let regs = synthetic(n, seed);
            let value = dense_value(&regs);
            assert_eq!(value.len(), DENSE_SIZE);
            // SET k <value>; PFCOUNT k (and PFCOUNT k missing) answered `want`.
            assert_eq!(count(&regs), want, "n = {n}");
            // PFMERGE dst k; GET dst gave back these very bytes.
            assert_eq!(fnv1a(&value), digest, "n = {n}");
            // And the value decodes to the registers it was made from.
            assert!(merge_registers(&[&value]).unwrap() == regs, "n = {n}");
        }
    }

    #[test]
    fn counts_mixed_like_redis() {
        let f = sparse_fixtures();
        let dense = dense_value(&synthetic(20000, 7));
        let values: Vec<&[u8]> = vec![&dense, &f[0].1, &f[1].1, &f[2].1, &f[3].1];
        // PFCOUNT d s3 s10 s50 s300 on redis-server 7.0.15, d SET to `dense`.
        assert_eq!(count(&merge_registers(&values).unwrap()), 20506);
    }

    #[test]
    fn uniform_registers_like_redis() {
        // SET d <dense value with every register = v>; PFCOUNT d missing.
        for &(v, want) in &[
            (0u8, 0u64),
            (1, 23637),
            (20, 12392656037),
            (40, 12994641697113596),
            // z collapses to ~0 and llroundl overflows: Redis says -9223372036854775808.
            (50, 1 << 63),
            (51, 1 << 63),
            (52, 1 << 63),
            (63, 1 << 63),
        ] {
            let regs = Box::new([v; REGISTERS]);
            assert_eq!(count(&regs), want, "v = {v}");
            assert_eq!(
                count(&merge_registers(&[&dense_value(&regs)]).unwrap()),
                want
            );
        }
        assert_eq!(count(&merge_registers(&[]).unwrap()), 0);
        // Some registers at 51 (the tau term) and above 51 (left out of the sums).
        let mut regs = synthetic(5000, 3);
        regs[..100].fill(51);
        regs[100..110].fill(60);
        assert_eq!(count(&regs), 5140);
        let mut regs = synthetic(5000, 3);
        regs[..16000].fill(51);
        assert_eq!(count(&regs), 622119);
        assert_eq!((1u64 << 63) as i64, i64::MIN);
    }

    #[test]
    fn rejects_like_redis() {
        let good = unhex(SPARSE_3);
        let hdr = |enc: u8| {
            let mut h = b"HYLL".to_vec();
            h.extend_from_slice(&[enc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h
        };
        let with = |mut h: Vec<u8>, tail: &[u8]| {
            h.extend_from_slice(tail);
            h
        };
        let mut bad_magic = good.clone();
        bad_magic[3] = b'X';
        let mut enc2 = good.clone();
        enc2[4] = 2;
        let mut dense_short = hdr(0);
        dense_short.resize(DENSE_SIZE - 1, 0);
        let mut dense_long = hdr(0);
        dense_long.resize(DENSE_SIZE + 1, 0);
        // Each answered as below by redis-server 7.0.15 to PFCOUNT k s3 and PFCOUNT s3 k.
        let not_hll: Vec<Vec<u8>> = vec![
            bad_magic,
            enc2,
            b"HYLL\x01".to_vec(),
            Vec::new(),
            dense_short,
            dense_long,
        ];
        let err = |values: &[&[u8]]| merge_registers(values).err();
        for v in &not_hll {
            assert_eq!(err(&[v, &good]), Some(InvalidHll::NotHll));
            assert_eq!(err(&[&good, v]), Some(InvalidHll::NotHll));
        }
        let corrupt: Vec<Vec<u8>> = vec![
            hdr(1), // no opcodes: 0 registers
            // XZERO 16384 then a VAL past the end (valid before the CVE-2025-32023 fix)
            with(hdr(1), &[0x7f, 0xff, 0x80]),
            with(hdr(1), &[0x7f, 0xfe]),       // 16383 registers
            with(hdr(1), &[0x7f]),             // cut XZERO: 16129 registers
            with(hdr(1), &[0x7f, 0xfd, 0x83]), // VAL run of 4 from 16382
            with(hdr(1), &[0x7f, 0xff, 0x00]), // 16385 registers
        ];
        for v in &corrupt {
            assert_eq!(err(&[v, &good]), Some(InvalidHll::Corrupt));
            assert_eq!(err(&[&good, v]), Some(InvalidHll::Corrupt));
        }
        // The first bad key decides which error.
        assert_eq!(err(&[&corrupt[0], &not_hll[0]]), Some(InvalidHll::Corrupt));
        assert_eq!(err(&[&not_hll[0], &corrupt[0]]), Some(InvalidHll::NotHll));
        // Accepted by Redis: a cut XZERO at the very end reads the NUL terminator
        // (16383 + 1 registers), and the unused header bytes are not checked.
        let cut = with(hdr(1), &[0x7f, 0xfe, 0x40]);
        let mut unused = good.clone();
        unused[5..8].copy_from_slice(&[9, 9, 9]);
        assert_eq!(count(&merge_registers(&[&cut, &good]).unwrap()), 3);
        assert_eq!(count(&merge_registers(&[&unused]).unwrap()), 3);
        assert_eq!(
            InvalidHll::NotHll.error_frame(),
            b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
        );
        assert_eq!(
            InvalidHll::Corrupt.error_frame(),
            b"-INVALIDOBJ Corrupted HLL object detected\r\n"
        );
    }

    #[test]
    fn never_panics_on_junk() {
        let mut s: u64 = 42;
        for len in 0..200usize {
            for _ in 0..20 {
                let mut v = b"HYLL\x01".to_vec();
                while v.len() < len {
                    v.push(splitmix(&mut s) as u8);
                }
                v.truncate(len);
                let _ = merge_registers(&[&v]);
                if v.len() > 4 {
                    v[4] = 0;
                }
                let _ = merge_registers(&[&v]);
            }
        }
        let mut regs = Box::new([0u8; REGISTERS]);
        for r in regs.iter_mut() {
            *r = splitmix(&mut s) as u8;
        }
        let _ = count(&regs);
        let _ = dense_value(&regs);
    }
}
