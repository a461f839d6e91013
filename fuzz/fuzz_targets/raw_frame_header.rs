//! Fuzzes the raw frame stream's header parser (what `drey ingest stream` reads from the
//! network before each frame): never panics, accepts only the two magics, a frame of the
//! expected length or an end header without payload, and a frame number that fits grain
//! arithmetic, and round-trips what it accepts.
#![no_main]

use drey_core::media::rawstream::{HEADER_LEN, Header, encode_end, encode_header, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN + 4 {
        return;
    }
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&data[..HEADER_LEN]);
    let expected = u32::from_be_bytes([data[16], data[17], data[18], data[19]]) as usize;
    match parse(&h, expected) {
        Ok(Header::Frame(n)) => {
            assert_eq!(&h[..4], b"DRYF");
            assert_eq!(encode_header(n, expected as u32), h);
        }
        Ok(Header::End(n)) => {
            assert_eq!(&h[..4], b"DRYE");
            assert_eq!(encode_end(n), h);
        }
        Err(_) => {}
    }
});
