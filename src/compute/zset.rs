//! ZUNION, ZINTER, ZDIFF and ZINTERCARD over keys of several slots: the options parsed as
//! Redis parses them, each key read whole (a sorted set with its scores, or a set whose
//! members score 1), and the result computed with Redis's rules: weights applied, NaN taken
//! as 0, inputs visited from the smallest (except ZDIFF's), and the result ordered by score,
//! then member.

use std::collections::HashMap;

use super::double::{parse_double, write_double, DoubleStyle};
use crate::resp::encode::{self, Proto};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Union,
    Inter,
    Diff,
    InterCard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A parsed ZUNION/ZINTER/ZDIFF/ZINTERCARD. `error`: what Redis answers for the options,
/// kept until the keys' types are known because Redis checks those first.
#[derive(Debug, Clone, PartialEq)]
pub struct ZsetOp {
    pub kind: Kind,
    pub numkeys: usize,
    pub weights: Vec<f64>,
    pub aggregate: Aggregate,
    pub withscores: bool,
    pub limit: u64,
    pub error: Option<String>,
}

/// One input: a sorted set's (member, score) pairs, a set's members (score 1), or nothing.
#[derive(Debug)]
pub struct Input {
    pub pairs: Vec<(Vec<u8>, f64)>,
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Parses the request (`args[0]` the command's name, or for a STORE form its
/// destination). Err: refused before any key is read (numkeys), in Redis's words.
pub fn parse(kind: Kind, args: &[&[u8]], store: bool) -> Result<ZsetOp, String> {
    let name = match kind {
        Kind::Union => "zunion",
        Kind::Inter => "zinter",
        Kind::Diff => "zdiff",
        Kind::InterCard => "zintercard",
    };
    let name = if store {
        format!("{name}store")
    } else {
        name.to_string()
    };
    let numkeys = std::str::from_utf8(args.get(1).copied().unwrap_or_default())
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| "ERR value is not an integer or out of range".to_string())?;
    if numkeys < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    if numkeys as usize > args.len().saturating_sub(2) {
        return Err("ERR syntax error".into());
    }
    let numkeys = numkeys as usize;
    let mut op = ZsetOp {
        kind,
        numkeys,
        weights: vec![1.0; numkeys],
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
        error: None,
    };
    let card = kind == Kind::InterCard;
    let mut j = 2 + numkeys;
    let syntax = || Some("ERR syntax error".to_string());
    while j < args.len() {
        let remaining = args.len() - j;
        let a = args[j];
        if kind != Kind::Diff && !card && remaining > numkeys && eq(a, "weights") {
            for i in 0..numkeys {
                match parse_double(args[j + 1 + i]) {
                    Some(w) => op.weights[i] = w,
                    None => {
                        op.error = Some("ERR weight value is not a float".into());
                        return Ok(op);
                    }
                }
            }
            j += 1 + numkeys;
        } else if kind != Kind::Diff && !card && remaining >= 2 && eq(a, "aggregate") {
            let v = args[j + 1];
            op.aggregate = if eq(v, "sum") {
                Aggregate::Sum
            } else if eq(v, "min") {
                Aggregate::Min
            } else if eq(v, "max") {
                Aggregate::Max
            } else {
                op.error = syntax();
                return Ok(op);
            };
            j += 2;
        } else if !card && !store && eq(a, "withscores") {
            op.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && eq(a, "limit") {
            match std::str::from_utf8(args[j + 1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) if n >= 0 => op.limit = n as u64,
                _ => {
                    op.error = Some("ERR LIMIT can't be negative".into());
                    return Ok(op);
                }
            }
            j += 2;
        } else {
            op.error = syntax();
            return Ok(op);
        }
    }
    Ok(op)
}

fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            // inf + -inf: Redis keeps 0, not NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val
            }
        }
    }
}

