//! Fuzzes the whole ingest parser stack on a publisher's byte stream: RTMP handshake, chunk
//! stream, AMF commands, FLV tags, H.264/AAC configuration and the segmenter. Never panic;
//! whatever segments come out are whole TS packets. Seed: a real ffmpeg publish capture.
#![no_main]

use drey_core::media::rtmp::replay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // rml_rtmp panics on some inputs (found by this target: an integer overflow and an
        // out-of-range slice in its chunk deserializer); drey contains those panics and
        // closes the connection (`RtmpError::Panic`). Keep fuzzing past them; a panic
        // anywhere else still aborts.
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if drey_core::media::rtmp::in_protocol_library() {
                return;
            }
            abort_hook(info);
            std::process::abort();
        }));
    },
    |data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    if let Ok(segments) = replay(bytes, usize::from(chunk).max(1) * 64) {
        for s in segments {
            assert_eq!(s.ts.len() % 188, 0);
            assert!(s.end_ms > s.start_ms);
        }
    }
    }
);
