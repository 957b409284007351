//! Property tests (proptest) of the parsers and slot hashing: `cargo test --test properties`.
//!
//! - a pipeline of generated requests parses the same fed in one piece or in any chunks;
//! - `resp::encode::command` -> `RequestParser` gives the arguments back, and so do inline
//!   lines of quoted words;
//! - `key_slot` is CRC16/XMODEM (checked against a bitwise implementation and the spec's
//!   test vector) of the hash tag, with the cluster specification's hash-tag rules.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use checks::{ReqEvent, RoundtripItem};
use proptest::prelude::*;
use redis_cluster_proxy::resp::encode;
use redis_cluster_proxy::resp::request::{Frame, RequestParser};
use redis_cluster_proxy::slot::{hash_tag, key_slot, Slot, SLOTS};

/// CRC16/XMODEM (poly 0x1021, init 0, no reflection), bit by bit: the cluster spec's CRC.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster specification's HASH_SLOT, transcribed.
fn spec_slot(key: &[u8]) -> u16 {
    let n = key.len();
    let Some(s) = key.iter().position(|&b| b == b'{') else {
        return crc16_xmodem(key) & 16383;
    };
    let Some(e) = key[s + 1..]
        .iter()
        .position(|&b| b == b'}')
        .map(|i| s + 1 + i)
    else {
        return crc16_xmodem(key) & 16383;
    };
    if e == s + 1 || e == n {
        return crc16_xmodem(key) & 16383;
    }
    crc16_xmodem(&key[s + 1..e]) & 16383
}

#[test]
fn crc16_spec_test_vector() {
    // "The CRC16 ... output for '123456789' is 0x31C3" (cluster specification, Appendix A).
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"123456789"), Slot(0x31C3 & 16383));
    // Slots a real server reports for CLUSTER KEYSLOT.
    assert_eq!(key_slot(b"foo"), Slot(12182));
    assert_eq!(key_slot(b"bar"), Slot(5061));
    assert_eq!(key_slot(b"{user1}:a"), key_slot(b"user1"));
}

#[test]
fn cluster_nodes_and_cluster_slots_agree_on_a_real_cluster() {
    // Both captured from one 3+3 cluster (Redis 7.0.15) at the same moment.
    use redis_cluster_proxy::resp::value::decode;
    use redis_cluster_proxy::topology::{parse_cluster_nodes, parse_cluster_slots, SlotRange};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cluster_slots");
    let slots = std::fs::read(dir.join("real_slots_resp2")).expect("real CLUSTER SLOTS capture");
    let nodes =
        std::fs::read_to_string(dir.join("nodes_text")).expect("real CLUSTER NODES capture");
    let norm = |mut v: Vec<SlotRange>| {
        for r in &mut v {
            r.replicas.sort();
        }
        v.sort_by_key(|r| r.start);
        v
    };
    let from_slots =
        norm(parse_cluster_slots(&decode(&slots).unwrap(), "127.0.0.1:27100").unwrap());
    let from_nodes = norm(parse_cluster_nodes(&nodes, "127.0.0.1:27100").unwrap());
    assert_eq!(from_slots.len(), 3);
    assert_eq!(from_slots.len(), from_nodes.len());
    for (s, n) in from_slots.iter().zip(&from_nodes) {
        assert_eq!((s.start, s.end, &s.master), (n.start, n.end, &n.master));
        // CLUSTER SLOTS leaves out replicas that have not replicated yet (as in this capture,
        // taken right after the cluster was created); CLUSTER NODES lists them all.
        assert!(
            s.replicas.iter().all(|r| n.replicas.contains(r)),
            "{s:?} vs {n:?}"
        );
        assert_eq!(n.replicas.len(), 1, "{n:?}");
    }
}

/// Keys rich in braces, so hash-tag edge cases come up often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'{'),
            3 => Just(b'}'),
            6 => b'a'..=b'e',
            1 => any::<u8>(),
        ],
        0..16,
    )
}

fn tagless() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("no braces", |b| *b != b'{'), 0..12)
}

/// One request of a pipeline, as the checks' roundtrip items (multibulk or inline).
fn request() -> impl Strategy<Value = RoundtripItem> {
    let arg = prop::collection::vec(any::<u8>(), 0..24);
    let word = (prop::collection::vec(any::<u8>(), 0..12), any::<u8>());
    prop_oneof![
        4 => prop::collection::vec(arg, 0..6).prop_map(RoundtripItem::Multibulk),
        2 => (prop::collection::vec(word, 0..5), any::<u8>())
            .prop_map(|(words, style)| RoundtripItem::Inline { words, style }),
        1 => prop::collection::vec("[A-Za-z0-9:_-]{1,10}", 1..4).prop_map(|w| {
            RoundtripItem::Inline {
                words: w.into_iter().map(|s| (s.into_bytes(), 0)).collect(),
                style: 0,
            }
        }),
    ]
}

