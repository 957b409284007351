//! ReplyParser: the input is a node's byte stream. Same chunking differential as the
//! request parser; verdicts agree with a plain recursive RESP2/RESP3 reader; a complete reply
//! decodes (value::decode) without panicking; error frames classify consistently
//! (MOVED/ASK/TRYAGAIN/CLUSTERDOWN) and address_map rewrites exactly the redirect address.
#![no_main]

use fuzz_checks::checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check_reply_stream(data);
});
