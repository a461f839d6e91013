//! Fragmented MP4 (ISO BMFF, CMAF-style) writer: the initialisation segment (`ftyp` +
//! `moov` with H.264 `avc1`/`avcC` and AAC `mp4a`/`esds` sample entries and `mvex`) and
//! media segments (`moof` with one `traf` per track + `mdat`). Sans-IO: bytes in, bytes out.
//!
//! Video runs on a 90 kHz timescale, audio on its sample rate. Each `traf` has a `tfdt`
//! (decode time of its first sample) and a `trun` with every sample's duration, size,
//! flags and (signed, `trun` version 1) composition offset; data offsets are relative to
//! the `moof` (`default-base-is-moof`).

/// Timescale of video tracks.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// An H.264 track of the initialisation segment.
#[derive(Debug, Clone, Copy)]
pub struct VideoTrack<'a> {
    pub track_id: u32,
    pub width: u32,
    pub height: u32,
    /// The AVCDecoderConfigurationRecord, as carried in RTMP's sequence header.
    pub avcc: &'a [u8],
}

/// An AAC track of the initialisation segment.
#[derive(Debug, Clone, Copy)]
pub struct AudioTrack<'a> {
    pub track_id: u32,
    /// The track's timescale: the (core) sample rate.
    pub sample_rate: u32,
    pub channels: u16,
    /// The AudioSpecificConfig.
    pub asc: &'a [u8],
}

/// One sample of a track run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub duration: u32,
    pub size: u32,
    /// A sync sample (IDR); every audio sample is one.
    pub sync: bool,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: i32,
}

/// A track's part of a media segment: its samples and their bytes, concatenated.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
    pub data: &'a [u8],
}

use super::bmff::{boxed, descriptor, full, matrix, u16be, u32be, zeros};

fn tkhd(o: &mut Vec<u8>, track_id: u32, audio: bool, width: u32, height: u32) {
    // Flags: enabled, in movie.
    full(o, b"tkhd", 0, 3, |o| {
        zeros(o, 8); // creation, modification
        u32be(o, track_id);
        zeros(o, 4); // reserved
        zeros(o, 4); // duration: unknown (fragmented)
        zeros(o, 8); // reserved
        zeros(o, 4); // layer, alternate group
        u16be(o, if audio { 0x0100 } else { 0 });
        zeros(o, 2);
        matrix(o);
        u32be(o, width << 16);
        u32be(o, height << 16);
    });
}

fn mdhd_hdlr(o: &mut Vec<u8>, timescale: u32, handler: &[u8; 4], name: &str) {
    full(o, b"mdhd", 0, 0, |o| {
        zeros(o, 8);
        u32be(o, timescale);
        zeros(o, 4);
        u16be(o, 0x55c4); // "und"
        zeros(o, 2);
    });
    full(o, b"hdlr", 0, 0, |o| {
        zeros(o, 4);
        o.extend_from_slice(handler);
        zeros(o, 12);
        o.extend_from_slice(name.as_bytes());
        o.push(0);
    });
}

fn dinf(o: &mut Vec<u8>) {
    boxed(o, b"dinf", |o| {
        full(o, b"dref", 0, 0, |o| {
            u32be(o, 1);
            // Flag 1: the media is in this file.
            full(o, b"url ", 0, 1, |_| {});
        });
    });
}

/// The empty sample tables of a fragmented track, after its sample description.
fn stbl(o: &mut Vec<u8>, sample_entry: impl FnOnce(&mut Vec<u8>)) {
    boxed(o, b"stbl", |o| {
        full(o, b"stsd", 0, 0, |o| {
            u32be(o, 1);
            sample_entry(o);
        });
        full(o, b"stts", 0, 0, |o| u32be(o, 0));
        full(o, b"stsc", 0, 0, |o| u32be(o, 0));
        full(o, b"stsz", 0, 0, |o| {
            u32be(o, 0);
            u32be(o, 0);
        });
        full(o, b"stco", 0, 0, |o| u32be(o, 0));
    });
}

/// The `avc1` sample entry (with its `avcC`) of an H.264 track.
pub(crate) fn avc1_entry(o: &mut Vec<u8>, width: u32, height: u32, avcc: &[u8]) {
    boxed(o, b"avc1", |o| {
        zeros(o, 6);
        u16be(o, 1); // data reference index
        zeros(o, 16); // pre-defined, reserved
        u16be(o, u16::try_from(width).unwrap_or(u16::MAX));
        u16be(o, u16::try_from(height).unwrap_or(u16::MAX));
        u32be(o, 0x0048_0000); // 72 dpi
        u32be(o, 0x0048_0000);
        zeros(o, 4);
        u16be(o, 1); // frame count
        zeros(o, 32); // compressor name
        u16be(o, 0x0018); // depth
        u16be(o, 0xffff); // pre-defined -1
        boxed(o, b"avcC", |o| o.extend_from_slice(avcc));
    });
}