/// The result's (member, score) pairs in Redis's order, or the cardinality (ZINTERCARD).
pub fn compute(op: &ZsetOp, inputs: Vec<Input>) -> Result<Vec<(Vec<u8>, f64)>, u64> {
    let mut src: Vec<(Input, f64)> = inputs.into_iter().zip(op.weights.iter().copied()).collect();
    if op.kind != Kind::Diff {
        // Redis visits the inputs from the smallest (glibc's qsort is a stable merge sort),
        // which decides the order of a SUM's additions.
        src.sort_by_key(|(i, _)| i.pairs.len());
    }
    let mut out: Vec<(Vec<u8>, f64)> = Vec::new();
    match op.kind {
        Kind::Inter | Kind::InterCard => {
            let Some(((first, w0), rest)) = src.split_first() else {
                return Ok(out);
            };
            let maps: Vec<HashMap<&[u8], f64>> = rest
                .iter()
                .map(|(i, _)| i.pairs.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                .collect();
            let mut card = 0u64;
            for (m, s) in &first.pairs {
                let mut score = w0 * s;
                if score.is_nan() {
                    score = 0.0;
                }
                let mut all = true;
                for (k, map) in maps.iter().enumerate() {
                    match map.get(m.as_slice()) {
                        Some(v) => aggregate(&mut score, v * rest[k].1, op.aggregate),
                        None => {
                            all = false;
                            break;
                        }
                    }
                }
                if !all {
                    continue;
                }
                if op.kind == Kind::InterCard {
                    card += 1;
                    if op.limit > 0 && card >= op.limit {
                        break;
                    }
                } else {
                    out.push((m.clone(), score));
                }
            }
            if op.kind == Kind::InterCard {
                return Err(card);
            }
        }
        Kind::Union => {
            let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
            for (input, w) in &src {
                for (m, s) in &input.pairs {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match index.get(m) {
                        Some(&at) => aggregate(&mut out[at].1, score, op.aggregate),
                        None => {
                            index.insert(m.clone(), out.len());
                            out.push((m.clone(), score));
                        }
                    }
                }
            }
        }
        Kind::Diff => {
            let Some(((first, _), rest)) = src.split_first() else {
                return Ok(out);
            };
            let others: Vec<std::collections::HashSet<&[u8]>> = rest
                .iter()
                .map(|(i, _)| i.pairs.iter().map(|(m, _)| m.as_slice()).collect())
                .collect();
            for (m, s) in &first.pairs {
                if !others.iter().any(|o| o.contains(m.as_slice())) {
                    out.push((m.clone(), *s));
                }
            }
        }
    }
    // A sorted set's order: score, then member bytes (equal scores, -0 and 0 included,
    // compare as equal, as C's `<` does).
    out.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(out)
}

/// The reply: members, or members with scores (flat in RESP2, pairs in RESP3).
pub fn reply(
    out: &mut Vec<u8>,
    pairs: &[(Vec<u8>, f64)],
    withscores: bool,
    proto: Proto,
    style: DoubleStyle,
) {
    let resp3 = proto == Proto::Resp3;
    let n = if withscores && !resp3 {
        pairs.len() * 2
    } else {
        pairs.len()
    };
    encode::array_header(out, n);
    let mut text = Vec::with_capacity(32);
    for (m, s) in pairs {
        if withscores && resp3 {
            encode::array_header(out, 2);
        }
        encode::bulk(out, m);
        if withscores {
            text.clear();
            write_double(&mut text, *s, style);
            if resp3 {
                out.push(b',');
                out.extend_from_slice(&text);
                out.extend_from_slice(b"\r\n");
            } else {
                encode::bulk(out, &text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    fn input(pairs: &[(&str, f64)]) -> Input {
        Input {
            pairs: pairs
                .iter()
                .map(|(m, s)| (m.as_bytes().to_vec(), *s))
                .collect(),
        }
    }

    #[test]
    fn parses_like_redis() {
        let op = parse(
            Kind::Union,
            &args("ZUNION 2 a b WEIGHTS 2 3 AGGREGATE max WITHSCORES"),
            false,
        )
        .unwrap();
        assert_eq!(op.weights, vec![2.0, 3.0]);
        assert_eq!(op.aggregate, Aggregate::Max);
        assert!(op.withscores && op.error.is_none());
        assert_eq!(
            parse(Kind::Union, &args("ZUNION 0 a"), false).unwrap_err(),
            "ERR at least 1 input key is needed for 'zunion' command"
        );
        assert_eq!(
            parse(Kind::Inter, &args("ZINTER 3 a b"), false).unwrap_err(),
            "ERR syntax error"
        );
        let bad = |line: &str, kind| parse(kind, &args(line), false).unwrap().error;
        assert_eq!(
            bad("ZUNION 2 a b WEIGHTS 1 x", Kind::Union).as_deref(),
            Some("ERR weight value is not a float")
        );
        assert_eq!(
            bad("ZUNION 2 a b WEIGHTS 1", Kind::Union).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            bad("ZDIFF 2 a b WEIGHTS 1 2", Kind::Diff).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            bad("ZINTERCARD 2 a b LIMIT -1", Kind::InterCard).as_deref(),
            Some("ERR LIMIT can't be negative")
        );
        assert_eq!(
            bad("ZINTERCARD 2 a b WITHSCORES", Kind::InterCard).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            bad("ZUNION 2 a b AGGREGATE avg", Kind::Union).as_deref(),
            Some("ERR syntax error")
        );
    }

    #[test]
    fn computes_like_redis() {
        let op = parse(Kind::Union, &args("ZUNION 2 a b WEIGHTS 1 2"), false).unwrap();
        let out = compute(
            &op,
            vec![
                input(&[("x", 1.0), ("y", 2.0)]),
                input(&[("y", 1.0), ("a", 5.0)]),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                (b"x".to_vec(), 1.0),
                (b"y".to_vec(), 4.0),
                (b"a".to_vec(), 10.0)
            ]
        );
        let op = parse(Kind::Inter, &args("ZINTER 2 a b AGGREGATE MIN"), false).unwrap();
        let out = compute(
            &op,
            vec![input(&[("x", 1.0), ("y", 2.0)]), input(&[("y", 1.0)])],
        )
        .unwrap();
        assert_eq!(out, vec![(b"y".to_vec(), 1.0)]);
        let op = parse(Kind::Diff, &args("ZDIFF 2 a b"), false).unwrap();
        let out = compute(
            &op,
            vec![input(&[("x", 1.0), ("y", 2.0)]), input(&[("y", 1.0)])],
        )
        .unwrap();
        assert_eq!(out, vec![(b"x".to_vec(), 1.0)]);
        let op = parse(Kind::InterCard, &args("ZINTERCARD 2 a b LIMIT 1"), false).unwrap();
        let n = compute(
            &op,
            vec![
                input(&[("x", 1.0), ("y", 2.0)]),
                input(&[("y", 1.0), ("x", 1.0)]),
            ],
        );
        assert_eq!(n, Err(1));
        // inf + -inf is 0, as in Redis.
        let op = parse(Kind::Union, &args("ZUNION 2 a b"), false).unwrap();
        let out = compute(
            &op,
            vec![
                input(&[("x", f64::INFINITY)]),
                input(&[("x", f64::NEG_INFINITY)]),
            ],
        )
        .unwrap();
        assert_eq!(out, vec![(b"x".to_vec(), 0.0)]);
    }
}
