//! The live segmenter: FLV video/audio tag bodies with RTMP timestamps in, segments out:
//! MPEG-TS (each starting with PAT/PMT and a keyframe with SPS/PPS, so it stands alone)
//! and/or fragmented MP4 (`moof` + `mdat` against an initialisation segment). Cuts at the
//! first keyframe at or after the target duration; times are exact and contiguous, and both
//! formats carry the same media timeline (stream time + `PTS_OFFSET_MS`).

use std::sync::Arc;

use super::MediaError;
use super::aac::AacConfig;
use super::avc::{self, AvcConfig};
use super::flv::{self, AudioPacket, VideoPacket};
use super::fmp4::{self, AudioTrack, Sample, TrackRun, VideoTrack};
use super::samples::{self, Init, Samples, TsTables};
use super::ts::{self, Pes, Program, TsWriter};

/// Track ids of the fragmented MP4 output.
pub const MP4_VIDEO_TRACK: u32 = 1;
pub const MP4_AUDIO_TRACK: u32 = 2;
/// Samples per AAC frame (the core codec's; HE-AAC's SBR doubles the output rate, not this).
const AAC_FRAME: u32 = 1024;

/// Offset added to every TS timestamp so that audio slightly ahead of the first keyframe,
/// and negative composition offsets, never go below zero: media time = stream time + 10 s.
pub const PTS_OFFSET_MS: i64 = 10_000;
/// How far the PCR runs ahead of decoding (in 90 kHz units): 0.7 s.
const PCR_DELAY: u64 = 63_000;

const START_CODE: &[u8] = &[0, 0, 0, 1];
const AUD: &[u8] = &[0, 0, 0, 1, avc::NAL_AUD, 0xf0];

#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    /// Cut at the first keyframe at least this long after the segment's start.
    pub target_duration_ms: i64,
    /// Refuse timestamps that go back more than this.
    pub max_backward_jump_ms: i64,
    /// Refuse timestamps that go forward more than this between two messages.
    pub max_forward_jump_ms: i64,
    /// How long audio may run while a video stream's first keyframe is awaited.
    pub keyframe_wait_ms: i64,
    /// Refuse a segment that grows past this many bytes (a stream with no keyframes).
    pub max_segment_bytes: usize,
    /// Write MPEG-TS segments.
    pub ts: bool,
    /// Write fragmented MP4 segments (and initialisation segments).
    pub fmp4: bool,
    /// Give each segment's sample tables (what an MP4 export plans from) along with it,
    /// built while it is written.
    pub tables: bool,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            target_duration_ms: 2000,
            max_backward_jump_ms: 5_000,
            max_forward_jump_ms: 60_000,
            keyframe_wait_ms: 10_000,
            max_segment_bytes: 256 << 20,
            ts: true,
            fmp4: false,
            tables: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub codec_string: String,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub fps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u32,
    pub codec_string: String,
}

/// What the stream carries, known once its first segment closes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo {
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

/// One closed segment. Times are milliseconds on the stream's timeline, whose zero is the
/// first media timestamp of the publish; the media inside carries `time + PTS_OFFSET_MS`.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The MPEG-TS segment (empty when TS output is off).
    pub ts: Vec<u8>,
    /// Its sample tables, exactly as `samples::from_ts` reads them from `ts`, when
    /// [`SegmenterConfig::tables`] is on and TS output is (or why they could not be read).
    pub ts_tables: Option<Result<Samples, MediaError>>,
    /// The fragmented MP4 segment, when that output is on.
    pub mp4: Option<Mp4Segment>,
    /// Sequence number within the publish, from 0.
    pub index: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub key_frame_count: u32,
    pub video_frames: u32,
    pub audio_frames: u32,
}

/// A fragmented MP4 media segment and the initialisation segment it needs.
#[derive(Debug, Clone)]
pub struct Mp4Segment {
    pub data: Vec<u8>,
    pub init: Arc<Vec<u8>>,
    /// Changes (from 0) whenever the codec configuration, hence the init segment, changes.
    pub init_version: u32,
    /// Its sample tables as `samples::from_fmp4` reads them, when
    /// [`SegmenterConfig::tables`] is on.
    pub tables: Option<Result<Samples, MediaError>>,
}

/// Samples of the open segment for the fragmented MP4 output.
#[derive(Default)]
struct Mp4Open {
    /// (decode time 90 kHz, composition offset, sync) per video sample.
    video: Vec<(u64, i32, bool)>,
    video_sizes: Vec<u32>,
    video_data: Vec<u8>,
    audio_base: Option<u64>,
    audio_sizes: Vec<u32>,
    audio_data: Vec<u8>,
}

struct Open {
    data: Vec<u8>,
    tables: Option<TsTables>,
    mp4: Option<Mp4Open>,
    start_ms: i64,
    key_frame_count: u32,
    video_frames: u32,
    audio_frames: u32,
}

/// Unwraps 32-bit RTMP millisecond timestamps into a 64-bit timeline and refuses jumps.
#[derive(Debug, Default)]
struct Clock {
    last_raw: Option<u32>,
    ext: i64,
}

