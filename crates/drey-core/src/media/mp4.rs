//! Progressive (non-fragmented, `moov` first) MP4 planned from the sample tables of the
//! segments a span covers, so the whole file's length and layout are known before any
//! sample byte is read. Sans-IO.
//!
//! The file holds at most one H.264 and one AAC track. Each segment contributes one chunk
//! per track, in time order, so a byte range of the file maps onto whole segments. Time:
//! every segment's samples are placed on the flow timeline through its `ts_offset` (or,
//! when that is missing or implausible, by anchoring its first presentation at the
//! segment's start), holes where no input flow has content are closed up (and reported),
//! and an edit list per track trims the presentation to exactly the span asked for, since
//! the file itself must start at a keyframe.

use super::MediaError;
use super::bmff::{boxed, full, matrix, u16be, u32be, u64be, zeros};
use super::samples::{Kind, Samples, Timed};

/// Timescale of the movie header and the edit lists: microseconds.
pub const MOVIE_TIMESCALE: u32 = 1_000_000;
const NS: i128 = 1_000_000_000;

/// One segment of one input flow.
#[derive(Debug, Clone, Copy)]
pub struct SegmentIn<'a> {
    /// Which input flow it belongs to (0 for a multiplexed flow, 0/1 for separate video
    /// and audio flows).
    pub flow: usize,
    pub start_ns: i64,
    pub end_ns: i64,
    pub ts_offset_ns: Option<i64>,
    pub samples: &'a Samples,
}

/// Where one segment's samples of one track sit in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index into the segments given to [`plan`].
    pub segment: usize,
    pub kind: Kind,
    pub offset: u64,
    pub len: u64,
}

/// A planned file.
#[derive(Debug, Clone)]
pub struct Movie {
    /// `ftyp`, `moov` and the `mdat` header: the file's first bytes.
    pub header: Vec<u8>,
    /// In file order (by offset).
    pub chunks: Vec<Chunk>,
    pub len: u64,
    /// The span presented (flow time, ns): what the edit lists keep.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Holes in the content, closed up in the file.
    pub gaps: Vec<(i64, i64)>,
    pub tracks: Vec<Kind>,
}

fn to_ns(ticks: i64, timescale: u32) -> i64 {
    (i128::from(ticks) * NS / i128::from(timescale)) as i64
}

fn to_ticks(ns: i64, timescale: u32) -> i64 {
    let v = i128::from(ns) * i128::from(timescale);
    // Round to nearest.
    ((v + if v >= 0 { NS / 2 } else { -NS / 2 }) / NS) as i64
}

fn unsupported(message: String) -> MediaError {
    MediaError::Unsupported(message)
}

/// One output track being assembled.
struct Out {
    kind: Kind,
    flow: usize,
    timescale: u32,
    entry: Vec<u8>,
    width: u32,
    height: u32,
    samples: Vec<Timed>,
    durations: Vec<u32>,
    /// (segment, samples in the chunk, bytes).
    chunks: Vec<(usize, u32, u64)>,
    /// Presentation end of each chunk's segment, in the file's ticks.
    last_end: i64,
    edits: Vec<(u64, i64)>,
}

