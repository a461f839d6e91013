//! What a stored segment holds, sample by sample: an MPEG-TS segment (H.264 + AAC in ADTS)
//! demuxed, or a fragmented MP4 segment read through its initialisation segment, into one
//! sample table per track plus the sample bytes as a progressive MP4 `mdat` wants them
//! (length-prefixed NAL units, raw AAC frames). Sans-IO. Segments come from any TAMS
//! client, so every size and offset is checked, and there is a fuzz target.

use std::ops::Range;

use super::MediaError;
use super::aac::AacConfig;
use super::avc::{AvcConfig, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
use super::bmff::{Reader, box_header, boxes, child};
use super::fmp4::{avc1_entry, mp4a_entry};
use super::ts::{PACKET, TS_WRAP};

/// Version of what the readers here give for a segment. Bump it whenever a change makes
/// them give different tables for the same bytes (say, another rule for which NAL units a
/// sample keeps): tables kept in the index by an older drey are then read again, not
/// trusted (`media::tables`).
pub const READER_VERSION: u8 = 1;

/// Timescale of MPEG-TS timestamps.
const TS_CLOCK: u32 = 90_000;
/// AAC frames carry 1024 samples at the core rate.
const AAC_FRAME: i64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Video,
    Audio,
}

/// One sample's timing, size and sync flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// Decode time in the track's timescale (the segment's media clock).
    pub dts: i64,
    /// Presentation minus decode time.
    pub cto: i32,
    pub size: u32,
    pub sync: bool,
}

/// One track of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub kind: Kind,
    pub timescale: u32,
    /// The whole sample entry box (`avc1`, `mp4a`, or whatever an init segment holds), as a
    /// progressive MP4's `stsd` carries it.
    pub entry: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub samples: Vec<Timed>,
    /// The samples' bytes back to back (`sizes` sum to its length).
    pub data: Vec<u8>,
}

impl Track {
    /// Presentation time of the earliest sample, in the track's timescale.
    pub fn first_pts(&self) -> Option<i64> {
        self.samples.iter().map(|s| s.dts + i64::from(s.cto)).min()
    }

    /// The table without the bytes (what a plan keeps).
    pub fn without_data(&self) -> Track {
        Track {
            data: Vec::new(),
            ..self.clone()
        }
    }
}

/// The tracks of one segment: at most one video and one audio track (the first of each
/// kind the segment declares; others are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples {
    pub tracks: Vec<Track>,
}

impl Samples {
    pub fn track(&self, kind: Kind) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == kind)
    }
}

fn bad(what: &'static str, message: impl Into<String>) -> MediaError {
    MediaError::BadContainer {
        what,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// MPEG-TS

/// A PES packet being gathered from TS packets.
#[derive(Default)]
struct PesBuf {
    data: Vec<u8>,
}

struct Es {
    pid: u16,
    kind: Kind,
    pes: PesBuf,
    /// The video PES packet being gathered straight into the track's bytes, when its
    /// header came whole in its first TS packet (see [`Direct`]).
    direct: Option<Direct>,
}

/// A video PES packet whose payload goes straight into the video track's `data` (from
/// `start` on) as its TS packets come, to be turned into length-prefixed NAL units where
/// it lies ([`length_prefix_in_place`]): one copy of the sample bytes instead of two (into
/// a PES buffer, then out of it NAL unit by NAL unit).
struct Direct {
    pts: Option<i64>,
    dts: Option<i64>,
    start: usize,
}

/// A PES packet's timestamps (90 kHz) and payload.
struct PesParts<'a> {
    pts: Option<i64>,
    dts: Option<i64>,
    payload: &'a [u8],
}

/// Parses a PES header.
fn pes_parts(pes: &[u8]) -> Result<PesParts<'_>, MediaError> {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return Err(bad("MPEG-TS", "PES packet without a start code"));
    }
    let header_len = usize::from(pes[8]);
    let payload = pes
        .get(9 + header_len..)
        .ok_or_else(|| bad("MPEG-TS", "PES header longer than its packet"))?;
    let flags = pes[7] >> 6;
    let ts = |at: usize| -> Result<i64, MediaError> {
        let b = pes
            .get(at..at + 5)
            .filter(|_| at + 5 <= 9 + header_len)
            .ok_or_else(|| bad("MPEG-TS", "PES timestamp outside its header"))?;
        Ok((i64::from(b[0] >> 1 & 0x07) << 30)
            | (i64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15)
            | i64::from(u16::from_be_bytes([b[3], b[4]]) >> 1))
    };
    let pts = if flags & 2 != 0 { Some(ts(9)?) } else { None };
    let dts = if flags == 3 { Some(ts(14)?) } else { pts };
    Ok(PesParts { pts, dts, payload })
}

/// The searcher for Annex B start codes, built once (building one per access unit showed
/// in profiles).
static START_CODE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(&[0, 0, 1]));