impl Clock {
    fn advance(&mut self, raw: u32, cfg: &SegmenterConfig) -> Result<i64, MediaError> {
        if let Some(last) = self.last_raw {
            let delta = i64::from(raw.wrapping_sub(last) as i32);
            if delta < -cfg.max_backward_jump_ms {
                return Err(MediaError::TimestampJump {
                    delta_ms: -delta,
                    direction: "backwards",
                    allowed_ms: cfg.max_backward_jump_ms,
                });
            }
            if delta > cfg.max_forward_jump_ms {
                return Err(MediaError::TimestampJump {
                    delta_ms: delta,
                    direction: "forwards",
                    allowed_ms: cfg.max_forward_jump_ms,
                });
            }
            self.ext += delta;
        } else {
            self.ext = i64::from(raw);
        }
        self.last_raw = Some(raw);
        Ok(self.ext)
    }
}

/// The per-publish segmenter state machine.
pub struct LiveSegmenter {
    cfg: SegmenterConfig,
    clock: Clock,
    /// Unwrapped timestamp of the stream's zero.
    base: Option<i64>,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    /// The raw AVCDecoderConfigurationRecord and AudioSpecificConfig (for `avcC`/`esds`).
    avc_record: Vec<u8>,
    aac_asc: Vec<u8>,
    /// The current MP4 initialisation segment and its version.
    init: Option<Arc<Vec<u8>>>,
    /// The init segment read back, when tables are given (for the fragments' tables).
    init_read: Option<Result<Init, MediaError>>,
    init_version: u32,
    /// The codec configuration changed: the next segment needs a new init segment.
    init_stale: bool,
    /// Decode time (audio timescale) of the next audio sample, continuous across segments.
    audio_next: Option<u64>,
    /// Metadata or a sequence header said the stream has video.
    expect_video: bool,
    /// Segmenting began without video: the program is audio only.
    audio_only: bool,
    writer: TsWriter,
    program: Option<Program>,
    open: Option<Open>,
    next_index: u64,
    last_video_ms: Option<i64>,
    video_frame_ms: i64,
    last_audio_ms: Option<i64>,
    /// First time (stream ms) audio was dropped while awaiting a keyframe.
    waiting_since: Option<i64>,
    last_size: usize,
    /// Frames that could not be stored because they preceded the first keyframe.
    pub dropped_leading_frames: u64,
}

impl LiveSegmenter {
    pub fn new(cfg: SegmenterConfig) -> Self {
        LiveSegmenter {
            cfg,
            clock: Clock::default(),
            base: None,
            avc: None,
            aac: None,
            avc_record: Vec::new(),
            aac_asc: Vec::new(),
            init: None,
            init_read: None,
            init_version: 0,
            init_stale: false,
            audio_next: None,
            expect_video: false,
            audio_only: false,
            writer: TsWriter::default(),
            program: None,
            open: None,
            next_index: 0,
            last_video_ms: None,
            video_frame_ms: 0,
            last_audio_ms: None,
            waiting_since: None,
            last_size: 256 << 10,
            dropped_leading_frames: 0,
        }
    }

