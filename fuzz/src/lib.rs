//! The invariants the fuzz targets check. `checks.rs` is also compiled into the stable
//! replay test `tests/fuzz_corpus.rs` (via `#[path]`), so it uses only std and the proxy.

pub mod checks;
