//! Uncompressed audio grains, sans-IO: the PCM sample formats drey stores (interleaved,
//! little-endian, 16/24/32-bit integer and 32-bit float), how a run of samples is cut into
//! grains of a fixed number of samples (the last one may be shorter), their exact time
//! ranges and TAMS essence parameters, and a parser of WAV headers (untrusted bytes; fuzzed).

use crate::model::{AudioEssence, AudioUncParameters, AudioUncType};

/// TAMS codec of integer PCM.
pub const CODEC_INT: &str = "audio/x-raw-int";
/// TAMS codec of floating-point PCM.
pub const CODEC_FLOAT: &str = "audio/x-raw-float";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmError {
    #[error("unknown PCM format {0:?} (pcm_s16le, pcm_s24le, pcm_s32le or pcm_f32le)")]
    Format(String),
    #[error("{what} {value} is out of range ({range})")]
    Range {
        what: &'static str,
        value: u64,
        range: &'static str,
    },
    #[error(
        "{len} bytes of audio are not a whole number of {frame_bytes}-byte sample frames ({channels} channels of {format}; {rest} bytes left over)"
    )]
    NotWholeSamples {
        len: u64,
        frame_bytes: u64,
        channels: u32,
        format: &'static str,
        rest: u64,
    },
    #[error("no audio: the file holds no samples")]
    Empty,
    #[error("not a WAV file: {0}")]
    NotWav(String),
    #[error("unsupported WAV: {0}")]
    UnsupportedWav(String),
}

/// A sample format: interleaved channels, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmFormat {
    S16le,
    /// 24-bit integers packed in 3 bytes.
    S24le,
    S32le,
    F32le,
}

impl PcmFormat {
    pub const ALL: [PcmFormat; 4] = [
        PcmFormat::S16le,
        PcmFormat::S24le,
        PcmFormat::S32le,
        PcmFormat::F32le,
    ];

    /// `pcm_s24le` (ffmpeg's names), also without the `pcm_` prefix.
    pub fn parse(s: &str) -> Result<PcmFormat, PcmError> {
        let l = s.to_ascii_lowercase();
        Ok(match l.strip_prefix("pcm_").unwrap_or(&l) {
            "s16le" => PcmFormat::S16le,
            "s24le" => PcmFormat::S24le,
            "s32le" => PcmFormat::S32le,
            "f32le" => PcmFormat::F32le,
            _ => return Err(PcmError::Format(s.to_owned())),
        })
    }

    /// Whether `s` names a PCM format (and not a picture packing).
    pub fn is_pcm_name(s: &str) -> bool {
        Self::parse(s).is_ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            PcmFormat::S16le => "pcm_s16le",
            PcmFormat::S24le => "pcm_s24le",
            PcmFormat::S32le => "pcm_s32le",
            PcmFormat::F32le => "pcm_f32le",
        }
    }

    pub fn bytes_per_sample(self) -> u32 {
        match self {
            PcmFormat::S16le => 2,
            PcmFormat::S24le => 3,
            PcmFormat::S32le | PcmFormat::F32le => 4,
        }
    }

    pub fn bit_depth(self) -> u32 {
        self.bytes_per_sample() * 8
    }

    pub fn codec(self) -> &'static str {
        match self {
            PcmFormat::F32le => CODEC_FLOAT,
            _ => CODEC_INT,
        }
    }

    /// The format of a flow with this codec and these essence parameters, if drey stores
    /// it (interleaved, whole-byte samples).
    pub fn from_essence(codec: &str, e: &AudioEssence) -> Option<PcmFormat> {
        if e.unc_parameters.as_ref().map(|u| u.unc_type) != Some(AudioUncType::Interleaved) {
            return None;
        }
        match (codec, e.bit_depth?) {
            (CODEC_INT, 16) => Some(PcmFormat::S16le),
            (CODEC_INT, 24) => Some(PcmFormat::S24le),
            (CODEC_INT, 32) => Some(PcmFormat::S32le),
            (CODEC_FLOAT, 32) => Some(PcmFormat::F32le),
            _ => None,
        }
    }
}

/// How a flow's audio is cut into grains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmLayout {
    pub format: PcmFormat,
    pub sample_rate: u32,
    pub channels: u32,
    /// Samples (per channel) in every grain but possibly the last.
    pub grain_samples: u32,
}

impl PcmLayout {
    pub fn new(
        format: PcmFormat,
        sample_rate: u32,
        channels: u32,
        grain_samples: u32,
    ) -> Result<PcmLayout, PcmError> {
        let range = |what, value: u32, range| PcmError::Range {
            what,
            value: u64::from(value),
            range,
        };
        if !(1..=768_000).contains(&sample_rate) {
            return Err(range("sample rate", sample_rate, "1 to 768000 Hz"));
        }
        if !(1..=64).contains(&channels) {
            return Err(range("channel count", channels, "1 to 64"));
        }
        if grain_samples == 0 || u64::from(grain_samples) > u64::from(sample_rate) * 10 {
            return Err(range(
                "samples per grain",
                grain_samples,
                "1 to 10 seconds of samples",
            ));
        }
        Ok(PcmLayout {
            format,
            sample_rate,
            channels,
            grain_samples,
        })
    }

