//! Fuzzes the FLV tag parsers, the H.264/AAC configuration parsers and the segmenter (both
//! outputs: MPEG-TS and fragmented MP4) with an FLV file's tags (the form RTMP media
//! messages take). Never panic; segments are whole TS packets with positive, contiguous
//! timeranges, and every MP4 segment is a `moof` then an `mdat` whose sizes add up. The
//! sample tables the segmenter gives with each segment must be exactly what the demuxers
//! read back from it (a differential check of `samples::TsTables`), and MP4 export's direct
//! demux path must give the plain path's sample bytes for it.
//! Seed: testdata/small.flv.
#![no_main]

use drey_core::media::flv::file_tags;
use drey_core::media::samples::{self, Init};
use drey_core::media::{LiveSegmenter, SegmenterConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tags) = file_tags(data) else { return };
    let mut seg = LiveSegmenter::new(SegmenterConfig {
        fmp4: true,
        tables: true,
        ..SegmenterConfig::default()
    });
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
        let m = s.mp4.as_ref().expect("fmp4 output is on");
        let moof = u32::from_be_bytes(m.data[..4].try_into().unwrap()) as usize;
        assert_eq!(&m.data[4..8], b"moof");
        assert_eq!(&m.data[moof + 4..moof + 8], b"mdat");
        let mdat = u32::from_be_bytes(m.data[moof..moof + 4].try_into().unwrap()) as usize;
        assert_eq!(moof + mdat, m.data.len());
        assert_eq!(&m.init[4..8], b"ftyp");
        assert_eq!(s.ts_tables.clone(), Some(samples::from_ts(&s.ts, false)));
        // MP4 export's direct path on drey's own layout gives the plain path's bytes.
        assert_eq!(
            samples::from_ts(&s.ts, true),
            samples::from_ts_gathered(&s.ts, Vec::new(), Vec::new())
        );
        let read = Init::parse(&m.init).and_then(|i| samples::from_fmp4(&i, &m.data, false));
        assert_eq!(m.tables.clone(), Some(read));
    }
});
