//! Fuzzes the RTMP publish-token parser and verifier (tokens arrive in stream-key queries
//! from anyone who can reach the RTMP port). Never panic; no input verifies against a
//! secret it never saw. Seed: a token `drey token` makes.
#![no_main]

use drey_core::token::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (token, stream) = text.split_once('\n').unwrap_or((&text, "live/cam1"));
    if let Ok(t) = Token::parse(token) {
        assert!(t.verify("fuzz-secret-never-in-input", stream, 0).is_err());
    }
});