    /// The default grain: 40 ms (one 25 fps video frame), at least one sample.
    pub fn default_grain_samples(sample_rate: u32) -> u32 {
        (sample_rate / 25).max(1)
    }

    /// Bytes of one sample on every channel.
    pub fn sample_frame_bytes(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.format.bytes_per_sample())
    }

    /// Samples in `len` bytes, which must be whole sample frames.
    pub fn whole_samples(&self, len: u64) -> Result<u64, PcmError> {
        let fb = self.sample_frame_bytes();
        if !len.is_multiple_of(fb) {
            return Err(PcmError::NotWholeSamples {
                len,
                frame_bytes: fb,
                channels: self.channels,
                format: self.format.name(),
                rest: len % fb,
            });
        }
        if len == 0 {
            return Err(PcmError::Empty);
        }
        Ok(len / fb)
    }

    /// Grains holding `samples` samples.
    pub fn grains(&self, samples: u64) -> u64 {
        samples.div_ceil(u64::from(self.grain_samples))
    }

    /// Samples `first..end` of grain `n` of a run of `samples`.
    pub fn grain_samples_range(&self, n: u64, samples: u64) -> (u64, u64) {
        let g = u64::from(self.grain_samples);
        let first = n.saturating_mul(g).min(samples);
        (first, first.saturating_add(g).min(samples))
    }

    /// Byte range of grain `n` within the run's bytes.
    pub fn grain_bytes(&self, n: u64, samples: u64) -> (u64, u64) {
        let (a, b) = self.grain_samples_range(n, samples);
        let fb = self.sample_frame_bytes();
        (a * fb, b * fb)
    }

    /// TAMS essence parameters of a flow of these grains.
    pub fn essence(&self) -> AudioEssence {
        AudioEssence {
            sample_rate: self.sample_rate,
            channels: self.channels,
            bit_depth: Some(self.format.bit_depth()),
            codec_parameters: None,
            unc_parameters: Some(AudioUncParameters {
                unc_type: AudioUncType::Interleaved,
            }),
            init_segments: None,
        }
    }
}

/// TAI ns of sample `s` of a run whose sample 0 is at `start_ns`: exact to the nanosecond
/// below, so grains meet without gaps at any sample rate.
pub fn sample_start_ns(start_ns: i64, sample_rate: u32, s: u64) -> i64 {
    let off = u128::from(s) * 1_000_000_000 / u128::from(sample_rate.max(1));
    start_ns.saturating_add(i64::try_from(off).unwrap_or(i64::MAX))
}

/// What a WAV file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub format: PcmFormat,
    pub sample_rate: u32,
    pub channels: u32,
    /// Offset of the first sample byte in the file.
    pub data_offset: u64,
    /// Bytes of samples.
    pub data_len: u64,
}

/// How many bytes of a file [`parse_wav`] wants to see (chunks before `data`, such as
/// `bext` or `LIST`, must fit in them).
pub const WAV_HEAD_BYTES: usize = 1 << 20;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Whether `head` starts like a RIFF/WAVE (or RF64) file.
pub fn looks_like_wav(head: &[u8]) -> bool {
    head.len() >= 12 && matches!(&head[..4], b"RIFF" | b"RF64") && &head[8..12] == b"WAVE"
}