/// Plans the MP4 of `segments` (any order) presenting [`span_start`, `span_end`) (flow
/// time, ns; `None` = from the first / to the last content).
pub fn plan(
    segments: &[SegmentIn],
    span_start: Option<i64>,
    span_end: Option<i64>,
) -> Result<Movie, MediaError> {
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| (segments[i].start_ns, segments[i].flow));

    // The tracks: the first flow (in time) that has each kind provides it.
    let mut outs: Vec<Out> = Vec::new();
    for kind in [Kind::Video, Kind::Audio] {
        if let Some((flow, t)) = order.iter().find_map(|&i| {
            segments[i]
                .samples
                .track(kind)
                .filter(|t| !t.samples.is_empty())
                .map(|t| (segments[i].flow, t))
        }) {
            outs.push(Out {
                kind,
                flow,
                timescale: t.timescale,
                entry: t.entry.clone(),
                width: t.width,
                height: t.height,
                samples: Vec::new(),
                durations: Vec::new(),
                chunks: Vec::new(),
                last_end: 0,
                edits: Vec::new(),
            });
        }
    }
    if outs.is_empty() {
        return Err(unsupported(
            "the span holds no H.264 or AAC samples".to_owned(),
        ));
    }
    let used: Vec<usize> = order
        .into_iter()
        .filter(|&i| outs.iter().any(|o| o.flow == segments[i].flow))
        .collect();
    let t0 = used
        .iter()
        .map(|&i| segments[i].start_ns)
        .min()
        .unwrap_or(0);
    let tend = used.iter().map(|&i| segments[i].end_ns).max().unwrap_or(0);
    let start = span_start.unwrap_or(t0).clamp(t0, tend);
    let end = span_end.unwrap_or(tend).clamp(start, tend);
    if start >= end {
        return Err(unsupported(
            "the span and the segments' content do not overlap".to_owned(),
        ));
    }

    // Holes where no used flow has content, closed up in the file.
    let mut gaps: Vec<(i64, i64)> = Vec::new();
    let mut reach = t0;
    for &i in &used {
        let s = &segments[i];
        if s.start_ns > reach {
            gaps.push((reach, s.start_ns));
        }
        reach = reach.max(s.end_ns);
    }
    let file_ns = |t: i64| -> i64 {
        let mut closed = 0;
        for &(a, b) in &gaps {
            if b <= t {
                closed += b - a;
            } else if a < t {
                closed += t - a;
            }
        }
        t - t0 - closed
    };

    for o in &mut outs {
        let n: usize = used
            .iter()
            .filter(|&&i| segments[i].flow == o.flow)
            .filter_map(|&i| segments[i].samples.track(o.kind))
            .map(|t| t.samples.len())
            .sum();
        o.samples.reserve_exact(n);
    }
    // Samples of each track on the file's timeline, one chunk per segment.
    let mut run_offset: std::collections::HashMap<usize, (i64, i64)> = Default::default();
    for &i in &used {
        let s = &segments[i];
        let media_start = outs
            .iter()
            .filter(|o| o.flow == s.flow)
            .filter_map(|o| {
                let t = s.samples.track(o.kind)?;
                Some(to_ns(t.first_pts()?, t.timescale))
            })
            .min();
        let Some(media_start) = media_start else {
            continue;
        };
        // Flow time of media time 0 in this segment: its `ts_offset` when that puts the
        // media near the segment; else the previous segment's, when it continues it and
        // its media follows on (one clock across the run); else the segment's first
        // presentation anchored at its start.
        let plausible = |o: i64| (media_start + o - s.start_ns).abs() <= 1_000_000_000;
        let offset = match (s.ts_offset_ns, run_offset.get(&s.flow)) {
            (Some(o), _) if plausible(o) => o,
            (_, Some(&(end, o))) if end == s.start_ns && plausible(o) => o,
            _ => s.start_ns - media_start,
        };
        run_offset.insert(s.flow, (s.end_ns, offset));
        let shift_ns = offset - t0 - (s.start_ns - t0 - file_ns(s.start_ns));
        for o in outs.iter_mut().filter(|o| o.flow == s.flow) {
            let Some(t) = s.samples.track(o.kind) else {
                continue;
            };
            if t.samples.is_empty() {
                continue;
            }
            if t.entry != o.entry || t.timescale != o.timescale {
                return Err(unsupported(format!(
                    "the {} codec configuration changes at {} ns of flow time; export the spans before and after it separately",
                    if o.kind == Kind::Video {
                        "video"
                    } else {
                        "audio"
                    },
                    s.start_ns
                )));
            }
            let shift = to_ticks(shift_ns, o.timescale);
            let mut bytes = 0u64;
            for x in &t.samples {
                let mut dts = x.dts.saturating_add(shift);
                if let Some(prev) = o.samples.last() {
                    dts = dts.max(prev.dts + 1);
                }
                o.samples.push(Timed { dts, ..*x });
                bytes += u64::from(x.size);
            }
            o.chunks.push((i, t.samples.len() as u32, bytes));
            o.last_end = to_ticks(file_ns(s.end_ns), o.timescale);
        }
    }
    for o in &mut outs {
        let n = o.samples.len();
        let nominal = if o.kind == Kind::Audio {
            1024
        } else {
            i64::from(o.timescale / 30)
        };
        let mut durations = Vec::with_capacity(n);
        for w in o.samples.windows(2) {
            durations.push(w[1].dts - w[0].dts);
        }
        if let Some(last) = o.samples.last() {
            let to_end = o.last_end - last.dts;
            let max = i64::from(o.timescale);
            let d = if to_end > 0 && to_end <= max {
                to_end
            } else {
                durations.last().copied().unwrap_or(nominal)
            };
            durations.push(d);
        }
        o.durations = durations
            .into_iter()
            .map(|d| u32::try_from(d.max(1)).unwrap_or(u32::MAX))
            .collect();
    }

    // Edit lists: present [start, end) of the file's timeline.
    let (s_file, e_file) = (file_ns(start), file_ns(end));
    for o in &mut outs {
        let first_dts = o.samples[0].dts;
        let first_pts = o
            .samples
            .iter()
            .take(64)
            .map(|x| x.dts + i64::from(x.cto))
            .min()
            .unwrap_or(first_dts);
        let media_end: i64 = first_dts + o.durations.iter().map(|&d| i64::from(d)).sum::<i64>();
        let s_ticks = to_ticks(s_file, o.timescale);
        let mut edits = Vec::new();
        let (from_ticks, from_ns) = if s_ticks < first_pts {
            let pts_ns = to_ns(first_pts, o.timescale);
            let empty = to_ticks(pts_ns - s_file, MOVIE_TIMESCALE);
            if empty > 0 {
                edits.push((empty as u64, -1));
            }
            (first_pts, pts_ns)
        } else {
            (s_ticks, s_file)
        };
        let available = to_ns(media_end - from_ticks, o.timescale);
        let dur = (e_file - from_ns).min(available).max(0);
        edits.push((
            to_ticks(dur, MOVIE_TIMESCALE) as u64,
            from_ticks - first_dts,
        ));
        o.edits = edits;
    }
    let movie_duration = to_ticks(e_file - s_file, MOVIE_TIMESCALE) as u64;

    // File order: segment by segment (time order), video before audio.
    let mut file_chunks: Vec<(usize, Kind, u64)> = Vec::new();
    for &i in &used {
        for o in &outs {
            if let Some(c) = o.chunks.iter().find(|c| c.0 == i) {
                file_chunks.push((i, o.kind, c.2));
            }
        }
    }
    let payload: u64 = file_chunks.iter().map(|c| c.2).sum();
    let large_mdat = payload + 8 > u64::from(u32::MAX);
    let mdat_header = if large_mdat { 16 } else { 8 };
    let ftyp = ftyp();
    let mut co64 = false;
    let mut moov_len = write_moov(&outs, movie_duration, &[], co64).len();
    if (ftyp.len() + moov_len + mdat_header) as u64 + payload > u64::from(u32::MAX) {
        co64 = true;
        moov_len = write_moov(&outs, movie_duration, &[], co64).len();
    }
    let data_start = (ftyp.len() + moov_len + mdat_header) as u64;
    let mut chunks = Vec::with_capacity(file_chunks.len());
    let mut at = data_start;
    for (segment, kind, len) in file_chunks {
        chunks.push(Chunk {
            segment,
            kind,
            offset: at,
            len,
        });
        at += len;
    }
    let offsets: Vec<Vec<u64>> = outs
        .iter()
        .map(|o| {
            chunks
                .iter()
                .filter(|c| c.kind == o.kind)
                .map(|c| c.offset)
                .collect()
        })
        .collect();
    let moov = write_moov(&outs, movie_duration, &offsets, co64);
    debug_assert_eq!(moov.len(), moov_len);
    let mut header = ftyp;
    header.extend_from_slice(&moov);
    if large_mdat {
        u32be(&mut header, 1);
        header.extend_from_slice(b"mdat");
        u64be(&mut header, payload + 16);
    } else {
        u32be(&mut header, (payload + 8) as u32);
        header.extend_from_slice(b"mdat");
    }
    let gaps = gaps
        .into_iter()
        .filter(|&(a, b)| b > start && a < end)
        .collect();
    Ok(Movie {
        len: data_start + payload,
        header,
        chunks,
        start_ns: start,
        end_ns: end,
        gaps,
        tracks: outs.iter().map(|o| o.kind).collect(),
    })
}

