//! Fuzzes the whole ingest parser stack on a publisher's byte stream: RTMP handshake, chunk
//! stream, AMF commands, FLV tags, H.264/AAC configuration and the segmenter. Never panic;
//! whatever segments come out are whole TS packets. Seed: a real ffmpeg publish capture.
#![no_main]

use drey_core::media::rtmp::replay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    if let Ok(segments) = replay(bytes, usize::from(chunk).max(1) * 64) {
        for s in segments {
            assert_eq!(s.data.len() % 188, 0);
            assert!(s.end_ms > s.start_ms);
        }
    }
});