/// The bytes of a pipeline of items (as check_roundtrip builds them).
fn pipeline_bytes(items: &[RoundtripItem]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        match item {
            RoundtripItem::Multibulk(args) => {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                encode::command(&mut out, &refs);
            }
            RoundtripItem::Inline { words, style } => {
                out.extend_from_slice(&checks::inline_line(words, *style))
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn key_slot_is_crc16_of_the_hash_tag(k in key()) {
        let want = spec_slot(&k);
        prop_assert_eq!(key_slot(&k), Slot(want));
        prop_assert!((key_slot(&k).0 as usize) < SLOTS);
        prop_assert_eq!(key_slot(&k).0, crc16_xmodem(hash_tag(&k)) & 16383);
    }

    #[test]
    fn hash_tag_rules(prefix in tagless(), tag in prop::collection::vec(any::<u8>(), 1..10),
                      suffix in key()) {
        // The first '{' with a '}' after it and something in between: only that is hashed.
        let tag: Vec<u8> = tag.into_iter().filter(|&b| b != b'}').collect();
        let mut k = prefix.clone();
        k.push(b'{');
        k.extend_from_slice(&tag);
        k.push(b'}');
        k.extend_from_slice(&suffix);
        if tag.is_empty() {
            // `{}`: an empty tag, the whole key is hashed.
            prop_assert_eq!(hash_tag(&k), k.as_slice());
            prop_assert_eq!(key_slot(&k).0, crc16_xmodem(&k) & 16383);
        } else {
            prop_assert_eq!(hash_tag(&k), tag.as_slice());
            prop_assert_eq!(key_slot(&k), key_slot(&tag));
            // Whatever follows the tag does not matter.
            let mut other = prefix.clone();
            other.push(b'{');
            other.extend_from_slice(&tag);
            other.extend_from_slice(b"}x{y}");
            prop_assert_eq!(key_slot(&other), key_slot(&k));
        }
        // No '}' after the '{': the whole key.
        let mut open = prefix.clone();
        open.push(b'{');
        open.extend(tag.iter().copied().filter(|&b| b != b'}'));
        prop_assert_eq!(key_slot(&open).0, crc16_xmodem(&open) & 16383);
    }

    #[test]
    fn encode_then_parse_gives_the_arguments_back(
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)
    ) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut enc = Vec::new();
        encode::command(&mut enc, &refs);
        // Followed by the start of another request: only the first frame counts.
        let mut buf = enc.clone();
        buf.extend_from_slice(b"*1\r\n$4\r\nPI");
        let mut p = RequestParser::new();
        prop_assert_eq!(p.parse(&buf), Ok(Some(Frame::Multibulk { len: enc.len() })));
        let got: Vec<Vec<u8>> = p.args().iter().map(|r| buf[r.clone()].to_vec()).collect();
        prop_assert_eq!(got, args);
    }

    #[test]
    fn inline_words_parse_back(
        words in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..16), any::<u8>()), 1..6),
        style in any::<u8>(),
    ) {
        let line = checks::inline_line(&words, style);
        let mut p = RequestParser::new();
        match p.parse(&line) {
            Ok(Some(Frame::Inline { consumed, encoded })) => {
                prop_assert_eq!(consumed, line.len());
                let got: Vec<Vec<u8>> =
                    p.args().iter().map(|r| encoded[r.clone()].to_vec()).collect();
                let want: Vec<Vec<u8>> = words.iter().map(|(w, _)| w.clone()).collect();
                prop_assert_eq!(got, want);
            }
            other => prop_assert!(false, "{} parsed as {:?}", checks::show(&line), other),
        }
    }

    #[test]
    fn chunked_parsing_equals_one_piece(
        items in prop::collection::vec(request(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = pipeline_bytes(&items);
        let whole = checks::run_requests(&stream, &[], false);
        prop_assert!(!whole.iter().any(|e| matches!(e, ReqEvent::Error(_) | ReqEvent::Pending(_))),
            "a generated pipeline must parse cleanly: {:?}", whole);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| 1 + i.index(stream.len().max(2) - 1)).collect();
        cuts.retain(|&c| c < stream.len());
        cuts.sort_unstable();
        cuts.dedup();
        let chunked = checks::run_requests(&stream, &cuts, false);
        prop_assert_eq!(&chunked, &whole, "cuts {:?} of {}", cuts, checks::show(&stream));
        // And the full checks (byte by byte, around CR/LF, Redis's reading) on the same bytes.
        checks::check_roundtrip(&items);
    }
}