fn ftyp() -> Vec<u8> {
    let mut o = Vec::new();
    boxed(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32be(o, 0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    o
}

/// A duration field: 32 bits in a version 0 box, 64 in version 1.
fn dur(o: &mut Vec<u8>, v1: bool, d: u64) {
    if v1 {
        u64be(o, d);
    } else {
        u32be(o, d as u32);
    }
}

/// Run-length pairs of a sequence.
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

/// The `moov`; `offsets` (per track, per chunk) empty means placeholders of the same size.
fn write_moov(outs: &[Out], movie_duration: u64, offsets: &[Vec<u64>], co64: bool) -> Vec<u8> {
    let mut o = Vec::new();
    let v1 = movie_duration > u64::from(u32::MAX);
    boxed(&mut o, b"moov", |o| {
        full(o, b"mvhd", u8::from(v1), 0, |o| {
            zeros(o, if v1 { 16 } else { 8 });
            u32be(o, MOVIE_TIMESCALE);
            dur(o, v1, movie_duration);
            u32be(o, 0x0001_0000);
            u16be(o, 0x0100);
            zeros(o, 10);
            matrix(o);
            zeros(o, 24);
            u32be(o, outs.len() as u32 + 1);
        });
        for (ti, t) in outs.iter().enumerate() {
            let track_id = ti as u32 + 1;
            let edit_total: u64 = t.edits.iter().map(|e| e.0).sum();
            let media_total: u64 = t.durations.iter().map(|&d| u64::from(d)).sum();
            let audio = t.kind == Kind::Audio;
            boxed(o, b"trak", |o| {
                let v1 = edit_total > u64::from(u32::MAX);
                full(o, b"tkhd", u8::from(v1), 3, |o| {
                    zeros(o, if v1 { 16 } else { 8 });
                    u32be(o, track_id);
                    zeros(o, 4);
                    dur(o, v1, edit_total);
                    zeros(o, 8);
                    zeros(o, 4);
                    u16be(o, if audio { 0x0100 } else { 0 });
                    zeros(o, 2);
                    matrix(o);
                    u32be(o, t.width << 16);
                    u32be(o, t.height << 16);
                });
                boxed(o, b"edts", |o| {
                    let v1 = t
                        .edits
                        .iter()
                        .any(|e| e.0 > u64::from(u32::MAX) || i32::try_from(e.1).is_err());
                    full(o, b"elst", u8::from(v1), 0, |o| {
                        u32be(o, t.edits.len() as u32);
                        for &(d, m) in &t.edits {
                            dur(o, v1, d);
                            if v1 {
                                o.extend_from_slice(&m.to_be_bytes());
                            } else {
                                o.extend_from_slice(&(m as i32).to_be_bytes());
                            }
                            u16be(o, 1);
                            u16be(o, 0);
                        }
                    });
                });
                boxed(o, b"mdia", |o| {
                    let v1 = media_total > u64::from(u32::MAX);
                    full(o, b"mdhd", u8::from(v1), 0, |o| {
                        zeros(o, if v1 { 16 } else { 8 });
                        u32be(o, t.timescale);
                        dur(o, v1, media_total);
                        u16be(o, 0x55c4);
                        zeros(o, 2);
                    });
                    full(o, b"hdlr", 0, 0, |o| {
                        zeros(o, 4);
                        o.extend_from_slice(if audio { b"soun" } else { b"vide" });
                        zeros(o, 12);
                        o.extend_from_slice(if audio {
                            b"drey audio\0"
                        } else {
                            b"drey video\0"
                        });
                    });
                    boxed(o, b"minf", |o| {
                        if audio {
                            full(o, b"smhd", 0, 0, |o| zeros(o, 4));
                        } else {
                            full(o, b"vmhd", 0, 1, |o| zeros(o, 8));
                        }
                        boxed(o, b"dinf", |o| {
                            full(o, b"dref", 0, 0, |o| {
                                u32be(o, 1);
                                full(o, b"url ", 0, 1, |_| {});
                            });
                        });
                        stbl(o, t, offsets.get(ti).map(Vec::as_slice), co64);
                    });
                });
            });
        }
    });
    o
}

fn stbl(o: &mut Vec<u8>, t: &Out, offsets: Option<&[u64]>, co64: bool) {
    boxed(o, b"stbl", |o| {
        full(o, b"stsd", 0, 0, |o| {
            u32be(o, 1);
            o.extend_from_slice(&t.entry);
        });
        let stts = runs(t.durations.iter().copied());
        full(o, b"stts", 0, 0, |o| {
            u32be(o, stts.len() as u32);
            for (n, d) in stts {
                u32be(o, n);
                u32be(o, d);
            }
        });
        if t.samples.iter().any(|s| s.cto != 0) {
            let ctts = runs(t.samples.iter().map(|s| s.cto));
            let v1 = ctts.iter().any(|c| c.1 < 0);
            full(o, b"ctts", u8::from(v1), 0, |o| {
                u32be(o, ctts.len() as u32);
                for (n, c) in ctts {
                    u32be(o, n);
                    o.extend_from_slice(&c.to_be_bytes());
                }
            });
        }
        if t.samples.iter().any(|s| !s.sync) {
            let sync: Vec<u32> = (1..)
                .zip(&t.samples)
                .filter(|(_, s)| s.sync)
                .map(|(i, _)| i)
                .collect();
            full(o, b"stss", 0, 0, |o| {
                u32be(o, sync.len() as u32);
                for i in sync {
                    u32be(o, i);
                }
            });
        }
        let per_chunk = runs(t.chunks.iter().map(|c| c.1));
        full(o, b"stsc", 0, 0, |o| {
            u32be(o, per_chunk.len() as u32);
            let mut first = 1u32;
            for (n, count) in per_chunk {
                u32be(o, first);
                u32be(o, count);
                u32be(o, 1);
                first += n;
            }
        });
        full(o, b"stsz", 0, 0, |o| {
            u32be(o, 0);
            u32be(o, t.samples.len() as u32);
            for s in &t.samples {
                u32be(o, s.size);
            }
        });
        let n = t.chunks.len();
        if co64 {
            full(o, b"co64", 0, 0, |o| {
                u32be(o, n as u32);
                for i in 0..n {
                    u64be(o, offsets.and_then(|v| v.get(i)).copied().unwrap_or(0));
                }
            });
        } else {
            full(o, b"stco", 0, 0, |o| {
                u32be(o, n as u32);
                for i in 0..n {
                    let off = offsets.and_then(|v| v.get(i)).copied().unwrap_or(0);
                    u32be(o, off as u32);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::bmff::{boxes, child};
    use crate::media::samples::{Track, from_ts};

    fn track(kind: Kind, timescale: u32, first: i64, n: usize, step: i64) -> Track {
        Track {
            kind,
            timescale,
            entry: b"\0\0\0\x08test".to_vec(),
            width: 16,
            height: 16,
            samples: (0..n)
                .map(|i| Timed {
                    dts: first + i as i64 * step,
                    cto: 0,
                    size: 10,
                    sync: i == 0 || kind == Kind::Audio,
                })
                .collect(),
            data: Vec::new(),
        }
    }

    /// 2 s segments of 50 video frames (90 kHz) and ~94 AAC frames (48 kHz).
    fn segment(k: i64) -> Samples {
        Samples {
            tracks: vec![
                track(Kind::Video, 90_000, k * 180_000, 50, 3600),
                track(Kind::Audio, 48_000, k * 96_000, 94, 1024),
            ],
        }
    }

    fn elst(header: &[u8], track: usize) -> Vec<(u64, i64)> {
        let top = boxes(&header[..header.len() - 8], "t").unwrap();
        let moov = top.iter().find(|b| &b.kind == b"moov").unwrap();
        let trak = boxes(moov.body, "t")
            .unwrap()
            .into_iter()
            .filter(|b| &b.kind == b"trak")
            .nth(track)
            .unwrap();
        let edts = child(trak.body, b"edts", "t").unwrap().unwrap();
        let e = child(edts.body, b"elst", "t").unwrap().unwrap().body;
        let n = u32::from_be_bytes(e[4..8].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| {
                let r = &e[8 + i * 12..];
                (
                    u64::from(u32::from_be_bytes(r[..4].try_into().unwrap())),
                    i64::from(i32::from_be_bytes(r[4..8].try_into().unwrap())),
                )
            })
            .collect()
    }

    #[test]
    fn lays_out_chunks_after_the_header_and_trims_with_edit_lists() {
        let segs: Vec<Samples> = (0..3).map(segment).collect();
        let base = 1_000_000_000_000i64;
        let input: Vec<SegmentIn> = segs
            .iter()
            .enumerate()
            .map(|(k, s)| SegmentIn {
                flow: 0,
                start_ns: base + k as i64 * 2_000_000_000,
                end_ns: base + (k as i64 + 1) * 2_000_000_000,
                ts_offset_ns: Some(base),
                samples: s,
            })
            .collect();
        let m = plan(&input, Some(base + 500_000_000), Some(base + 5_000_000_000)).unwrap();
        assert_eq!(m.chunks.len(), 6);
        assert_eq!(m.chunks[0].offset, m.header.len() as u64);
        for w in m.chunks.windows(2) {
            assert_eq!(w[0].offset + w[0].len, w[1].offset);
        }
        assert_eq!(m.len, m.chunks[5].offset + m.chunks[5].len);
        assert_eq!(
            (m.chunks[0].kind, m.chunks[1].kind),
            (Kind::Video, Kind::Audio)
        );
        assert_eq!(m.chunks[0].len, 500);
        // Video: starts 0.5 s (45000 ticks) in, lasts 4.5 s.
        assert_eq!(elst(&m.header, 0), vec![(4_500_000, 45_000)]);
        assert_eq!(elst(&m.header, 1), vec![(4_500_000, 24_000)]);
        assert!(m.gaps.is_empty());
        // The stco entries are the chunk offsets.
        let at = m.header.windows(4).position(|w| w == b"stco").unwrap();
        let first = u32::from_be_bytes(m.header[at + 12..at + 16].try_into().unwrap());
        assert_eq!(u64::from(first), m.chunks[0].offset);
    }

    #[test]
    fn closes_gaps_and_aligns_separate_flows() {
        let segs: Vec<Samples> = (0..4).map(segment).collect();
        let only = |s: &Samples, k: Kind| Samples {
            tracks: vec![s.track(k).unwrap().clone()],
        };
        let video: Vec<Samples> = segs.iter().map(|s| only(s, Kind::Video)).collect();
        let audio: Vec<Samples> = segs.iter().map(|s| only(s, Kind::Audio)).collect();
        let mut input = Vec::new();
        for k in 0..4usize {
            if k == 2 {
                continue; // a gap in both flows from 4 s to 6 s
            }
            for (flow, s) in [(0, &video[k]), (1, &audio[k])] {
                input.push(SegmentIn {
                    flow,
                    start_ns: k as i64 * 2_000_000_000,
                    end_ns: (k as i64 + 1) * 2_000_000_000,
                    // No ts_offset: anchored at the segment start.
                    ts_offset_ns: None,
                    samples: s,
                });
            }
        }
        let m = plan(&input, None, None).unwrap();
        assert_eq!(m.gaps, vec![(4_000_000_000, 6_000_000_000)]);
        assert_eq!(m.tracks, vec![Kind::Video, Kind::Audio]);
        assert_eq!(elst(&m.header, 0), vec![(6_000_000, 0)]);
        assert_eq!(elst(&m.header, 1), vec![(6_000_000, 0)]);
    }

    #[test]
    fn refuses_a_codec_change_and_an_empty_span() {
        let a = segment(0);
        let mut b = segment(1);
        b.tracks[0].entry = b"\0\0\0\x08othr".to_vec();
        let input = [
            SegmentIn {
                flow: 0,
                start_ns: 0,
                end_ns: 2_000_000_000,
                ts_offset_ns: None,
                samples: &a,
            },
            SegmentIn {
                flow: 0,
                start_ns: 2_000_000_000,
                end_ns: 4_000_000_000,
                ts_offset_ns: None,
                samples: &b,
            },
        ];
        assert!(matches!(
            plan(&input, None, None),
            Err(MediaError::Unsupported(_))
        ));
        assert!(plan(&input[..1], Some(3_000_000_000), None).is_err());
        assert!(plan(&[], None, None).is_err());
    }

    /// The header is a well-formed box tree for real segments.
    #[test]
    fn real_segments_make_a_parseable_header() {
        use crate::media::SegmenterConfig;
        use crate::media::segmenter::tests::{SMALL_FLV, run};
        let (out, _) = run(SegmenterConfig::default(), SMALL_FLV);
        let tables: Vec<Samples> = out.iter().map(|s| from_ts(&s.ts, false).unwrap()).collect();
        let input: Vec<SegmentIn> = out
            .iter()
            .zip(&tables)
            .map(|(s, t)| SegmentIn {
                flow: 0,
                start_ns: s.start_ms * 1_000_000,
                end_ns: s.end_ms * 1_000_000,
                ts_offset_ns: Some(0),
                samples: t,
            })
            .collect();
        let m = plan(&input, None, None).unwrap();
        let top = boxes(&m.header[..m.header.len() - 8], "t").unwrap();
        assert_eq!(
            top.iter().map(|b| b.kind).collect::<Vec<_>>(),
            vec![*b"ftyp", *b"moov"]
        );
        let total: u64 = m.chunks.iter().map(|c| c.len).sum();
        assert_eq!(m.len, m.header.len() as u64 + total);
    }
}
