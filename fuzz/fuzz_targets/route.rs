//! Argument lists (one command per line, arguments split on spaces; or the whole input split
//! on NUL) -> route::route: never panics; Route::Slot(s) means every key for_each_key finds
//! hashes to s; AnyMaster means no key; Split/CROSSSLOT mean keys of several slots; the
//! command name's case does not matter.
#![no_main]

use fuzz_checks::checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check_route_bytes(data);
});