/// Parses the header of a WAV file of `file_len` bytes from its first bytes `head` (up to
/// [`WAV_HEAD_BYTES`]): PCM (16/24/32-bit) or IEEE float (32-bit), also in
/// `WAVE_FORMAT_EXTENSIBLE`. A `data` chunk that claims more bytes than the file holds is
/// refused as truncated, unless its size is the streaming placeholder (0 or 0xFFFFFFFF),
/// which means "to the end of the file".
pub fn parse_wav(head: &[u8], file_len: u64) -> Result<WavInfo, PcmError> {
    let not = |m: &str| PcmError::NotWav(m.to_owned());
    let unsup = |m: String| PcmError::UnsupportedWav(m);
    if head.len() < 12 {
        return Err(not("shorter than a RIFF header"));
    }
    if &head[..4] == b"RF64" {
        return Err(unsup(
            "RF64 (WAV over 4 GiB); split the file or give raw PCM with --format".into(),
        ));
    }
    if &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(not("no RIFF/WAVE header"));
    }
    let mut at = 12usize;
    let mut fmt: Option<(PcmFormat, u32, u32)> = None;
    loop {
        let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(head, at + 4)) else {
            return Err(not(&format!(
                "no data chunk within the first {} bytes",
                head.len()
            )));
        };
        let body = at + 8;
        if id == b"data" {
            let Some((format, sample_rate, channels)) = fmt else {
                return Err(not("data chunk before the fmt chunk"));
            };
            let left = file_len.saturating_sub(body as u64);
            let data_len = match size {
                0 | u32::MAX => left,
                n if u64::from(n) > left => {
                    return Err(not(&format!(
                        "truncated: the data chunk says {n} bytes, the file holds {left} after the header"
                    )));
                }
                n => u64::from(n),
            };
            let frame = u64::from(channels) * u64::from(format.bytes_per_sample());
            // A placeholder size may leave a partial sample frame at the end: drop it.
            let data_len = if matches!(size, 0 | u32::MAX) {
                data_len - data_len % frame
            } else if !data_len.is_multiple_of(frame) {
                return Err(not(&format!(
                    "the data chunk's {data_len} bytes are not a whole number of {frame}-byte sample frames"
                )));
            } else {
                data_len
            };
            return Ok(WavInfo {
                format,
                sample_rate,
                channels,
                data_offset: body as u64,
                data_len,
            });
        }
        if id == b"fmt " {
            let f = head
                .get(body..body + (size as usize).min(40))
                .filter(|f| f.len() >= 16)
                .ok_or_else(|| not("fmt chunk shorter than 16 bytes"))?;
            let mut tag = u16_at(f, 0).unwrap_or(0);
            let channels = u32::from(u16_at(f, 2).unwrap_or(0));
            let sample_rate = u32_at(f, 4).unwrap_or(0);
            let block_align = u32::from(u16_at(f, 12).unwrap_or(0));
            let bits = u32::from(u16_at(f, 14).unwrap_or(0));
            if tag == 0xFFFE {
                // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag.
                tag = u16_at(f, 24).ok_or_else(|| not("extensible fmt chunk too short"))?;
            }
            let format = match (tag, bits) {
                (1, 16) => PcmFormat::S16le,
                (1, 24) => PcmFormat::S24le,
                (1, 32) => PcmFormat::S32le,
                (3, 32) => PcmFormat::F32le,
                (1, 8) => return Err(unsup("8-bit (unsigned) PCM".into())),
                (1 | 3, b) => return Err(unsup(format!("{b}-bit samples"))),
                (t, _) => {
                    return Err(unsup(format!(
                        "format tag {t:#06x} (drey stores PCM and IEEE float)"
                    )));
                }
            };
            if channels == 0 || sample_rate == 0 {
                return Err(not("fmt chunk with no channels or a zero sample rate"));
            }
            if block_align != channels * format.bytes_per_sample() {
                return Err(unsup(format!(
                    "block align {block_align} for {channels} channels of {bits}-bit samples (padded samples)"
                )));
            }
            fmt = Some((format, sample_rate, channels));
        }
        // Chunks are padded to an even length.
        at = body
            .checked_add(size as usize + (size as usize & 1))
            .ok_or_else(|| not("chunk size overflows"))?;
    }
}