/// The `mp4a` sample entry (with its `esds`) of an AAC track.
pub(crate) fn mp4a_entry(o: &mut Vec<u8>, sample_rate: u32, channels: u16, asc: &[u8]) {
    boxed(o, b"mp4a", |o| {
        zeros(o, 6);
        u16be(o, 1);
        zeros(o, 8);
        u16be(o, channels);
        u16be(o, 16); // sample size
        zeros(o, 4);
        // 16.16 fixed point; rates above 65535 Hz do not fit (esds has it).
        u32be(
            o,
            if sample_rate <= 0xffff {
                sample_rate << 16
            } else {
                0
            },
        );
        full(o, b"esds", 0, 0, |o| {
            descriptor(o, 0x03, |o| {
                u16be(o, 0); // ES_ID
                o.push(0); // no dependence, URL or OCR stream
                descriptor(o, 0x04, |o| {
                    o.push(0x40); // MPEG-4 Audio
                    o.push(0x15); // audio stream, reserved bit
                    zeros(o, 3); // buffer size
                    zeros(o, 8); // max and average bit rate: unknown
                    descriptor(o, 0x05, |o| o.extend_from_slice(asc));
                });
                descriptor(o, 0x06, |o| o.push(0x02));
            });
        });
    });
}

fn video_trak(o: &mut Vec<u8>, v: &VideoTrack) {
    boxed(o, b"trak", |o| {
        tkhd(o, v.track_id, false, v.width, v.height);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, VIDEO_TIMESCALE, b"vide", "drey video");
            boxed(o, b"minf", |o| {
                full(o, b"vmhd", 0, 1, |o| zeros(o, 8));
                dinf(o);
                stbl(o, |o| avc1_entry(o, v.width, v.height, v.avcc));
            });
        });
    });
}

fn audio_trak(o: &mut Vec<u8>, a: &AudioTrack) {
    boxed(o, b"trak", |o| {
        tkhd(o, a.track_id, true, 0, 0);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, a.sample_rate, b"soun", "drey audio");
            boxed(o, b"minf", |o| {
                full(o, b"smhd", 0, 0, |o| zeros(o, 4));
                dinf(o);
                stbl(o, |o| mp4a_entry(o, a.sample_rate, a.channels, a.asc));
            });
        });
    });
}

/// The initialisation segment for these tracks.
pub fn init_segment(video: Option<&VideoTrack>, audio: Option<&AudioTrack>) -> Vec<u8> {
    let mut o = Vec::with_capacity(1024);
    boxed(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32be(o, 0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    let next_track = video
        .map(|v| v.track_id)
        .into_iter()
        .chain(audio.map(|a| a.track_id))
        .max()
        .unwrap_or(0)
        + 1;
    boxed(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            zeros(o, 8);
            u32be(o, 1000);
            zeros(o, 4);
            u32be(o, 0x0001_0000); // rate 1.0
            u16be(o, 0x0100); // volume 1.0
            zeros(o, 10);
            matrix(o);
            zeros(o, 24);
            u32be(o, next_track);
        });
        if let Some(v) = video {
            video_trak(o, v);
        }
        if let Some(a) = audio {
            audio_trak(o, a);
        }
        boxed(o, b"mvex", |o| {
            for id in video
                .map(|v| v.track_id)
                .into_iter()
                .chain(audio.map(|a| a.track_id))
            {
                full(o, b"trex", 0, 0, |o| {
                    u32be(o, id);
                    u32be(o, 1); // sample description index
                    zeros(o, 12); // default duration, size, flags
                });
            }
        });
    });
    o
}

/// Sample flags: a sync sample depends on no other; others are non-sync and depend on one.
fn sample_flags(sync: bool) -> u32 {
    if sync { 0x0200_0000 } else { 0x0101_0000 }
}

