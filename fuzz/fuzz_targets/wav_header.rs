//! Fuzzes the WAV header parser (`drey ingest raw FILE.wav` reads it from files users
//! give it): never panics, and what it accepts is self-consistent: the samples lie inside
//! the file, are whole sample frames, and a header written for the same layout parses
//! back to the same format.
#![no_main]

use drey_core::media::pcm::{PcmLayout, parse_wav, wav_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file may be longer than the bytes seen (the head of a big file).
    let (extra, head) = match data.split_first() {
        Some((e, h)) => (u64::from(*e) * 997, h),
        None => return,
    };
    let file_len = head.len() as u64 + extra;
    if let Ok(w) = parse_wav(head, file_len) {
        assert!(w.data_offset + w.data_len <= file_len);
        let frame = u64::from(w.channels) * u64::from(w.format.bytes_per_sample());
        assert!(frame > 0);
        if let Ok(layout) = PcmLayout::new(w.format, w.sample_rate, w.channels, 1) {
            assert_eq!(w.data_len % frame, 0, "whole sample frames");
            if let Some(h) = wav_header(&layout, w.data_len) {
                let back = parse_wav(&h, h.len() as u64 + w.data_len).expect("own header");
                assert_eq!(
                    (back.format, back.sample_rate, back.channels, back.data_len),
                    (w.format, w.sample_rate, w.channels, w.data_len)
                );
            }
        }
    }
});