/// Splits an Annex B byte stream into NAL units (start codes and trailing zeros dropped).
fn annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for at in START_CODE.find_iter(data) {
        // Overlapping matches cannot occur: a match ends in 1, a start code starts with 0.
        if let Some(s) = start {
            out.push(&data[s..at.max(s)]);
        }
        start = Some(at + 3);
    }
    if let Some(s) = start {
        out.push(&data[s.min(data.len())..]);
    }
    out.into_iter()
        .map(|n| {
            let end = n.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            &n[..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Unwraps 33-bit timestamps against the first one seen.
#[derive(Default)]
struct Unwrap(Option<i64>);

impl Unwrap {
    fn at(&mut self, ts: i64) -> i64 {
        let wrap = TS_WRAP as i64;
        match self.0 {
            None => {
                self.0 = Some(ts);
                ts
            }
            Some(first) => {
                let mut t = ts;
                while t < first - wrap / 2 {
                    t += wrap;
                }
                while t > first + wrap / 2 {
                    t -= wrap;
                }
                t
            }
        }
    }
}

#[derive(Default)]
struct VideoOut {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    samples: Vec<Timed>,
    data: Vec<u8>,
}

#[derive(Default)]
struct AudioOut {
    asc: Option<[u8; 2]>,
    config: Option<AacConfig>,
    samples: Vec<Timed>,
    data: Vec<u8>,
}

fn video_pes(
    v: &mut VideoOut,
    clock: &mut Unwrap,
    pes: &[u8],
    with_data: bool,
) -> Result<(), MediaError> {
    let PesParts { pts, dts, payload } = pes_parts(pes)?;
    video_au(v, clock, pts, dts, payload, with_data)
}

/// One video PES packet's payload (an Annex B access unit, or the rest of one when it has
/// no timestamps) with its 33-bit timestamps.
fn video_au(
    v: &mut VideoOut,
    clock: &mut Unwrap,
    pts: Option<i64>,
    dts: Option<i64>,
    payload: &[u8],
    with_data: bool,
) -> Result<(), MediaError> {
    let before = v.data.len();
    let mut size = 0usize;
    let mut sync = false;
    for nal in annex_b(payload) {
        if nal[0] & 0x1f == NAL_AUD {
            continue;
        }
        sync |= note_nal(&mut v.sps, &mut v.pps, nal);
        let len = u32::try_from(nal.len()).map_err(|_| bad("MPEG-TS", "NAL unit over 4 GiB"))?;
        if with_data {
            v.data.extend_from_slice(&len.to_be_bytes());
            v.data.extend_from_slice(nal);
        }
        size += 4 + nal.len();
    }
    push_au(v, clock, pts, dts, size, sync, before)
}

/// Keeps the first SPS and PPS of the segment; true for an IDR slice (a sync sample).
fn note_nal(sps: &mut Option<Vec<u8>>, pps: &mut Option<Vec<u8>>, nal: &[u8]) -> bool {
    match nal[0] & 0x1f {
        NAL_SPS if sps.is_none() => *sps = Some(nal.to_vec()),
        NAL_PPS if pps.is_none() => *pps = Some(nal.to_vec()),
        NAL_IDR => return true,
        _ => {}
    }
    false
}

/// Adds an access unit of `size` bytes (as written to `v.data` from `before` on) to the
/// video table: a sample of its own when the PES packet had timestamps, else the rest of
/// the sample before it.
fn push_au(
    v: &mut VideoOut,
    clock: &mut Unwrap,
    pts: Option<i64>,
    dts: Option<i64>,
    size: usize,
    sync: bool,
    before: usize,
) -> Result<(), MediaError> {
    let size = u32::try_from(size).map_err(|_| bad("MPEG-TS", "access unit over 4 GiB"))?;
    match (pts, dts) {
        (Some(pts), Some(dts)) => {
            if size == 0 {
                return Ok(());
            }
            let dts = clock.at(dts);
            let pts = clock.at(pts);
            let cto = i32::try_from(pts - dts)
                .map_err(|_| bad("MPEG-TS", format!("PTS {pts} and DTS {dts} too far apart")))?;
            v.samples.push(Timed {
                dts,
                cto,
                size,
                sync,
            });
        }
        // A PES without timestamps continues the access unit before it.
        _ => match v.samples.last_mut() {
            Some(last) => {
                last.size = last
                    .size
                    .checked_add(size)
                    .ok_or_else(|| bad("MPEG-TS", "access unit over 4 GiB"))?;
                last.sync |= sync;
            }
            None => v.data.truncate(before),
        },
    }
    Ok(())
}

/// Where a video PES packet's payload starts in its first TS packet's `payload`, with its
/// timestamps, when the PES header lies whole in that packet and parses (else the packet
/// is gathered as before, and any error comes from [`pes_parts`] then). A leading access
/// unit delimiter (`00 00 00 01 09 xx`, then a start code) is skipped: the MP4 samples
/// leave it out, and without it the rest can usually be converted where it lies.
fn direct_start(payload: &[u8]) -> Option<(Option<i64>, Option<i64>, &[u8])> {
    if payload.len() < 9 || 9 + usize::from(payload[8]) > payload.len() {
        return None;
    }
    let PesParts { pts, dts, payload } = pes_parts(payload).ok()?;
    let rest = match payload {
        [0, 0, 0, 1, t, _, 0, 0, 1, ..] | [0, 0, 0, 1, t, _, 0, 0, 0, 1, ..]
            if t & 0x1f == NAL_AUD =>
        {
            &payload[6..]
        }
        _ => payload,
    };
    Some((pts, dts, rest))
}

/// Turns the Annex B access unit in `data` into length-prefixed NAL units where it lies,
/// when its layout allows: every NAL unit behind a four-byte start code that directly
/// follows the unit before (no trailing zeros between them), none empty and none an
/// access unit delimiter. The four start-code bytes then become the unit's length, and
/// the bytes are what [`video_au`] would write. Gives the units as (start, end) offsets
/// in `data` in `units`, and the access unit's new length (trailing zeros of the last unit
/// dropped), or `None` with `data` untouched when the layout needs [`video_au`].
fn length_prefix_in_place(data: &mut [u8], units: &mut Vec<(usize, usize)>) -> Option<usize> {
    units.clear();
    let mut at: Option<usize> = None;
    for m in START_CODE.find_iter(data) {
        match at {
            // The first start code: four bytes, at the very start.
            None if m == 1 && data[0] == 0 => {}
            None => return None,
            Some(s) => {
                // Exactly one zero before the next `00 00 01`: a four-byte start code
                // right after the unit's last byte.
                if m < s + 2 || data[m - 2] == 0 || data[m - 1] != 0 {
                    return None;
                }
                units.push((s, m - 1));
            }
        }
        at = Some(m + 3);
    }
    let s = at?;
    let end = data[s..].iter().rposition(|&b| b != 0)? + s + 1;
    units.push((s, end));
    if units
        .iter()
        .any(|&(s, e)| data[s] & 0x1f == NAL_AUD || u32::try_from(e - s).is_err())
    {
        return None;
    }
    for &(s, e) in units.iter() {
        data[s - 4..s].copy_from_slice(&((e - s) as u32).to_be_bytes());
    }
    Some(end)
}

/// Ends a [`Direct`] video PES packet: its bytes converted where they lie, or else moved
/// out (into `scratch`) and given to [`video_au`].
fn video_direct(
    v: &mut VideoOut,
    clock: &mut Unwrap,
    d: Direct,
    scratch: &mut Vec<u8>,
    units: &mut Vec<(usize, usize)>,
) -> Result<(), MediaError> {
    let Some(len) = length_prefix_in_place(&mut v.data[d.start..], units) else {
        scratch.clear();
        scratch.extend_from_slice(&v.data[d.start..]);
        v.data.truncate(d.start);
        let done = video_au(v, clock, d.pts, d.dts, scratch, true);
        scratch.clear();
        return done;
    };
    v.data.truncate(d.start + len);
    let mut sync = false;
    for &(s, e) in units.iter() {
        sync |= note_nal(&mut v.sps, &mut v.pps, &v.data[d.start + s..d.start + e]);
    }
    push_au(v, clock, d.pts, d.dts, len, sync, d.start)
}

fn audio_pes(
    a: &mut AudioOut,
    clock: &mut Unwrap,
    pes: &[u8],
    with_data: bool,
) -> Result<(), MediaError> {
    let PesParts { pts, payload, .. } = pes_parts(pes)?;
    let Some(pts) = pts else {
        return Err(bad("MPEG-TS", "audio PES packet without a PTS"));
    };
    audio_frames(a, clock, pts, payload, with_data)
}

/// One audio PES packet's payload (ADTS frames) with its 33-bit PTS.
fn audio_frames(
    a: &mut AudioOut,
    clock: &mut Unwrap,
    pts: i64,
    mut payload: &[u8],
    with_data: bool,
) -> Result<(), MediaError> {
    let pts = clock.at(pts);
    let mut i = 0i64;
    while !payload.is_empty() {
        if payload.len() < 7 || payload[0] != 0xff || payload[1] & 0xf0 != 0xf0 {
            return Err(bad("ADTS", "frame without a sync word"));
        }
        let h = &payload[..7];
        let protection_absent = h[1] & 1 == 1;
        let object_type = (h[2] >> 6) + 1;
        let frequency_index = (h[2] >> 2) & 0x0f;
        let channel_config = ((h[2] & 1) << 2) | (h[3] >> 6);
        let frame_len =
            (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let blocks = h[6] & 3;
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len < header_len || frame_len > payload.len() {
            return Err(bad(
                "ADTS",
                format!(
                    "frame length {frame_len} with {} bytes in the PES packet",
                    payload.len()
                ),
            ));
        }
        if blocks != 0 {
            return Err(MediaError::Unsupported(
                "ADTS frames with several raw data blocks".into(),
            ));
        }
        let asc_bits: u16 = (u16::from(object_type) << 11)
            | (u16::from(frequency_index) << 7)
            | (u16::from(channel_config) << 3);
        let asc = asc_bits.to_be_bytes();
        match a.asc {
            None => {
                a.config = Some(AacConfig::parse(&asc)?);
                a.asc = Some(asc);
            }
            Some(first) if first != asc => {
                return Err(MediaError::Unsupported(
                    "the AAC configuration changes within the segment".into(),
                ));
            }
            Some(_) => {}
        }
        let rate = a.config.map_or(48_000, |c| c.core_sample_rate());
        let raw = &payload[header_len..frame_len];
        // In the track's timescale (the core sample rate).
        let dts =
            (i128::from(pts) * i128::from(rate) / i128::from(TS_CLOCK)) as i64 + i * AAC_FRAME;
        a.samples.push(Timed {
            dts,
            cto: 0,
            size: raw.len() as u32,
            sync: true,
        });
        if with_data {
            a.data.extend_from_slice(raw);
        }
        payload = &payload[frame_len..];
        i += 1;
    }
    Ok(())
}

/// Demuxes an MPEG-TS segment. `with_data` false keeps only the tables.
pub fn from_ts(data: &[u8], with_data: bool) -> Result<Samples, MediaError> {
    let bufs = with_data.then(|| (Vec::new(), Vec::new()));
    demux_ts(data, bufs, true)
}

/// [`from_ts`] with the sample bytes, every PES packet gathered before its NAL units are
/// copied out: the plain path the direct one (see [`Direct`]) must agree with, byte for
/// byte (tests and the `segment_samples` fuzz target compare them).
#[doc(hidden)]
pub fn from_ts_gathered(
    data: &[u8],
    video_buf: Vec<u8>,
    audio_buf: Vec<u8>,
) -> Result<Samples, MediaError> {
    demux_ts(data, Some((video_buf, audio_buf)), false)
}

/// [`from_ts`] with the sample bytes, written into the given buffers (emptied first):
/// the video track's and the audio track's `data`. A caller that recycles buffers
/// avoids a fresh allocation of about the segment's size per segment.
pub fn from_ts_into(
    data: &[u8],
    video_buf: Vec<u8>,
    audio_buf: Vec<u8>,
) -> Result<Samples, MediaError> {
    demux_ts(data, Some((video_buf, audio_buf)), true)
}

/// `direct`: video PES payloads may go straight into the track's bytes ([`Direct`]);
/// false gathers every PES packet first (what tests compare the direct path with).
fn demux_ts(
    data: &[u8],
    bufs: Option<(Vec<u8>, Vec<u8>)>,
    direct: bool,
) -> Result<Samples, MediaError> {
    let with_data = bufs.is_some();
    let direct = direct && with_data;
    let (mut video_data, mut audio_data) = bufs.unwrap_or_default();
    video_data.clear();
    audio_data.clear();
    if data.is_empty() || !data.len().is_multiple_of(PACKET) {
        return Err(bad(
            "MPEG-TS",
            format!(
                "{} bytes is not a whole number of 188-byte packets",
                data.len()
            ),
        ));
    }
    let mut pmt_pid: Option<u16> = None;
    let mut streams: Vec<Es> = Vec::new();
    let mut other_types: Vec<u8> = Vec::new();
    let mut video = VideoOut {
        data: video_data,
        ..VideoOut::default()
    };
    let mut audio = AudioOut {
        data: audio_data,
        ..AudioOut::default()
    };
    let mut vclock = Unwrap::default();
    let mut aclock = Unwrap::default();
    if with_data {
        // Sample bytes are fewer than the packets': one allocation each.
        video.data.reserve(data.len());
        audio.data.reserve(data.len() / 8);
    }
    let mut units = Vec::new();
    let mut flush = |es: &mut Es, video: &mut VideoOut| -> Result<(), MediaError> {
        if let Some(d) = es.direct.take() {
            return video_direct(video, &mut vclock, d, &mut es.pes.data, &mut units);
        }
        if es.pes.data.is_empty() {
            return Ok(());
        }
        // The PES buffer is kept for the next one (frames are of similar sizes).
        let pes = &es.pes.data;
        let done = match es.kind {
            Kind::Video => video_pes(video, &mut vclock, pes, with_data),
            Kind::Audio => audio_pes(&mut audio, &mut aclock, pes, with_data),
        };
        es.pes.data.clear();
        done
    };
    for (n, p) in data.chunks_exact(PACKET).enumerate() {
        if p[0] != 0x47 {
            return Err(bad("MPEG-TS", format!("packet {n} has no sync byte")));
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        let mut at = 4usize;
        if afc & 2 != 0 {
            at += 1 + usize::from(p[4]);
        }
        if afc & 1 == 0 || at >= PACKET {
            continue;
        }
        let payload = &p[at..];
        if pid == 0 || Some(pid) == pmt_pid {
            if !pusi {
                continue;
            }
            let pointer = usize::from(payload[0]);
            let sec = payload
                .get(1 + pointer..)
                .ok_or_else(|| bad("MPEG-TS", "PSI pointer past its packet"))?;
            if sec.len() < 8 {
                return Err(bad("MPEG-TS", "truncated PSI section"));
            }
            let len = (usize::from(sec[1] & 0x0f) << 8) | usize::from(sec[2]);
            let end = (3 + len).min(sec.len()).saturating_sub(4);
            if pid == 0 {
                let mut e = 8;
                while e + 4 <= end {
                    let program = u16::from_be_bytes([sec[e], sec[e + 1]]);
                    if program != 0 {
                        pmt_pid = Some((u16::from(sec[e + 2] & 0x1f) << 8) | u16::from(sec[e + 3]));
                        break;
                    }
                    e += 4;
                }
            } else if streams.is_empty() && other_types.is_empty() {
                if sec.len() < 12 {
                    return Err(bad("MPEG-TS", "truncated PMT"));
                }
                let info = (usize::from(sec[10] & 0x0f) << 8) | usize::from(sec[11]);
                let mut e = 12 + info;
                while e + 5 <= end {
                    let stream_type = sec[e];
                    let es_pid = (u16::from(sec[e + 1] & 0x1f) << 8) | u16::from(sec[e + 2]);
                    let es_info = (usize::from(sec[e + 3] & 0x0f) << 8) | usize::from(sec[e + 4]);
                    let kind = match stream_type {
                        0x1b => Some(Kind::Video),
                        0x0f => Some(Kind::Audio),
                        t => {
                            other_types.push(t);
                            None
                        }
                    };
                    if let Some(kind) = kind
                        && !streams.iter().any(|s| s.kind == kind)
                    {
                        streams.push(Es {
                            pid: es_pid,
                            kind,
                            pes: PesBuf::default(),
                            direct: None,
                        });
                    }
                    e += 5 + es_info;
                }
            }
            continue;
        }
        let Some(es) = streams.iter_mut().find(|s| s.pid == pid) else {
            continue;
        };
        if pusi {
            flush(es, &mut video)?;
            if direct
                && es.kind == Kind::Video
                && let Some((pts, dts, rest)) = direct_start(payload)
            {
                es.direct = Some(Direct {
                    pts,
                    dts,
                    start: video.data.len(),
                });
                video.data.extend_from_slice(rest);
                continue;
            }
        }
        if es.direct.is_some() {
            video.data.extend_from_slice(payload);
        } else if pusi || !es.pes.data.is_empty() {
            es.pes.data.extend_from_slice(payload);
        }
    }
    for es in &mut streams {
        flush(es, &mut video)?;
    }
    if streams.is_empty() {
        return Err(MediaError::Unsupported(if other_types.is_empty() {
            "no program (PAT/PMT) in the MPEG-TS segment".into()
        } else {
            format!(
                "the MPEG-TS segment carries stream types {other_types:02x?}; MP4 export reads H.264 (0x1b) and AAC ADTS (0x0f)"
            )
        }));
    }
    tracks(video, audio)
}

/// The tracks gathered from a segment's elementary streams.
fn tracks(mut video: VideoOut, mut audio: AudioOut) -> Result<Samples, MediaError> {
    // Tables may be kept a long time (cached): no spare capacity.
    video.samples.shrink_to_fit();
    audio.samples.shrink_to_fit();
    let mut out = Samples::default();
    if !video.samples.is_empty() {
        let (Some(sps), Some(pps)) = (&video.sps, &video.pps) else {
            return Err(bad(
                "H.264",
                "no SPS/PPS in the segment (it must start with a keyframe)",
            ));
        };
        let (record, cfg) = AvcConfig::record_from(sps, pps)?;
        let mut entry = Vec::new();
        avc1_entry(&mut entry, cfg.width, cfg.height, &record);
        out.tracks.push(Track {
            kind: Kind::Video,
            timescale: TS_CLOCK,
            entry,
            width: cfg.width,
            height: cfg.height,
            samples: video.samples,
            data: video.data,
        });
    }
    if let (Some(asc), Some(cfg)) = (audio.asc, audio.config) {
        let mut entry = Vec::new();
        mp4a_entry(
            &mut entry,
            cfg.core_sample_rate(),
            cfg.channels() as u16,
            &asc,
        );
        out.tracks.push(Track {
            kind: Kind::Audio,
            timescale: cfg.core_sample_rate(),
            entry,
            width: 0,
            height: 0,
            samples: audio.samples,
            data: audio.data,
        });
    }
    Ok(out)
}

/// The tables of an MPEG-TS segment built while it is written, PES packet by PES packet,
/// instead of demuxing it afterwards: given each PES packet's timestamps and payload as
/// they went into the segment, [`TsTables::finish`] gives what [`from_ts`] would read
/// from the finished segment (the same functions do the work; tests and the
/// `flv_segmenter` fuzz target check that the two agree). Cheap: each PES payload is
/// copied once into a scratch buffer and searched for start codes; no packet walk.
#[derive(Default)]
pub struct TsTables {
    video: VideoOut,
    audio: AudioOut,
    vclock: Unwrap,
    aclock: Unwrap,
    /// A PES packet's payload made contiguous.
    scratch: Vec<u8>,
    /// A packet was refused: the demuxer would refuse the segment too.
    failed: Option<MediaError>,
}

/// A timestamp as a PES header carries it (33 bits).
fn ts33(t: u64) -> i64 {
    (t % TS_WRAP) as i64
}

impl TsTables {
    fn gather(&mut self, payload: &[&[u8]]) {
        self.scratch.clear();
        for p in payload {
            self.scratch.extend_from_slice(p);
        }
    }

    /// A video PES packet: its PTS, DTS (90 kHz, as given to the TS writer) and payload.
    pub fn video(&mut self, pts: u64, dts: Option<u64>, payload: &[&[u8]]) {
        if self.failed.is_some() {
            return;
        }
        self.gather(payload);
        let dts = dts.unwrap_or(pts);
        if let Err(e) = video_au(
            &mut self.video,
            &mut self.vclock,
            Some(ts33(pts)),
            Some(ts33(dts)),
            &self.scratch,
            false,
        ) {
            self.failed = Some(e);
        }
    }

    /// An audio PES packet: its PTS (90 kHz) and payload (ADTS frames).
    pub fn audio(&mut self, pts: u64, payload: &[&[u8]]) {
        if self.failed.is_some() {
            return;
        }
        self.gather(payload);
        if let Err(e) = audio_frames(
            &mut self.audio,
            &mut self.aclock,
            ts33(pts),
            &self.scratch,
            false,
        ) {
            self.failed = Some(e);
        }
    }

    /// The segment's tables, or why the demuxer would refuse the segment.
    pub fn finish(self) -> Result<Samples, MediaError> {
        match self.failed {
            Some(e) => Err(e),
            None => tracks(self.video, self.audio),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fragmented MP4

/// What a fragment reader needs of one track of an initialisation segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTrack {
    pub track_id: u32,
    pub kind: Kind,
    pub timescale: u32,
    pub entry: Vec<u8>,
    pub width: u32,
    pub height: u32,
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
}

/// An initialisation segment (`ftyp` + `moov`), read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Init {
    pub tracks: Vec<InitTrack>,
}

const INIT: &str = "MP4 initialisation segment";

impl Init {
    pub fn parse(data: &[u8]) -> Result<Init, MediaError> {
        let moov = child(data, b"moov", INIT)?.ok_or_else(|| bad(INIT, "no moov box"))?;
        let moov_boxes = boxes(moov.body, INIT)?;
        let mut tracks = Vec::new();
        for trak in moov_boxes.iter().filter(|b| &b.kind == b"trak") {
            let tkhd =
                child(trak.body, b"tkhd", INIT)?.ok_or_else(|| bad(INIT, "trak without tkhd"))?;
            let mut r = Reader::new(tkhd.body, "tkhd");
            let (v, _) = r.version_flags()?;
            r.take(if v == 1 { 16 } else { 8 })?;
            let track_id = r.u32()?;
            let (width, height) = match tkhd.body.len().checked_sub(8) {
                Some(at) if at > 0 => {
                    let mut wh = Reader::new(&tkhd.body[at..], "tkhd");
                    (wh.u32()? >> 16, wh.u32()? >> 16)
                }
                _ => (0, 0),
            };
            let mdia =
                child(trak.body, b"mdia", INIT)?.ok_or_else(|| bad(INIT, "trak without mdia"))?;
            let mdhd =
                child(mdia.body, b"mdhd", INIT)?.ok_or_else(|| bad(INIT, "mdia without mdhd"))?;
            let mut r = Reader::new(mdhd.body, "mdhd");
            let (v, _) = r.version_flags()?;
            r.take(if v == 1 { 16 } else { 8 })?;
            let timescale = r.u32()?;
            if timescale == 0 {
                return Err(bad(INIT, "timescale 0"));
            }
            let hdlr =
                child(mdia.body, b"hdlr", INIT)?.ok_or_else(|| bad(INIT, "mdia without hdlr"))?;
            let mut r = Reader::new(hdlr.body, "hdlr");
            r.take(8)?;
            let kind = match r.take(4)? {
                b"vide" => Kind::Video,
                b"soun" => Kind::Audio,
                _ => continue,
            };
            let stsd = child(mdia.body, b"minf", INIT)?
                .map(|m| child(m.body, b"stbl", INIT))
                .transpose()?
                .flatten()
                .map(|s| child(s.body, b"stsd", INIT))
                .transpose()?
                .flatten()
                .ok_or_else(|| bad(INIT, "track without stsd"))?;
            let entries = stsd
                .body
                .get(8..)
                .ok_or_else(|| bad(INIT, "truncated stsd"))?;
            let first = boxes(entries, INIT)?
                .into_iter()
                .next()
                .ok_or_else(|| bad(INIT, "stsd without a sample entry"))?;
            let entry = entries[first.at..first.at + 8 + first.body.len()].to_vec();
            if tracks.iter().any(|t: &InitTrack| t.kind == kind) {
                continue;
            }
            tracks.push(InitTrack {
                track_id,
                kind,
                timescale,
                entry,
                width,
                height,
                default_duration: 0,
                default_size: 0,
                default_flags: 0,
            });
        }
        if let Some(mvex) = moov_boxes.iter().find(|b| &b.kind == b"mvex") {
            for trex in boxes(mvex.body, INIT)?
                .iter()
                .filter(|b| &b.kind == b"trex")
            {
                let mut r = Reader::new(trex.body, "trex");
                r.version_flags()?;
                let id = r.u32()?;
                r.u32()?;
                let (d, s, f) = (r.u32()?, r.u32()?, r.u32()?);
                if let Some(t) = tracks.iter_mut().find(|t| t.track_id == id) {
                    (t.default_duration, t.default_size, t.default_flags) = (d, s, f);
                }
            }
        }
        if tracks.is_empty() {
            return Err(MediaError::Unsupported(
                "the initialisation segment has no video or audio track".into(),
            ));
        }
        Ok(Init { tracks })
    }
}

const FRAG: &str = "MP4 fragment";

/// Reads the fragments (`moof` + `mdat`) of a segment through its initialisation segment.
pub fn from_fmp4(init: &Init, data: &[u8], with_data: bool) -> Result<Samples, MediaError> {
    let mut bytes: Vec<Vec<u8>> = vec![Vec::new(); init.tracks.len()];
    let moofs = moofs_of(data)?;
    let mut tracks = walk_fmp4(init, data.len(), &moofs, &mut |ti, at: Range<usize>| {
        if with_data {
            bytes[ti].extend_from_slice(&data[at]);
        }
    })?;
    for (t, b) in tracks.iter_mut().zip(bytes) {
        t.data = b;
    }
    Ok(with_samples(tracks))
}

/// The tracks that have samples, their tables trimmed to size.
fn with_samples(mut tracks: Vec<Track>) -> Samples {
    tracks.retain(|t| !t.samples.is_empty());
    for t in &mut tracks {
        t.samples.shrink_to_fit();
    }
    Samples { tracks }
}

/// A track's kind and the byte ranges of a segment that hold its samples.
pub type SampleRanges = (Kind, Vec<Range<usize>>);

/// Where the sample bytes of each track lie in a fragmented MP4 segment: for the tracks
/// [`from_fmp4`] gives, in its order, the byte ranges of the segment that, back to back,
/// are that track's `data` (adjacent samples in one range). An export can send these
/// slices of the segment as they are, instead of copying the samples out.
pub fn fmp4_sample_ranges(init: &Init, data: &[u8]) -> Result<Vec<SampleRanges>, MediaError> {
    let mut ranges: Vec<Vec<Range<usize>>> = vec![Vec::new(); init.tracks.len()];
    let moofs = moofs_of(data)?;
    let tracks = walk_fmp4(init, data.len(), &moofs, &mut |ti, at: Range<usize>| {
        let r = &mut ranges[ti];
        match r.last_mut() {
            Some(last) if last.end == at.start => last.end = at.end,
            _ => r.push(at),
        }
    })?;
    Ok(tracks
        .iter()
        .zip(ranges)
        .filter(|(t, _)| !t.samples.is_empty())
        .map(|(t, r)| (t.kind, r))
        .collect())
}

/// The top-level `moof` boxes of a segment: (offset, body).
fn moofs_of(data: &[u8]) -> Result<Vec<(usize, &[u8])>, MediaError> {
    Ok(boxes(data, FRAG)?
        .into_iter()
        .filter(|b| &b.kind == b"moof")
        .map(|b| (b.at, b.body))
        .collect())
}

/// Bytes a [`Fmp4Scan`] asks for at a time: a segment's `styp`, `moof` and the `mdat`
/// header fit, for the segments of common packagers (one fragment of a few seconds).
pub const SCAN_READ: usize = 16 << 10;
/// Reads a [`Fmp4Scan`] makes in pieces before it asks for the rest of the segment at once
/// (a segment of many small fragments, as low-latency CMAF cuts them).
const SCAN_PIECES: usize = 3;
/// The largest `moof` a scan holds (a fragment's tables; far above any real one).
const SCAN_MAX_MOOF: u64 = 16 << 20;

/// The sample tables of a fragmented MP4 segment of `len` bytes, read from its top-level
/// box headers and `moof` boxes only, without its `mdat` payloads: what
/// `from_fmp4(init, segment, false)` gives, errors included, from a few small ranged reads
/// instead of the whole segment. Ask [`Fmp4Scan::want`] which bytes to read next, and
/// [`Fmp4Scan::feed`] them; when it wants nothing more, [`Fmp4Scan::tables`].
#[derive(Debug, Clone)]
pub struct Fmp4Scan {
    len: usize,
    /// Offset of the next top-level box.
    at: usize,
    /// Bytes the next read must cover from `at` when more than [`SCAN_READ`] (a `moof`
    /// that did not fit the last read).
    need: usize,
    reads: usize,
    moofs: Vec<(usize, Vec<u8>)>,
}

impl Fmp4Scan {
    pub fn new(len: usize) -> Fmp4Scan {
        Fmp4Scan {
            len,
            at: 0,
            need: 0,
            reads: 0,
            moofs: Vec::new(),
        }
    }

    /// The byte range of the segment to read next; `None` when the scan has all it needs.
    pub fn want(&self) -> Option<Range<usize>> {
        if self.at >= self.len {
            return None;
        }
        let n = if self.reads >= SCAN_PIECES {
            self.len - self.at
        } else {
            self.need.max(SCAN_READ)
        };
        Some(self.at..self.len.min(self.at.saturating_add(n)))
    }

    /// Takes `bytes`, read from offset `from` of the segment (what [`Fmp4Scan::want`]
    /// asked for), and walks the top-level boxes they hold.
    pub fn feed(&mut self, from: usize, bytes: &[u8]) -> Result<(), MediaError> {
        self.reads += 1;
        self.need = 0;
        let end = from.saturating_add(bytes.len()).min(self.len);
        if from > self.at || end <= self.at {
            return Err(bad(FRAG, "scan fed bytes it did not ask for"));
        }
        while self.at < self.len {
            let remaining = (self.len - self.at) as u64;
            let have = &bytes[self.at - from..end - from];
            if have.len() < remaining.min(16) as usize {
                return Ok(()); // the header is in the next read
            }
            let (kind, header, size) = box_header(have, remaining, self.at, FRAG)?;
            if &kind == b"moof" {
                if size > SCAN_MAX_MOOF {
                    return Err(bad(FRAG, format!("moof of {size} bytes")));
                }
                let size = size as usize;
                if have.len() < size {
                    // The whole moof, and the next box's header with it.
                    self.need = size + 16;
                    return Ok(());
                }
                self.moofs.push((self.at, have[header..size].to_vec()));
            }
            self.at += size as usize;
            if self.at >= end {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The tables, as `from_fmp4(init, segment, false)` gives them.
    pub fn tables(&self, init: &Init) -> Result<Samples, MediaError> {
        if self.at < self.len {
            return Err(bad(FRAG, "scan not finished"));
        }
        let moofs: Vec<(usize, &[u8])> = self.moofs.iter().map(|(a, b)| (*a, &b[..])).collect();
        Ok(with_samples(walk_fmp4(
            init,
            self.len,
            &moofs,
            &mut |_, _| {},
        )?))
    }
}

/// The fragments' sample tables, one track per track of `init` (empty ones included, no
/// `data`), from the segment's `moofs` (offset, body) in a segment of `len` bytes; calls
/// `on_sample` with each sample's track index and byte range in the segment, in order.
fn walk_fmp4(
    init: &Init,
    len: usize,
    moofs: &[(usize, &[u8])],
    on_sample: &mut dyn FnMut(usize, Range<usize>),
) -> Result<Vec<Track>, MediaError> {
    let mut tracks: Vec<Track> = init
        .tracks
        .iter()
        .map(|t| Track {
            kind: t.kind,
            timescale: t.timescale,
            entry: t.entry.clone(),
            width: t.width,
            height: t.height,
            samples: Vec::new(),
            data: Vec::new(),
        })
        .collect();
    // Where the next fragment of each track starts when it has no tfdt.
    let mut next_dts: Vec<i64> = vec![0; tracks.len()];
    for &(moof_at, moof_body) in moofs {
        let mut prev_data_end: Option<u64> = None;
        for traf in boxes(moof_body, FRAG)?
            .into_iter()
            .filter(|b| &b.kind == b"traf")
        {
            let tfhd =
                child(traf.body, b"tfhd", FRAG)?.ok_or_else(|| bad(FRAG, "traf without tfhd"))?;
            let mut r = Reader::new(tfhd.body, "tfhd");
            let (_, flags) = r.version_flags()?;
            let id = r.u32()?;
            let base_offset = if flags & 0x1 != 0 {
                Some(r.u64()?)
            } else {
                None
            };
            if flags & 0x2 != 0 {
                r.u32()?;
            }
            let Some(ti) = init.tracks.iter().position(|t| t.track_id == id) else {
                continue;
            };
            let it = &init.tracks[ti];
            let def_dur = if flags & 0x8 != 0 {
                r.u32()?
            } else {
                it.default_duration
            };
            let def_size = if flags & 0x10 != 0 {
                r.u32()?
            } else {
                it.default_size
            };
            let def_flags = if flags & 0x20 != 0 {
                r.u32()?
            } else {
                it.default_flags
            };
            let base = match base_offset {
                Some(b) => b,
                None if flags & 0x2_0000 != 0 => moof_at as u64,
                None => prev_data_end.unwrap_or(moof_at as u64),
            };
            let mut dts = match child(traf.body, b"tfdt", FRAG)? {
                Some(tfdt) => {
                    let mut r = Reader::new(tfdt.body, "tfdt");
                    let (v, _) = r.version_flags()?;
                    let t = if v == 1 {
                        r.u64()?
                    } else {
                        u64::from(r.u32()?)
                    };
                    i64::try_from(t).map_err(|_| bad(FRAG, "decode time past 2^63"))?
                }
                None => next_dts[ti],
            };
            let mut pos = base;
            for trun in boxes(traf.body, FRAG)?
                .into_iter()
                .filter(|b| &b.kind == b"trun")
            {
                let mut r = Reader::new(trun.body, "trun");
                let (version, tf) = r.version_flags()?;
                let count = r.u32()? as usize;
                if tf & 0x1 != 0 {
                    let off = r.u32()? as i32;
                    pos = base
                        .checked_add_signed(i64::from(off))
                        .ok_or_else(|| bad(FRAG, "data offset before the segment"))?;
                }
                let first_flags = if tf & 0x4 != 0 { Some(r.u32()?) } else { None };
                let per = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|&&f| tf & f != 0)
                    .count()
                    * 4;
                if count.saturating_mul(per) > trun.body.len() || (per == 0 && count > len) {
                    return Err(bad(FRAG, format!("trun claims {count} samples")));
                }
                let t = &mut tracks[ti];
                t.samples.reserve(count);
                for i in 0..count {
                    let duration = if tf & 0x100 != 0 { r.u32()? } else { def_dur };
                    let size = if tf & 0x200 != 0 { r.u32()? } else { def_size };
                    let sflags = if tf & 0x400 != 0 {
                        r.u32()?
                    } else if i == 0 {
                        first_flags.unwrap_or(def_flags)
                    } else {
                        def_flags
                    };
                    let cto = if tf & 0x800 != 0 {
                        let raw = r.u32()?;
                        if version == 0 {
                            i32::try_from(raw)
                                .map_err(|_| bad(FRAG, "composition offset past 2^31"))?
                        } else {
                            raw as i32
                        }
                    } else {
                        0
                    };
                    let end = pos
                        .checked_add(u64::from(size))
                        .filter(|&e| e <= len as u64)
                        .ok_or_else(|| {
                            bad(
                                FRAG,
                                format!(
                                    "sample of {size} bytes at offset {pos} runs past the segment"
                                ),
                            )
                        })?;
                    on_sample(ti, pos as usize..end as usize);
                    t.samples.push(Timed {
                        dts,
                        cto,
                        size,
                        sync: t.kind == Kind::Audio || sflags & 0x1_0000 == 0,
                    });
                    dts = dts.saturating_add(i64::from(duration));
                    pos = end;
                }
            }
            next_dts[ti] = dts;
            prev_data_end = Some(pos);
        }
    }
    Ok(tracks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::{self, AudioTrack, Sample, TrackRun, VideoTrack};

    #[test]
    fn splits_annex_b() {
        let d = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 7, 0,
        ];
        assert_eq!(
            annex_b(&d),
            vec![&[9, 0xf0][..], &[0x67, 1, 2][..], &[0x65, 7][..]]
        );
        assert!(annex_b(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn length_prefixes_in_place_only_where_the_layout_allows() {
        let mut units = Vec::new();
        // Four-byte start codes one after the other: their bytes become the lengths.
        let mut d = vec![
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 7, 0,
        ];
        assert_eq!(length_prefix_in_place(&mut d, &mut units), Some(19));
        assert_eq!(
            d[..19],
            [
                0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 2, 0x65, 7
            ]
        );
        // Each of these needs the general path, and is left as it was.
        for d in [
            vec![0, 0, 1, 0x65, 7],                      // three-byte start code first
            vec![0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 7], // three-byte one later
            vec![0, 0, 0, 1, 0x67, 1, 0, 0, 0, 0, 1, 0x65, 7], // a trailing zero
            vec![0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x65, 7], // a delimiter
            vec![5, 0, 0, 0, 1, 0x65, 7],                // bytes before the first
            vec![0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65], // an empty unit
            vec![0, 0, 0, 1, 0, 0],                      // an empty last unit
            vec![1, 2, 3],                               // no start code
        ] {
            let mut e = d.clone();
            assert_eq!(length_prefix_in_place(&mut e, &mut units), None, "{d:?}");
            assert_eq!(e, d);
        }
    }

    #[test]
    fn skips_a_leading_delimiter_when_it_can() {
        // PES header: no timestamps flags set except PTS, a 5-byte header.
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        let au = [0, 0, 0, 1, 0x65, 7];
        for (prefix, skipped) in [
            (&[0, 0, 0, 1, 9, 0xf0][..], true),
            (&[0, 0, 0, 1, 9, 0xf0, 0][..], false), // then three zeros and a 1: no
            (&[0, 0, 0, 1, 6, 0xf0][..], false),    // not a delimiter
            (&[][..], false),
        ] {
            let mut p = pes.clone();
            p.extend_from_slice(prefix);
            p.extend_from_slice(&au);
            let (pts, dts, rest) = direct_start(&p).unwrap();
            assert_eq!((pts, dts), (Some(0), Some(0)));
            let whole = &p[14..];
            assert_eq!(rest, if skipped { &au[..] } else { whole }, "{prefix:?}");
        }
        // A header that runs past the packet, or no start code: gathered as before.
        pes[8] = 200;
        assert!(direct_start(&pes).is_none());
        assert!(direct_start(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).is_none());
    }

    #[test]
    fn reads_back_what_the_fragment_writer_wrote() {
        let avcc = crate::media::avc::tests::RECORD;
        let init = fmp4::init_segment(
            Some(&VideoTrack {
                track_id: 1,
                width: 160,
                height: 90,
                avcc,
            }),
            Some(&AudioTrack {
                track_id: 2,
                sample_rate: 48_000,
                channels: 2,
                asc: &[0x11, 0x90],
            }),
        );
        let init = Init::parse(&init).unwrap();
        assert_eq!(init.tracks.len(), 2);
        assert_eq!((init.tracks[0].width, init.tracks[0].height), (160, 90));
        assert_eq!(init.tracks[1].timescale, 48_000);
        let v = [
            Sample {
                duration: 3000,
                size: 3,
                sync: true,
                composition_offset: 6000,
            },
            Sample {
                duration: 3000,
                size: 2,
                sync: false,
                composition_offset: -3000,
            },
        ];
        let a = [Sample {
            duration: 1024,
            size: 4,
            sync: true,
            composition_offset: 0,
        }];
        let seg = fmp4::media_segment(
            1,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 90_000,
                    samples: &v,
                    data: b"VVVWW",
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 48_000,
                    samples: &a,
                    data: b"AAAA",
                },
            ],
        );
        let s = from_fmp4(&init, &seg, true).unwrap();
        let vt = s.track(Kind::Video).unwrap();
        assert_eq!(vt.data, b"VVVWW");
        assert_eq!(
            vt.samples,
            vec![
                Timed {
                    dts: 90_000,
                    cto: 6000,
                    size: 3,
                    sync: true
                },
                Timed {
                    dts: 93_000,
                    cto: -3000,
                    size: 2,
                    sync: false
                },
            ]
        );
        let at = s.track(Kind::Audio).unwrap();
        assert_eq!(at.data, b"AAAA");
        assert_eq!(at.samples[0].dts, 48_000);
        // Tables only: same samples, no bytes.
        let t = from_fmp4(&init, &seg, false).unwrap();
        assert_eq!(t.tracks[0].samples, vt.samples);
        assert!(t.tracks[0].data.is_empty());
        assert_ranges_agree(&init, &seg);
        assert_scan_agrees(&init, &seg);
        // Every truncation is an error or fewer samples, never a panic, and the sample
        // ranges and the scan say the same.
        for cut in 0..seg.len() {
            assert_ranges_agree(&init, &seg[..cut]);
            assert_scan_agrees(&init, &seg[..cut]);
        }
        // Many fragments in one segment (more than the scan reads in pieces), and each
        // cut of that.
        let many: Vec<u8> = seg.repeat(SCAN_PIECES + 3);
        assert_eq!(
            from_fmp4(&init, &many, false).unwrap().tracks[0]
                .samples
                .len(),
            vt.samples.len() * (SCAN_PIECES + 3)
        );
        assert_scan_agrees(&init, &many);
        for cut in (0..many.len()).step_by(7) {
            assert_scan_agrees(&init, &many[..cut]);
        }
    }

    /// A `moof` larger than the scan's first read (a long fragment: 4,000 video samples)
    /// takes one more read, of the whole `moof` and the next box's header.
    #[test]
    fn a_large_moof_takes_a_second_read() {
        let init = fmp4::init_segment(
            Some(&VideoTrack {
                track_id: 1,
                width: 160,
                height: 90,
                avcc: crate::media::avc::tests::RECORD,
            }),
            None,
        );
        let init = Init::parse(&init).unwrap();
        let v: Vec<Sample> = (0..4000)
            .map(|i| Sample {
                duration: 3000,
                size: 2,
                sync: i % 60 == 0,
                composition_offset: if i % 2 == 0 { 3000 } else { -3000 },
            })
            .collect();
        let data = vec![0x55u8; 8000];
        let seg = fmp4::media_segment(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &v,
                data: &data,
            }],
        );
        assert!(
            seg.len() - data.len() > SCAN_READ,
            "moof of {} bytes",
            seg.len() - data.len()
        );
        assert_eq!(assert_scan_agrees(&init, &seg), 2);
        let t = from_fmp4(&init, &seg, false).unwrap();
        assert_eq!(t.tracks[0].samples.len(), 4000);
    }

    /// An [`Fmp4Scan`] fed the ranges it asks for of `seg` gives what `from_fmp4` without
    /// data gives, errors included, in at most `SCAN_PIECES + 1` reads; returns the reads.
    fn assert_scan_agrees(init: &Init, seg: &[u8]) -> usize {
        let mut scan = Fmp4Scan::new(seg.len());
        let mut reads = 0;
        let scanned = loop {
            let Some(r) = scan.want() else {
                break scan.tables(init);
            };
            reads += 1;
            assert!(reads <= SCAN_PIECES + 1, "{reads} reads");
            assert!(r.end <= seg.len() && r.start < r.end, "{r:?}");
            if let Err(e) = scan.feed(r.start, &seg[r]) {
                break Err(e);
            }
        };
        assert_eq!(scanned, from_fmp4(init, seg, false));
        reads
    }

    /// `fmp4_sample_ranges` fails where `from_fmp4` does, and otherwise its ranges, back to
    /// back, are each track's data.
    fn assert_ranges_agree(init: &Init, seg: &[u8]) {
        match (from_fmp4(init, seg, true), fmp4_sample_ranges(init, seg)) {
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
                    assert!(ranges.windows(2).all(|w| w[0].end != w[1].start), "merged");
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("{a:?} against {b:?}"),
        }
    }

    /// The segmenter's TS and fMP4 outputs of one stream read back as the same samples:
    /// same timing and sync flags, same audio bytes; video differs only by the SPS/PPS the
    /// TS output repeats before each keyframe.
    #[test]
    fn ts_and_fmp4_of_one_stream_agree() {
        use crate::media::SegmenterConfig;
        use crate::media::segmenter::tests::{SMALL_FLV, run};
        let (out, _) = run(
            SegmenterConfig {
                fmp4: true,
                ..SegmenterConfig::default()
            },
            SMALL_FLV,
        );
        assert_eq!(out.len(), 3);
        let mut frames = 0;
        for s in &out {
            let mp4 = s.mp4.as_ref().unwrap();
            let init = Init::parse(&mp4.init).unwrap();
            let from_mp4 = from_fmp4(&init, &mp4.data, true).unwrap();
            assert_ranges_agree(&init, &mp4.data);
            assert_eq!(
                assert_scan_agrees(&init, &mp4.data),
                1,
                "one read per segment"
            );
            let from_ts = from_ts(&s.ts, true).unwrap();
            assert_eq!(from_ts.tracks.len(), 2);
            let (tv, mv) = (
                from_ts.track(Kind::Video).unwrap(),
                from_mp4.track(Kind::Video).unwrap(),
            );
            assert_eq!(tv.samples.len(), s.video_frames as usize);
            assert_eq!(tv.samples.len(), mv.samples.len());
            for (a, b) in tv.samples.iter().zip(&mv.samples) {
                assert_eq!((a.dts, a.cto, a.sync), (b.dts, b.cto, b.sync));
            }
            assert_eq!(tv.entry, mv.entry, "same avc1 sample entry");
            assert_eq!((tv.width, tv.height), (160, 90));
            let (ta, ma) = (
                from_ts.track(Kind::Audio).unwrap(),
                from_mp4.track(Kind::Audio).unwrap(),
            );
            assert_eq!(ta.data, ma.data);
            assert_eq!(ta.samples.len(), s.audio_frames as usize);
            assert_eq!(ta.timescale, 44_100);
            // TS carries RTMP's millisecond times; the fMP4 writer counts samples and
            // resyncs past two frames of drift.
            for (a, b) in ta.samples.iter().zip(&ma.samples) {
                assert!((a.dts - b.dts).abs() <= 2 * AAC_FRAME, "{a:?} {b:?}");
            }
            let sum: u64 = tv.samples.iter().map(|x| u64::from(x.size)).sum();
            assert_eq!(sum, tv.data.len() as u64);
            frames += tv.samples.len();
        }
        assert_eq!(frames, 125);
    }

    #[test]
    fn refuses_what_is_not_ts() {
        assert!(from_ts(&[], true).is_err());
        assert!(from_ts(&[0u8; 188], true).is_err());
        let mut p = vec![0x47, 0x1f, 0xff, 0x10];
        p.resize(188, 0xff);
        // Null packets only: no program.
        assert!(matches!(from_ts(&p, true), Err(MediaError::Unsupported(_))));
    }
}
