//! Structured: a pipeline of generated requests, multibulk ones encoded by
//! resp::encode::command and inline lines of bare, "double" and 'single' quoted words, parses
//! back to exactly the generated arguments (in one piece and in chunks).
#![no_main]

use arbitrary::Arbitrary;
use fuzz_checks::checks::{self, RoundtripItem};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Item {
    Multibulk(Vec<Vec<u8>>),
    Inline(Vec<(Vec<u8>, u8)>, u8),
}

fuzz_target!(|items: Vec<Item>| {
    let items: Vec<RoundtripItem> = items
        .into_iter()
        .map(|i| match i {
            Item::Multibulk(args) => RoundtripItem::Multibulk(args),
            Item::Inline(words, style) => RoundtripItem::Inline { words, style },
        })
        .collect();
    checks::check_roundtrip(&items);
});