    /// Stream metadata (`onMetaData`) announced a video track: wait for its keyframe.
    pub fn expect_video(&mut self) {
        if !self.audio_only {
            self.expect_video = true;
        }
    }

    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            video: self.avc.as_ref().map(|c| VideoInfo {
                width: c.width,
                height: c.height,
                codec_string: c.codec_string(),
                profile_idc: c.profile_idc,
                constraint_flags: c.constraint_flags,
                level_idc: c.level_idc,
                fps: c.fps,
            }),
            audio: self.aac.as_ref().map(|c| AudioInfo {
                sample_rate: c.sample_rate,
                channels: c.channels(),
                codec_string: c.codec_string(),
            }),
        }
    }

    fn stream_ms(&mut self, raw: u32) -> Result<i64, MediaError> {
        let t = self.clock.advance(raw, &self.cfg)?;
        let base = *self.base.get_or_insert(t);
        let rel = t - base;
        if rel < -PTS_OFFSET_MS {
            return Err(MediaError::TimestampJump {
                delta_ms: -rel,
                direction: "backwards",
                allowed_ms: PTS_OFFSET_MS,
            });
        }
        Ok(rel)
    }

    fn ts90(ms: i64) -> u64 {
        ((ms + PTS_OFFSET_MS).max(0) as u64) * 90
    }

    fn open_segment(&mut self, start_ms: i64) {
        let program = *self.program.get_or_insert(Program {
            video: !self.audio_only,
            audio: self.aac.is_some() || self.audio_only,
        });
        let mut data = Vec::new();
        if self.cfg.ts {
            data.reserve(self.last_size + self.last_size / 8);
            self.writer.write_tables(&mut data, program);
        }
        let mp4 = if self.cfg.fmp4 {
            if self.init.is_none() || self.init_stale {
                if self.init.is_some() {
                    self.init_version += 1;
                }
                let init = self.init_segment(program);
                if self.cfg.tables {
                    self.init_read = Some(Init::parse(&init));
                }
                self.init = Some(Arc::new(init));
                self.init_stale = false;
            }
            Some(Mp4Open::default())
        } else {
            None
        };
        self.open = Some(Open {
            data,
            tables: (self.cfg.tables && self.cfg.ts).then(TsTables::default),
            mp4,
            start_ms,
            key_frame_count: 0,
            video_frames: 0,
            audio_frames: 0,
        });
    }

    fn init_segment(&self, program: Program) -> Vec<u8> {
        let video = match (&self.avc, program.video) {
            (Some(c), true) => Some(VideoTrack {
                track_id: MP4_VIDEO_TRACK,
                width: c.width,
                height: c.height,
                avcc: &self.avc_record,
            }),
            _ => None,
        };
        let audio = match (&self.aac, program.audio) {
            (Some(c), true) => Some(AudioTrack {
                track_id: MP4_AUDIO_TRACK,
                sample_rate: c.core_sample_rate(),
                channels: u16::try_from(c.channels()).unwrap_or(2),
                asc: &self.aac_asc,
            }),
            _ => None,
        };
        fmp4::init_segment(video.as_ref(), audio.as_ref())
    }

    /// The fragmented MP4 media segment of `m`; `next_dts90` is the decode time of the
    /// video sample after the last one (sets its duration), when known.
    fn mp4_segment(&self, index: u64, m: Mp4Open, next_dts90: Option<u64>) -> Mp4Segment {
        let default_dur = u32::try_from(self.video_frame_ms.max(1) * 90).unwrap_or(3600);
        let mut video = Vec::with_capacity(m.video.len());
        for (i, &(dts, cto, sync)) in m.video.iter().enumerate() {
            let next = m.video.get(i + 1).map(|n| n.0).or(next_dts90);
            let duration = next
                .and_then(|n| u32::try_from(n.saturating_sub(dts)).ok())
                .filter(|d| *d > 0)
                .unwrap_or(default_dur);
            video.push(Sample {
                duration,
                size: m.video_sizes[i],
                sync,
                composition_offset: cto,
            });
        }
        let audio: Vec<Sample> = m
            .audio_sizes
            .iter()
            .map(|&size| Sample {
                duration: AAC_FRAME,
                size,
                sync: true,
                composition_offset: 0,
            })
            .collect();
        let mut runs = Vec::with_capacity(2);
        if let Some(&(dts, _, _)) = m.video.first() {
            runs.push(TrackRun {
                track_id: MP4_VIDEO_TRACK,
                base_decode_time: dts,
                samples: &video,
                data: &m.video_data,
            });
        }
        if let (Some(base), false) = (m.audio_base, audio.is_empty()) {
            runs.push(TrackRun {
                track_id: MP4_AUDIO_TRACK,
                base_decode_time: base,
                samples: &audio,
                data: &m.audio_data,
            });
        }
        let data = fmp4::media_segment(u32::try_from(index + 1).unwrap_or(u32::MAX), &runs);
        let tables = match &self.init_read {
            Some(Ok(init)) => Some(samples::from_fmp4(init, &data, false)),
            Some(Err(e)) => Some(Err(e.clone())),
            None => None,
        };
        Mp4Segment {
            data,
            init: self.init.clone().unwrap_or_default(),
            init_version: self.init_version,
            tables,
        }
    }

    fn close_segment(&mut self, end_ms: i64, next_dts_ms: Option<i64>) -> Option<Segment> {
        let mut open = self.open.take()?;
        self.last_size = open.data.len();
        let index = self.next_index;
        self.next_index += 1;
        let mp4 = open
            .mp4
            .take()
            .map(|m| self.mp4_segment(index, m, next_dts_ms.map(Self::ts90)));
        Some(Segment {
            ts: open.data,
            ts_tables: open.tables.map(TsTables::finish),
            mp4,
            index,
            start_ms: open.start_ms,
            end_ms: end_ms.max(open.start_ms + 1),
            key_frame_count: open.key_frame_count,
            video_frames: open.video_frames,
            audio_frames: open.audio_frames,
        })
    }

    fn check_size(&self) -> Result<(), MediaError> {
        match &self.open {
            Some(o)
                if o.data.len()
                    + o.mp4
                        .as_ref()
                        .map_or(0, |m| m.video_data.len() + m.audio_data.len())
                    > self.cfg.max_segment_bytes =>
            {
                Err(MediaError::SegmentTooLarge(self.cfg.max_segment_bytes))
            }
            _ => Ok(()),
        }
    }

    /// Feeds one video message. Returns the segment this keyframe closed, if any.
    pub fn push_video(&mut self, raw_ts: u32, body: &[u8]) -> Result<Option<Segment>, MediaError> {
        let (keyframe, cts, data) = match flv::parse_video(body)? {
            VideoPacket::SequenceHeader(record) => {
                if self.audio_only {
                    return Err(MediaError::LateVideo);
                }
                self.avc = Some(AvcConfig::parse(record)?);
                if self.avc_record != record {
                    self.init_stale = self.init.is_some();
                    self.avc_record = record.to_vec();
                }
                self.expect_video = true;
                return Ok(None);
            }
            VideoPacket::EndOfSequence | VideoPacket::Info => return Ok(None),
            VideoPacket::Nalus {
                keyframe,
                composition_time_ms,
                data,
            } => (keyframe, composition_time_ms, data),
        };
        if self.audio_only {
            return Err(MediaError::LateVideo);
        }
        let Some(avc_cfg) = self.avc.as_ref() else {
            return Err(MediaError::MissingConfig("video"));
        };
        let nals = avc::nal_units(data, avc_cfg.nal_length_size)?;
        let dts_ms = self.stream_ms(raw_ts)?;
        let pts_ms = dts_ms + i64::from(cts.max(0));
        if let Some(last) = self.last_video_ms {
            let d = dts_ms - last;
            if d > 0 {
                self.video_frame_ms = d;
            }
        }
        self.last_video_ms = Some(dts_ms);
        let is_key = keyframe || nals.iter().any(|n| avc::nal_type(n) == avc::NAL_IDR);

        let mut closed = None;
        match &self.open {
            None if !is_key => {
                self.dropped_leading_frames += 1;
                return Ok(None);
            }
            None => {
                self.waiting_since = None;
                self.open_segment(pts_ms);
            }
            // A new codec configuration (a new MP4 init segment) also cuts at the keyframe,
            // if it is later than the segment's start (segments never shrink to nothing).
            Some(open)
                if is_key
                    && (pts_ms - open.start_ms >= self.cfg.target_duration_ms
                        || (self.init_stale && self.cfg.fmp4 && pts_ms > open.start_ms)) =>
            {
                closed = self.close_segment(pts_ms, Some(dts_ms));
                self.open_segment(pts_ms);
            }
            Some(_) => {}
        }

        if let Some(m) = self.open.as_mut().and_then(|o| o.mp4.as_mut()) {
            // The FLV payload is already length-prefixed NAL units, as avcC declares.
            let cto = i32::try_from((pts_ms - dts_ms) * 90).unwrap_or(0);
            m.video.push((Self::ts90(dts_ms), cto, is_key));
            m.video_sizes
                .push(u32::try_from(data.len()).unwrap_or(u32::MAX));
            m.video_data.extend_from_slice(data);
        }
        if self.cfg.ts {
            let avc_cfg = self.avc.as_ref().expect("checked above");
            let inline_sps = nals.iter().any(|n| avc::nal_type(n) == avc::NAL_SPS);
            let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * nals.len() + 6);
            parts.push(AUD);
            if is_key && !inline_sps {
                for ps in avc_cfg.sps.iter().chain(avc_cfg.pps.iter()) {
                    parts.push(START_CODE);
                    parts.push(ps);
                }
            }
            for nal in &nals {
                if avc::nal_type(nal) == avc::NAL_AUD {
                    continue;
                }
                parts.push(START_CODE);
                parts.push(nal);
            }
            let dts = Self::ts90(dts_ms);
            let pts = Self::ts90(pts_ms);
            let open = self.open.as_mut().expect("opened above");
            self.writer.write_pes(
                &mut open.data,
                &Pes {
                    pid: ts::PID_VIDEO,
                    stream_id: ts::STREAM_ID_VIDEO,
                    pts,
                    dts: Some(dts),
                    pcr: Some(dts.saturating_sub(PCR_DELAY)),
                    random_access: is_key,
                    payload: &parts,
                },
            );
            if let Some(t) = open.tables.as_mut() {
                t.video(pts, Some(dts), &parts);
            }
        }
        let open = self.open.as_mut().expect("opened above");
        open.video_frames += 1;
        if is_key {
            open.key_frame_count += 1;
        }
        self.check_size()?;
        Ok(closed)
    }

    /// Feeds one audio message. Returns the segment it closed (audio-only streams), if any.
    pub fn push_audio(&mut self, raw_ts: u32, body: &[u8]) -> Result<Option<Segment>, MediaError> {
        let raw = match flv::parse_audio(body)? {
            AudioPacket::AacConfig(asc) => {
                // A new configuration mid-stream is fine: ADTS headers carry it from now on
                // (and a new MP4 init segment from the next cut).
                self.aac = Some(AacConfig::parse(asc)?);
                if self.aac_asc != asc {
                    self.init_stale = self.init.is_some();
                    self.aac_asc = asc.to_vec();
                }
                return Ok(None);
            }
            AudioPacket::AacRaw(raw) => raw,
        };
        let Some(aac) = self.aac else {
            return Err(MediaError::MissingConfig("audio"));
        };
        if raw.is_empty() {
            return Ok(None);
        }
        let adts = aac.adts_header(raw.len())?;
        let t_ms = self.stream_ms(raw_ts)?;
        self.last_audio_ms = Some(t_ms);
        let mut closed = None;
        match &self.open {
            None if self.expect_video => {
                let since = *self.waiting_since.get_or_insert(t_ms);
                if t_ms - since > self.cfg.keyframe_wait_ms {
                    return Err(MediaError::NoKeyframe(self.cfg.keyframe_wait_ms));
                }
                self.dropped_leading_frames += 1;
                // The stream's zero is the first keyframe, not this audio.
                self.base = None;
                return Ok(None);
            }
            None => {
                self.audio_only = true;
                self.open_segment(t_ms);
            }
            Some(open)
                if self.audio_only
                    && (t_ms - open.start_ms >= self.cfg.target_duration_ms
                        || (self.init_stale && self.cfg.fmp4 && t_ms > open.start_ms)) =>
            {
                closed = self.close_segment(t_ms, None);
                self.open_segment(t_ms);
            }
            Some(_) => {}
        }
        let Some(program) = self.program else {
            return Ok(closed);
        };
        if !program.audio {
            // Audio configured after the program was fixed without it: not carried.
            return Ok(closed);
        }
        if self.cfg.fmp4 {
            // Decode times count samples from the first frame; a drift of more than two
            // frames from the RTMP clock (frames lost upstream) resynchronises.
            let rate = u64::from(aac.core_sample_rate().max(1));
            let clock = u64::try_from(t_ms + PTS_OFFSET_MS).unwrap_or(0) * rate / 1000;
            let t = match self.audio_next {
                Some(n) if n.abs_diff(clock) <= 2 * u64::from(AAC_FRAME) => n,
                _ => clock,
            };
            self.audio_next = Some(t + u64::from(AAC_FRAME));
            if let Some(m) = self.open.as_mut().and_then(|o| o.mp4.as_mut()) {
                m.audio_base.get_or_insert(t);
                m.audio_sizes
                    .push(u32::try_from(raw.len()).unwrap_or(u32::MAX));
                m.audio_data.extend_from_slice(raw);
            }
        }
        if self.cfg.ts {
            let pts = Self::ts90(t_ms);
            let open = self.open.as_mut().expect("opened above");
            self.writer.write_pes(
                &mut open.data,
                &Pes {
                    pid: ts::PID_AUDIO,
                    stream_id: ts::STREAM_ID_AUDIO,
                    pts,
                    dts: None,
                    pcr: if program.video {
                        None
                    } else {
                        Some(pts.saturating_sub(PCR_DELAY))
                    },
                    random_access: !program.video,
                    payload: &[&adts, raw],
                },
            );
            if let Some(t) = open.tables.as_mut() {
                t.audio(pts, &[&adts, raw]);
            }
        }
        let open = self.open.as_mut().expect("opened above");
        open.audio_frames += 1;
        self.check_size()?;
        Ok(closed)
    }

    /// Ends the publish: closes the open segment at the end of its last frame.
    pub fn finish(&mut self) -> Option<Segment> {
        let open = self.open.as_ref()?;
        let mut end = open.start_ms + 1;
        if let Some(v) = self.last_video_ms {
            end = end.max(v + self.video_frame_ms.max(1));
        }
        if let (Some(a), Some(aac)) = (self.last_audio_ms, self.aac) {
            let frame_ms = (1024 * 1000 / i64::from(aac.core_sample_rate().max(1))).max(1);
            end = end.max(a + frame_ms);
        }
        self.close_segment(end, None)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::flv::file_tags;
    use crate::media::ts::{PACKET, PID_AUDIO, PID_VIDEO};

    /// 5 s of 160x90 testsrc2 at 25 fps (GOP 25, B-frames) and 44.1 kHz mono AAC, by ffmpeg.
    pub(crate) const SMALL_FLV: &[u8] = include_bytes!("../../testdata/small.flv");

    /// Feeds an FLV file's tags to a segmenter: the segments it cut, and the segmenter.
    pub(crate) fn run(cfg: SegmenterConfig, file: &[u8]) -> (Vec<Segment>, LiveSegmenter) {
        let mut seg = LiveSegmenter::new(cfg);
        let mut out = Vec::new();
        for tag in file_tags(file).unwrap() {
            let r = match tag.tag_type {
                9 => seg.push_video(tag.timestamp_ms, tag.body),
                8 => seg.push_audio(tag.timestamp_ms, tag.body),
                _ => Ok(None),
            };
            out.extend(r.unwrap());
        }
        out.extend(seg.finish());
        (out, seg)
    }

    fn pes_starts(ts: &[u8], pid: u16) -> usize {
        ts.chunks(PACKET)
            .filter(|p| {
                ((u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])) == pid && p[1] & 0x40 != 0
            })
            .count()
    }

    #[test]
    fn cuts_contiguous_segments_at_keyframes() {
        let (segs, seg) = run(SegmenterConfig::default(), SMALL_FLV);
        assert_eq!(
            segs.len(),
            3,
            "{:?}",
            segs.iter()
                .map(|s| (s.start_ms, s.end_ms))
                .collect::<Vec<_>>()
        );
        // The stream's zero is the first keyframe's decode time; it is presented 80 ms
        // (two B-frames) later.
        assert_eq!(segs[0].start_ms, 80);
        for w in segs.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms);
        }
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s.index, i as u64);
            assert_eq!(s.ts.len() % PACKET, 0);
            // PAT first, then PMT.
            assert_eq!(&s.ts[1..3], &[0x40, 0x00]);
            assert_eq!(pes_starts(&s.ts, PID_VIDEO), s.video_frames as usize);
            assert_eq!(pes_starts(&s.ts, PID_AUDIO), s.audio_frames as usize);
            assert!(s.key_frame_count >= 1);
        }
        assert_eq!(segs[0].end_ms - segs[0].start_ms, 2000);
        assert_eq!(segs[1].end_ms - segs[1].start_ms, 2000);
        let frames: u32 = segs.iter().map(|s| s.video_frames).sum();
        assert_eq!(frames, 125);
        // 125 frames of 40 ms after the first at 80 ms; the last AAC frame ends a little later.
        let end = segs.last().unwrap().end_ms;
        assert!((5080..5120).contains(&end), "{end}");
        if let Ok(dir) = std::env::var("DREY_DUMP_TS") {
            let all: Vec<u8> = segs.iter().flat_map(|s| s.ts.clone()).collect();
            std::fs::write(format!("{dir}/small.ts"), all).unwrap();
        }
        let info = seg.info();
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height), (160, 90));
        assert_eq!(info.audio.unwrap().sample_rate, 44100);
        assert_eq!(seg.dropped_leading_frames, 0);
    }

    /// Top-level boxes of an MP4 byte string.
    fn boxes(mut b: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            out.push((b[4..8].try_into().unwrap(), &b[8..size]));
            b = &b[size..];
        }
        assert!(b.is_empty());
        out
    }

    /// (duration, size, composition offset) of a sample.
    type SampleFields = (u32, u32, i32);

    /// (track id, base decode time, samples) per `traf`.
    fn trafs(moof: &[u8]) -> Vec<(u32, u64, Vec<SampleFields>)> {
        let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        boxes(moof)
            .into_iter()
            .filter(|(k, _)| k == b"traf")
            .map(|(_, traf)| {
                let inner = boxes(traf);
                let tfhd = inner.iter().find(|b| &b.0 == b"tfhd").unwrap().1;
                let tfdt = inner.iter().find(|b| &b.0 == b"tfdt").unwrap().1;
                let trun = inner.iter().find(|b| &b.0 == b"trun").unwrap().1;
                let n = be32(trun, 4) as usize;
                let samples = (0..n)
                    .map(|i| {
                        let at = 12 + i * 16;
                        (
                            be32(trun, at),
                            be32(trun, at + 4),
                            be32(trun, at + 12) as i32,
                        )
                    })
                    .collect();
                (
                    be32(tfhd, 4),
                    u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
                    samples,
                )
            })
            .collect()
    }

    #[test]
    fn fragmented_mp4_output_matches_the_ts_timeline() {
        let cfg = SegmenterConfig {
            fmp4: true,
            ..SegmenterConfig::default()
        };
        let (segs, _) = run(cfg, SMALL_FLV);
        assert_eq!(segs.len(), 3);
        let init = segs[0].mp4.as_ref().unwrap().init.clone();
        assert_eq!(
            boxes(&init).iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![*b"ftyp", *b"moov"]
        );
        let mut next_audio = None;
        for s in &segs {
            assert!(!s.ts.is_empty(), "TS is still written");
            let m = s.mp4.as_ref().unwrap();
            assert_eq!(m.init_version, 0);
            assert!(
                Arc::ptr_eq(&m.init, &init),
                "one init segment for the publish"
            );
            let top = boxes(&m.data);
            assert_eq!(
                top.iter().map(|b| b.0).collect::<Vec<_>>(),
                vec![*b"moof", *b"mdat"]
            );
            let t = trafs(top[0].1);
            let (vid, vbase, vs) = &t[0];
            assert_eq!(*vid, MP4_VIDEO_TRACK);
            assert_eq!(vs.len(), s.video_frames as usize);
            // The first sample is the keyframe presented at the segment's start.
            let first_pts = *vbase as i64 + i64::from(vs[0].2);
            assert_eq!(first_pts, (s.start_ms + PTS_OFFSET_MS) * 90);
            let vdur: u64 = vs.iter().map(|x| u64::from(x.0)).sum();
            assert_eq!(vdur, u64::from(s.video_frames) * 3600, "25 fps");
            let (aid, abase, aus) = &t[1];
            assert_eq!(*aid, MP4_AUDIO_TRACK);
            assert_eq!(aus.len(), s.audio_frames as usize);
            if let Some(n) = next_audio {
                assert_eq!(*abase, n, "audio decode times continue across segments");
            }
            next_audio = Some(abase + 1024 * aus.len() as u64);
            let bytes: usize = vs.iter().chain(aus).map(|x| x.1 as usize).sum();
            assert_eq!(bytes, top[1].1.len(), "trun sizes cover the mdat");
        }
        // MP4 alone: no TS bytes are produced.
        let (segs, _) = run(
            SegmenterConfig {
                ts: false,
                fmp4: true,
                ..SegmenterConfig::default()
            },
            SMALL_FLV,
        );
        assert_eq!(segs.len(), 3);
        assert!(segs.iter().all(|s| s.ts.is_empty() && s.mp4.is_some()));
    }

    /// Found by fuzzing: a new codec configuration followed by a keyframe presented no later
    /// than the open segment's start must not cut (the segment would end after the next
    /// one starts).
    #[test]
    fn reconfiguration_cut_keeps_segments_contiguous() {
        let file = include_bytes!("../../testdata/fmp4-reconfig-cut.flv");
        let mut seg = LiveSegmenter::new(SegmenterConfig {
            fmp4: true,
            ..SegmenterConfig::default()
        });
        let mut out = Vec::new();
        for t in file_tags(file).unwrap() {
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
        assert!(!out.is_empty());
        for w in out.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms);
        }
    }

    #[test]
    fn refuses_absurd_timestamps() {
        let tags = file_tags(SMALL_FLV).unwrap();
        let mut seg = LiveSegmenter::new(SegmenterConfig::default());
        let mut jumped = None;
        for (i, tag) in tags.iter().enumerate() {
            let ts = if i == 20 {
                tag.timestamp_ms + 3_600_000
            } else {
                tag.timestamp_ms
            };
            let r = match tag.tag_type {
                9 => seg.push_video(ts, tag.body),
                8 => seg.push_audio(ts, tag.body),
                _ => Ok(None),
            };
            if let Err(e) = r {
                jumped = Some(e);
                break;
            }
        }
        assert!(matches!(
            jumped,
            Some(MediaError::TimestampJump {
                direction: "forwards",
                ..
            })
        ));
    }

    #[test]
    fn media_before_configuration_is_refused() {
        let mut seg = LiveSegmenter::new(SegmenterConfig::default());
        assert_eq!(
            seg.push_video(0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65])
                .unwrap_err(),
            MediaError::MissingConfig("video")
        );
        assert_eq!(
            seg.push_audio(0, &[0xaf, 1, 1, 2]).unwrap_err(),
            MediaError::MissingConfig("audio")
        );
    }

    /// Feeds `tags` (type, timestamp, body) to a segmenter giving tables; tags it refuses
    /// are skipped. The segments it cut.
    fn run_tags(cfg: SegmenterConfig, tags: &[(u8, u32, Vec<u8>)]) -> Vec<Segment> {
        let mut seg = LiveSegmenter::new(cfg);
        let mut out = Vec::new();
        for (kind, ts, body) in tags {
            let r = match kind {
                9 => seg.push_video(*ts, body),
                _ => seg.push_audio(*ts, body),
            };
            if let Ok(Some(s)) = r {
                out.push(s);
            }
        }
        out.extend(seg.finish());
        out
    }

    fn with_tables() -> SegmenterConfig {
        SegmenterConfig {
            ts: true,
            fmp4: true,
            tables: true,
            ..SegmenterConfig::default()
        }
    }

    /// The tables given with each segment are those the demuxers read from its bytes.
    /// The number of samples the tables hold, over all segments.
    fn check_tables(segments: &[Segment]) -> usize {
        let mut samples = 0;
        for s in segments {
            let read = samples::from_ts(&s.ts, false);
            let given = s.ts_tables.clone().expect("TS tables given");
            assert_eq!(given, read, "TS segment {}", s.index);
            // The sample bytes, converted where they lie where the layout allows, are
            // those of the plain path.
            assert_eq!(
                samples::from_ts(&s.ts, true),
                samples::from_ts_gathered(&s.ts, Vec::new(), Vec::new()),
                "TS segment {} with its bytes",
                s.index
            );
            if let Ok(t) = &given {
                samples += t.tracks.iter().map(|t| t.samples.len()).sum::<usize>();
            }
            let m = s.mp4.as_ref().expect("fMP4 output on");
            let read = Init::parse(&m.init).and_then(|i| samples::from_fmp4(&i, &m.data, false));
            assert_eq!(m.tables.clone().expect("fMP4 tables given"), read);
        }
        samples
    }

    fn tags_of(file: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        file_tags(file)
            .unwrap()
            .into_iter()
            .filter(|t| t.tag_type == 8 || t.tag_type == 9)
            .map(|t| (t.tag_type, t.timestamp_ms, t.body.to_vec()))
            .collect()
    }

    #[test]
    fn tables_given_while_writing_are_the_demuxers() {
        for file in [
            SMALL_FLV,
            &include_bytes!("../../testdata/fmp4-reconfig-cut.flv")[..],
        ] {
            let segments = run_tags(with_tables(), &tags_of(file));
            assert!(!segments.is_empty());
            let n = check_tables(&segments);
            assert!(n > 50, "{n} samples");
            assert!(
                segments
                    .iter()
                    .all(|s| s.ts_tables.as_ref().unwrap().is_ok())
            );
        }
        // Off unless asked for.
        let (segments, _) = run(
            SegmenterConfig {
                fmp4: true,
                ..SegmenterConfig::default()
            },
            SMALL_FLV,
        );
        assert!(segments.iter().all(|s| s.ts_tables.is_none()));
        assert!(
            segments
                .iter()
                .all(|s| s.mp4.as_ref().unwrap().tables.is_none())
        );
    }

    #[test]
    fn tables_across_the_33_bit_wrap_are_the_demuxers() {
        // 2^33 / 90 ms after the stream's zero (26.5 hours), less the 10 s offset, less 2 s:
        // the TS timestamps wrap inside the second segment.
        let wrap_ms = ((1u64 << 33) / 90) as u32 - 10_000 - 2_000;
        let mut tags = tags_of(SMALL_FLV);
        // The stream's zero is its first keyframe; all after it moves to just before the
        // wrap (the first segment spans the jump).
        let first_key = tags
            .iter()
            .position(|(kind, _, body)| *kind == 9 && body.get(1) == Some(&1))
            .unwrap();
        for (_, ts, _) in &mut tags[first_key + 1..] {
            *ts += wrap_ms;
        }
        let cfg = SegmenterConfig {
            max_forward_jump_ms: i64::MAX,
            ..with_tables()
        };
        let segments = run_tags(cfg, &tags);
        assert!(segments.len() >= 3);
        assert!(check_tables(&segments) > 100);
        // Segments that start past the wrap carry small timestamps.
        let last = segments.last().unwrap().ts_tables.clone().unwrap().unwrap();
        assert!(last.tracks[0].samples[0].dts < 1 << 32);
    }

    /// Rewrites a video tag's NAL units (4-byte lengths): `edit` gets each unit's bytes.
    fn edit_nals(body: &[u8], mut edit: impl FnMut(usize, &mut Vec<u8>)) -> Vec<u8> {
        let mut out = body[..5].to_vec();
        let Ok(nals) = avc::nal_units(&body[5..], 4) else {
            return body.to_vec();
        };
        for (i, nal) in nals.iter().enumerate() {
            let mut n = nal.to_vec();
            edit(i, &mut n);
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(&n);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Odd bytes inside NAL units (start codes, trailing zeros, all-zero units, stray
        /// parameter sets and delimiters) and odd timestamps: the tables given still are
        /// exactly what the demuxer reads, whatever it makes of them.
        #[test]
        fn tables_of_odd_streams_are_the_demuxers(
            edits in proptest::collection::vec((0usize..200, 0usize..4, 0u8..8, 0u8..=255), 0..40),
            jitter in proptest::collection::vec((0usize..400, -40i32..40), 0..20),
        ) {
            let mut tags = tags_of(SMALL_FLV);
            for &(at, nal, what, byte) in &edits {
                let Some(i) = tags.iter().enumerate().filter(|(_, t)| t.0 == 9 && t.2.get(1) == Some(&1)).map(|(i, _)| i).nth(at % 125) else {
                    continue;
                };
                let body = edit_nals(&tags[i].2, |k, n| {
                    if k != nal % 3 {
                        return;
                    }
                    match what {
                        0 => n.extend_from_slice(&[0, 0, 1, byte]),
                        1 => n.extend_from_slice(&[0, 0, 0]),
                        2 => *n = vec![0; 1 + usize::from(byte % 5)],
                        3 => n.insert(1.min(n.len()), 0),
                        4 => *n = vec![avc::NAL_SPS, byte, 0, 1],
                        5 => *n = vec![avc::NAL_AUD, 0xf0],
                        6 => *n = vec![avc::NAL_IDR, byte],
                        _ => n.truncate(1 + usize::from(byte % 3)),
                    }
                });
                tags[i].2 = body;
            }
            for &(at, d) in &jitter {
                let i = at % tags.len();
                tags[i].1 = tags[i].1.saturating_add_signed(d);
            }
            let segments = run_tags(with_tables(), &tags);
            check_tables(&segments);
        }
    }

    #[test]
    fn every_prefix_of_the_stream_is_handled() {
        // Truncating any tag body must give an error or a segment, never a panic.
        let tags = file_tags(SMALL_FLV).unwrap();
        for tag in tags.iter().take(12) {
            for cut in 0..tag.body.len().min(64) {
                let mut seg = LiveSegmenter::new(SegmenterConfig::default());
                for t in &tags {
                    let body = if std::ptr::eq(t, tag) {
                        &t.body[..cut]
                    } else {
                        t.body
                    };
                    let _ = match t.tag_type {
                        9 => seg.push_video(t.timestamp_ms, body),
                        8 => seg.push_audio(t.timestamp_ms, body),
                        _ => Ok(None),
                    };
                    if std::ptr::eq(t, tag) {
                        break;
                    }
                }
                let _ = seg.finish();
            }
        }
    }
}
