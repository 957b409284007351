//! RequestParser: the input is a client's byte stream. Fed in one piece and in chunks (byte
//! by byte, around every CR/LF, at input-seeded random cuts): never panics, every feed
//! reports the same frames, arguments and errors; frames lie inside the input and their
//! argument ranges inside the frame; a multibulk frame parsed alone gives the same
//! arguments, and Redis's own parser reads the forwarded bytes as the same command.
#![no_main]

use fuzz_checks::checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check_request_stream(data);
});