/// A WAV header (`WAVE_FORMAT_EXTENSIBLE` beyond two channels or 16 bits, as the format
/// asks) for `data_len` bytes of samples; `None` past the 4 GiB a RIFF size can say.
pub fn wav_header(layout: &PcmLayout, data_len: u64) -> Option<Vec<u8>> {
    let extensible = layout.channels > 2 || layout.format.bit_depth() > 16;
    let fmt_len: u32 = if extensible { 40 } else { 16 };
    let riff_len = u32::try_from(4 + 8 + u64::from(fmt_len) + 8 + data_len).ok()?;
    let data_len = u32::try_from(data_len).ok()?;
    let tag: u16 = if layout.format == PcmFormat::F32le {
        3
    } else {
        1
    };
    let bps = layout.format.bytes_per_sample();
    let align = layout.channels * bps;
    let mut h = Vec::with_capacity(68);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&riff_len.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&fmt_len.to_le_bytes());
    h.extend_from_slice(&(if extensible { 0xFFFE } else { tag }).to_le_bytes());
    h.extend_from_slice(&(layout.channels as u16).to_le_bytes());
    h.extend_from_slice(&layout.sample_rate.to_le_bytes());
    h.extend_from_slice(&(layout.sample_rate * align).to_le_bytes());
    h.extend_from_slice(&(align as u16).to_le_bytes());
    h.extend_from_slice(&((bps * 8) as u16).to_le_bytes());
    if extensible {
        h.extend_from_slice(&22u16.to_le_bytes());
        h.extend_from_slice(&((bps * 8) as u16).to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // channel mask: unspecified
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(f: PcmFormat, ch: u32) -> PcmLayout {
        PcmLayout::new(f, 48_000, ch, 1920).unwrap()
    }

    #[test]
    fn formats_round_trip_through_names_and_essence() {
        for f in PcmFormat::ALL {
            assert_eq!(PcmFormat::parse(f.name()), Ok(f));
            assert_eq!(PcmFormat::parse(&f.name()[4..]), Ok(f));
            let e = layout(f, 2).essence();
            assert_eq!(PcmFormat::from_essence(f.codec(), &e), Some(f));
        }
        assert!(PcmFormat::parse("v210").is_err());
        assert!(!PcmFormat::is_pcm_name("uyvy"));
    }

    #[test]
    fn grains_cover_every_sample_once_with_exact_times() {
        let l = PcmLayout::new(PcmFormat::S24le, 44_100, 2, 1764).unwrap();
        let samples = 44_100 * 3 + 17;
        let n = l.grains(samples);
        assert_eq!(n, 76);
        let mut next = 0;
        for g in 0..n {
            let (a, b) = l.grain_samples_range(g, samples);
            assert_eq!(a, next);
            assert!(b > a);
            next = b;
            let (s, e) = (
                sample_start_ns(1000, 44_100, a),
                sample_start_ns(1000, 44_100, b),
            );
            assert!(e > s);
        }
        assert_eq!(next, samples);
        assert_eq!(l.grain_bytes(75, samples), (75 * 1764 * 6, samples * 6));
        assert_eq!(sample_start_ns(0, 48_000, 48_000), 1_000_000_000);
    }

    #[test]
    fn whole_samples_and_limits() {
        let l = layout(PcmFormat::S24le, 2);
        assert_eq!(l.whole_samples(60), Ok(10));
        assert!(matches!(
            l.whole_samples(61),
            Err(PcmError::NotWholeSamples { rest: 1, .. })
        ));
        assert_eq!(l.whole_samples(0), Err(PcmError::Empty));
        assert!(PcmLayout::new(PcmFormat::S16le, 0, 2, 10).is_err());
        assert!(PcmLayout::new(PcmFormat::S16le, 48_000, 0, 10).is_err());
        assert!(PcmLayout::new(PcmFormat::S16le, 48_000, 2, 0).is_err());
        assert!(PcmLayout::new(PcmFormat::S16le, 48_000, 2, 480_001).is_err());
    }

    #[test]
    fn wav_headers_round_trip() {
        for f in PcmFormat::ALL {
            for ch in [1, 2, 6] {
                let l = layout(f, ch);
                let data = 1920 * l.sample_frame_bytes();
                let h = wav_header(&l, data).unwrap();
                let info = parse_wav(&h, h.len() as u64 + data).unwrap();
                assert_eq!(
                    (info.format, info.sample_rate, info.channels),
                    (f, 48_000, ch)
                );
                assert_eq!((info.data_offset, info.data_len), (h.len() as u64, data));
                // Truncated file: refused, naming the sizes.
                let e = parse_wav(&h, h.len() as u64 + data - 1).unwrap_err();
                assert!(e.to_string().contains("truncated"), "{e}");
            }
        }
        assert!(wav_header(&layout(PcmFormat::S16le, 2), 1 << 33).is_none());
    }

    #[test]
    fn wav_refusals_name_the_problem() {
        let l = layout(PcmFormat::S16le, 2);
        let mut h = wav_header(&l, 400).unwrap();
        assert!(parse_wav(&h[..11], 1000).is_err());
        h[0..4].copy_from_slice(b"RF64");
        assert!(
            parse_wav(&h, 1000)
                .unwrap_err()
                .to_string()
                .contains("RF64")
        );
        let mut h = wav_header(&l, 400).unwrap();
        h[34] = 8; // bits per sample
        h[32] = 2; // block align
        assert!(
            parse_wav(&h, 1000)
                .unwrap_err()
                .to_string()
                .contains("8-bit")
        );
        // Streaming placeholder size: to the end of the file, whole sample frames.
        let mut h = wav_header(&l, 400).unwrap();
        let n = h.len();
        h[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let info = parse_wav(&h, n as u64 + 403).unwrap();
        assert_eq!(info.data_len, 400);
        // A data chunk that is not whole sample frames (found by the fuzzer).
        let h = wav_header(&l, 401).unwrap();
        assert!(
            parse_wav(&h, h.len() as u64 + 401)
                .unwrap_err()
                .to_string()
                .contains("whole number of 4-byte sample frames")
        );
        // An unknown chunk before the data is skipped (padded to even).
        let mut h = wav_header(&l, 400).unwrap();
        let data = h.split_off(36);
        h.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        h.extend_from_slice(&data);
        assert_eq!(
            parse_wav(&h, h.len() as u64 + 400).unwrap().data_offset,
            h.len() as u64
        );
    }
}
