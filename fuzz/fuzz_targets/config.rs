//! Arbitrary UTF-8 -> Config::from_yaml -> validate: never panics, deterministic, and a
//! configuration that validates satisfies what validate promises.
#![no_main]

use fuzz_checks::checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => checks::check_config(text),
        Err(_) => checks::check_config(&String::from_utf8_lossy(data)),
    }
});
