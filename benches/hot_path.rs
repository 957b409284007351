//! The per-request work of the proxy, without sockets: parsing requests and replies, slot
//! hashing, routing, and the split/merge of a multi-key command. Run with
//! `cargo bench --bench hot_path`; throughput is reported in bytes/s or elements/s.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use redis_cluster_proxy::command::{self, Args};
use redis_cluster_proxy::resp::encode::{self, Proto};
use redis_cluster_proxy::resp::reply::ReplyParser;
use redis_cluster_proxy::resp::request::{Frame, RequestParser};
use redis_cluster_proxy::route;
use redis_cluster_proxy::route::split::{self, Merge};
use redis_cluster_proxy::slot::key_slot;

struct Ranges<'a>(&'a [u8], &'a [std::ops::Range<usize>]);

impl Args for Ranges<'_> {
    fn argc(&self) -> usize {
        self.1.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self.0[self.1[i].clone()]
    }
}

fn pipeline(n: usize, value: usize) -> Vec<u8> {
    let v = vec![b'x'; value];
    let mut out = Vec::new();
    for i in 0..n {
        let key = format!("key:{i}");
        if i % 2 == 0 {
            encode::command(&mut out, &[b"SET", key.as_bytes(), &v]);
        } else {
            encode::command(&mut out, &[b"GET", key.as_bytes()]);
        }
    }
    out
}

fn request_parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_parser");
    for value in [64usize, 1024] {
        let input = pipeline(1000, value);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(format!("1000 SET/GET, {value} B values"), |b| {
            b.iter(|| {
                let mut p = RequestParser::new();
                let mut at = 0;
                let mut n = 0;
                while let Ok(Some(Frame::Multibulk { len })) = p.parse(&input[at..]) {
                    n += p.args().len();
                    at += len;
                }
                black_box(n)
            })
        });
    }
    let inline = b"SET key:1 somevalue\r\n".repeat(1000);
    g.throughput(Throughput::Bytes(inline.len() as u64));
    g.bench_function("1000 inline SET", |b| {
        b.iter(|| {
            let mut p = RequestParser::new();
            let mut at = 0;
            while let Ok(Some(Frame::Inline { consumed, .. })) = p.parse(&inline[at..]) {
                at += consumed;
            }
            black_box(at)
        })
    });
    g.finish();
}

fn reply_parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply_parser");
    let mut bulk = Vec::new();
    for _ in 0..1000 {
        encode::bulk(&mut bulk, &[b'v'; 64]);
    }
    let mut nested = Vec::new();
    encode::array_header(&mut nested, 100);
    for i in 0..100 {
        encode::array_header(&mut nested, 2);
        encode::bulk(&mut nested, format!("field{i}").as_bytes());
        encode::integer(&mut nested, i);
    }
    for (name, input) in [
        ("1000 bulk replies of 64 B", &bulk),
        ("one array of 100 pairs", &nested),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = ReplyParser::new();
                let mut at = 0;
                while let Ok(Some(n)) = p.parse(&input[at..]) {
                    at += n;
                }
                black_box(at)
            })
        });
    }
    g.finish();
}

fn slots_and_routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    let keys: Vec<String> = (0..1000).map(|i| format!("user:{i}:profile")).collect();
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("key_slot x1000", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for k in &keys {
                acc = acc.wrapping_add(key_slot(k.as_bytes()).0 as u32);
            }
            black_box(acc)
        })
    });
    let input = pipeline(1000, 64);
    let mut frames = Vec::new();
    let mut p = RequestParser::new();
    let mut at = 0;
    while let Ok(Some(Frame::Multibulk { len })) = p.parse(&input[at..]) {
        frames.push((at..at + len, p.args().to_vec()));
        at += len;
    }
    g.bench_function("route x1000 (SET/GET)", |b| {
        b.iter(|| {
            let mut n = 0;
            for (r, ranges) in &frames {
                let a = Ranges(&input[r.clone()], ranges);
                if matches!(
                    route::route(&a),
                    route::Route::Slot(_) | route::Route::ReadSlot(_)
                ) {
                    n += 1;
                }
            }
            black_box(n)
        })
    });
    g.bench_function("command lookup x1000", |b| {
        let names: [&[u8]; 4] = [b"get", b"SET", b"hgetall", b"zadd"];
        b.iter(|| {
            let mut n = 0;
            for i in 0..1000 {
                if command::lookup([names[i % 4]].as_slice()).is_some() {
                    n += 1;
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

fn split_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("split_merge");
    let args: Vec<Vec<u8>> = std::iter::once(b"MGET".to_vec())
        .chain((0..10).map(|i| format!("key:{i}").into_bytes()))
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("MGET of 10 keys: split", |b| {
        b.iter(|| {
            black_box(split::split(
                args.as_slice(),
                1,
                Merge::Mget { order: vec![] },
            ))
        })
    });
    let (parts, merge) = split::split(args.as_slice(), 1, Merge::Mget { order: vec![] });
    let replies: Vec<Bytes> = parts
        .iter()
        .map(|p| {
            let n = p.frame.iter().filter(|&&b| b == b'$').count() - 1;
            let mut out = Vec::new();
            encode::array_header(&mut out, n);
            for _ in 0..n {
                encode::bulk(&mut out, &[b'v'; 64]);
            }
            Bytes::from(out)
        })
        .collect();
    g.bench_function("MGET of 10 keys: merge", |b| {
        b.iter(|| {
            black_box(redis_cluster_proxy::route::merge::merge(
                &merge,
                &replies,
                Proto::Resp2,
            ))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    request_parser,
    reply_parser,
    slots_and_routing,
    split_merge
);
criterion_main!(benches);
