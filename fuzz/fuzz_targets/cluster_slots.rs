//! Bytes -> ReplyParser -> value::decode -> topology::parse_cluster_slots, and the bytes as
//! text -> topology::parse_cluster_nodes (ranges in bounds,
//! ports valid; Topology::apply on numeric addresses gives the owners the ranges say, and is
//! idempotent); the same bytes as CLUSTER NODES text and as a redirect frame through
//! AddressMap::{rewrite_nodes_text, rewrite_redirect}.
#![no_main]

use fuzz_checks::checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check_cluster_slots(data);
});