/// A media segment (`moof` + `mdat`) holding `runs`, in that order in the `mdat`.
pub fn media_segment(sequence_number: u32, runs: &[TrackRun]) -> Vec<u8> {
    let data_len: usize = runs.iter().map(|r| r.data.len()).sum();
    let samples: usize = runs.iter().map(|r| r.samples.len()).sum();
    let mut o = Vec::with_capacity(64 + runs.len() * 64 + samples * 16 + data_len + 8);
    // Where each trun's data_offset field sits, to patch once the moof size is known.
    let mut offset_fields = Vec::with_capacity(runs.len());
    boxed(&mut o, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32be(o, sequence_number));
        for r in runs {
            boxed(o, b"traf", |o| {
                // default-base-is-moof
                full(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, r.track_id));
                full(o, b"tfdt", 1, 0, |o| {
                    o.extend_from_slice(&r.base_decode_time.to_be_bytes())
                });
                // data offset, sample duration, size, flags, composition offset
                full(o, b"trun", 1, 0x0000_0f01, |o| {
                    u32be(o, u32::try_from(r.samples.len()).unwrap_or(u32::MAX));
                    offset_fields.push(o.len());
                    u32be(o, 0);
                    for s in r.samples {
                        u32be(o, s.duration);
                        u32be(o, s.size);
                        u32be(o, sample_flags(s.sync));
                        o.extend_from_slice(&s.composition_offset.to_be_bytes());
                    }
                });
            });
        }
    });
    let moof_len = o.len();
    let mut offset = moof_len + 8;
    for (field, r) in offset_fields.into_iter().zip(runs) {
        let v = u32::try_from(offset).unwrap_or(u32::MAX);
        o[field..field + 4].copy_from_slice(&v.to_be_bytes());
        offset += r.data.len();
    }
    boxed(&mut o, b"mdat", |o| {
        for r in runs {
            o.extend_from_slice(r.data);
        }
    });
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks top-level boxes: (type, body) pairs.
    fn boxes(mut b: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = b[4..8].try_into().unwrap();
            out.push((kind, &b[8..size]));
            b = &b[size..];
        }
        assert!(b.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn init_has_ftyp_moov_and_both_tracks() {
        let avcc = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xee,
        ];
        let init = init_segment(
            Some(&VideoTrack {
                track_id: 1,
                width: 1280,
                height: 720,
                avcc: &avcc,
            }),
            Some(&AudioTrack {
                track_id: 2,
                sample_rate: 48_000,
                channels: 2,
                asc: &[0x11, 0x90],
            }),
        );
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![*b"ftyp", *b"moov"]
        );
        let moov = boxes(top[1].1);
        let kinds: Vec<[u8; 4]> = moov.iter().map(|b| b.0).collect();
        assert_eq!(kinds, vec![*b"mvhd", *b"trak", *b"trak", *b"mvex"]);
        // The avcC record and the AudioSpecificConfig are carried verbatim.
        assert!(init.windows(avcc.len()).any(|w| w == avcc));
        let esds_at = init.windows(4).position(|w| w == b"esds").unwrap();
        assert!(
            init[esds_at..]
                .windows(4)
                .any(|w| w == [0x05, 2, 0x11, 0x90])
        );
    }

    #[test]
    fn data_offsets_point_at_each_runs_bytes() {
        let v = [Sample {
            duration: 3600,
            size: 3,
            sync: true,
            composition_offset: 7200,
        }];
        let a = [
            Sample {
                duration: 1024,
                size: 2,
                sync: true,
                composition_offset: 0,
            },
            Sample {
                duration: 1024,
                size: 1,
                sync: true,
                composition_offset: 0,
            },
        ];
        let seg = media_segment(
            5,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 900_000,
                    samples: &v,
                    data: b"VVV",
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 480_000,
                    samples: &a,
                    data: b"AAB",
                },
            ],
        );
        let top = boxes(&seg);
        assert_eq!(
            top.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![*b"moof", *b"mdat"]
        );
        assert_eq!(top[1].1, b"VVVAAB");
        let moof_len = top[0].1.len() + 8;
        // Each trun: version/flags, count, then the data offset.
        let mut offsets = Vec::new();
        let mut at = 0;
        while let Some(p) = seg[at..moof_len].windows(4).position(|w| w == b"trun") {
            let f = at + p + 4 + 4 + 4;
            offsets.push(u32::from_be_bytes(seg[f..f + 4].try_into().unwrap()) as usize);
            at = at + p + 4;
        }
        assert_eq!(offsets.len(), 2);
        assert_eq!(&seg[offsets[0]..offsets[0] + 3], b"VVV");
        assert_eq!(&seg[offsets[1]..offsets[1] + 3], b"AAB");
    }
}
