//! Fuzzes the FLV tag parsers, the H.264/AAC configuration parsers and the segmenter with
//! an FLV file's tags (the form RTMP media messages take). Never panic; segments are whole
//! TS packets with positive, contiguous timeranges. Seed: testdata/small.flv.
#![no_main]

use drey_core::media::flv::file_tags;
use drey_core::media::{LiveSegmenter, SegmenterConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tags) = file_tags(data) else { return };
    let mut seg = LiveSegmenter::new(SegmenterConfig::default());
    let mut out = Vec::new();
    for t in tags {
        let r = match t.tag_type {
            9 => seg.push_video(t.timestamp_ms, t.body),
            8 => seg.push_audio(t.timestamp_ms, t.body),
            _ => Ok(None),
        };
        match r {
            Ok(s) => out.extend(s),
            Err(_) => break,
        }
    }
    out.extend(seg.finish());
    for w in out.windows(2) {
        assert_eq!(w[0].end_ms, w[1].start_ms);
    }
    for s in &out {
        assert_eq!(s.ts.len() % 188, 0);
        assert!(s.end_ms > s.start_ms);
    }
});
