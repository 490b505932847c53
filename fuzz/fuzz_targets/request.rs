//! Arbitrary bytes as one admin request line: the envelope parser must
//! never panic, and every parsed request goes through each command's
//! argument checks (`validate_only`), which must not panic either. The
//! command is also swapped for every known one, so a line with one command's
//! arguments is tried against all parsers, not only the one it names.

#![no_main]

use cronq::admin::cmd::validate_only;
use cronq::admin::protocol::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match Request::parse(line) {
        Err((id, e)) => {
            // The answer line must always serialize.
            let _ = protocol::error(id, &e).to_string();
        }
        Ok(mut req) => {
            let _ = validate_only(&req);
            for cmd in protocol::COMMANDS.iter().chain(["nosuch"].iter()) {
                req.cmd = cmd.to_string();
                if let Err(e) = validate_only(&req) {
                    assert!(!e.message.is_empty(), "an error without a message");
                }
            }
        }
    }
});
