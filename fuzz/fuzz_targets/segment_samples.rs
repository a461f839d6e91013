//! Fuzzes what MP4 export reads from stored segments any TAMS client may have written:
//! the MPEG-TS demuxer (PAT/PMT, PES, Annex B, ADTS), the fragmented MP4 readers (init
//! segment, moof/traf/trun), and the progressive MP4 planner over what they return.
//! Never panic; tables with and without data agree and sample sizes add up to the data;
//! the fMP4 sample ranges an export slices by are, back to back, each track's data;
//! the fMP4 scan (tables from box headers and `moof`s, fed the ranges it asks for) gives
//! what the whole-segment reader gives, errors included;
//! the tables survive the index's encoding (`media::tables`), whose decoder also reads
//! the raw input.
//! Input: one mode byte (even: MPEG-TS; odd: fMP4), then the segment; for fMP4 a 2-byte
//! big-endian init length, the init segment, then the media segment. Seeds: ffmpeg output.
#![no_main]

use drey_core::media::mp4::{self, SegmentIn};
use drey_core::media::samples::{
    Fmp4Scan, Init, Samples, fmp4_sample_ranges, from_fmp4, from_ts, from_ts_gathered,
};
use drey_core::media::tables;
use libfuzzer_sys::fuzz_target;

fn check(with: &Samples, without: &Samples) {
    assert_eq!(with.tracks.len(), without.tracks.len());
    for (a, b) in with.tracks.iter().zip(&without.tracks) {
        assert_eq!(a.samples, b.samples);
        assert!(b.data.is_empty());
        let sum: u64 = a.samples.iter().map(|s| u64::from(s.size)).sum();
        assert_eq!(sum, a.data.len() as u64);
    }
    assert_eq!(
        tables::decode(&tables::encode(without)).as_ref(),
        Ok(without)
    );
    let seg = [SegmentIn {
        flow: 0,
        start_ns: 1_000_000_000,
        end_ns: 3_000_000_000,
        ts_offset_ns: None,
        samples: without,
    }];
    if let Ok(m) = mp4::plan(&seg, None, None) {
        let chunks: u64 = m.chunks.iter().map(|c| c.len).sum();
        assert_eq!(m.len, m.header.len() as u64 + chunks);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = tables::decode(rest);
    if mode % 2 == 0 {
        // The direct path (PES payloads straight into the track, converted where they
        // lie) gives exactly what gathering every PES packet first gives, errors included.
        assert_eq!(
            from_ts(rest, true),
            from_ts_gathered(rest, Vec::new(), Vec::new())
        );
        if let (Ok(a), Ok(b)) = (from_ts(rest, true), from_ts(rest, false)) {
            check(&a, &b);
        }
        return;
    }
    if rest.len() < 2 {
        return;
    }
    let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let Some(init) = rest.get(2..2 + n) else {
        return;
    };
    let Ok(init) = Init::parse(init) else {
        return;
    };
    let seg = &rest[2 + n..];
    if let (Ok(a), Ok(b)) = (from_fmp4(&init, seg, true), from_fmp4(&init, seg, false)) {
        check(&a, &b);
    }
    // The sample ranges an export slices fMP4 segments by: an error where the reader
    // errs, else each track's data back to back.
    match (from_fmp4(&init, seg, true), fmp4_sample_ranges(&init, seg)) {
        (Ok(s), Ok(r)) => {
            assert_eq!(s.tracks.len(), r.len());
            for (t, (kind, ranges)) in s.tracks.iter().zip(r) {
                assert_eq!(t.kind, kind);
                let joined: Vec<u8> = ranges
                    .iter()
                    .flat_map(|x| &seg[x.clone()])
                    .copied()
                    .collect();
                assert_eq!(joined, t.data);
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("{a:?} against {b:?}"),
    }
    // The scan the first MP4 export plans by, fed exactly the ranges it asks for.
    let mut scan = Fmp4Scan::new(seg.len());
    let mut reads = 0;
    let scanned = loop {
        let Some(r) = scan.want() else {
            break scan.tables(&init);
        };
        reads += 1;
        assert!(
            reads <= 4 && r.start < r.end && r.end <= seg.len(),
            "{reads}: {r:?}"
        );
        if let Err(e) = scan.feed(r.start, &seg[r]) {
            break Err(e);
        }
    };
    assert_eq!(scanned, from_fmp4(&init, seg, false));
});
